"""The OCI runtime spec (config.json) for a container, with Docker's defaults.

``build_spec(ContainerSpecInput(...)) -> dict`` gives what dockerd + containerd
would hand to runc for ``docker run`` with the default (non-privileged)
settings: Docker's default capabilities, mounts, masked and read-only paths,
namespaces, device cgroup rules, rlimits and resources.

Docker's container-create rules are here too, so the daemon can use them when
it records a container:

- ``merge_config(user, image)``: Docker's ``merge`` of the create request's
  ``Config`` with the image's (Env, Cmd/Entrypoint, WorkingDir, User, Labels,
  ExposedPorts, Volumes, ...), then ``verify_config`` (``No command specified``).
- ``resolve_command(image_config, cmd, entrypoint)``: ``Entrypoint + Cmd``.
- ``container_env(env, hostname, tty)``: PATH, HOSTNAME, TERM in front, as
  ``CreateDaemonEnvironment``.
- ``resolve_user(spec, layer_dirs)``: runc's ``GetExecUser`` against the
  image's /etc/passwd and /etc/group, read through the layers (top first;
  whiteouts and opaque dirs hide lower layers).

Layer dirs are **bottom (base) layer first**, as ``ImageStore.layer_dirs``.
"""

from __future__ import annotations

import json
import os
import posixpath
import resource
import stat
from typing import Any, Iterable

import attrs

from .changes import DEFAULT_PATH, env_dict
from .errors import InvalidSpec, UserNotFound
from .unpack import OPAQUE_XATTR, is_whiteout

OCI_VERSION = "1.0.2"

DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

ALL_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]

READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]

DEFAULT_NAMESPACES = ["mount", "network", "uts", "pid", "ipc", "cgroup"]

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DEFAULT_NOFILE = 1048576
CPU_PERIOD = 100000  # microseconds


def _dev(allow: bool, type_: str | None = None, major: int | None = None,
         minor: int | None = None, access: str = "rwm") -> dict:
    d: dict[str, Any] = {"allow": allow}
    if type_ is not None:
        d["type"] = type_
    if major is not None:
        d["major"] = major
    if minor is not None:
        d["minor"] = minor
    d["access"] = access
    return d


# Docker's spec denies everything; runc then appends its AllowedDevices.  They
# are written out here so that any runtime (ours included) gets the same rules.
DEFAULT_DEVICE_RULES = [
    _dev(False, access="rwm"),
    _dev(True, "c", None, None, "m"),    # mknod any char device
    _dev(True, "b", None, None, "m"),    # mknod any block device
    _dev(True, "c", 1, 3, "rwm"),        # /dev/null
    _dev(True, "c", 1, 8, "rwm"),        # /dev/random
    _dev(True, "c", 1, 7, "rwm"),        # /dev/full
    _dev(True, "c", 5, 0, "rwm"),        # /dev/tty
    _dev(True, "c", 1, 5, "rwm"),        # /dev/zero
    _dev(True, "c", 1, 9, "rwm"),        # /dev/urandom
    _dev(True, "c", 5, 1, "rwm"),        # /dev/console
    _dev(True, "c", 136, None, "rwm"),   # /dev/pts/*
    _dev(True, "c", 5, 2, "rwm"),        # /dev/ptmx
    _dev(True, "c", 10, 200, "rwm"),     # /dev/net/tun
]


