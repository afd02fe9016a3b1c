#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root: install, start trioctrd
# with its defaults, make a busybox image from the host's busybox-static,
# run a container that prints something, and show `trioctr ps -a`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}

if ! trioctr version >/dev/null 2>&1; then
    mkdir -p /run/trioctr
    nohup trioctrd >/run/trioctr/trioctrd.log 2>&1 &
    for _ in $(seq 100); do trioctr version >/dev/null 2>&1 && break; sleep 0.1; done
fi
tar=$(mktemp --suffix=.tar)
"$PY" -c "from tests.helpers.images import busybox_rootfs_tar; busybox_rootfs_tar('$tar')"
trioctr import -c 'CMD ["sh"]' "$tar" busybox:latest
rm -f "$tar"
trioctr run --name hello-$$ busybox echo "hello from a trioctr container"
trioctr ps -a
