"""trioctr-runtime: the low-level OCI runtime (runc's role).

    python3 -m actors.runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND

Commands (runc-compatible subset): create, start, state, kill, delete, run,
exec, list, ps, pause, resume, update, spec, features.  One process per command; it
must start fast, so this module does not import trio and keeps its imports
to the standard library, ``linux/`` (the kernel boundary) and, lazily,
``messages/``.

Theory of operation of ``create`` (as runc):

    runtime (parent)        intermediate             init (pid 1 in the new pid ns)
    validate config.json
    mkdir ROOT/ID, exec.fifo
    cgroup: create + limits
    [console socket: connect]
    ProcessPlan, imports,
    open exec.fifo O_PATH
    socketpair, fork ----->  [unshare(NEWUSER)
                  <--------- USERNS
    write uid_map, gid_map
    IDMAPS_WRITTEN ------->  setresuid/gid(0)] (or setns(user))
                             unshare(NEWPID) / setns
                             [unshare(NEWTIME), timens_offsets]
                             fork ------------------> setsid, [v1: joins the
                  <--------- CREATED(pid)             cgroup: tasks <- 0]
    [v2: cgroup.procs <- pid] exit                    wait for CGROUP_JOINED
    oom_score_adj
    CGROUP_JOINED --------------------------------->  setns / unshare namespaces,
    waitpid(intermediate)                             mounts, devices
                  <---------------------------------  [RUN_HOOKS]
    [prestart, createRuntime hooks]
    [HOOKS_DONE] ---------------------------------->  [createContainer hooks]
                                                      pivot_root, [console: pty master
                                                      to the socket, slave = ctty and
                                                      stdio], hostname, sysctl, masks,
                                                      rlimits, user, capabilities, cwd,
                                                      resolve the command
                  <---------------------------------  READY | FAILED
    state.json, --pid-file,
    --sync-fd reply, exit 0                           open exec.fifo O_WRONLY (blocks)
    start: open + read exec.fifo -----------------> write "0", [startContainer hooks],
    read to EOF (the init's end closes on exec,       execve (or write why not, exit)
    or carries why it failed)
    [poststart hooks]

The user namespace comes first, made by the intermediate, so that it owns
every other new namespace (a pid namespace it does not own could not get its
/proc mounted); only the parent, outside, may write its id maps.  Inside it
the init may not reach the host's files (the state dir, the Python library):
what it needs is opened or imported by the parent before the fork.  Device
nodes are bound from the host (mknod is refused there), v1 cgroup
hierarchies are bound, and sysfs is bound when it cannot be mounted.

``exec`` joins a running container: an intermediate enters the init's
namespaces (/proc/INIT/ns/*: user, ipc, uts, net, pid, cgroup, mnt) and
chroots into /proc/INIT/root, forks the process (in the pid namespace), and
the parent puts it into the container's cgroup before it finishes the same
process setup as the init (``ProcessPlan``) and execs (see ``exec_in``).
``delete`` runs the poststop hooks once the container is gone.

Messages on the socketpair are JSON lines private to this module (``Msg``:
CREATED from the intermediate carries the init's host pid); only the
``--sync-fd`` reply is ``messages.runtime``'s msgpack envelope, written by
hand (``sync_envelope``) so that no command imports msgpack, attrs or
cattrs and the runtime runs under ``python3 -S``.  The init is reparented to the caller's nearest child subreaper when
the intermediate exits: the caller of ``create`` (and of ``exec --detach``)
must be one (the shim is; ``run`` and ``exec`` make the runtime itself one).

Status is derived, never stored: the init is alive (same pid *and* same start
time) and exec.fifo exists -> created; alive and no fifo -> running; its
cgroup is frozen -> paused; otherwise stopped.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum (and so would re, json)
import os
import select
import stat
import sys
import time

from linux import syscalls as sc

DEFAULT_ROOT = "/run/trioctr/runtime"
OCI_VERSION = "1.0.2"
OCI_VERSION_MAX = "1.3.0"  # the newest config.json we read (check_oci_version: 1.0.x to 1.3.x)
RUNTIME_VERSION = "0.1.0"
FIFO = "exec.fifo"
STATE = "state.json"
CREATE_TIMEOUT = 120.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

NAMESPACES = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP,
    "time": sc.CLONE_NEWTIME,
}

RLIMITS = {name: number for number, name in enumerate(sc.RLIMIT_NAMES)}

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

# device nodes every container may use (runc's AllowedDevices), appended to
# the config's device cgroup rules
DEFAULT_DEVICE_RULES = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)


class Failure(Exception):
    """An error for the user: one line.  ``exit_code`` is what Docker reports
    for a create that fails this way (127/126 for the command, else 128)."""

    def __init__(self, message: str, exit_code: int = 128):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ConfigError(Failure):
    def __init__(self, message: str):
        super().__init__(f"config.json: {message}")


# ---------------------------------------------------------------------------
# JSON through the C accelerators
# ---------------------------------------------------------------------------

# `import json` imports re and enum (with runpy, most of what a command
# imports); every JSON this runtime reads or writes on its hot path goes
# through _json, the C half of the json module, instead.  The output is
# json.dumps's with its default separators.
_JSON_WS = " \t\n\r"
_scan = None
_encode = None


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str):
        raise ValueError(f"{name} is not JSON")


def _json_module():
    import json

    return json


def json_loads(data):
    """json.loads (str or UTF-8 bytes); raises ValueError."""
    global _scan
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        import _json
    except ImportError:  # an interpreter without the accelerator
        return _json_module().loads(text)
    if _scan is None:
        _scan = _json.make_scanner(_ScanContext())
    n, i = len(text), 0
    while i < n and text[i] in _JSON_WS:
        i += 1
    try:
        obj, end = _scan(text, i)
    except Exception:  # (StopIteration, or worse from the bare scanner): json says why
        return _json_module().loads(text)
    finally:
        _ScanContext.memo.clear()
    while end < n and text[end] in _JSON_WS:
        end += 1
    if end != n:
        return _json_module().loads(text)  # raises "Extra data"
    return obj


def json_dumps(obj) -> str:
    """json.dumps(obj) (ASCII, ", " and ": ")."""
    global _encode
    try:
        import _json
    except ImportError:
        return _json_module().dumps(obj)
    if _encode is None:
        _encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ",
                                     ", ", False, False, True)
    if isinstance(obj, str):
        return _json.encode_basestring_ascii(obj)
    return "".join(_encode(obj, 0))


# ---------------------------------------------------------------------------
# config.json validation (pure)
# ---------------------------------------------------------------------------

def _type_name(t) -> str:
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer",
             bool: "a boolean"}
    return names.get(t, t.__name__)


def _want(value, typ, where: str):
    ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where} must be {_type_name(typ)}, not {json_dumps(value)}")
    return value


def _opt(obj: dict, key: str, typ, where: str, default=None):
    value = obj.get(key)
    if value is None:
        return default
    return _want(value, typ, f"{where}.{key}" if where else key)


def _str_list(value, where: str) -> list[str]:
    _want(value, list, where)
    for i, item in enumerate(value):
        _want(item, str, f"{where}[{i}]")
    return value


def _or_empty(obj: dict, key: str):
    """obj[key], [] when absent or null (but a wrong-typed empty value, {} or
    "", stays itself and is refused by the caller)."""
    value = obj.get(key)
    return [] if value is None else value


def _abs_path(value, where: str) -> str:
    _want(value, str, where)
    if not value.startswith("/"):
        raise ConfigError(f"{where} must be an absolute path, not {value!r}")
    return value


def _refuse_if_set(obj: dict, key: str, where: str, what: str) -> None:
    if obj.get(key):
        raise ConfigError(f"{where}.{key} ({what}) is not supported by trioctr-runtime")


# the config.json versions we read: 1.0.x to 1.3.x (pre-releases and build
# metadata included); a 2.x spec may change the meaning of what we read.
# (By hand, not with a regex: `import re` costs more than the whole check.)
_VERSION_SUFFIX = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")


def check_oci_version(version: str) -> None:
    cut = min((i for i in (version.find("-"), version.find("+")) if i >= 0), default=len(version))
    core, suffix = version[:cut], version[cut:]
    parts = core.split(".")
    ok = (len(parts) == 3 and parts[0] == "1" and parts[1] in ("0", "1", "2", "3")
          and parts[2].isascii() and parts[2].isdigit()
          and (parts[2] == "0" or not parts[2].startswith("0"))
          and all(ch in _VERSION_SUFFIX for ch in suffix))
    if not ok:
        raise ConfigError(f"unsupported ociVersion {json_dumps(version)}: want 1.0.x to 1.3.x")


def _int_range(obj: dict, key: str, where: str, lo: int | None = None,
               hi: int | None = None) -> int | None:
    """An optional integer field within [lo, hi]."""
    value = _opt(obj, key, int, where)
    if value is None:
        return None
    name = f"{where}.{key}" if where else key
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi}, not {value}")
    return value


UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1


def validate_config(cfg, *, bundle: str = "") -> dict:
    """Check a parsed config.json; raise ConfigError with a one-line reason.
    Unsupported features are refused, never silently ignored."""
    from linux import cgroups
    from linux.mounts import parse_options

    _want(cfg, dict, "the top level")
    if not isinstance(cfg.get("ociVersion"), str) or not cfg["ociVersion"]:
        raise ConfigError("ociVersion is required (a string)")
    check_oci_version(cfg["ociVersion"])
    root = cfg.get("root")
    if root is None:
        raise ConfigError("root is required")
    _want(root, dict, "root")
    if not isinstance(root.get("path"), str) or not root["path"]:
        raise ConfigError("root.path is required (a string)")
    _opt(root, "readonly", bool, "root")
    _opt(cfg, "hostname", str, "")
    _opt(cfg, "domainname", str, "")
    annotations = _opt(cfg, "annotations", dict, "", {})
    for k, v in annotations.items():
        _want(v, str, f"annotations[{k!r}]")
    _validate_hooks(_opt(cfg, "hooks", dict, "", {}))

    process = cfg.get("process")
    if process is None:
        raise ConfigError("process is required")
    validate_process(process)

    mounts = _opt(cfg, "mounts", list, "", [])
    for i, m in enumerate(mounts):
        where = f"mounts[{i}]"
        _want(m, dict, where)
        _abs_path(m.get("destination"), f"{where}.destination")
        _opt(m, "type", str, where)
        _opt(m, "source", str, where)
        try:
            opts = parse_options(_str_list(_or_empty(m, "options"), f"{where}.options"))
        except ValueError as exc:
            raise ConfigError(f"{where} ({m['destination']}): {exc}") from None
        if (opts.is_bind or m.get("type") == "bind") and not m.get("source"):
            raise ConfigError(f"{where} ({m['destination']}): a bind mount needs a source")
        if m.get("uidMappings") or m.get("gidMappings"):
            raise ConfigError(f"{where}: idmapped mounts are not supported")

    linux = cfg.get("linux")
    if linux is None:
        raise ConfigError("linux is required")
    _want(linux, dict, "linux")
    _opt(linux, "cgroupsPath", str, "linux")
    _opt(linux, "rootfsPropagation", str, "linux")
    _opt(linux, "devices", list, "linux")
    _opt(linux, "namespaces", list, "linux")
    known = {"namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices",
             "netDevices", "cgroupsPath", "resources", "intelRdt", "sysctl", "seccomp",
             "rootfsPropagation", "maskedPaths", "readonlyPaths", "mountLabel",
             "personality", "memoryPolicy"}
    for key in linux:
        if key not in known and linux[key]:
            raise ConfigError(f"linux.{key} is not supported by trioctr-runtime")
    for key, what in (("netDevices", "moving net devices"),
                      ("intelRdt", "Intel RDT"), ("mountLabel", "SELinux"),
                      ("memoryPolicy", "NUMA memory policy")):
        _refuse_if_set(linux, key, "linux", what)
    if linux.get("seccomp") is not None:
        from linux import seccomp

        try:
            seccomp.check(linux["seccomp"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"linux.seccomp: {exc}") from None

    ns_types = set()
    for i, ns in enumerate(_want(_or_empty(linux, "namespaces"), list, "linux.namespaces")):
        _want(ns, dict, f"linux.namespaces[{i}]")
        kind = ns.get("type")
        if kind not in NAMESPACES:
            raise ConfigError(f"linux.namespaces[{i}].type {kind!r} is not a namespace type")
        if kind in ns_types:
            raise ConfigError(f"linux.namespaces: {kind} given twice")
        ns_types.add(kind)
        path = _opt(ns, "path", str, f"linux.namespaces[{i}]")
        if path is not None:
            _abs_path(path, f"linux.namespaces[{i}].path")
            if kind == "mount":
                raise ConfigError("linux.namespaces: joining an existing mount namespace "
                                  "is not supported")
    if "mount" not in ns_types:
        raise ConfigError("linux.namespaces must include a mount namespace "
                          "(the container's mounts must not reach the host)")
    new_ns = {ns["type"] for ns in linux.get("namespaces") or [] if not ns.get("path")}
    _validate_user_ns(linux, ns_types, new_ns)
    _validate_time_ns(linux, ns_types, new_ns)
    if cfg.get("hostname") and "uts" not in new_ns:
        raise ConfigError("hostname needs a new uts namespace")
    if cfg.get("domainname") and "uts" not in new_ns:
        raise ConfigError("domainname needs a new uts namespace")

    sysctl = _opt(linux, "sysctl", dict, "linux", {})
    for key, value in sysctl.items():
        _want(value, str, f"linux.sysctl[{key!r}]")
        if "/" in key or ".." in key.split("."):
            raise ConfigError(f"linux.sysctl: bad key {key!r}")
        need = sysctl_namespace(key)
        if need is None:
            raise ConfigError(f"linux.sysctl: {key} is not in a namespace the container owns")
        if need not in ns_types:
            raise ConfigError(f"linux.sysctl: {key} needs a {need} namespace")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_str_list(_or_empty(linux, key), f"linux.{key}")):
            _abs_path(p, f"linux.{key}[{i}]")
    prop = linux.get("rootfsPropagation")
    if prop:
        from linux.mounts import PROPAGATION

        if prop not in PROPAGATION:
            raise ConfigError(f"linux.rootfsPropagation {prop!r} is not a propagation type")
    for i, dev in enumerate(_want(_or_empty(linux, "devices"), list, "linux.devices")):
        where = f"linux.devices[{i}]"
        _want(dev, dict, where)
        _abs_path(dev.get("path"), f"{where}.path")
        if dev.get("type") not in ("c", "b", "u", "p"):
            raise ConfigError(f"{where}.type must be c, b, u or p")
        if dev["type"] != "p":
            for key in ("major", "minor"):
                _want(dev.get(key), int, f"{where}.{key}")
        for key in ("major", "minor"):
            _int_range(dev, key, where, 0, INT64_MAX)
        _int_range(dev, "fileMode", where, 0, 0o7777)
        for key in ("uid", "gid"):
            _int_range(dev, key, where, 0, 2**32 - 2)
    pers = linux.get("personality")
    if pers:
        _want(pers, dict, "linux.personality")
        if pers.get("domain") not in PERSONALITY_DOMAINS:
            raise ConfigError(f"linux.personality.domain {pers.get('domain')!r} is not "
                              "LINUX or LINUX32")
        if pers.get("flags"):
            raise ConfigError("linux.personality.flags are not supported")
    cgpath = linux.get("cgroupsPath")
    if cgpath is not None:
        try:
            cgroups.check_cgroups_path(cgpath)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    _validate_resources(_opt(linux, "resources", dict, "linux", {}))
    return cfg


ID_MAP_LINES = 340  # the kernel's limit on lines in uid_map and gid_map


def _validate_user_ns(linux: dict, ns_types: set, new_ns: set) -> None:
    """linux.uidMappings and gidMappings go with a new user namespace (runc's
    rules); joining one by path takes its maps as they are."""
    maps = {}
    for key in ("uidMappings", "gidMappings"):
        entries = _want(_or_empty(linux, key), list, f"linux.{key}")
        if len(entries) > ID_MAP_LINES:
            raise ConfigError(f"linux.{key}: at most {ID_MAP_LINES} mappings")
        for i, m in enumerate(entries):
            where = f"linux.{key}[{i}]"
            _want(m, dict, where)
            for field in ("containerID", "hostID", "size"):
                if m.get(field) is None:
                    raise ConfigError(f"{where}.{field} is required")
                _int_range(m, field, where, 1 if field == "size" else 0, 2**32 - 1)
            if m["containerID"] + m["size"] > 2**32 or m["hostID"] + m["size"] > 2**32:
                raise ConfigError(f"{where} goes past the end of the id range")
        maps[key] = entries
    if "user" not in ns_types:
        if maps["uidMappings"] or maps["gidMappings"]:
            raise ConfigError("linux.uidMappings and gidMappings need a user namespace "
                              "(linux.namespaces has none)")
        return
    if "user" in new_ns:
        if not maps["uidMappings"] or not maps["gidMappings"]:
            raise ConfigError("a new user namespace needs linux.uidMappings and gidMappings")
    elif maps["uidMappings"] or maps["gidMappings"]:
        raise ConfigError("linux.uidMappings and gidMappings are for a new user namespace: "
                          "one joined by path keeps its own maps")


TIME_OFFSET_CLOCKS = ("monotonic", "boottime")


def _validate_time_ns(linux: dict, ns_types: set, new_ns: set) -> None:
    offsets = _opt(linux, "timeOffsets", dict, "linux", {})
    if not offsets:
        return
    if "time" not in new_ns:
        raise ConfigError("linux.timeOffsets needs a new time namespace"
                          + (" (one joined by path keeps its offsets)" if "time" in ns_types
                             else ""))
    for clock, offset in offsets.items():
        where = f"linux.timeOffsets.{clock}"
        if clock not in TIME_OFFSET_CLOCKS:
            raise ConfigError(f"linux.timeOffsets: {clock!r} is not monotonic or boottime")
        _want(offset, dict, where)
        unknown = sorted(set(offset) - {"secs", "nanosecs"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]} is not secs or nanosecs")
        _int_range(offset, "secs", where, -2**63, INT64_MAX)
        _int_range(offset, "nanosecs", where, 0, 999_999_999)


def validate_process(process, where: str = "process") -> dict:
    """Check an OCI process object (config.json's, or an `exec --process`
    file); raise ConfigError with a one-line reason."""
    from linux import caps as capmod

    _want(process, dict, where)
    args = process.get("args")
    if args is None or args == []:
        raise ConfigError(f"{where}.args must not be empty")
    _str_list(args, f"{where}.args")
    if process.get("commandLine"):
        raise ConfigError(f"{where}.commandLine is Windows only")
    env = _str_list(_or_empty(process, "env"), f"{where}.env")
    for i, item in enumerate(env):
        if "=" not in item:
            raise ConfigError(f"{where}.env[{i}] {item!r} is not KEY=VALUE")
    _abs_path(process.get("cwd"), f"{where}.cwd")
    _opt(process, "terminal", bool, where)
    size = _opt(process, "consoleSize", dict, where)
    if size is not None:
        for key in ("height", "width"):
            value = _want(size.get(key), int, f"{where}.consoleSize.{key}")
            if not 0 <= value < 65536:
                raise ConfigError(f"{where}.consoleSize.{key} {value} is out of range")
    user = process.get("user")
    if user is None:
        raise ConfigError(f"{where}.user is required")
    _want(user, dict, f"{where}.user")
    for key in ("uid", "gid"):
        v = user.get(key)
        if v is None:
            raise ConfigError(f"{where}.user.{key} is required")
        _want(v, int, f"{where}.user.{key}")
        if not 0 <= v < 2**32 - 1:
            raise ConfigError(f"{where}.user.{key} {v} is out of range")
    for i, g in enumerate(_want(_or_empty(user, "additionalGids"), list, f"{where}.user.additionalGids")):
        _want(g, int, f"{where}.user.additionalGids[{i}]")
    umask = _opt(user, "umask", int, f"{where}.user")
    if umask is not None and not 0 <= umask <= 0o777:
        raise ConfigError(f"{where}.user.umask {umask} is out of range")
    if user.get("username"):
        raise ConfigError(f"{where}.user.username is Windows only; give uid and gid")
    capabilities = _opt(process, "capabilities", dict, where, {})
    for key, names in capabilities.items():
        if key not in capmod.SETS:
            raise ConfigError(f"{where}.capabilities.{key} is not a capability set")
        for i, name in enumerate(_str_list([] if names is None else names, f"{where}.capabilities.{key}")):
            try:
                capmod.cap_number(name)
            except ValueError:
                raise ConfigError(f"{where}.capabilities.{key}[{i}]: unknown capability "
                                  f"{name!r}") from None
    seen = set()
    for i, rl in enumerate(_want(_or_empty(process, "rlimits"), list, f"{where}.rlimits")):
        _want(rl, dict, f"{where}.rlimits[{i}]")
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise ConfigError(f"{where}.rlimits[{i}].type {kind!r} is not a known rlimit")
        if kind in seen:
            raise ConfigError(f"{where}.rlimits: {kind} given twice")
        seen.add(kind)
        for key in ("soft", "hard"):
            if rl.get(key) is None:
                raise ConfigError(f"{where}.rlimits[{i}].{key} is required")
            _int_range(rl, key, f"{where}.rlimits[{i}]", 0, UINT64_MAX)
        if rl["soft"] > rl["hard"]:
            raise ConfigError(f"{where}.rlimits[{i}] ({kind}): soft {rl['soft']} is above "
                              f"hard {rl['hard']}")
    _opt(process, "noNewPrivileges", bool, where)
    _int_range(process, "oomScoreAdj", where, -1000, 1000)
    for key, what in (("apparmorProfile", "AppArmor"), ("selinuxLabel", "SELinux"),
                      ("ioPriority", "I/O priority"), ("scheduler", "scheduler policy"),
                      ("execCPUAffinity", "exec CPU affinity")):
        _refuse_if_set(process, key, where, what)
    return process


# the hooks of config.json, in the order of the lifecycle
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


def _validate_hooks(hooks: dict) -> None:
    for name, entries in hooks.items():
        if name not in HOOK_NAMES:
            raise ConfigError(f"hooks.{name} is not a hook ({', '.join(HOOK_NAMES)})")
        for i, hook in enumerate(_want([] if entries is None else entries, list, f"hooks.{name}")):
            where = f"hooks.{name}[{i}]"
            _want(hook, dict, where)
            _abs_path(hook.get("path"), f"{where}.path")
            _str_list(_or_empty(hook, "args"), f"{where}.args")
            for j, item in enumerate(_str_list(_or_empty(hook, "env"), f"{where}.env")):
                if "=" not in item:
                    raise ConfigError(f"{where}.env[{j}] {item!r} is not KEY=VALUE")
            timeout = _opt(hook, "timeout", int, where)
            if timeout is not None and timeout <= 0:
                raise ConfigError(f"{where}.timeout must be a positive number of seconds")


def _validate_resources(res: dict, where: str = "linux.resources") -> None:
    from linux.cgroups import device_rule

    for key in ("rdma",):
        _refuse_if_set(res, key, where, key)
    mem = _opt(res, "memory", dict, where, {})
    # int64 limits: -1 is "unlimited", other negatives mean nothing
    for key in ("limit", "reservation", "swap", "kernelTCP"):
        _int_range(mem, key, f"{where}.memory", -1, INT64_MAX)
    _int_range(mem, "swappiness", f"{where}.memory", 0, 100)
    _opt(mem, "disableOOMKiller", bool, f"{where}.memory")
    _opt(mem, "useHierarchy", bool, f"{where}.memory")
    _opt(mem, "checkBeforeUpdate", bool, f"{where}.memory")
    if mem.get("kernel"):
        raise ConfigError(f"{where}.memory.kernel (kernel memory limits) is not supported "
                          "(deprecated in the kernel)")
    cpu = _opt(res, "cpu", dict, where, {})
    for key in ("shares", "period", "burst", "realtimePeriod"):
        _int_range(cpu, key, f"{where}.cpu", 0, UINT64_MAX)
    _int_range(cpu, "quota", f"{where}.cpu", -1, INT64_MAX)
    _int_range(cpu, "realtimeRuntime", f"{where}.cpu", -1, INT64_MAX)
    _opt(cpu, "idle", int, f"{where}.cpu")
    for key in ("cpus", "mems"):
        _opt(cpu, key, str, f"{where}.cpu")
    pids = _opt(res, "pids", dict, where, {})
    _int_range(pids, "limit", f"{where}.pids", -1, INT64_MAX)
    for i, rule in enumerate(_want(_or_empty(res, "devices"), list, f"{where}.devices")):
        at = f"{where}.devices[{i}]"
        _want(rule, dict, at)
        _want(rule.get("allow"), bool, f"{at}.allow")
        _opt(rule, "type", str, at)
        _int_range(rule, "major", at, -1, 2**32 - 1)
        _int_range(rule, "minor", at, -1, 2**32 - 1)
        access = _opt(rule, "access", str, at)
        if access is not None and (not access or any(ch not in "rwm" for ch in access)):
            raise ConfigError(f"{at}.access {access!r} must be made of r, w and m")
        try:
            device_rule(rule)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{at}: {exc}") from None
    bio = _opt(res, "blockIO", dict, where, {})
    for key in ("weight", "leafWeight"):
        value = _int_range(bio, key, f"{where}.blockIO", 0, 1000)
        if value and value < 10:
            raise ConfigError(f"{where}.blockIO.{key} must be 0 (unset) or 10 to 1000, not {value}")
    for key in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for i, dev in enumerate(_want(_or_empty(bio, key), list, f"{where}.blockIO.{key}")):
            at = f"{where}.blockIO.{key}[{i}]"
            _want(dev, dict, at)
            for field in ("major", "minor"):
                if dev.get(field) is None:
                    raise ConfigError(f"{at}.{field} is required")
                _int_range(dev, field, at, 0, 2**32 - 1)
            if key == "weightDevice":
                for field in ("weight", "leafWeight"):
                    _int_range(dev, field, at, 0, 1000)
            else:
                if dev.get("rate") is None:
                    raise ConfigError(f"{at}.rate is required")
                _int_range(dev, "rate", at, 0, UINT64_MAX)
    net = _opt(res, "network", dict, where, {})
    _int_range(net, "classID", f"{where}.network", 0, 2**32 - 1)
    for i, prio in enumerate(_want(_or_empty(net, "priorities"), list,
                                   f"{where}.network.priorities")):
        at = f"{where}.network.priorities[{i}]"
        _want(prio, dict, at)
        name = _want(prio.get("name"), str, f"{at}.name")
        if not name or any(ch.isspace() for ch in name) or "/" in name:
            raise ConfigError(f"{at}.name {name!r} is not an interface name")
        _want(prio.get("priority"), int, f"{at}.priority")
        _int_range(prio, "priority", at, 0, 2**32 - 1)
    unified = _opt(res, "unified", dict, where, {})
    for key, value in unified.items():
        _want(value, str, f"{where}.unified[{key!r}]")
        if not key or "/" in key or key.startswith(".") or "." not in key:
            raise ConfigError(f"{where}.unified: {key!r} is not a cgroup v2 file name")
        if key.split(".")[0] == "cgroup" and key not in ("cgroup.max.depth",
                                                         "cgroup.max.descendants"):
            raise ConfigError(f"{where}.unified: {key} is the runtime's to write, "
                              "not a resource limit")
    for i, hp in enumerate(_want(_or_empty(res, "hugepageLimits"), list,
                                 f"{where}.hugepageLimits")):
        at = f"{where}.hugepageLimits[{i}]"
        _want(hp, dict, at)
        size = _want(hp.get("pageSize"), str, f"{at}.pageSize")
        if not (len(size) > 2 and size[:-2].isascii() and size[:-2].isdigit()
                and size[-2:] in ("KB", "MB", "GB")):
            raise ConfigError(f"{at}.pageSize {size!r} is not a page size such as 2MB")
        if hp.get("limit") is None:
            raise ConfigError(f"{at}.limit is required")
        _int_range(hp, "limit", at, 0, UINT64_MAX)


def sysctl_namespace(key: str) -> str | None:
    """Which namespace must be the container's own for a sysctl to be set
    (runc's rules); None: not namespaced, refused."""
    if key.startswith("net."):
        return "network"
    if key in ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced") \
            or key.startswith("fs.mqueue."):
        return "ipc"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def load_config(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise Failure(f"config.json: not found in bundle {bundle}") from None
    except OSError as exc:
        raise Failure(f"config.json: {exc.strerror}: {path}") from None
    try:
        cfg = json_loads(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid JSON: {exc}") from None
    return validate_config(cfg, bundle=bundle)


def default_spec() -> dict:
    """A default config.json, like `runc spec` (but terminal: false)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                key: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for key in ("bounding", "effective", "permitted")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "trioctr",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


# ---------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------

def parse_signal(value) -> int:
    """'TERM', 'SIGTERM', 'sigterm', '15' -> 15.  Raises Failure."""
    text = str(value).strip()
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise Failure(f"invalid signal {value!r}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base, _, off = name.partition("+" if "+" in name else "-")
        if off.isdigit():
            num = (signal.SIGRTMIN + int(off)) if "+" in name else (signal.SIGRTMAX - int(off))
            if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                return int(num)
        raise Failure(f"invalid signal {value!r}")
    # (the _signal module's names: SIGTERM and friends, and SIG_DFL and such)
    sig = getattr(signal, name, None) if name.isidentifier() and not name.startswith("SIG_") \
        else None
    if not isinstance(sig, int):
        raise Failure(f"invalid signal {value!r}")
    return int(sig)


def check_id(container_id: str) -> str:
    ok = bool(container_id) and container_id not in (".", "..") and all(
        ch.isalnum() or ch in "_+-." for ch in container_id) and container_id.isascii()
    if not ok:
        raise Failure(f"invalid container id {container_id!r}: use letters, digits, _ + - .")
    return container_id


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def lookpath(name: str, path_env: str | None) -> str:
    """Go's exec.LookPath, with Docker's messages and exit codes: 127 when
    not found, 126 when found but not executable."""
    if "/" in name:
        _check_executable(name, name)
        return name
    for d in (path_env or "").split(":") if path_env else []:
        candidate = os.path.join(d or ".", name)
        try:
            _check_executable(candidate, name)
        except Failure:
            continue
        return candidate
    raise Failure(f'exec: "{name}": executable file not found in $PATH', 127)


def _check_executable(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise Failure(f'exec: "{name}": stat {path}: {exc.strerror.lower()}', 127) from None
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111 or not os.access(path, os.X_OK):
        raise Failure(f'exec: "{name}": permission denied', 126)


def proc_start_time(pid: int, proc: str = "/proc") -> tuple[str, int] | None:
    """(state letter, start time) from /proc/PID/stat, or None if gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def write_atomic(path: str, data: bytes, mode: int = 0o644, *, sync: bool = False) -> None:
    """Write a whole file or nothing (a temporary file renamed over it).  Not
    synced unless asked: the state and pid files live under /run, which does
    not outlive a reboot (runc does not sync them either)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


# ---------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------

class Log:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path = path
        self.fmt = fmt
        self.debug_on = debug

    def _file(self, level: str, msg: str) -> None:
        if not self.path:
            return
        if self.fmt == "json":
            line = json_dumps({"level": level, "msg": msg, "time": rfc3339_now()})
        else:
            line = f'time="{rfc3339_now()}" level={level} msg={json_dumps(msg)}'
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self._file("error", msg)
        _stderr(f"trioctr-runtime: {msg}")

    def warning(self, msg: str) -> None:
        self._file("warning", msg)
        if not self.path:
            _stderr(f"trioctr-runtime: warning: {msg}")

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._file("debug", msg)


def _stderr(text: str) -> None:
    try:
        os.write(2, (text.replace("\n", " ") + "\n").encode())
    except OSError:
        pass


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------

class Container:
    def __init__(self, root: str, container_id: str, state: dict):
        self.root = root
        self.id = container_id
        self.state = state

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO)

    @property
    def pid(self) -> int:
        return self.state["pid"]

    def cgroup(self):
        data = self.state.get("cgroup")
        if not data:
            return None
        from linux.cgroups import from_state

        return from_state(data)

    def init_alive(self) -> bool:
        info = proc_start_time(self.pid)
        return info is not None and info[0] not in ("Z", "X") and info[1] == self.state["pid_start"]

    def status(self) -> str:
        if not self.init_alive():
            return "stopped"
        cg = self.cgroup()
        if cg is not None and cg.exists() and cg.is_frozen():
            return "paused"
        if os.path.exists(self.fifo):
            return "created"
        return "running"

    def oci_state(self) -> dict:
        status = self.status()
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.state["bundle"],
            "rootfs": self.state.get("rootfs", ""),
            "created": self.state.get("created", ""),
            "owner": "",
            "annotations": self.state.get("annotations") or {},
        }

    def save(self) -> None:
        write_atomic(os.path.join(self.dir, STATE), json_dumps(self.state).encode(), 0o600)

    @classmethod
    def load(cls, root: str, container_id: str) -> "Container":
        check_id(container_id)
        path = os.path.join(root, container_id, STATE)
        try:
            with open(path, "rb") as f:
                state = json_loads(f.read())
        except FileNotFoundError:
            raise Failure(f"container does not exist: {container_id}") from None
        except (OSError, ValueError) as exc:
            raise Failure(f"container {container_id}: unreadable state {path}: {exc}") from None
        return cls(root, container_id, state)

    def pidfd(self) -> int | None:
        """A pidfd for the init, or None if it is gone (or the pid was reused)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if not self.init_alive():  # checked after opening: the fd pins the process
            os.close(fd)
            return None
        return fd

    def signal_init(self, sig: int) -> bool:
        fd = self.pidfd()
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return False
        finally:
            os.close(fd)
        return True

    def signal_all(self, sig: int) -> None:
        cg = self.cgroup()
        if cg is None or not cg.exists():
            self.signal_init(sig)
            return
        frozen = cg.is_frozen()
        if sig == signal.SIGKILL and not frozen:
            cg.freeze()  # no fork races while we kill
            frozen = True
        try:
            for pid in cg.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen and sig == signal.SIGKILL:
                cg.thaw()

    def wait_stopped(self, timeout: float = 10.0) -> bool:
        fd = self.pidfd()
        if fd is None:
            return True
        try:
            return _readable(fd, timeout)  # a pidfd becomes readable when the process exits
        finally:
            os.close(fd)

    def config(self) -> dict:
        """The config.json the container was created with (a state written
        before it was kept there: the bundle's, now)."""
        cfg = self.state.get("config")
        if cfg is None:
            cfg = load_config(self.state["bundle"])
        return cfg

    def hooks(self, name: str) -> list[dict]:
        cfg = self.state.get("config") or {}
        return (cfg.get("hooks") or {}).get(name) or []

    def hook_state(self) -> bytes:
        s = self.oci_state()
        return hook_state(self.id, s["status"], s["pid"], s["bundle"], s["annotations"])

    def destroy(self, log: Log) -> None:
        """Kill what is left, remove the cgroup and the state dir, then run
        the poststop hooks (failures are warnings)."""
        poststop = self.hooks("poststop")
        if poststop:
            state = hook_state(self.id, "stopped", 0, self.state["bundle"],
                               self.state.get("annotations"))

        cg = self.cgroup()
        if cg is not None and cg.exists():
            deadline = time.monotonic() + 10
            while cg.pids():
                self.signal_all(signal.SIGKILL)
                if time.monotonic() > deadline:
                    raise Failure(f"container {self.id}: processes {cg.pids()} will not die")
                time.sleep(0.005)
            cg.remove()
        remove_state_dir(self.dir)
        if poststop:
            run_hooks_warn("poststop", poststop, state, log)


def remove_state_dir(path: str) -> None:
    """Remove a container's state dir (flat: state.json, exec.fifo, temporary
    files); what is already gone is fine (shutil would cost an import)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            import shutil

            shutil.rmtree(os.path.join(path, name), ignore_errors=True)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def list_containers(root: str) -> list[Container]:
    out = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return out
    for name in names:
        try:
            out.append(Container.load(root, name))
        except Failure:
            continue
    return out


# ---------------------------------------------------------------------------
# the handshake between parent, intermediate and init (private to this file)
# ---------------------------------------------------------------------------

# One JSON object per line on the socketpair: {"t": tag, field: value...}.
# It never leaves this module, so it needs neither msgpack nor attrs (whose
# import alone costs more than the rest of `create`); what the shim reads on
# --sync-fd is messages.runtime's envelope, written by sync_envelope().
CREATED = "created"              # intermediate -> parent: pid (the init's, on the host)
FAILED = "failed"                # any child -> parent: message, exit_code
USERNS = "userns"                # intermediate -> parent: write my uid_map and gid_map
IDMAPS_WRITTEN = "idmaps"        # parent -> intermediate: written, go on
CGROUP_JOINED = "cgjoined"       # parent -> init: you are in the cgroup, go on
RUN_HOOKS = "hooks"              # init -> parent: run prestart and createRuntime now
HOOKS_DONE = "hooksdone"         # parent -> init: they ran, go on
READY = "ready"                  # init -> parent: set up, blocked until `start`
MAX_LINE = 1 << 20


class Msg:
    """One handshake message: a tag and its fields (``msg.pid``)."""

    __slots__ = ("tag", "fields")

    def __init__(self, tag: str, **fields):
        self.tag = tag
        self.fields = fields

    def __getattr__(self, name: str):
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other) -> bool:
        return isinstance(other, Msg) and (self.tag, self.fields) == (other.tag, other.fields)

    def __repr__(self) -> str:
        return f"Msg({self.tag!r}, {self.fields!r})"


class Channel:
    """Blocking JSON lines on a socket fd, with a timeout on receive."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""

    def send(self, msg: Msg) -> None:
        data = json_dumps({"t": msg.tag, **msg.fields}).encode() + b"\n"
        while data:
            data = data[os.write(self.fd, data):]

    def recv(self, timeout: float = CREATE_TIMEOUT) -> Msg | None:
        """The next message, or None on EOF.  Raises Failure on timeout or garbage."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not _readable(self.fd, left):
                raise Failure("timed out waiting for the container init")
            data = os.read(self.fd, 65536)
            if not data:
                return None
            self.buffer += data
            if len(self.buffer) > MAX_LINE:
                raise Failure("the container init sent an oversized message")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            obj = json_loads(line)
            tag = obj.pop("t")
            if not isinstance(tag, str):
                raise TypeError
            return Msg(tag, **obj)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise Failure("garbled message from the container init") from None


def _readable(fd: int, timeout: float) -> bool:
    """poll(2) one fd for input (or hang-up) for up to timeout seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


# --sync-fd: what the shim decodes with messages.wire and messages.base, a
# msgpack map {"k": "rep", "i": 0, "t": TYPE, "b": body} carrying a
# messages.runtime ContainerCreated (rt.created, {pid}) or CreateFailed
# (rt.failed, {message, exit_code}); written by hand, byte for byte what
# msgpack.packb(..., use_bin_type=True) makes (a unit test checks it)
SYNC_TYPES = {CREATED: ("rt.created", ("pid",)), FAILED: ("rt.failed", ("message", "exit_code"))}


def _msgpack(obj) -> bytes:
    """msgpack for the few types an envelope holds: str, int, dict."""
    if isinstance(obj, str):
        raw = obj.encode("utf-8", "replace")
        n = len(raw)
        if n < 32:
            return bytes([0xA0 | n]) + raw
        if n < 256:
            return bytes([0xD9, n]) + raw
        if n < 65536:
            return b"\xda" + n.to_bytes(2, "big") + raw
        return b"\xdb" + n.to_bytes(4, "big") + raw
    if isinstance(obj, bool) or not isinstance(obj, (int, dict)):
        raise TypeError(f"cannot encode {type(obj).__name__}")
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
        return head + b"".join(_msgpack(k) + _msgpack(v) for k, v in obj.items())
    if 0 <= obj < 0x80 or -32 <= obj < 0:
        return (obj & 0xFF).to_bytes(1, "big")
    if obj >= 0:
        for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if obj < 1 << (8 * size):
                return bytes([code]) + obj.to_bytes(size, "big")
    else:
        for code, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if obj >= -(1 << (8 * size - 1)):
                return bytes([code]) + obj.to_bytes(size, "big", signed=True)
    raise OverflowError(f"integer {obj} does not fit in 64 bits")


def sync_envelope(msg: Msg) -> bytes:
    tag, fields = SYNC_TYPES[msg.tag]
    return _msgpack({"k": "rep", "i": 0, "t": tag, "b": {f: msg.fields[f] for f in fields}})


def send_sync(fd: int, msg: Msg) -> None:
    data = sync_envelope(msg)
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


# ---------------------------------------------------------------------------
# hooks (config.json "hooks")
# ---------------------------------------------------------------------------

HOOK_FOREVER = 24 * 3600.0  # how long "no timeout" is, where a wait needs a number


def hook_state(container_id: str, status: str, pid: int, bundle: str,
               annotations: dict | None) -> bytes:
    """The OCI state a hook reads on its stdin."""
    return json_dumps({"ociVersion": OCI_VERSION, "id": container_id, "status": status,
                       "pid": pid, "bundle": bundle, "annotations": annotations or {}}).encode()


def hooks_budget(hooks: list[dict]) -> float:
    """How long a list of hooks may take: the sum of their timeouts (a hook
    without one may take forever)."""
    total = 0.0
    for hook in hooks:
        if hook.get("timeout") is None:
            return HOOK_FOREVER
        total += hook["timeout"]
    return total


def run_hooks(name: str, hooks: list[dict], state: bytes) -> None:
    """Run the hooks of one kind in order, the state on their stdin; raise
    Failure at the first that fails (cannot run, exits non-zero, times out)."""
    for i, hook in enumerate(hooks):
        why = run_hook(hook, state)
        if why:
            raise Failure(f"{name} hook #{i} ({hook['path']}): {why}")


def run_hooks_warn(name: str, hooks: list[dict], state: bytes, log: "Log") -> None:
    """poststart and poststop: a failing hook is a warning; the others still run."""
    for i, hook in enumerate(hooks):
        why = run_hook(hook, state)
        if why:
            log.warning(f"{name} hook #{i} ({hook['path']}): {why}")


def run_hook(hook: dict, state: bytes) -> str:
    """Run one hook; return '' on success, else why it failed (one line).
    stdin is a memfd holding the state; stdout and stderr a memfd too, not a
    pipe, so that a daemon the hook leaves behind cannot hold us up."""
    import subprocess

    path = hook["path"]
    timeout = hook.get("timeout")
    state_fd = os.memfd_create("hook-state")
    out_fd = os.memfd_create("hook-output")
    try:
        os.write(state_fd, state)
        os.lseek(state_fd, 0, os.SEEK_SET)
        try:
            proc = subprocess.Popen(hook.get("args") or [path], executable=path,
                                    env=env_dict(hook.get("env") or []), stdin=state_fd,
                                    stdout=out_fd, stderr=out_fd)
        except OSError as exc:
            return (exc.strerror or str(exc)).lower()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"timed out after {timeout}s"
        if code == 0:
            return ""
        why = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        os.lseek(out_fd, 0, os.SEEK_SET)
        output = os.read(out_fd, 2048).decode(errors="replace").strip()
        return f"{why}: {' '.join(output.split())}" if output else why
    finally:
        os.close(state_fd)
        os.close(out_fd)


# ---------------------------------------------------------------------------
# the console (process.terminal: true, --console-socket)
# ---------------------------------------------------------------------------

# what runc sends with the pty master over the console socket: the name of
# the file it opened (the receiver only wants the fd)
CONSOLE_PAYLOAD = b"/dev/ptmx"


def connect_console_socket(path: str) -> int:
    """Connect to the caller's --console-socket; return the socket's fd."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(path)) < 100:
            sock.connect(path)
        else:  # longer than sun_path allows: through an fd on its directory
            dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
            finally:
                os.close(dfd)
    except OSError as exc:
        sock.close()
        raise Failure(f"connect to the console socket {path}: {exc.strerror}") from None
    return sock.detach()


def setup_console(sock_fd: int, size: dict | None, mount_console: bool) -> None:
    """Inside the container (its /dev/ptmx): open a pty pair, send the master
    to the console socket over SCM_RIGHTS (as runc), make the slave our
    controlling terminal (we are a session leader) and our stdio; for the
    init, bind it on /dev/console too.  Imports are the caller's business
    (see _preload): the host's library may be out of reach."""
    import fcntl
    import socket
    import struct
    import termios

    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise Failure(f"open a pty in the container: {exc.strerror} "
                      "(the container needs /dev/pts: a devpts mount)") from None
    try:
        if size and size.get("height") and size.get("width"):
            fcntl.ioctl(master, termios.TIOCSWINSZ,
                        struct.pack("HHHH", size["height"], size["width"], 0, 0))
        if mount_console:
            _mount_console(os.ttyname(slave))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=sock_fd)
        try:
            socket.send_fds(sock, [CONSOLE_PAYLOAD], [master])
        except OSError as exc:
            raise Failure(f"send the pty to the console socket: {exc.strerror}") from None
        finally:
            sock.close()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
    finally:
        os.close(master)
        if slave > 2:
            os.close(slave)


def _mount_console(slave_path: str) -> None:
    from linux import syscalls

    old = os.umask(0)
    try:
        fd = os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.close(fd)
    except FileExistsError:
        pass
    finally:
        os.umask(old)
    syscalls.mount(slave_path, "/dev/console", None, syscalls.MS_BIND)


def fix_stdio_owner(uid: int) -> None:
    """As runc: stdio that is not /dev/null becomes the user's (only the
    uid), so that a non-root process can reopen /dev/stdout or use its tty.
    Refusals (a read-only /dev, an owner we may not change) are ignored."""
    import errno

    try:
        null = os.stat("/dev/null").st_rdev
    except OSError:
        null = -1
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == null):
            continue
        # a device node other than a pty is the host's (bound in, or the
        # caller's stdio): never hand it to the container's user
        if (stat.S_ISCHR(st.st_mode) and not 136 <= os.major(st.st_rdev) <= 143) \
                or stat.S_ISBLK(st.st_mode):
            continue
        try:
            os.fchown(fd, uid, st.st_gid)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise


# ---------------------------------------------------------------------------
# create
# ---------------------------------------------------------------------------

class CreateOptions:
    def __init__(self, container_id: str, bundle: str, pid_file: str | None = None,
                 console_socket: str | None = None, sync_fd: int | None = None,
                 preserve_fds: int = 0):
        self.id = container_id
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.sync_fd = sync_fd
        self.preserve_fds = preserve_fds
        self.console_fd = -1  # the connected console socket, while creating
        self.fifo_fd = -1  # exec.fifo, O_PATH, opened for the init by the parent
        self.plan = None  # the init's ProcessPlan, made by the parent
        # the cgroup's files the init joins it by, itself (Cgroup.open_self_join),
        # opened by the parent; empty: the parent adds it by pid
        self.join_fds: list[int] = []
        # create_in_host: the container's stdio (fds 0-2 of the intermediate),
        # how a child's exit is waited for (the host reaps its children), and
        # how one is let go whose status nobody needs (it exits on its own)
        self.host_stdio: tuple[int, int, int] | None = None
        self.wait_child = _wait_child
        self.release_child = _wait_child


def check_terminal(process: dict, console_socket: str | None) -> None:
    """runc's rules: a terminal needs a console socket to send it to, and a
    console socket is only for a terminal."""
    if process.get("terminal") and not console_socket:
        raise Failure("process.terminal is true: a --console-socket is needed "
                      "to receive the pty master")
    if console_socket and not process.get("terminal"):
        raise Failure("--console-socket is only for process.terminal: true")


def create(root: str, opts: CreateOptions, log: Log) -> Container:
    """Create the container; return it with the init blocked on exec.fifo.
    Raises Failure; leaves nothing behind when it does."""
    check_id(opts.id)
    bundle = os.path.realpath(opts.bundle)
    cfg = load_config(bundle)
    check_terminal(cfg["process"], opts.console_socket)
    linux = cfg["linux"]
    rootfs = cfg["root"]["path"]
    if not rootfs.startswith("/"):
        rootfs = os.path.join(bundle, rootfs)
    rootfs = os.path.realpath(rootfs)
    if not os.path.isdir(rootfs):
        raise ConfigError(f"root.path {cfg['root']['path']}: {rootfs} is not a directory")

    os.makedirs(root, mode=0o711, exist_ok=True)
    cdir = os.path.join(root, opts.id)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise Failure(f"container with id exists: {opts.id}") from None
    init_pid = 0
    cgroup = None
    try:
        os.mkfifo(os.path.join(cdir, FIFO), 0o622)
        os.chmod(os.path.join(cdir, FIFO), 0o622)
        cgroup = _make_cgroup(opts.id, linux)
        if opts.console_socket:
            opts.console_fd = connect_console_socket(opts.console_socket)
        init_pid = _spawn_init(cfg, bundle, rootfs, cdir, cgroup, opts, log)
        info = proc_start_time(init_pid)
        if info is None:
            raise Failure("container init exited during create")
        container = Container(root, opts.id, {
            "id": opts.id,
            "pid": init_pid,
            "pid_start": info[1],
            "bundle": bundle,
            "rootfs": rootfs,
            "created": rfc3339_now(),
            "cgroup": cgroup.to_state() if cgroup else None,
            "annotations": cfg.get("annotations") or {},
            "ociVersion": cfg["ociVersion"],
            "config": cfg,  # as created: exec and the poststop hooks use it
        })
        container.save()
        if opts.pid_file:
            write_atomic(os.path.abspath(opts.pid_file), str(init_pid).encode())
        return container
    except BaseException:
        _undo_create(cdir, init_pid, cgroup)
        # the spec: a create that fails goes on with delete, poststop included
        poststop = (cfg.get("hooks") or {}).get("poststop")
        if poststop:
            run_hooks_warn("poststop", poststop, hook_state(
                opts.id, "stopped", 0, bundle, cfg.get("annotations")), log)
        raise
    finally:
        if opts.console_fd >= 0:
            os.close(opts.console_fd)
            opts.console_fd = -1


def _make_cgroup(container_id: str, linux: dict):
    from linux import cgroups

    path = linux.get("cgroupsPath") or container_id
    try:
        cg = cgroups.open_cgroup(path)
        cg.create()
    except (OSError, ValueError) as exc:
        raise Failure(f"cgroup {path}: {exc}") from None
    try:
        resources = dict(linux.get("resources") or {})
        if resources.get("devices") is not None:
            resources["devices"] = list(resources["devices"]) + list(DEFAULT_DEVICE_RULES)
        cg.apply(resources)
    except (OSError, ValueError) as exc:
        try:
            cg.remove()
        except OSError:
            pass
        raise Failure(str(exc)) from None
    return cg


def _undo_create(cdir: str, init_pid: int, cgroup) -> None:
    if init_pid:
        _kill_quietly(init_pid)
    if cgroup is not None:
        deadline = time.monotonic() + 10
        try:
            while cgroup.exists() and cgroup.pids() and time.monotonic() < deadline:
                for pid in cgroup.pids():
                    _kill_quietly(pid)
                time.sleep(0.002)
            cgroup.remove()
        except OSError:
            pass
    remove_state_dir(cdir)


def _ns_plan(linux: dict) -> tuple[int, list[tuple[str, str]]]:
    """The init's part: (unshare flags for new namespaces, [(type, path)] to
    join); the user, pid and time namespaces are the intermediate's."""
    flags = 0
    join = []
    for ns in linux.get("namespaces") or []:
        if ns["type"] in INTERMEDIATE_NAMESPACES:
            continue
        if ns.get("path"):
            join.append((ns["type"], ns["path"]))
        else:
            flags |= NAMESPACES[ns["type"]]
    return flags, join


# entered by the intermediate, before it forks the init: a new pid or time
# namespace is only for children, and the user namespace must come first so
# that it owns every other new one
INTERMEDIATE_NAMESPACES = ("user", "pid", "time")


def _expect(msg, want: str, otherwise: str) -> Msg:
    """A child's reply: the ``want`` message, or the Failure its FAILED
    reports, or (EOF, anything else: it died) ``otherwise``."""
    if _is(msg, FAILED):
        raise Failure(msg.message, msg.exit_code)
    if not _is(msg, want):
        raise Failure(otherwise)
    return msg


def _is(msg, tag: str) -> bool:
    return isinstance(msg, Msg) and msg.tag == tag


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _spawn_init(cfg, bundle, rootfs, cdir, cgroup, opts: CreateOptions, log: Log) -> int:
    import _socket  # (socket would import enum)

    hooks = cfg.get("hooks") or {}
    runtime_hooks = (hooks.get("prestart") or []) + (hooks.get("createRuntime") or [])
    # what the init needs is computed and imported here: in a user
    # namespace the init may not reach the host's Python library at all
    opts.plan = ProcessPlan(cfg["process"], cfg["linux"], hooks=hooks,
                            seccomp_cache=seccomp_cache_dir(os.path.dirname(cdir)))
    from linux import mounts  # noqa: F401

    if any(ns["type"] == "network" and not ns.get("path")
           for ns in cfg["linux"].get("namespaces") or []):
        from linux import net  # noqa: F401
    parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    opts.fifo_fd = os.open(os.path.join(cdir, FIFO), os.O_PATH | os.O_CLOEXEC)
    if cgroup is not None:
        try:
            opts.join_fds = cgroup.open_self_join() or []
        except OSError as exc:
            os.close(opts.fifo_fd)
            raise Failure(_cgroup_error(exc)) from None
    # the intermediate's fork must not run Python-level buffered output twice
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        mid = os.fork()
    except BaseException:
        _close_join_fds(opts)
        raise
    if mid == 0:  # intermediate
        parent_sock.close()
        _intermediate(child_sock.detach(), cfg, bundle, rootfs, cdir, cgroup, opts)
        os._exit(1)  # not reached
    child_sock.close()
    os.close(opts.fifo_fd)
    opts.fifo_fd = -1
    self_joined = bool(opts.join_fds)
    _close_join_fds(opts)
    chan = Channel(parent_sock.fileno())
    init_pid = 0
    reaped = False
    try:
        msg = chan.recv()
        if _is(msg, USERNS):
            write_id_maps(mid, cfg["linux"])
            chan.send(Msg(IDMAPS_WRITTEN))
            msg = chan.recv()
        if not _is(msg, CREATED):
            status = opts.wait_child(mid)
            reaped = True
            _expect(msg, CREATED, f"container init failed to start (intermediate status {status})")
        init_pid = msg.pid
        if cgroup is not None and not self_joined:
            try:
                cgroup.add_pid(init_pid)
            except OSError as exc:
                raise Failure(_cgroup_error(exc)) from None
        adj = cfg["process"].get("oomScoreAdj")
        if adj is not None:
            _set_oom_score_adj(init_pid, adj, log)
        try:
            chan.send(Msg(CGROUP_JOINED))
        except OSError:
            pass  # the init is gone: its CreateFailed (or EOF) is read below
        # (after the init was let go: it exits once it has said CREATED)
        opts.release_child(mid)
        reaped = True
        msg = chan.recv()
        if runtime_hooks and _is(msg, RUN_HOOKS):
            # the container's namespaces and mounts exist; pivot_root is next
            state = hook_state(opts.id, "creating", init_pid, bundle, cfg.get("annotations"))
            run_hooks("prestart", hooks.get("prestart") or [], state)
            run_hooks("createRuntime", hooks.get("createRuntime") or [], state)
            chan.send(Msg(HOOKS_DONE))
            msg = chan.recv(CREATE_TIMEOUT + hooks_budget(hooks.get("createContainer") or []))
        _expect(msg, READY, "container init exited during create")
        return init_pid
    except BaseException:
        if init_pid:
            _kill_quietly(init_pid)
        if not reaped:  # (a failure before it reported: no zombie left)
            _kill_quietly(mid)
            opts.wait_child(mid)
        raise
    finally:
        parent_sock.close()


def _wait_child(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


def create_in_host(root: str, container_id: str, bundle: str, *, pid_file: str,
                   stdio: tuple[int, int, int], wait_child, release_child, log_path: str,
                   console_socket: str | None = None) -> int:
    """``create`` run by a long-lived process of ours (the shim), in one of its
    worker threads, instead of in a runtime process forked for it: the same
    work without a fork of the host (its page tables copied, then every page
    the runtime touches copied again on write, then unmapped at exit: ~7 ms
    of CPU per create, half of it on the create's path).  Returns the init's
    pid; raises Failure (also logged to ``log_path``).

    The host is left as it was (what this opens is closed); the intermediate
    it forks sheds the host first (_shed_host): its signal handlers, its fds,
    its stdio (``stdio`` become 0, 1, 2).  ``wait_child(pid) -> wait status``
    waits for a child: the host's reaper owns waitpid; ``release_child(pid)``
    leaves one to it (its status is not wanted: it exits by itself).  Not for
    bundles with hooks (they are the runtime's own children)."""
    opts = CreateOptions(container_id, bundle, pid_file=pid_file, console_socket=console_socket)
    opts.host_stdio = stdio
    opts.wait_child = wait_child
    opts.release_child = release_child
    log = Log(log_path, "json")
    try:
        try:
            return create(root, opts, log).pid
        except OSError as exc:
            raise Failure(_one_line(exc)) from None
    except Failure as exc:
        log.error(exc.message)
        raise


def _shed_host(opts: CreateOptions, sock: int) -> None:
    """The intermediate of a create_in_host, first thing: the host's Python
    signal handlers and wakeup fd are not ours (a signal must not run the
    host's code here, nor wake its loop), nor are its fds; the container's
    stdio becomes 0, 1, 2 and fresh stdio objects replace the host's (a thread
    of the host may have held their locks at the fork)."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    assert opts.host_stdio is not None
    fds = [os.dup(fd) for fd in opts.host_stdio]  # (a target may be one of the sources)
    for target, fd in enumerate(fds):
        os.dup2(fd, target, inheritable=True)
    keep = sorted({sock, opts.fifo_fd, opts.console_fd, *opts.join_fds} - {-1})
    low = 3
    for fd in keep + [1 << 20]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _close_join_fds(opts: CreateOptions) -> None:
    fds, opts.join_fds = opts.join_fds, []
    for fd in fds:
        os.close(fd)


def _join_own_cgroup(fds: list[int]) -> None:
    """In the init (or an exec'd process), at once: move into the container's
    cgroup by the fds the parent opened (see Cgroup.open_self_join)."""
    if fds:
        from linux.cgroups import join_self

        try:
            join_self(fds)
        except OSError as exc:
            raise Failure(f"cgroup: join: {_cgroup_error(exc)}") from None


def _set_oom_score_adj(pid: int, adj: int, log: Log) -> None:
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(adj))
    except PermissionError as exc:
        if adj >= 0:
            raise Failure(f"set oom_score_adj to {adj}: {exc.strerror}") from None
        # lowering it needs CAP_SYS_RESOURCE, which not every host grants
        log.warning(f"cannot set oom_score_adj to {adj}: {exc.strerror} (lowering it needs "
                    "CAP_SYS_RESOURCE); the container keeps its inherited value")
    except OSError as exc:
        raise Failure(f"set oom_score_adj to {adj}: {exc.strerror}") from None


def _intermediate(sock: int, cfg, bundle, rootfs, cdir, cgroup, opts) -> None:
    """Forked child: enter the pid namespace (which only takes effect for
    children), fork the init, report its host pid, exit."""
    chan = None
    try:
        if opts.host_stdio is not None:
            _shed_host(opts, sock)
        chan = Channel(sock)
        sc.set_dumpable(False)  # before joining any namespace (CVE-2019-5736)
        linux = cfg["linux"]
        nss = {ns["type"]: ns for ns in linux.get("namespaces") or []}
        if "user" in nss:
            _enter_user_ns(chan, nss["user"])
        if "pid" in nss:
            _enter_ns(nss["pid"], sc.CLONE_NEWPID)
        if "time" in nss:
            _enter_ns(nss["time"], sc.CLONE_NEWTIME)
            if not nss["time"].get("path") and linux.get("timeOffsets"):
                _write_time_offsets(linux["timeOffsets"])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _init(chan, cfg, bundle, rootfs, cdir, cgroup, opts)
            finally:
                os._exit(code)
        chan.send(Msg(CREATED, pid=pid))
        os._exit(0)
    except BaseException as exc:
        try:
            if chan is not None:
                msg = exc.message if isinstance(exc, Failure) else f"{exc}"
                chan.send(Msg(FAILED, message=msg, exit_code=128))
        finally:
            os._exit(1)


def _enter_ns(ns: dict, kind: int) -> None:
    """Join the namespace at ns["path"], or unshare a new one."""
    if not ns.get("path"):
        sc.unshare(kind)
        return
    try:
        fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise Failure(f"namespace {ns['type']} {ns['path']}: {exc.strerror}") from None
    try:
        sc.setns(fd, kind)
    except OSError as exc:
        raise Failure(f"join namespace {ns['type']} {ns['path']}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _enter_user_ns(chan: "Channel", ns: dict) -> None:
    """The intermediate: join or make the user namespace (a new one gets its
    id maps from the parent: only it may write them), then become its root."""
    _enter_ns(ns, sc.CLONE_NEWUSER)
    if not ns.get("path"):
        chan.send(Msg(USERNS))
        if not _is(chan.recv(), IDMAPS_WRITTEN):
            raise Failure("the runtime did not write the user namespace's id maps")
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as exc:
        raise Failure(f"cannot become root in the user namespace ({exc.strerror}): "
                      "uid and gid 0 must be mapped") from None


def id_map_text(mappings: list[dict]) -> bytes:
    """linux.uidMappings / gidMappings as /proc/PID/uid_map lines."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                   for m in mappings).encode()


def write_id_maps(pid: int, linux: dict) -> None:
    """The parent: write a new user namespace's maps (each in one write, as
    the kernel wants); setgroups is denied first where only that lets an
    unprivileged writer set a gid map."""
    def put(name: str, data: bytes, what: str) -> None:
        try:
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise Failure(f"user namespace: write {what} to /proc/{pid}/{name}: "
                          f"{exc.strerror}") from None

    put("uid_map", id_map_text(linux["uidMappings"]), "linux.uidMappings")
    if os.geteuid() != 0:
        put("setgroups", b"deny", "deny")
    put("gid_map", id_map_text(linux["gidMappings"]), "linux.gidMappings")


def _write_time_offsets(offsets: dict) -> None:
    """A new time namespace's offsets: written before any process is in it."""
    text = "".join(f"{clock} {offsets[clock].get('secs') or 0} "
                   f"{offsets[clock].get('nanosecs') or 0}\n"
                   for clock in TIME_OFFSET_CLOCKS if clock in offsets)
    # non-dumpable, our /proc/self files belong to the host's root, whom a
    # user namespace's root is not: dumpable for the write (nothing else is
    # in our namespaces yet)
    sc.set_dumpable(True)
    try:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise Failure(f"time namespace: write linux.timeOffsets: {exc.strerror}") from None
    finally:
        sc.set_dumpable(False)


# ---------------------------------------------------------------------------
# the container init (runs in the forked child; never returns on success)
# ---------------------------------------------------------------------------

def _init(chan: Channel, cfg, bundle, rootfs, cdir, cgroup, opts) -> int:
    try:
        # CVE-2019-5736: until it execs the user's command the init is the
        # host's interpreter; non-dumpable, its /proc/1/exe (and fd, mem...)
        # cannot be opened from the container (execve undoes it)
        sc.set_dumpable(False)
        # opened by the parent: the state dir may be out of a user
        # namespace's reach
        fifo_fd = opts.fifo_fd
        # our pid on the host, for the hooks' state (the host's /proc is
        # still ours: nothing is mounted yet)
        host_pid = int(os.readlink("/proc/self"))
        # a session of our own, as runc's init (and so a controlling terminal
        # can be ours)
        os.setsid()
        # Python ignores SIGPIPE and SIGXFSZ (an ignored signal stays ignored
        # across execve) and `run` relays some: the container gets defaults
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS):
            signal.signal(sig, signal.SIG_DFL)
        # into the cgroup now, while the parent waits for the intermediate;
        # before any namespace (the cgroup one's root is this cgroup)
        fds, opts.join_fds = opts.join_fds, []
        _join_own_cgroup(fds)
        msg = chan.recv()
        if not _is(msg, CGROUP_JOINED):
            return 1  # the parent is gone or confused: nothing to report to
        plan = opts.plan
        state = hook_state(opts.id, "creating", host_pid, bundle, cfg.get("annotations"))
        _setup_container(cfg, bundle, rootfs, cgroup, opts, chan, fifo_fd, plan, state)
        argv, env, path = plan.finish([0, 1, 2, chan.fd, fifo_fd], opts.preserve_fds,
                                      need_proc=fifo_fd)
    except Failure as exc:
        _report(chan, Msg(FAILED, message=exc.message, exit_code=exc.exit_code))
        return 1
    except BaseException as exc:  # one line, whatever broke
        _report(chan, Msg(FAILED, message=_one_line(exc), exit_code=128))
        return 1
    chan.send(Msg(READY))
    os.close(chan.fd)
    # block until `start` opens the fifo for reading (reopen through our own
    # fd: the state dir is not visible from inside the new root); the write
    # end stays open (close-on-exec) until execve, so that `start` learns of
    # a failing startContainer hook or execve
    try:
        wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(wfd, b"0")
        os.close(fifo_fd)
    except OSError as exc:
        _stderr(f"trioctr-runtime: init: exec.fifo: {exc}")
        return 1
    start_hooks = (cfg.get("hooks") or {}).get("startContainer")
    if start_hooks:
        try:
            run_hooks("startContainer", start_hooks, hook_state(
                opts.id, "created", host_pid, bundle, cfg.get("annotations")))
        except Failure as exc:
            _write_quietly(wfd, exc.message)
            return 1
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        os.execve(path, argv, env)
    except OSError as exc:
        _write_quietly(wfd, f"exec {path}: {exc.strerror}")
        return 127 if exc.errno == 2 else 126
    return 1


def _write_quietly(fd: int, text: str) -> None:
    try:
        os.write(fd, text.replace("\n", " ").encode())
    except OSError:
        pass


def _report(chan: Channel, msg) -> None:
    try:
        chan.send(msg)
    except OSError:
        pass


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = str(exc.strerror)  # (without "[Errno N]": linux/ puts the call in it)
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text.replace("\n", " ")


def _setup_container(cfg, bundle, rootfs, cgroup, opts, chan, fifo_fd, plan, state) -> None:
    """The init's part that `exec` does not share: namespaces, the root
    filesystem, pivot_root and what needs the new root."""
    from linux import mounts

    linux = cfg["linux"]
    hooks = cfg.get("hooks") or {}
    flags, join = _ns_plan(linux)
    userns = any(ns["type"] == "user" for ns in linux.get("namespaces") or [])
    if flags & sc.CLONE_NEWNET:
        from linux.net import link_up
    os.umask(0o022)

    # namespaces: join the given paths first, then make the new ones (the
    # cgroup namespace too: the parent has put us in the container's cgroup)
    for kind, path in join:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise Failure(f"namespace {kind} {path}: {exc.strerror}") from None
        try:
            sc.setns(fd, NAMESPACES[kind])
        finally:
            os.close(fd)
    if flags:
        sc.unshare(flags)
    if flags & sc.CLONE_NEWNET:
        link_up("lo")

    # the root filesystem
    prop = mounts.PROPAGATION.get(linux.get("rootfsPropagation") or "", 0)
    try:
        mounts.make_rootfs_mount(rootfs, prop or (sc.MS_SLAVE | sc.MS_REC))
    except PermissionError as exc:
        if not userns:
            raise
        raise Failure(f"{_one_line(exc)} (in a user namespace the rootfs must be reachable "
                      "by the container's root: every directory above it searchable, "
                      "the rootfs owned by the mapped root)") from None
    entries = cfg.get("mounts") or []
    new_cgroupns = bool(flags & sc.CLONE_NEWCGROUP)
    for entry in entries:
        try:
            mounts.mount_entry(rootfs, bundle, entry, cgroup=cgroup, new_cgroupns=new_cgroupns,
                               userns=userns)
        except (OSError, ValueError) as exc:
            raise Failure(f"mount {entry['destination']}: {_one_line(exc)}") from None
    dev_bind = any(e["destination"].rstrip("/") == "/dev" and _is_bind(e) for e in entries)
    if not dev_bind:
        devices = {d["path"]: d for d in linux.get("devices") or []}
        for path, kind, major, minor, mode in mounts.DEFAULT_DEVICES:
            devices.setdefault(path, {"path": path, "type": kind, "major": major,
                                      "minor": minor, "fileMode": mode, "uid": 0, "gid": 0})
        for dev in devices.values():
            try:
                mounts.make_device(rootfs, dev)
            except OSError as exc:
                raise Failure(f"device {dev['path']}: {_one_line(exc)}") from None
        has_pts = any(e["destination"].rstrip("/") == "/dev/pts" for e in entries)
        mounts.dev_symlinks(rootfs, ptmx=has_pts)

    # hooks before pivot_root: prestart and createRuntime in the runtime's
    # namespaces (the parent runs them), then createContainer in ours
    if hooks.get("prestart") or hooks.get("createRuntime"):
        chan.send(Msg(RUN_HOOKS))
        budget = hooks_budget((hooks.get("prestart") or []) + (hooks.get("createRuntime") or []))
        msg = chan.recv(CREATE_TIMEOUT + budget)
        if not _is(msg, HOOKS_DONE):
            raise Failure("the runtime did not run the createRuntime hooks")
    if hooks.get("createContainer"):
        run_hooks("createContainer", hooks["createContainer"], state)

    mounts.pivot_root(rootfs)
    if prop:
        sc.mount(None, "/", None, prop)
    if opts.console_fd >= 0:
        setup_console(opts.console_fd, cfg["process"].get("consoleSize"), mount_console=True)

    if cfg.get("hostname"):
        sc.sethostname(cfg["hostname"])
    if cfg.get("domainname"):
        sc.setdomainname(cfg["domainname"])
    for key, value in (linux.get("sysctl") or {}).items():
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as exc:
            raise Failure(f"sysctl {key}={value}: {exc.strerror}") from None
    for path in linux.get("readonlyPaths") or []:
        try:
            mounts.readonly_path(path)
        except OSError as exc:
            raise Failure(f"readonly path {path}: {_one_line(exc)}") from None
    for path in linux.get("maskedPaths") or []:
        try:
            mounts.mask_path(path)
        except OSError as exc:
            raise Failure(f"masked path {path}: {_one_line(exc)}") from None
    if cfg["root"].get("readonly"):
        mounts.remount_root_readonly()
    if linux.get("personality"):
        sc.personality(PERSONALITY_DOMAINS[linux["personality"]["domain"]])


class ProcessPlan:
    """What the container init and every `exec` process share: from an OCI
    process object (and linux.seccomp), the capability sets and seccomp
    filter computed while the host is still in reach, then ``finish()``:
    rlimits, no_new_privs, fds, seccomp, user, capabilities, umask, cwd,
    environment and the resolved command."""

    def __init__(self, process: dict, linux: dict, hooks: dict | None = None,
                 seccomp_cache: str | None = None):
        # everything finish() needs is imported now: after pivot_root (or
        # the chroot of exec) the host's Python library is out of reach
        from linux import caps as capmod

        self.capmod = capmod
        self.process = process
        if hooks:  # createContainer and startContainer hooks
            __import__("subprocess")
        if process.get("terminal"):  # setup_console
            for name in ("fcntl", "socket", "struct", "termios"):
                __import__(name)
        # the capability sets: what the process asks for, within what we hold
        # (a capability the runtime lacks cannot be granted; it is left out)
        self.last = capmod.last_cap()
        sets = process.get("capabilities") or {}
        masks = {k: capmod.to_mask(sets.get(k) or []) for k in capmod.SETS}
        _eff, have, _inh = sc.capget()
        limit = have & ((1 << (self.last + 1)) - 1)
        self.bounding = masks["bounding"] & limit
        self.permitted = masks["permitted"] & limit
        self.inheritable = masks["inheritable"] & limit
        self.effective = masks["effective"] & self.permitted
        self.ambient = masks["ambient"] & self.permitted & self.inheritable
        # the seccomp filter is built now, while the host's libseccomp is reachable
        self.filt = None
        if linux.get("seccomp") is not None:
            from linux import seccomp

            try:
                self.filt = seccomp.compile_cached(linux["seccomp"], seccomp_cache)
            except OSError as exc:
                raise Failure(f"seccomp: {_one_line(exc)}") from None
        self.nnp = bool(process.get("noNewPrivileges"))

    def finish(self, keep_fds: list[int], preserve_fds: int = 0,
               need_proc: int | None = None) -> tuple[list[str], dict[str, str], str]:
        process = self.process
        capmod = self.capmod
        for rl in process.get("rlimits") or []:
            try:
                sc.setrlimit(RLIMITS[rl["type"]], rl["soft"], rl["hard"])
            except OSError as exc:
                raise Failure(exc.strerror) from None
        if self.nnp:
            sc.set_no_new_privs()
        if need_proc is not None and not os.path.exists(f"/proc/self/fd/{need_proc}"):
            raise Failure("the container needs /proc mounted (mounts: type proc on /proc)")

        # no host fd may reach the container (CVE-2024-21626): keep only stdio,
        # our channel, the fifo and the fds the caller asked to pass through
        preserved = list(range(3, 3 + preserve_fds))
        sc.close_fds_except([*keep_fds, *preserved])
        for fd in preserved:
            os.set_inheritable(fd, True)

        # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
        # while we still hold it (the filter must then allow what follows)
        if self.filt is not None and not self.nnp:
            _load_seccomp(self.filt)

        # user and capabilities
        user = process["user"]
        uid, gid = user["uid"], user["gid"]
        fix_stdio_owner(uid)
        capmod.apply_bounding(self.bounding, self.last)
        if uid != 0:
            sc.set_keepcaps(True)
        try:
            os.setgroups(list(user.get("additionalGids") or []))
            os.setgid(gid)
            os.setuid(uid)
        except OSError as exc:
            raise Failure(f"set user {uid}:{gid}: {exc.strerror}") from None
        if uid != 0:
            sc.set_keepcaps(False)
        capmod.apply_sets(self.effective, self.permitted, self.inheritable, self.ambient)
        if user.get("umask") is not None:
            os.umask(user["umask"])

        # working directory, checked to be inside the new root
        cwd = process["cwd"]
        try:
            os.chdir(cwd)
            here = os.getcwd()
        except OSError as exc:
            raise Failure(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                          f"{exc.strerror.lower()}") from None
        if not here.startswith("/"):
            raise Failure(f"cwd {cwd!r} is outside the container root")

        env = env_dict(process.get("env") or [])
        if "HOME" not in env:
            env["HOME"] = _home_of(uid)
        args = process["args"]
        path = lookpath(args[0], env.get("PATH"))
        if self.filt is not None and self.nnp:
            _load_seccomp(self.filt)  # as late as we can and still report a failure
        return args, env, path


def seccomp_cache_dir(root: str) -> str:
    """Compiled seccomp programs, kept across containers (see
    linux.seccomp.compile_cached); no container id has an '@'."""
    return os.path.join(root, "@seccomp")


def _load_seccomp(filt) -> None:
    try:
        filt.load()
    except OSError as exc:
        raise Failure(f"seccomp: {_one_line(exc)}") from None
    finally:
        filt.release()


def _is_bind(entry: dict) -> bool:
    opts = entry.get("options") or []
    return entry.get("type") == "bind" or "bind" in opts or "rbind" in opts


def _home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    try:
        with open(passwd) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

def open_fifo_and_start(container: Container) -> None:
    """Release the init blocked on exec.fifo (the `start` half).  The init
    keeps its end open until execve: what it writes after the "0" is why a
    startContainer hook or the execve failed."""
    try:
        fd = os.open(container.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Failure(f"container {container.id} is not in created state") from None
    try:
        os.set_blocking(fd, True)
        # a writer blocked in open() already counts: if there is none, the
        # init is gone and read returns EOF at once
        if not _readable(fd, 30):
            raise Failure(f"container {container.id}: the init did not answer on exec.fifo")
        data = os.read(fd, 1)
        if data == b"0":
            deadline = time.monotonic() + 30 + hooks_budget(container.hooks("startContainer"))
            while (left := deadline - time.monotonic()) > 0 and _readable(fd, left):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(fd)
    if data[:1] != b"0":
        raise Failure(f"container {container.id}: the init exited before start")
    try:
        os.unlink(container.fifo)
    except FileNotFoundError:
        pass
    if len(data) > 1:
        raise Failure(f"container {container.id}: {data[1:].decode(errors='replace')}")


def start_container(c: Container, log: Log) -> None:
    """start, then the poststart hooks (their failures are warnings)."""
    open_fifo_and_start(c)
    poststart = c.hooks("poststart")
    if poststart:
        run_hooks_warn("poststart", poststart, c.hook_state(), log)


def cmd_start(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    status = c.status()
    if status == "stopped":
        raise Failure("cannot start a container that has stopped")
    if status != "created":
        raise Failure(f"container {c.id} is not in created state: {status}")
    start_container(c, log)
    return 0


def cmd_state(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    sys.stdout.write(_json_module().dumps(c.oci_state(), indent=2) + "\n")
    return 0


def cmd_kill(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    sig = parse_signal(args.signal)
    status = c.status()
    if args.all:
        cg = c.cgroup()
        if status == "stopped" and not (cg is not None and cg.exists() and cg.pids()):
            raise Failure("container not running")
        c.signal_all(sig)
        return 0
    if status == "stopped" or not c.signal_init(sig):
        raise Failure("container not running")
    return 0


def cmd_delete(args, log: Log) -> int:
    try:
        c = Container.load(args.root, args.id)
    except Failure:
        cdir = os.path.join(args.root, args.id)
        if os.path.isdir(cdir) and not os.path.exists(os.path.join(cdir, STATE)):
            remove_state_dir(cdir)  # a create that crashed before writing its state
            return 0
        if args.force:
            return 0
        raise
    status = c.status()
    if status in ("running", "paused"):
        if not args.force:
            raise Failure(f"cannot delete container {c.id} that is not stopped: {status}")
        c.signal_all(signal.SIGKILL)
        c.wait_stopped()
    elif status == "created":
        c.signal_all(signal.SIGKILL)
        c.wait_stopped()
    c.destroy(log)
    return 0


def cmd_pause(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    status = c.status()
    if status not in ("running", "created"):
        raise Failure(f"container {c.id} is not running: {status}")
    c.cgroup().freeze()
    return 0


def cmd_resume(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    if c.status() != "paused":
        raise Failure(f"container {c.id} is not paused")
    c.cgroup().thaw()
    return 0


# ---------------------------------------------------------------------------
# update: new resource limits for a live container (runc update)
# ---------------------------------------------------------------------------

# runc's flags: flag -> (LinuxResources section, key, how the value is read)
UPDATE_FLAGS = {
    "--memory": ("memory", "limit", "bytes"),
    "--memory-reservation": ("memory", "reservation", "bytes"),
    "--memory-swap": ("memory", "swap", "bytes"),
    "--cpu-share": ("cpu", "shares", "uint"),
    "--cpu-shares": ("cpu", "shares", "uint"),
    "--cpu-period": ("cpu", "period", "uint"),
    "--cpu-quota": ("cpu", "quota", "int"),
    "--cpu-burst": ("cpu", "burst", "uint"),
    "--cpu-rt-period": ("cpu", "realtimePeriod", "uint"),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "--cpu-idle": ("cpu", "idle", "int"),
    "--cpuset-cpus": ("cpu", "cpus", "str"),
    "--cpuset-mems": ("cpu", "mems", "str"),
    "--pids-limit": ("pids", "limit", "int"),
    "--blkio-weight": ("blockIO", "weight", "int"),
}
# runc's flags for what we do not have: refused, never ignored
UPDATE_REFUSED = {
    "--kernel-memory": "kernel memory limits are not supported (deprecated in the kernel)",
    "--kernel-memory-tcp": "use --resources with memory.kernelTCP",
    "--l3-cache-schema": "Intel RDT is not supported",
    "--mem-bw-schema": "Intel RDT is not supported",
}

# the keys of each LinuxResources section that update may set
UPDATE_KEYS = {
    "memory": {"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"},
    "cpu": {"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus",
            "mems", "idle"},
    "pids": {"limit"},
    "blockIO": {"weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"},
    "network": {"classID", "priorities"},
}
UPDATE_LISTS = ("hugepageLimits",)
# where 0 (and "" for cpus/mems) means "leave as it is", as in runc's drivers
UPDATE_ZERO_KEEPS = {
    "memory": {"limit", "reservation", "swap", "kernelTCP"},
    "cpu": {"shares", "period", "quota", "realtimePeriod", "realtimeRuntime", "cpus", "mems"},
    "pids": {"limit"},
    "blockIO": {"weight", "leafWeight"},
}


def _update_uint(flag: str, value: str, signed: bool) -> int:
    text = value[1:] if signed and value.startswith("-") else value
    if not text.isdigit():
        raise Failure(f"invalid value for {flag.lstrip('-')}: {value!r} is not "
                      f"{'an integer' if signed else 'an unsigned integer'}")
    number = int(value)
    if not (-2**63 <= number <= INT64_MAX if signed else number <= UINT64_MAX):
        raise Failure(f"invalid value for {flag.lstrip('-')}: {value} is out of range")
    return number


def update_from_flags(flags: dict[str, str]) -> dict:
    """runc update's flags (flag -> text) as a LinuxResources patch."""
    patch: dict = {}
    for flag, value in flags.items():
        if flag in UPDATE_REFUSED:
            raise Failure(f"update {flag}: {UPDATE_REFUSED[flag]}")
        section, key, kind = UPDATE_FLAGS[flag]
        if kind == "str":
            number = value
        elif kind == "bytes":
            if value == "-1":
                number = -1
            else:
                from oci.units import InvalidSize, ram_in_bytes

                try:
                    number = ram_in_bytes(value)
                except InvalidSize as exc:
                    raise Failure(f"invalid value for {flag.lstrip('-')}: {exc}") from None
        else:
            number = _update_uint(flag, value, signed=kind == "int")
        patch.setdefault(section, {})[key] = number
    weight = (patch.get("blockIO") or {}).get("weight")
    if weight and not 10 <= weight <= 1000:
        raise Failure(f"invalid value for blkio-weight: {weight} is not between 10 and 1000")
    return patch


def check_update(patch) -> dict:
    """A LinuxResources patch (`update --resources`): the right types and
    only what update can change; raises Failure."""
    _want(patch, dict, "resources")
    for key, value in patch.items():
        if value is None:
            continue
        if key in UPDATE_KEYS:
            _want(value, dict, f"resources.{key}")
            unknown = sorted(k for k in value if k not in UPDATE_KEYS[key])
            if unknown:
                raise Failure(f"update: resources.{key}.{unknown[0]} is not a field of "
                              f"resources.{key}")
        elif key not in (*UPDATE_LISTS, "devices", "unified", "rdma"):
            raise Failure(f"update: resources.{key} is not a field of the resources")
    try:
        _validate_resources(patch, where="resources")
    except ConfigError as exc:
        raise Failure("update: " + exc.message.removeprefix("config.json: ")) from None
    return patch


def merge_resources(old: dict, patch: dict) -> dict:
    """The resources after an update: ``patch`` over ``old`` field by field
    (what the patch leaves out, or sets to runc's "unchanged" 0, stays).
    Raises Failure for what update cannot change (devices, rdma)."""
    merged = json_loads(json_dumps(old or {}))
    for section, fields in patch.items():
        if fields is None:
            continue
        if section in UPDATE_KEYS:
            keep = UPDATE_ZERO_KEEPS.get(section, ())
            target = merged.get(section) or {}
            for key, value in fields.items():
                if value is None or (key in keep and value in (0, "")
                                     and not isinstance(value, bool)):
                    continue
                target[key] = value
            merged[section] = target
        elif section in UPDATE_LISTS:
            merged[section] = fields
        elif section == "unified":
            merged["unified"] = {**(merged.get("unified") or {}), **fields}
        elif section == "devices":
            if fields != (old or {}).get("devices"):
                raise Failure("update: resources.devices cannot be changed by update "
                              "(the device rules are fixed at create)")
        elif fields:
            raise Failure(f"update: resources.{section} cannot be changed by update")
    mem = patch.get("memory") or {}
    if mem.get("limit") == -1 and mem.get("swap") is None:
        # runc: unlimited memory without a word about swap is unlimited swap too
        merged["memory"]["swap"] = -1
    return merged


def _without_devices(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if k != "devices"}


def cmd_update(args, log: Log) -> int:
    flags = {flag: getattr(args, _update_attr(flag)) for flag in (*UPDATE_FLAGS, *UPDATE_REFUSED)
             if getattr(args, _update_attr(flag), None) is not None}
    if args.resources is not None:
        if flags:
            raise Failure(f"update: --resources cannot be combined with {', '.join(flags)}")
        try:
            if args.resources == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.resources, "rb") as f:
                    raw = f.read()
            patch = json_loads(raw)
        except OSError as exc:
            raise Failure(f"update: {exc.strerror}: {args.resources}") from None
        except ValueError as exc:
            raise Failure(f"update: --resources: invalid JSON: {exc}") from None
        check_update(patch)
    else:
        patch = check_update(update_from_flags(flags))
    c = Container.load(args.root, args.id)
    lock = os.open(c.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # one update at a time: read, merge, apply, save
        c = Container.load(args.root, args.id)
        if c.status() == "stopped":
            raise Failure("container not running")
        cg = c.cgroup()
        if cg is None or not cg.exists():
            raise Failure(f"container {c.id} has no cgroup")
        cfg = c.config()
        linux = cfg.setdefault("linux", {})
        old = linux.get("resources") or {}
        merged = merge_resources(old, patch)
        try:
            cg.apply(_without_devices(merged))
        except (OSError, ValueError) as exc:
            try:  # put back what the state says, so that the two agree
                cg.apply(_without_devices(old))
            except (OSError, ValueError) as undo:
                log.warning(f"update: restoring the previous limits failed: {_cgroup_error(undo)}; "
                            "the cgroup and the container's state may disagree")
            raise Failure(f"update: {_cgroup_error(exc)}") from None
        linux["resources"] = merged
        c.state["config"] = cfg
        c.save()
    finally:
        os.close(lock)
    return 0


def _cgroup_error(exc: BaseException) -> str:
    """A CgroupError's own one-line message (no "[Errno N]")."""
    if isinstance(exc, OSError) and exc.strerror and str(exc.strerror).startswith("cgroup"):
        return str(exc.strerror)
    return _one_line(exc)


def _update_attr(flag: str) -> str:
    return "update_" + flag[2:].replace("-", "_")


def cmd_ps(args, log: Log) -> int:
    c = Container.load(args.root, args.id)
    cg = c.cgroup()
    pids = cg.pids() if cg is not None and cg.exists() else []
    if args.format == "json":
        sys.stdout.write(json_dumps(pids) + "\n")
    else:
        sys.stdout.write("PID\n" + "".join(f"{p}\n" for p in pids))
    return 0


def cmd_list(args, log: Log) -> int:
    states = [c.oci_state() for c in list_containers(args.root)]
    if args.format == "json":
        sys.stdout.write(json_dumps(states) + "\n")
        return 0
    if args.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root")
             for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    return 0


def cmd_spec(args, log: Log) -> int:
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise Failure("File config.json exists. Remove it first.")
    write_atomic(path, (_json_module().dumps(default_spec(), indent="\t") + "\n").encode(), 0o644, sync=True)
    return 0


def _create_options(args) -> CreateOptions:
    return CreateOptions(args.id, args.bundle, pid_file=args.pid_file,
                         console_socket=args.console_socket,
                         sync_fd=getattr(args, "sync_fd", None),
                         preserve_fds=args.preserve_fds)


def cmd_create(args, log: Log) -> int:
    opts = _create_options(args)
    try:
        try:
            c = create(args.root, opts, log)
        except OSError as exc:
            raise Failure(_one_line(exc)) from None
    except Failure as exc:
        if opts.sync_fd is not None:
            send_sync(opts.sync_fd, Msg(FAILED, message=exc.message, exit_code=exc.exit_code))
        raise
    if opts.sync_fd is not None:
        send_sync(opts.sync_fd, Msg(CREATED, pid=c.pid))
    return 0


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


class SignalRelay:
    """While `run` or `exec` waits for its process, the signals meant for it
    are relayed; one that comes before the process exists is kept and
    relayed as soon as it does."""

    def __init__(self) -> None:
        self.target = 0
        self.pending: list[int] = []
        for s in FORWARDED_SIGNALS:
            signal.signal(s, self._relay)

    def _relay(self, signum, _frame) -> None:
        if not self.target:
            self.pending.append(signum)
            return
        try:
            os.kill(self.target, signum)
        except ProcessLookupError:
            pass

    def attach(self, pid: int) -> None:
        self.target = pid
        for signum in self.pending:
            self._relay(signum, None)
        self.pending.clear()

    def close(self) -> None:
        for s in FORWARDED_SIGNALS:
            signal.signal(s, signal.SIG_DFL)


def wait_exit(pid: int) -> int:
    """Reap children (we are a subreaper) until pid exits; its exit code, or
    128 + the signal that killed it (255 if it is not ours to wait for)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def cmd_run(args, log: Log) -> int:
    opts = _create_options(args)
    if args.detach:
        return _run_detached(args, opts, log)
    # the init is our grandchild: be its reaper so that we can wait for it
    sc.set_child_subreaper(True)
    relay = SignalRelay()
    try:
        try:
            c = create(args.root, opts, log)
        except Failure as exc:
            if exc.exit_code in (126, 127):  # like `docker run`: the command's exit code
                log.error(exc.message)
                return exc.exit_code
            raise
        try:
            start_container(c, log)
        except BaseException:
            c.signal_all(signal.SIGKILL)
            c.wait_stopped()
            c.destroy(log)
            raise
        relay.attach(c.pid)
        code = wait_exit(c.pid)
    finally:
        relay.close()
    if not args.keep:
        c.destroy(log)
    return code


def _run_detached(args, opts: CreateOptions, log: Log) -> int:
    c = create(args.root, opts, log)
    try:
        start_container(c, log)
    except BaseException:
        c.signal_all(signal.SIGKILL)
        c.wait_stopped()
        c.destroy(log)
        raise
    return 0


# ---------------------------------------------------------------------------
# exec: one more process in a running container
# ---------------------------------------------------------------------------

# the order of setns(2): user first (it grants the rights for the others),
# pid before the fork that makes the child a member, mount last (after it,
# the host's paths are out of reach)
EXEC_NS_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
PROC_NS_NAMES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
                 "cgroup": "cgroup", "time": "time", "mount": "mnt"}


def exec_process_spec(cfg: dict, args) -> dict:
    """The process to run: an `exec --process` file as it is, or (as runc)
    the container's own process with the command line's args and overrides."""
    import copy

    overrides = [flag for flag, given in (
        ("--cwd", args.cwd), ("--env", args.env), ("--user", args.user),
        ("--additional-gids", args.additional_gids), ("--cap", args.cap), ("--tty", args.tty),
        ("--no-new-privs", args.no_new_privs)) if given]
    if args.process:
        if args.args:
            raise Failure("exec: give the command in the --process file or on the command "
                          "line, not both")
        if overrides:
            raise Failure(f"exec: {overrides[0]} cannot be combined with --process "
                          "(set it in the file)")
        try:
            with open(args.process, "rb") as f:
                process = json_loads(f.read())
        except OSError as exc:
            raise Failure(f"exec: --process {args.process}: {exc.strerror}") from None
        except ValueError as exc:
            raise Failure(f"exec: --process {args.process}: invalid JSON: {exc}") from None
        return _checked_process(process, args.process)
    if not args.args:
        raise Failure("exec: a command is needed (or --process FILE)")
    process = copy.deepcopy(cfg["process"])
    process["args"] = list(args.args)
    process["terminal"] = bool(args.tty)
    if args.cwd:
        process["cwd"] = args.cwd
    process["env"] = list(process.get("env") or []) + list(args.env)
    user = process["user"] = dict(process["user"])
    if args.user:
        uid, colon, gid = args.user.partition(":")
        if not uid.isdigit() or (colon and not gid.isdigit()):
            raise Failure(f"exec: --user {args.user!r}: want UID[:GID], in numbers")
        user["uid"] = int(uid)
        if colon:
            user["gid"] = int(gid)
    for g in args.additional_gids:
        for item in g.split(","):
            if not item.strip().isdigit():
                raise Failure(f"exec: --additional-gids {g!r}: want numbers")
            user["additionalGids"] = list(user.get("additionalGids") or []) + [int(item)]
    if args.cap:
        caps = dict(process.get("capabilities") or {})
        for name in args.cap:
            name = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
            for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                caps[key] = list(caps.get(key) or []) + [name]
        process["capabilities"] = caps
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    return _checked_process(process, "")


def _checked_process(process, source: str) -> dict:
    try:
        return validate_process(process)
    except ConfigError as exc:
        what = exc.message.removeprefix("config.json: ")
        raise Failure(f"exec: {'--process ' + source + ': ' if source else ''}{what}") from None


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def exec_in(c: Container, cfg: dict, process: dict, log: Log, *, console_socket: str | None = None,
            preserve_fds: int = 0) -> int:
    """Start ``process`` in every namespace and the cgroup of the running
    container ``c``; return its host pid once it is about to execve (the
    command resolved).  Raises Failure.

        runtime                    intermediate                  process
        open /proc/INIT/ns/*,
        /proc/INIT/root
        fork ----------------->    setns: user, ipc, uts, net,
                                   pid, cgroup, mnt; chroot into
                                   /proc/INIT/root; fork -------> [v1: joins the cgroup]
                  <-------------   ContainerCreated(pid), exit    wait for CgroupJoined
        [v2: cgroup.procs <- pid]
        CgroupJoined --------------------------------------------> setsid, console,
                                                                  rlimits, fds, seccomp,
                                                                  user, caps, cwd, command
                  <----------------------------------------------  InitReady | CreateFailed
                                                                  execve
    """
    import _socket  # (socket would import enum)
    check_terminal(process, console_socket)
    fds: list[int] = []
    ns_fds: list[tuple[str, int]] = []
    console_fd = -1
    plan = None
    pid = 0
    try:
        types = {ns["type"] for ns in cfg["linux"].get("namespaces") or []}
        try:
            for kind in EXEC_NS_ORDER:
                if kind not in types:
                    continue  # the container shares ours
                name = PROC_NS_NAMES[kind]
                fd = os.open(f"/proc/{c.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                fds.append(fd)
                if not _same_file(fd, f"/proc/self/ns/{name}"):
                    ns_fds.append((kind, fd))
            root_fd = os.open(f"/proc/{c.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(root_fd)
        except OSError:
            raise Failure("cannot exec in a stopped container") from None
        # the same process before and after: what we opened is the container's
        if not c.init_alive():
            raise Failure("cannot exec in a stopped container")
        plan = ProcessPlan(process, cfg["linux"], seccomp_cache=seccomp_cache_dir(c.root))
        if console_socket:
            console_fd = connect_console_socket(console_socket)
        cg = c.cgroup()
        join_fds: list[int] = []
        if cg is not None and cg.exists():
            try:
                join_fds = cg.open_self_join() or []
            except OSError as exc:
                raise Failure(str(exc)) from None
            fds.extend(join_fds)  # (ours are closed with the others)
        parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        mid = os.fork()
        if mid == 0:
            parent_sock.close()
            _exec_intermediate(child_sock.detach(), ns_fds, root_fd, plan, console_fd,
                               preserve_fds, join_fds)
            os._exit(1)  # not reached
        child_sock.close()
        chan = Channel(parent_sock.fileno())
        try:
            msg = chan.recv()
            os.waitpid(mid, 0)
            pid = _expect(msg, CREATED, "exec: the process failed to start").pid
            if cg is not None and not join_fds and cg.exists():
                try:
                    cg.add_pid(pid)
                except OSError as exc:
                    raise Failure(str(exc)) from None
            if process.get("oomScoreAdj") is not None:
                _set_oom_score_adj(pid, process["oomScoreAdj"], log)
            try:
                chan.send(Msg(CGROUP_JOINED))
            except OSError:
                pass  # its CreateFailed (or EOF) is read below
            _expect(chan.recv(), READY, "exec: the process exited before it was ready")
            return pid
        except BaseException:
            if pid:
                _kill_quietly(pid)
            raise
        finally:
            parent_sock.close()
    finally:
        for fd in fds:
            os.close(fd)
        if console_fd >= 0:
            os.close(console_fd)
        if plan is not None and plan.filt is not None:
            plan.filt.release()


def _exec_intermediate(sock: int, ns_fds, root_fd: int, plan: ProcessPlan, console_fd: int,
                       preserve_fds: int, join_fds: list[int]) -> None:
    chan = None
    try:
        chan = Channel(sock)
        # CVE-2019-5736: non-dumpable before joining the container (as runc),
        # and so the process forked below until its execve: the container
        # cannot open /proc/PID/exe (the host's interpreter) of either
        sc.set_dumpable(False)
        for kind, fd in ns_fds:
            sc.setns(fd, NAMESPACES[kind])
        # the init's root, whatever the mount namespace's own root is
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _exec_process(chan, plan, console_fd, preserve_fds, join_fds)
            finally:
                os._exit(code)
        chan.send(Msg(CREATED, pid=pid))
        os._exit(0)
    except BaseException as exc:
        try:
            if chan is not None:
                msg = exc.message if isinstance(exc, Failure) else _one_line(exc)
                chan.send(Msg(FAILED, message=f"exec: {msg}", exit_code=128))
        finally:
            os._exit(1)


def _exec_process(chan: Channel, plan: ProcessPlan, console_fd: int, preserve_fds: int,
                  join_fds: list[int]) -> int:
    try:
        os.setsid()
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS):
            signal.signal(sig, signal.SIG_DFL)
        _join_own_cgroup(join_fds)
        msg = chan.recv()
        if not _is(msg, CGROUP_JOINED):
            return 1
        if console_fd >= 0:
            setup_console(console_fd, plan.process.get("consoleSize"), mount_console=False)
        argv, env, path = plan.finish([0, 1, 2, chan.fd], preserve_fds)
    except Failure as exc:
        _report(chan, Msg(FAILED, message=exc.message, exit_code=exc.exit_code))
        return 1
    except BaseException as exc:
        _report(chan, Msg(FAILED, message=_one_line(exc), exit_code=128))
        return 1
    chan.send(Msg(READY))
    os.close(chan.fd)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        os.execve(path, argv, env)
    except OSError as exc:
        _stderr(f"trioctr-runtime: exec {path}: {exc.strerror}")
        return 127 if exc.errno == 2 else 126
    return 1


def cmd_exec(args, log: Log) -> int:
    relay = None
    try:
        c = Container.load(args.root, args.id)
        status = c.status()
        if status in ("stopped", "paused"):
            raise Failure(f"cannot exec in a {status} container")
        cfg = c.config()
        process = exec_process_spec(cfg, args)
        if not args.detach:
            # the process is our grandchild: be its reaper so that we can wait for it
            sc.set_child_subreaper(True)
            relay = SignalRelay()
        pid = exec_in(c, cfg, process, log, console_socket=args.console_socket,
                      preserve_fds=args.preserve_fds)
        if args.pid_file:
            write_atomic(os.path.abspath(args.pid_file), str(pid).encode())
    except Failure as exc:
        if relay is not None:
            relay.close()
        if args.sync_fd is not None:
            send_sync(args.sync_fd, Msg(FAILED, message=exc.message, exit_code=exc.exit_code))
        if not args.detach and exc.exit_code in (126, 127):  # the command's exit code
            log.error(exc.message)
            return exc.exit_code
        raise
    if args.sync_fd is not None:
        send_sync(args.sync_fd, Msg(CREATED, pid=pid))
    if args.detach:
        return 0
    try:
        relay.attach(pid)
        return wait_exit(pid)
    finally:
        relay.close()


# ---------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------

def features() -> dict:
    """What this runtime implements (the OCI Features structure, as `runc
    features`): fixed by the code, not by the host."""
    from linux import caps as capmod
    from linux import mounts
    from linux import seccomp

    try:
        archs = seccomp.known_architectures()
        libseccomp = seccomp.library_version()
    except OSError:  # no libseccomp: no seccomp
        archs, libseccomp = [], ""
    annotations = {"org.trioctr.runtime.version": RUNTIME_VERSION}
    if libseccomp:
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted([*mounts.MOUNT_FLAGS, *mounts.PROPAGATION]),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(capmod.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {
                "enabled": bool(archs),
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPERATORS),
                "archs": archs,
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": annotations,
    }


def cmd_features(args, log: Log) -> int:
    sys.stdout.write(_json_module().dumps(features(), indent=4) + "\n")
    return 0


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------

USAGE = """usage: trioctr-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND [ARGS]

trioctr's OCI runtime (runc-compatible command line).

commands:
  create [--bundle DIR] [--pid-file FILE] [--console-socket PATH] [--sync-fd N]
         [--preserve-fds N] ID     create a container; the init waits for `start`
                                   (--console-socket: for process.terminal, receives
                                   the pty master over SCM_RIGHTS)
  start ID                         run the user process of a created container
  state ID                         print the OCI state as JSON
  kill [--all] ID [SIGNAL]         send SIGNAL (default TERM) to the init, or every process
  delete [--force] ID              remove a stopped (or, with --force, any) container
  run [--bundle DIR] [--pid-file FILE] [--console-socket PATH] [--detach] [--keep] ID
                                   create + start, wait, exit with the container's status
  list [--format table|json] [-q]  list containers
  ps [--format table|json] ID      pids in the container's cgroup
  pause ID | resume ID             freeze / thaw the container's cgroup
  exec [--cwd DIR] [--env K=V]... [--user UID[:GID]] [--additional-gids G]...
       [--cap CAP]... [--no-new-privs] [--tty] [--console-socket PATH]
       [--pid-file FILE] [--detach] [--sync-fd N] [--preserve-fds N] ID COMMAND...
  exec --process FILE [--console-socket PATH] [--pid-file FILE] [--detach] ... ID
                                   run a process in the container's namespaces and
                                   cgroup; without --detach, exit with its status
  update [--resources FILE|-] [--memory N] [--memory-reservation N] [--memory-swap N]
         [--cpu-share N] [--cpu-period N] [--cpu-quota N] [--cpu-burst N]
         [--cpu-rt-period N] [--cpu-rt-runtime N] [--cpu-idle N] [--cpuset-cpus S]
         [--cpuset-mems S] [--pids-limit N] [--blkio-weight N] ID
                                   change the resource limits of a live container
                                   (--resources: LinuxResources JSON, '-' for stdin;
                                   what it leaves out, or sets to 0, stays)
  spec [--bundle DIR]              write a default config.json
  features                         print what this runtime implements (JSON)

global options:
  --root DIR          state directory (default /run/trioctr/runtime)
  --log FILE          append errors (and warnings) to FILE
  --log-format FMT    text (default) or json
  --debug             log debug lines too
"""

_COMMANDS = {
    # name: (flags with a value, boolean flags, positional names)
    "create": ({"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file",
                "--console-socket": "console_socket", "--sync-fd": "sync_fd",
                "--preserve-fds": "preserve_fds"},
               {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}, ["id"]),
    "run": ({"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file",
             "--console-socket": "console_socket", "--preserve-fds": "preserve_fds"},
            {"--detach": "detach", "-d": "detach", "--keep": "keep",
             "--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}, ["id"]),
    "start": ({}, {}, ["id"]),
    "state": ({}, {}, ["id"]),
    "kill": ({}, {"--all": "all", "-a": "all"}, ["id", "signal?"]),
    "delete": ({}, {"--force": "force", "-f": "force"}, ["id"]),
    "pause": ({}, {}, ["id"]),
    "resume": ({}, {}, ["id"]),
    "ps": ({"--format": "format", "-f": "format"}, {}, ["id"]),
    "list": ({"--format": "format", "-f": "format"}, {"--quiet": "quiet", "-q": "quiet"}, []),
    "spec": ({"--bundle": "bundle", "-b": "bundle"}, {"--rootless": "rootless"}, []),
    "exec": ({"--process": "process", "-p": "process", "--cwd": "cwd", "--env": "env",
              "-e": "env", "--user": "user", "-u": "user", "--additional-gids": "additional_gids",
              "-g": "additional_gids", "--cap": "cap", "-c": "cap", "--pid-file": "pid_file",
              "--console-socket": "console_socket", "--sync-fd": "sync_fd",
              "--preserve-fds": "preserve_fds"},
             {"--detach": "detach", "-d": "detach", "--tty": "tty", "-t": "tty",
              "--no-new-privs": "no_new_privs"}, ["id", "args*"]),
    "update": ({"--resources": "resources", "-r": "resources",
                **{flag: _update_attr(flag) for flag in (*UPDATE_FLAGS, *UPDATE_REFUSED)}},
               {}, ["id"]),
    "features": ({}, {}, []),
}

# flags that may be given more than once (a list)
_REPEATED = {"env", "additional_gids", "cap"}

_HANDLERS = {
    "create": cmd_create, "run": cmd_run, "start": cmd_start, "state": cmd_state,
    "kill": cmd_kill, "delete": cmd_delete, "pause": cmd_pause, "resume": cmd_resume,
    "ps": cmd_ps, "list": cmd_list, "spec": cmd_spec, "exec": cmd_exec,
    "features": cmd_features, "update": cmd_update,
}


class Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> Args:
    """runc-style: global flags, COMMAND, then its flags and positionals in
    any order ('--flag value' or '--flag=value'; '--' ends flags)."""
    args = Args(root=DEFAULT_ROOT, log=None, log_format="text", debug=False, command=None,
                bundle=None, pid_file=None, console_socket=None, sync_fd=None,
                preserve_fds="0", no_pivot=False, no_new_keyring=False, detach=False,
                keep=False, all=False, force=False, format="table", quiet=False,
                rootless=False, id=None, signal="TERM", help=False, process=None, cwd=None,
                env=[], user=None, additional_gids=[], cap=[], tty=False, no_new_privs=False,
                args=[], resources=None)
    globals_v = {"--root": "root", "--log": "log", "--log-format": "log_format"}
    globals_b = {"--debug": "debug", "--help": "help", "-h": "help"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in globals_v:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag {name} needs a value")
                value = argv[i]
            setattr(args, globals_v[name], value)
        elif arg in globals_b:
            setattr(args, globals_b[arg], True)
        elif arg in ("--systemd-cgroup",):
            raise UsageError("--systemd-cgroup is not supported: use cgroupfs paths")
        elif arg.startswith("-"):
            raise UsageError(f"unknown global flag {arg}")
        else:
            break
        i += 1
    if args.help or i >= len(argv):
        return args
    args.command = argv[i]
    if args.command not in _COMMANDS:
        raise UsageError(f"unknown command {args.command!r}")
    valued, boolean, positional = _COMMANDS[args.command]
    pos: list[str] = []
    i += 1
    flags_done = False
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if not flags_done and arg == "--":
            flags_done = True
        elif not flags_done and name in valued:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag {name} needs a value")
                value = argv[i]
            key = valued[name]
            if key in _REPEATED:
                setattr(args, key, [*getattr(args, key), value])
            else:
                setattr(args, key, value)
        elif not flags_done and arg in boolean:
            setattr(args, boolean[arg], True)
        elif not flags_done and arg in ("--help", "-h"):
            args.help = True
        elif not flags_done and arg.startswith("-") and len(arg) > 1 and not arg[1:].isdigit():
            raise UsageError(f"{args.command}: unknown flag {arg}")
        else:
            pos.append(arg)
            if positional and positional[-1].endswith("*") and len(pos) == len(positional) - 1:
                # exec: what follows the ID is the command, flags and all
                rest = argv[i + 1:]
                pos.append(rest[1:] if rest[:1] == ["--"] else rest)
                break
        i += 1
    if args.help:
        return args
    if positional and positional[-1].endswith("*"):
        if len(pos) == len(positional) - 1:
            pos.append([])
    required = [p for p in positional if not p.endswith(("?", "*"))]
    if len(pos) < len(required):
        raise UsageError(f"{args.command}: missing {' and '.join(p.upper() for p in required)}")
    if len(pos) > len(positional):
        raise UsageError(f"{args.command}: unexpected argument {pos[len(positional)]!r}")
    for name, value in zip(positional, pos):
        setattr(args, name.rstrip("?*"), value)
    if args.log_format not in ("text", "json"):
        raise UsageError(f"--log-format must be text or json, not {args.log_format!r}")
    if args.format not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {args.format!r}")
    for key in ("sync_fd", "preserve_fds"):
        value = getattr(args, key)
        if value is not None:
            if not str(value).isdigit():
                raise UsageError(f"--{key.replace('_', '-')} must be a number")
            setattr(args, key, int(value))
    if args.no_pivot:
        raise UsageError("--no-pivot is not supported")
    if args.rootless:
        raise UsageError("--rootless is not supported")
    if args.bundle is None:
        args.bundle = os.getcwd()
    args.root = os.path.abspath(args.root)
    return args


def main(argv: list[str] | None = None) -> int:
    """The command line.  Called without ``argv`` (as the program: the
    console script or ``python -m``) it ends the process itself with
    os._exit once stdout and stderr are flushed: interpreter teardown
    costs ~30 ms and there is nothing left to clean up."""
    if argv is None:
        code = _main(sys.argv[1:])
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return _main(argv)


def _main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        _stderr(f"trioctr-runtime: {exc}")
        _stderr("Run 'trioctr-runtime --help' for usage.")
        return 2
    if args.help or args.command is None:
        sys.stdout.write(USAGE)
        sys.stdout.flush()
        return 0 if args.help else 2
    log = Log(args.log, args.log_format, args.debug)
    try:
        code = _HANDLERS[args.command](args, log)
    except Failure as exc:
        log.error(exc.message)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except OSError as exc:  # a kernel or filesystem refusal: still one line
        log.error(f"{args.command}: {_one_line(exc)}")
        code = 1
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    main()