def default_mounts(shm_size: int = DEFAULT_SHM_SIZE) -> list[dict]:
    """Docker's default mounts (moby ``oci.DefaultLinuxSpec`` + private /dev/shm)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={int(shm_size)}"]},
    ]


# --------------------------------------------------------------------------- input


def _strlist(v: Any) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


@attrs.define(kw_only=True)
class ContainerSpecInput:
    """Everything ``build_spec`` needs.  ``cmd``/``entrypoint`` are the *run*
    overrides (None = not given; ``entrypoint=[""]`` is ``--entrypoint ""``)."""

    container_id: str
    image_config: dict = attrs.Factory(dict)
    """The image config JSON (``Image.config``: has "config" with Env, Cmd, ...);
    a bare container config (with "Cmd"/"Env" at the top) is accepted too."""
    cmd: list[str] | None = attrs.field(default=None, converter=_strlist)
    entrypoint: list[str] | None = attrs.field(default=None, converter=_strlist)
    env: list[str] = attrs.Factory(list)
    workdir: str = ""
    user: str = ""
    group_add: list[str] = attrs.Factory(list)
    hostname: str = ""
    """Default: the first 12 characters of ``container_id``."""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    readonly_rootfs: bool = False
    rootfs: str = "rootfs"
    """``root.path``: relative to the bundle."""
    layer_dirs: list[str] = attrs.Factory(list)
    """Image layer dirs, bottom first, for /etc/passwd and /etc/group lookups."""
    # resources
    memory: int = 0
    memory_swap: int = 0
    """0: Docker's default (2 x memory when memory is set); -1: unlimited."""
    memory_reservation: int = 0
    pids_limit: int | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = "trioctr"
    ulimits: list[dict] = attrs.Factory(list)
    """Docker's ``[{"Name": "nofile", "Soft": n, "Hard": n}]``."""
    # security
    cap_add: list[str] = attrs.Factory(list)
    cap_drop: list[str] = attrs.Factory(list)
    no_new_privileges: bool = False
    seccomp: dict | None = None
    """``linux.seccomp`` to embed (see ``oci.seccomp.default_seccomp``); None: none."""
    oom_score_adj: int = 0
    sysctls: dict = attrs.Factory(dict)
    # files and mounts
    hostname_path: str | None = None
    hosts_path: str | None = None
    resolv_conf_path: str | None = None
    shm_size: int = DEFAULT_SHM_SIZE
    mounts: list[dict] = attrs.Factory(list)
    """Extra OCI mounts (binds, volumes, tmpfs); they replace defaults at the
    same destination."""
    namespaces: dict[str, str] | None = None
    """None: Docker's (all new: mount network uts pid ipc cgroup).  Otherwise
    type -> "" (new) or a path to join; absent types are the host's."""
    console_size: tuple[int, int] | None = None
    """(height, width) for a tty."""
    annotations: dict[str, str] = attrs.Factory(dict)
    labels: dict[str, str] = attrs.Factory(dict)
    """Container labels: not part of the runtime spec (Docker does not put them
    in config.json); kept so that callers can pass the whole record."""


# --------------------------------------------------------------------------- config merge


def _image_cc(image_config: dict) -> dict:
    if "config" in image_config and isinstance(image_config.get("config"), dict):
        return image_config["config"]
    if "rootfs" in image_config or "architecture" in image_config:
        return image_config.get("config") or {}
    return image_config


def merge_env(image_env: Iterable[str] | None, run_env: Iterable[str] | None) -> list[str]:
    """Docker's ``merge``: the run's variables first, then the image's that the
    run does not set (by key)."""
    user = list(run_env or [])
    if not user:
        return list(image_env or [])
    keys = {e.split("=", 1)[0] for e in user}
    return user + [e for e in image_env or [] if e.split("=", 1)[0] not in keys]


def replace_or_append_env(defaults: list[str], overrides: Iterable[str]) -> list[str]:
    """Docker's ``ReplaceOrAppendEnvValues``; ``KEY`` without ``=`` unsets."""
    out = list(defaults)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for v in overrides:
        if "=" not in v:
            if v in index:
                out[index[v]] = None  # type: ignore[call-overload]
            continue
        k = v.split("=", 1)[0]
        if k in index and out[index[k]] is not None:
            out[index[k]] = v
        else:
            index[k] = len(out)
            out.append(v)
    return [e for e in out if e is not None]


