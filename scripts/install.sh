#!/usr/bin/env bash
# Install what trioctr needs on Debian 12 (as root). `--test` adds what the
# test suite needs. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(busybox-static iproute2 libseccomp2)
if [ "${1:-}" = "--test" ]; then
    # runc and crun: peer runtimes for differential tests; docker-registry,
    # skopeo and umoci: a real registry and OCI tools for image tests and the
    # pull benchmark; iptables: networks
    apt_pkgs+=(runc crun iptables skopeo umoci docker-registry)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# editable_mode=compat: a plain path entry in a .pth, not an import-hook finder,
# which costs every Python start-up (the CLI's included) ~15 ms
if [ "${1:-}" = "--test" ]; then
    "$PY" -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
else
    "$PY" -m pip install -q --disable-pip-version-check -e . --config-settings editable_mode=compat
fi
# byte-compile now: the CLI and the per-container processes start faster, and
# stay fast even where PYTHONDONTWRITEBYTECODE is set
"$PY" -m compileall -q actors messages cli linux oci >/dev/null
