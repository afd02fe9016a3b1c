"""Capability names and numbers (linux/capability.h), Docker's default set,
and applying the five OCI capability sets to the calling process."""

from __future__ import annotations

CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",               # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",                # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",    # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",           # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",           # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",            # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",       # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",          # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)

BY_NAME: dict[str, int] = {name: i for i, name in enumerate(CAPABILITIES)}

# what `docker run` grants without --cap-add (moby oci/caps/defaults.go)
DOCKER_DEFAULT: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def cap_number(name: str) -> int:
    """'CAP_KILL', 'kill' or 'KILL' -> 5.  Raises ValueError for unknown names."""
    if not isinstance(name, str):
        raise ValueError(f"capability name must be a string, not {name!r}")
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return BY_NAME[key]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def cap_name(number: int) -> str:
    if 0 <= number < len(CAPABILITIES):
        return CAPABILITIES[number]
    return f"CAP_{number}"


def to_mask(names) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def from_mask(mask: int) -> list[str]:
    return [cap_name(i) for i in range(64) if mask >> i & 1]


def last_cap(proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def parse_status_caps(text: str) -> dict[str, int]:
    """The Cap* lines of /proc/PID/status: {'CapEff': mask, ...}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("Cap"):
            key, _, value = line.partition(":")
            out[key] = int(value.strip(), 16)
    return out


def apply_bounding(keep_mask: int, last: int) -> None:
    """Drop every capability not in keep_mask from the bounding set (needs
    CAP_SETPCAP, so call this while still root with full capabilities)."""
    from . import syscalls

    for cap in range(last + 1):
        if not keep_mask >> cap & 1 and syscalls.capbset_read(cap):
            syscalls.capbset_drop(cap)


def apply_sets(effective: int, permitted: int, inheritable: int, ambient: int) -> None:
    """capset the effective/permitted/inheritable sets, then the ambient set.
    Ambient capabilities must be in both permitted and inheritable."""
    from . import syscalls

    syscalls.capset(effective, permitted, inheritable)
    syscalls.ambient_clear_all()
    for cap in range(64):
        if ambient >> cap & 1:
            syscalls.ambient_raise(cap)