def container_env(env: Iterable[str], hostname: str, tty: bool) -> list[str]:
    """Docker's ``CreateDaemonEnvironment``: PATH, HOSTNAME (and TERM=xterm with
    a tty) first, overridden/extended by the container's Env."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty:
        base.append("TERM=xterm")
    return replace_or_append_env(base, env)


def resolve_command(image_config: dict, cmd: list[str] | None = None,
                    entrypoint: list[str] | None = None) -> list[str]:
    """``Entrypoint + Cmd`` after Docker's merge: run args replace the image's
    Cmd; ``--entrypoint`` replaces the Entrypoint and drops the image's Cmd;
    ``--entrypoint ""`` resets it.  ``No command specified`` if nothing is left."""
    ep, c = merge_command(_image_cc(image_config), cmd, entrypoint)
    if not ep and not c:
        raise InvalidSpec("No command specified")
    return list(ep or []) + list(c or [])


def merge_command(image_cc: dict, cmd: list[str] | None, entrypoint: list[str] | None
                  ) -> tuple[list[str] | None, list[str] | None]:
    if entrypoint is None or len(entrypoint) == 0:
        if not cmd:
            cmd = _strlist(image_cc.get("Cmd"))
        if entrypoint is None:
            entrypoint = _strlist(image_cc.get("Entrypoint"))
    if entrypoint is not None and len(entrypoint) == 1 and entrypoint[0] == "":
        entrypoint = None
    return (list(entrypoint) if entrypoint else entrypoint), (list(cmd) if cmd else cmd)


def merge_config(user: dict, image: dict) -> dict:
    """Docker's ``merge(userConf, imageConf)`` on API-shaped ``Config`` dicts
    (``image`` may be the whole image config JSON).  Returns a new dict."""
    cfg = dict(user or {})
    img = _image_cc(image or {})
    if not cfg.get("User"):
        cfg["User"] = img.get("User", "") or ""
    if img.get("ExposedPorts"):
        ports = dict(img["ExposedPorts"])
        ports.update(cfg.get("ExposedPorts") or {})
        cfg["ExposedPorts"] = ports
    cfg["Env"] = merge_env(img.get("Env"), cfg.get("Env"))
    if img.get("Labels"):
        labels = dict(img["Labels"])
        labels.update(cfg.get("Labels") or {})
        cfg["Labels"] = labels
    ep = _strlist(cfg.get("Entrypoint"))
    if ep is None or len(ep) == 0:
        if not cfg.get("Cmd"):
            cfg["Cmd"] = _strlist(img.get("Cmd"))
        if ep is None:
            cfg["Entrypoint"] = _strlist(img.get("Entrypoint"))
    if cfg.get("Healthcheck") is None and img.get("Healthcheck") is not None:
        cfg["Healthcheck"] = img["Healthcheck"]
    if not cfg.get("WorkingDir"):
        cfg["WorkingDir"] = img.get("WorkingDir", "") or ""
    if img.get("Volumes"):
        vols = dict(img["Volumes"])
        vols.update(cfg.get("Volumes") or {})
        cfg["Volumes"] = vols
    if not cfg.get("StopSignal") and img.get("StopSignal"):
        cfg["StopSignal"] = img["StopSignal"]
    if not cfg.get("Shell") and img.get("Shell"):
        cfg["Shell"] = img["Shell"]
    if not cfg.get("OnBuild") and img.get("OnBuild"):
        cfg["OnBuild"] = img["OnBuild"]
    cfg.setdefault("Cmd", None)
    cfg.setdefault("Entrypoint", None)
    verify_config(cfg)
    return cfg


def verify_config(cfg: dict) -> None:
    """Docker's ``mergeAndVerifyConfig`` tail: reset ``[""]`` entrypoints, require
    a command, and an absolute working directory."""
    ep = cfg.get("Entrypoint")
    if ep is not None and len(ep) == 1 and ep[0] == "":
        cfg["Entrypoint"] = None
    if not cfg.get("Entrypoint") and not cfg.get("Cmd"):
        raise InvalidSpec("No command specified")
    check_workdir(cfg.get("WorkingDir") or "")


def check_workdir(w: str) -> None:
    if w and not w.startswith("/"):
        raise InvalidSpec(
            f"the working directory '{w}' is invalid, it needs to be an absolute path")


# --------------------------------------------------------------------------- layered rootfs


class LayeredFS:
    """Read-only view of image layers as overlayfs would merge them (no mount).

    ``layer_dirs`` bottom first.  A whiteout (char 0/0, or a whiteout recorded
    as pending in the layer's meta.json by an unprivileged unpack) hides the
    path in lower layers; an opaque directory hides the lower layers' content.
    Symlinks are followed inside the merged view (absolute ones from its root).
    """

    MAX_LINKS = 40
    MAX_FILE = 16 * 1024 * 1024

    def __init__(self, layer_dirs: Iterable[str]):
        self.layers = list(reversed(list(layer_dirs)))  # top first
        self._pending: dict[str, tuple[set[str], set[str]]] = {}
        for d in self.layers:
            wh: set[str] = set()
            opq: set[str] = set()
            meta = os.path.join(os.path.dirname(d.rstrip("/")), "meta.json")
            try:
                with open(meta, "rb") as f:
                    m = json.load(f)
                wh = set(m.get("pending_whiteouts") or [])
                opq = set(m.get("pending_opaques") or [])
            except (OSError, ValueError):
                pass
            self._pending[d] = (wh, opq)

    @staticmethod
    def _opaque(path: str) -> bool:
        try:
            return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
        except OSError:
            return False

    def _lookup(self, comps: list[str]) -> tuple[str, os.stat_result] | None:
        for layer in self.layers:
            wh, opq = self._pending[layer]
            cur = layer
            opaque = self._opaque(layer) or "." in opq
            present = True
            for i, c in enumerate(comps[:-1]):
                rel = "/".join(comps[: i + 1])
                if rel in wh:
                    return None
                cur = os.path.join(cur, c)
                try:
                    st = os.lstat(cur)
                except (FileNotFoundError, NotADirectoryError):
                    present = False
                    break
                if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    return None
                opaque = self._opaque(cur) or rel in opq
            if not present:
                continue
            if comps:
                rel = "/".join(comps)
                if rel in wh:
                    return None
                p = os.path.join(cur, comps[-1])
                try:
                    st = os.lstat(p)
                except (FileNotFoundError, NotADirectoryError):
                    if opaque:
                        return None
                    continue
                if is_whiteout(st):
                    return None
                return p, st
            return cur, os.lstat(cur)
        return None

    def resolve(self, path: str) -> list[str] | None:
        """Components of ``path`` with every symlink resolved, or None if missing."""
        parts = [p for p in path.split("/")]
        resolved: list[str] = []
        links = 0
        while parts:
            c = parts.pop(0)
            if c in ("", "."):
                continue
            if c == "..":
                if resolved:
                    resolved.pop()
                continue
            found = self._lookup(resolved + [c])
            if found is None:
                return None
            p, st = found
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > self.MAX_LINKS:
                    return None
                target = os.readlink(p)
                if target.startswith("/"):
                    resolved = []
                parts = target.split("/") + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                if any(x not in ("", ".") for x in parts):
                    return None
            resolved.append(c)
        return resolved

    def read_file(self, path: str) -> bytes | None:
        comps = self.resolve(path)
        if comps is None or not comps:
            return None
        found = self._lookup(comps)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        try:
            fd = os.open(found[0], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(self.MAX_FILE)


# --------------------------------------------------------------------------- users


@attrs.define
class ExecUser:
    uid: int
    gid: int
    additional_gids: list[int]
    home: str = "/"
    name: str = ""


def _atoi(s: str) -> int | None:
    s = s.strip()
    if s.isdigit() or (s.startswith("-") and s[1:].isdigit()):
        return int(s)
    return None


def _parse_passwd(data: bytes) -> list[tuple[str, int, int, str]]:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (7 - len(f))
        out.append((f[0], _atoi(f[2]) or 0, _atoi(f[3]) or 0, f[5]))
    return out


def _parse_group(data: bytes) -> list[tuple[str, int, list[str]]]:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (4 - len(f))
        members = [m for m in f[3].split(",") if m]
        out.append((f[0], _atoi(f[2]) or 0, members))
    return out


MAX_ID = 2147483647


def resolve_user(user_spec: str, layer_dirs: Iterable[str] = (), *,
                 group_add: Iterable[str] = ()) -> ExecUser:
    """runc's ``GetExecUser`` against the image's /etc/passwd and /etc/group.

    ``"uid"``, ``"uid:gid"``, ``"name"``, ``"name:group"``; "" is root.  An
    unknown name is ``unable to find user NAME: no matching entries in passwd
    file``; numeric ids need no entry.  Supplementary groups come from
    /etc/group membership when no group is given, plus ``group_add``.
    """
    fs = LayeredFS(layer_dirs)
    passwd_data = fs.read_file("/etc/passwd")
    group_data = fs.read_file("/etc/group")
    passwd = _parse_passwd(passwd_data) if passwd_data is not None else None
    groups = _parse_group(group_data) if group_data is not None else None

    user_arg, _, group_arg = (user_spec or "").partition(":")
    uid_arg, gid_arg = _atoi(user_arg), _atoi(group_arg)
    u = ExecUser(uid=0, gid=0, additional_gids=[], home="/")

    matched = None
    if passwd is not None:
        for name, uid, gid, home in passwd:
            if user_arg == "":
                ok = uid == u.uid
            elif uid_arg is not None:
                ok = uid == uid_arg
            else:
                ok = name == user_arg
            if ok:
                matched = (name, uid, gid, home)
                break
    if matched is not None:
        u.name, u.uid, u.gid, u.home = matched[0], matched[1], matched[2], matched[3] or "/"
    elif user_arg != "":
        if uid_arg is None:
            raise UserNotFound(
                f"unable to find user {user_arg}: no matching entries in passwd file")
        if uid_arg < 0 or uid_arg > MAX_ID:
            raise UserNotFound("uids and gids must be in range 0-2147483647")
        u.uid = uid_arg

    if groups is not None and (group_arg != "" or u.name != ""):
        if group_arg != "":
            found = None
            for name, gid, _members in groups:
                if (gid_arg is not None and gid == gid_arg) or (gid_arg is None and name == group_arg):
                    found = gid
                    break
            if found is not None:
                u.gid = found
            else:
                if gid_arg is None:
                    raise UserNotFound(
                        f"unable to find group {group_arg}: no matching entries in group file")
                if gid_arg < 0 or gid_arg > MAX_ID:
                    raise UserNotFound("uids and gids must be in range 0-2147483647")
                u.gid = gid_arg
        else:
            u.additional_gids = [gid for _n, gid, members in groups if u.name in members]
    elif group_arg != "":
        if gid_arg is None:
            raise UserNotFound(
                f"unable to find group {group_arg}: no matching entries in group file")
        u.gid = gid_arg

    for g in group_add:
        gid = _atoi(g)
        if gid is None:
            found = None
            for name, ggid, _m in groups or []:
                if name == g:
                    found = ggid
                    break
            if found is None:
                raise UserNotFound(
                    f"Unable to find group {g}: no matching entries in group file")
            gid = found
        u.additional_gids.append(gid)
    return u


# --------------------------------------------------------------------------- caps, rlimits


def _norm_cap(c: str) -> str:
    c = c.strip().upper()
    if c == "ALL":
        return c
    if not c.startswith("CAP_"):
        c = "CAP_" + c
    if c not in ALL_CAPABILITIES:
        raise InvalidSpec(f'unknown capability: "{c}"')
    return c


def capabilities(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = ()) -> list[str]:
    """Docker's ``TweakCapabilities`` over the default set."""
    adds = [_norm_cap(c) for c in cap_add]
    drops = [_norm_cap(c) for c in cap_drop]
    if "ALL" in adds:
        return [c for c in ALL_CAPABILITIES if c not in drops]
    base = [] if "ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    for c in adds:
        if c not in base:
            base.append(c)
    return base


_RLIMIT_NAMES = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
    "as": "RLIMIT_AS",
}


