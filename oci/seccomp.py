"""Docker's default seccomp profile, converted to the OCI ``linux.seccomp`` form.

``oci/seccomp_default.json`` is moby's ``profiles/seccomp/default.json``
(Apache-2.0).  ``from_profile`` applies moby's ``setupSeccomp`` rules: keep the
architectures of the host's native arch, and each syscall group whose
``includes`` (caps all in the bounding set, arches, minKernel) hold and whose
``excludes`` (any cap, arch) do not.
"""

from __future__ import annotations

import functools
import json
import os
import platform

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64", "mips64": "mips64", "loongarch64": "loong64"}
_NATIVE = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
           "386": "SCMP_ARCH_X86", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
           "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64",
           "loong64": "SCMP_ARCH_LOONGARCH64"}
# moby's arch names in includes/excludes
_PROFILE_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm": "arm", "386": "x86",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
                 "mips64": "mips64", "loong64": "loong64"}


def go_arch() -> str:
    m = platform.machine()
    return _GOARCH.get(m, m)


def _kernel_version() -> tuple[int, int]:
    rel = os.uname().release
    parts = []
    for p in rel.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit()) or "0"
        parts.append(int(digits))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


@functools.lru_cache(maxsize=1)
def default_profile() -> dict:
    with open(os.path.join(os.path.dirname(__file__), "seccomp_default.json"), "rb") as f:
        return json.load(f)


def from_profile(profile: dict, capabilities: list[str], arch: str | None = None,
                 kernel: tuple[int, int] | None = None) -> dict:
    """Convert a Docker seccomp profile to ``linux.seccomp`` for the given
    bounding capabilities (``CAP_*`` names) and Go arch (default: the host's)."""
    arch = arch or go_arch()
    kernel = kernel or _kernel_version()
    parch = _PROFILE_ARCH.get(arch, arch)
    caps = set(capabilities)
    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    native = _NATIVE.get(arch)
    archs: list[str] = []
    for a in profile.get("archMap") or []:
        if a.get("architecture") == native:
            archs.append(a["architecture"])
            archs.extend(a.get("subArchitectures") or [])
    out["architectures"] = archs
    syscalls = []
    for call in profile.get("syscalls") or []:
        inc = call.get("includes") or {}
        exc = call.get("excludes") or {}
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("arches") and parch not in inc["arches"]:
            continue
        if inc.get("minKernel"):
            want = tuple(int(x) for x in inc["minKernel"].split(".")[:2])
            if kernel < want:
                continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        if exc.get("arches") and parch in exc["arches"]:
            continue
        names = list(call.get("names") or [])
        if call.get("name"):
            names.insert(0, call["name"])
        entry: dict = {"names": names, "action": call["action"]}
        if call.get("errnoRet") is not None:
            entry["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            entry["args"] = [{"index": a["index"], "value": a["value"],
                              "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                             for a in call["args"]]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


@functools.lru_cache(maxsize=16)
def default_seccomp_for(capabilities: tuple[str, ...]) -> dict:
    """default_seccomp for the host's arch, kept per capability set (a
    daemon converts the same few sets again and again).  Do not modify it."""
    return default_seccomp(list(capabilities))


def default_seccomp(capabilities: list[str], arch: str | None = None) -> dict:
    """Docker's default profile for these capabilities, as ``linux.seccomp``."""
    return from_profile(default_profile(), capabilities, arch)