def default_nofile() -> int:
    """1048576 (what dockerd gets from its systemd unit) when the host's hard
    limit allows, else the host's hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= DEFAULT_NOFILE:
        return DEFAULT_NOFILE
    return int(hard)


def rlimits(ulimits: Iterable[dict] = ()) -> list[dict]:
    out: dict[str, dict] = {}
    n = default_nofile()
    out["RLIMIT_NOFILE"] = {"type": "RLIMIT_NOFILE", "hard": n, "soft": n}
    for u in ulimits:
        name = str(u.get("Name", "")).lower()
        if name not in _RLIMIT_NAMES:
            raise InvalidSpec(f"invalid ulimit type: {name}")
        t = _RLIMIT_NAMES[name]
        out[t] = {"type": t, "hard": int(u.get("Hard", 0)), "soft": int(u.get("Soft", 0))}
    return list(out.values())


# --------------------------------------------------------------------------- build


def cgroups_path(parent: str, container_id: str) -> str:
    """``/<cgroup-parent>/<id>`` (cgroupfs style)."""
    parent = (parent or "").strip("/")
    return "/" + "/".join(p for p in (parent, container_id) if p)


def resources(inp: ContainerSpecInput) -> dict:
    res: dict[str, Any] = {"devices": [dict(d) for d in DEFAULT_DEVICE_RULES]}
    mem: dict[str, Any] = {}
    if inp.memory > 0:
        mem["limit"] = int(inp.memory)
    if inp.memory_reservation > 0:
        mem["reservation"] = int(inp.memory_reservation)
    swap = inp.memory_swap
    if inp.memory > 0 and swap == 0:
        swap = inp.memory * 2
    if swap > 0:
        mem["swap"] = int(swap)
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if inp.cpu_shares:
        cpu["shares"] = int(inp.cpu_shares)
    if inp.nano_cpus > 0:
        if inp.cpu_quota or inp.cpu_period:
            raise InvalidSpec("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = int(inp.nano_cpus) * CPU_PERIOD // 1_000_000_000
    else:
        if inp.cpu_quota:
            cpu["quota"] = int(inp.cpu_quota)
        if inp.cpu_period:
            cpu["period"] = int(inp.cpu_period)
    if inp.cpuset_cpus:
        cpu["cpus"] = inp.cpuset_cpus
    if inp.cpuset_mems:
        cpu["mems"] = inp.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if inp.pids_limit is not None and inp.pids_limit > 0:
        res["pids"] = {"limit": int(inp.pids_limit)}
    return res


def _bind(src: str, dst: str, readonly: bool) -> dict:
    opts = ["rbind", "rprivate"]
    if readonly:
        opts.append("ro")
    return {"destination": dst, "type": "bind", "source": src, "options": opts}


def build_spec(inp: ContainerSpecInput) -> dict:
    """The OCI runtime config.json (as a dict) for one container."""
    if not inp.container_id:
        raise InvalidSpec("container id is required")
    img = _image_cc(inp.image_config or {})
    args = resolve_command(inp.image_config or {}, inp.cmd, inp.entrypoint)
    hostname = inp.hostname or inp.container_id[:12]

    workdir = inp.workdir or img.get("WorkingDir") or ""
    check_workdir(workdir)
    cwd = posixpath.normpath(workdir) if workdir else "/"

    user_spec = inp.user or img.get("User") or ""
    eu = resolve_user(user_spec, inp.layer_dirs, group_add=inp.group_add)

    env = container_env(merge_env(img.get("Env"), inp.env), hostname, inp.tty)
    if "HOME" not in env_dict(env):
        # runc sets HOME from the container's passwd when the env has none
        env.append(f"HOME={eu.home or '/'}")

    caps = capabilities(inp.cap_add, inp.cap_drop)

    process: dict[str, Any] = {
        "terminal": bool(inp.tty),
        "user": {"uid": eu.uid, "gid": eu.gid},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": list(caps), "effective": list(caps),
                         "permitted": list(caps)},
        "rlimits": rlimits(inp.ulimits),
        "noNewPrivileges": bool(inp.no_new_privileges),
        "oomScoreAdj": int(inp.oom_score_adj),
    }
    if eu.additional_gids:
        process["user"]["additionalGids"] = list(eu.additional_gids)
    if inp.tty and inp.console_size:
        process["consoleSize"] = {"height": int(inp.console_size[0]),
                                  "width": int(inp.console_size[1])}

    mounts = default_mounts(inp.shm_size)
    for path, dst in ((inp.resolv_conf_path, "/etc/resolv.conf"),
                      (inp.hostname_path, "/etc/hostname"),
                      (inp.hosts_path, "/etc/hosts")):
        if path:
            mounts.append(_bind(path, dst, inp.readonly_rootfs))
    if inp.mounts:
        user_dsts = {posixpath.normpath(m["destination"]) for m in inp.mounts}
        mounts = [m for m in mounts if m["destination"] not in user_dsts]
        extra = sorted((dict(m) for m in inp.mounts),
                       key=lambda m: posixpath.normpath(m["destination"]).count("/"))
        mounts.extend(extra)

    if inp.namespaces is None:
        namespaces = [{"type": t} for t in DEFAULT_NAMESPACES]
    else:
        namespaces = []
        for t, path in inp.namespaces.items():
            if t not in ("mount", "network", "uts", "pid", "ipc", "cgroup", "user", "time"):
                raise InvalidSpec(f"unknown namespace type {t!r}")
            namespaces.append({"type": t, "path": path} if path else {"type": t})
    ns_types = {n["type"] for n in namespaces}

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path(inp.cgroup_parent, inp.container_id),
        "resources": resources(inp),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if inp.sysctls:
        linux["sysctl"] = {str(k): str(v) for k, v in inp.sysctls.items()}
    if inp.seccomp is not None:
        linux["seccomp"] = inp.seccomp

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": bool(inp.readonly_rootfs)},
        "mounts": mounts,
        "linux": linux,
    }
    if "uts" in ns_types:
        spec["hostname"] = hostname
        if inp.domainname:
            spec["domainname"] = inp.domainname
    spec["annotations"] = {str(k): str(v) for k, v in inp.annotations.items()}
    return spec
