"""The daemon's container records: a pure core (no I/O but the atomic file
write helpers at the bottom), unit-tested without root.

A record is kept in Docker's inspect shape (``ContainerJSON``), so
``GET /containers/{id}/json`` is the record plus live fields.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from typing import Any

from oci.units import human_duration

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"

_ADJECTIVES = ("admiring", "brave", "busy", "clever", "dazzling", "eager", "focused",
               "gallant", "happy", "jolly", "keen", "lucid", "modest", "nifty",
               "optimistic", "peaceful", "quirky", "relaxed", "serene", "trusting",
               "upbeat", "vibrant", "wizardly", "youthful", "zealous")
_NAMES = ("albattani", "babbage", "curie", "darwin", "einstein", "feynman", "galileo",
          "hopper", "hypatia", "johnson", "kepler", "lovelace", "meitner", "newton",
          "noether", "pasteur", "ritchie", "shannon", "tesla", "thompson", "turing",
          "wozniak", "yalow", "zhukovsky")


class ContainerError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


def rfc3339nano(ns: int) -> str:
    if ns <= 0:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for Docker's timestamps; 0 for the zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return 0.0
    import calendar

    base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    tz = m.group(3)
    off = 0
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return base + frac - off


def validate_name(name: str) -> str:
    """'/name' for a valid name, or ContainerError with Docker's wording."""
    if not NAME_RE.match(name):
        raise ContainerError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name if name.startswith("/") else "/" + name


def generate_name(taken: set[str], rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    for attempt in range(100):
        name = f"/{rng.choice(_ADJECTIVES)}_{rng.choice(_NAMES)}"
        if attempt > 10:
            name += str(rng.randint(0, 9))
        if name not in taken:
            return name
    return f"/{os.urandom(6).hex()}"


def new_id() -> str:
    return os.urandom(32).hex()


def status_text(state: dict, now: float | None = None) -> str:
    """The human STATUS of `docker ps` (State in /containers/json is the word)."""
    now = time.time() if now is None else now
    if state.get("Running"):
        up = human_duration(now - parse_rfc3339(state.get("StartedAt", "")))
        if state.get("Paused"):
            return f"Up {up} (Paused)"
        if state.get("Restarting"):
            return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(now - parse_rfc3339(state.get('FinishedAt', '')))} ago"
        return f"Up {up}"
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead"):
        return "Dead"
    if state.get("Status") == "created" or parse_rfc3339(state.get("StartedAt", "")) == 0:
        return "Created"
    finished = parse_rfc3339(state.get("FinishedAt", ""))
    ago = human_duration(now - finished) if finished else ""
    return f"Exited ({state.get('ExitCode', 0)}) {ago} ago" if ago else f"Exited ({state.get('ExitCode', 0)})"


def new_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def mark_started(rec: dict, pid: int, now_ns: int) -> None:
    st = rec["State"]
    st.update(Status="running", Running=True, Paused=False, Restarting=False, Dead=False,
              OOMKilled=False, Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339nano(now_ns),
              FinishedAt=ZERO_TIME)


def mark_exited(rec: dict, exit_code: int, finished_ns: int, *, error: str = "",
                oom_killed: bool = False) -> None:
    st = rec["State"]
    st.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
              ExitCode=exit_code, FinishedAt=rfc3339nano(finished_ns), OOMKilled=oom_killed)
    if error:
        st["Error"] = error


def mark_start_failed(rec: dict, exit_code: int, error: str) -> None:
    """Docker keeps a container whose command cannot run in 'created', with
    the exit code and error recorded."""
    st = rec["State"]
    st.update(Status="created", Running=False, Pid=0, ExitCode=exit_code, Error=error)


def is_running(rec: dict) -> bool:
    return bool(rec["State"].get("Running"))


def short(cid: str) -> str:
    return cid[:12]


def command_string(rec: dict) -> str:
    parts = [rec.get("Path", "")] + list(rec.get("Args") or [])
    return " ".join(p for p in parts if p is not None).strip()


def summary(rec: dict, now: float | None = None) -> dict[str, Any]:
    """One entry of GET /containers/json (ContainerSummary)."""
    cfg = rec.get("Config", {})
    hc = rec.get("HostConfig", {})
    return {
        "Id": rec["Id"],
        "Names": [rec["Name"]],
        "Image": cfg.get("Image", ""),
        "ImageID": rec.get("Image", ""),
        "Command": command_string(rec),
        "Created": int(parse_rfc3339(rec.get("Created", ""))),
        "Ports": [],
        "Labels": dict(cfg.get("Labels") or {}),
        "State": rec["State"]["Status"],
        "Status": status_text(rec["State"], now),
        "HostConfig": {"NetworkMode": hc.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [dict(m) for m in rec.get("Mounts") or []],
    }


# -- filters (GET /containers/json) ----------------------------------------
CONTAINER_FILTERS = {"id", "name", "label", "status", "ancestor", "exited", "before", "since",
                     # Docker's other keys: trioctr has no healthchecks, volumes, published or
                     # exposed ports, swarm tasks or user networks yet, so they select by that
                     "health", "network", "volume", "publish", "expose", "isolation", "is-task"}
HEALTH = {"starting", "healthy", "unhealthy", "none"}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def parse_filters(raw: Any, allowed: set[str]) -> dict[str, list[str]]:
    """Docker's filters JSON: {"key": ["v", ...]} or the legacy {"key": {"v": true}}."""
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, dict):
        raise ContainerError("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, vals in raw.items():
        if key not in allowed:
            raise ContainerError(f"invalid filter '{key}'")
        if isinstance(vals, dict):
            vals = [k for k, v in vals.items() if v]
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            raise ContainerError(f"invalid filter '{key}'")
        out[key] = vals
    for s in out.get("status", []):
        if s not in STATUSES:
            raise ContainerError(f"invalid filter 'status={s}'")
    for h in out.get("health", []):
        if h not in HEALTH:
            raise ContainerError(f"Unrecognised filter value for health: {h}")
    for t in out.get("is-task", []):
        if t not in ("true", "false"):
            raise ContainerError(f"Invalid filter 'is-task={t}'")
    return out


def labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def matches(rec: dict, f: dict[str, list[str]], *, image_ids: dict[str, set[str]] | None = None,
            order: dict[str, int] | None = None, lookup=None) -> bool:
    if "id" in f and not any(rec["Id"].startswith(v) for v in f["id"]):
        return False
    if "name" in f and not any(re.search(v, rec["Name"].lstrip("/")) or re.search(v, rec["Name"])
                               for v in f["name"]):
        return False
    if "label" in f and not labels_match(rec.get("Config", {}).get("Labels") or {}, f["label"]):
        return False
    if "status" in f and rec["State"]["Status"] not in f["status"]:
        return False
    if "health" in f and "none" not in f["health"]:
        return False  # no container has a healthcheck: all are "none"
    if "is-task" in f and "false" not in f["is-task"]:
        return False  # no swarm tasks
    if "network" in f:
        nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
        ids = {n.get("NetworkID", "") for n in nets.values() if isinstance(n, dict)}
        if not any(v in nets or any(i and i.startswith(v) for i in ids) for v in f["network"]):
            return False
    if "volume" in f:
        mounts = rec.get("Mounts") or []
        if not any(v in (m.get("Name"), m.get("Destination"), m.get("Source")) for m in mounts
                   for v in f["volume"]):
            return False
    if "publish" in f:
        return False  # no container publishes a port yet
    if "expose" in f:
        exposed = set((rec.get("Config") or {}).get("ExposedPorts") or {})
        wanted = {v if "/" in v else v + "/tcp" for v in f["expose"]}
        if not exposed & wanted:
            return False
    if "isolation" in f and not any(v in ("default", "") for v in f["isolation"]):
        return False
    if "exited" in f:
        st = rec["State"]
        if st["Status"] != "exited" or str(st.get("ExitCode")) not in f["exited"]:
            return False
    if "ancestor" in f:
        img = rec.get("Config", {}).get("Image", "")
        ok = False
        for a in f["ancestor"]:
            if a == img or img.startswith(a + ":") or (image_ids and rec.get("Image") in image_ids.get(a, set())):
                ok = True
        if not ok:
            return False
    if lookup is not None:
        created = parse_rfc3339(rec.get("Created", ""))
        for key, cmp in (("before", lambda a, b: a < b), ("since", lambda a, b: a > b)):
            for v in f.get(key, []):
                other = lookup(v)
                if other is None:
                    raise ContainerError(f"No such container: {v}", 404)
                if not cmp(created, parse_rfc3339(other.get("Created", ""))):
                    return False
    return True


# -- persistence helpers ------------------------------------------------------
def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj))


def atomic_write_text(path: str, text: str) -> None:
    """Write, sync and rename into place: the old file or the new one, whole."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def load_records(containers_dir: str) -> list[dict]:
    out = []
    try:
        names = os.listdir(containers_dir)
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.join(containers_dir, name, "config.v2.json")
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("Id") == name:
            out.append(rec)
    return out


# -- top: `ps` over /proc entries ------------------------------------------------
# A process as read from /proc by the daemon (see api._read_proc):
# {"pid", "ppid", "uid", "user", "state", "comm", "args" (cmdline list),
#  "utime", "stime" (clock ticks), "start" (ticks since boot), "vsz" (bytes),
#  "rss" (pages), "tty" (tty_nr), "nlwp"}

# ps -o column name -> (title, renderer); renderers get (proc, ctx)
def _fmt_cputime(secs: int) -> str:
    days, rest = divmod(int(secs), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _fmt_etime(secs: float) -> str:
    secs = int(max(secs, 0))
    days, rest = divmod(secs, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if days:
        return f"{days}-{h:02d}:{m:02d}:{s:02d}"
    if h:
        return f"{h:02d}:{m:02d}:{s:02d}"
    return f"{m:02d}:{s:02d}"


def _started(p: dict, ctx: dict) -> float:
    return ctx["boot"] + p["start"] / ctx["hz"]


def _fmt_stime(p: dict, ctx: dict) -> str:
    """procps' STIME/START: HH:MM today, 'MonDD' this year, else the year."""
    t = _started(p, ctx)
    now = ctx["now"]
    if now - t < 24 * 3600:
        return time.strftime("%H:%M", time.localtime(t))
    if time.localtime(t).tm_year == time.localtime(now).tm_year:
        return time.strftime("%b%d", time.localtime(t))
    return time.strftime("%Y", time.localtime(t))


def _cpu_secs(p: dict, ctx: dict) -> float:
    return (p["utime"] + p["stime"]) / ctx["hz"]


def _pcpu(p: dict, ctx: dict) -> float:
    elapsed = ctx["now"] - _started(p, ctx)
    return 100.0 * _cpu_secs(p, ctx) / elapsed if elapsed > 0 else 0.0


def _cmd(p: dict) -> str:
    if p.get("args"):
        return " ".join(p["args"])
    base = f"[{p['comm']}]"
    return base + " <defunct>" if p.get("state") == "Z" else base


def _stat(p: dict) -> str:
    return p.get("state", "?")


def _tty(p: dict) -> str:
    tty = p.get("tty", 0)
    if not tty:
        return "?"
    major, minor = (tty >> 8) & 0xFFF, (tty & 0xFF) | ((tty >> 12) & 0xFFF00)
    if major == 136:
        return f"pts/{minor}"
    if major == 4:
        return f"tty{minor}"
    return f"{major}:{minor}"


PS_COLUMNS: dict[str, tuple[str, Any]] = {
    "pid": ("PID", lambda p, c: str(p["pid"])),
    "ppid": ("PPID", lambda p, c: str(p["ppid"])),
    "uid": ("UID", lambda p, c: str(p["uid"])),
    "user": ("USER", lambda p, c: p["user"]),
    "euser": ("EUSER", lambda p, c: p["user"]),
    "comm": ("COMMAND", lambda p, c: p["comm"]),
    "ucmd": ("CMD", lambda p, c: p["comm"]),
    "args": ("COMMAND", lambda p, c: _cmd(p)),
    "command": ("COMMAND", lambda p, c: _cmd(p)),
    "cmd": ("CMD", lambda p, c: _cmd(p)),
    "stat": ("STAT", lambda p, c: _stat(p)),
    "s": ("S", lambda p, c: _stat(p)),
    "time": ("TIME", lambda p, c: _fmt_cputime(_cpu_secs(p, c))),
    "cputime": ("TIME", lambda p, c: _fmt_cputime(_cpu_secs(p, c))),
    "etime": ("ELAPSED", lambda p, c: _fmt_etime(c["now"] - _started(p, c))),
    "stime": ("STIME", _fmt_stime),
    "start": ("STARTED", _fmt_stime),
    "tty": ("TT", lambda p, c: _tty(p)),
    "rss": ("RSS", lambda p, c: str(p["rss"] * c["page"] // 1024)),
    "vsz": ("VSZ", lambda p, c: str(p["vsz"] // 1024)),
    "%cpu": ("%CPU", lambda p, c: f"{_pcpu(p, c):.1f}"),
    "pcpu": ("%CPU", lambda p, c: f"{_pcpu(p, c):.1f}"),
    "%mem": ("%MEM", lambda p, c: f"{100.0 * p['rss'] * c['page'] / c['mem']:.1f}" if c.get("mem") else "0.0"),
    "pmem": ("%MEM", lambda p, c: f"{100.0 * p['rss'] * c['page'] / c['mem']:.1f}" if c.get("mem") else "0.0"),
    "nlwp": ("NLWP", lambda p, c: str(p.get("nlwp", 1))),
    "c": ("C", lambda p, c: str(int(_pcpu(p, c)))),
}

# the full formats
_FULL = [("UID", lambda p, c: p["user"]), ("PID", PS_COLUMNS["pid"][1]), ("PPID", PS_COLUMNS["ppid"][1]),
         ("C", PS_COLUMNS["c"][1]), ("STIME", _fmt_stime), ("TTY", PS_COLUMNS["tty"][1]),
         ("TIME", PS_COLUMNS["time"][1]), ("CMD", lambda p, c: _cmd(p))]
_SIMPLE = [("PID", PS_COLUMNS["pid"][1]), ("TTY", PS_COLUMNS["tty"][1]),
           ("TIME", PS_COLUMNS["time"][1]), ("CMD", lambda p, c: p["comm"])]
_BSD_U = [("USER", lambda p, c: p["user"]), ("PID", PS_COLUMNS["pid"][1]), ("%CPU", PS_COLUMNS["%cpu"][1]),
          ("%MEM", PS_COLUMNS["%mem"][1]), ("VSZ", PS_COLUMNS["vsz"][1]), ("RSS", PS_COLUMNS["rss"][1]),
          ("TTY", PS_COLUMNS["tty"][1]), ("STAT", PS_COLUMNS["stat"][1]), ("START", _fmt_stime),
          ("TIME", lambda p, c: _fmt_cputime(_cpu_secs(p, c))[-5:] if _cpu_secs(p, c) < 3600 else
           _fmt_cputime(_cpu_secs(p, c))), ("COMMAND", lambda p, c: _cmd(p))]
_BSD_X = [("PID", PS_COLUMNS["pid"][1]), ("TTY", PS_COLUMNS["tty"][1]), ("STAT", PS_COLUMNS["stat"][1]),
          ("TIME", lambda p, c: _fmt_cputime(_cpu_secs(p, c))[-5:] if _cpu_secs(p, c) < 3600 else
           _fmt_cputime(_cpu_secs(p, c))), ("COMMAND", lambda p, c: _cmd(p))]


def ps_columns(ps_args: str) -> list[tuple[str, Any]]:
    """The columns `ps <ps_args>` would print (a subset of procps: -e/-A/-f/-F/-l
    style flags, BSD 'aux', and -o/o LIST).  Selection flags are accepted and
    ignored: top always lists every process of the container, as Docker does
    (it filters `ps` output by the container's pids).  ContainerError if the
    arguments are beyond this subset."""
    args = ps_args.split()
    if not args:
        return list(_FULL)  # Docker's default is "-ef"
    cols: list[tuple[str, Any]] | None = None
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("-o", "o", "--format", "-O"):
            if i >= len(args):
                raise ContainerError(f"ps: option {a} requires an argument", 500)
            spec, i = args[i], i + 1
        elif a.startswith("-o") and len(a) > 2:
            spec = a[2:]
        elif a.startswith("--format="):
            spec = a.split("=", 1)[1]
        else:
            spec = None
        if spec is not None:
            cols = (cols or []) + _parse_o(spec)
            continue
        if a.startswith("-"):
            flags = a[1:]
            if not flags or any(f not in "eAfFlaxNTwjH" for f in flags):
                raise ContainerError(f"Error running ps: unsupported ps_args {ps_args!r} "
                                     "(trioctr's top knows -e, -f, -A, aux and -o FIELDS)", 500)
            if cols is None and ("f" in flags or "F" in flags or "l" in flags):
                cols = list(_FULL)
        else:
            flags = a
            if any(f not in "auxwfjeHr" for f in flags):
                raise ContainerError(f"Error running ps: unsupported ps_args {ps_args!r} "
                                     "(trioctr's top knows -e, -f, -A, aux and -o FIELDS)", 500)
            if cols is None:
                cols = list(_BSD_U) if "u" in flags else list(_BSD_X)
    if cols is None:
        cols = list(_SIMPLE)
    return cols


def _parse_o(spec: str) -> list[tuple[str, Any]]:
    out = []
    for item in spec.split(","):
        name, eq, header = item.partition("=")
        key = name.strip().lower()
        if key not in PS_COLUMNS:
            raise ContainerError(f"Error running ps: unknown user-defined format specifier \"{name}\"", 500)
        title, fn = PS_COLUMNS[key]
        out.append((header if eq else title, fn))
    return out


def ps_table(procs: list[dict], ps_args: str, ctx: dict) -> dict[str, Any]:
    """GET /containers/{id}/top's body: {"Titles": [...], "Processes": [[...], ...]}.

    ``ctx``: {"now": seconds, "boot": boot time in seconds, "hz": clock ticks
    per second, "page": page size, "mem": total memory in bytes}."""
    cols = ps_columns(ps_args)
    if not any(t == "PID" for t, _ in cols):
        # Docker needs the PID column to know which rows are the container's
        raise ContainerError("Couldn't find PID field in ps output", 500)
    rows = [[fn(p, ctx) for _, fn in cols] for p in sorted(procs, key=lambda p: p["pid"])]
    return {"Titles": [t for t, _ in cols], "Processes": rows}


# -- stats: Docker's StatsJSON ----------------------------------------------------
def empty_stats(rec: dict) -> dict[str, Any]:
    """What dockerd sends for a container that is not running (a zero StatsJSON)."""
    zero_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    blkio = {k: None for k in ("io_service_bytes_recursive", "io_serviced_recursive",
                               "io_queue_recursive", "io_service_time_recursive",
                               "io_wait_time_recursive", "io_merged_recursive",
                               "io_time_recursive", "sectors_recursive")}
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": blkio,
            "num_procs": 0, "storage_stats": {}, "cpu_stats": json.loads(json.dumps(zero_cpu)),
            "precpu_stats": json.loads(json.dumps(zero_cpu)), "memory_stats": {},
            "name": rec["Name"], "id": rec["Id"]}


def stats_json(rec: dict, sample: dict, pre: dict | None, read_ns: int, pre_ns: int) -> dict[str, Any]:
    """A StatsJSON from cgroup samples (see api._cgroup_sample) and the previous one."""
    out = empty_stats(rec)
    out["read"] = rfc3339nano(read_ns)
    out["preread"] = rfc3339nano(pre_ns) if pre else ZERO_TIME
    out["cpu_stats"] = sample["cpu"]
    if pre:
        out["precpu_stats"] = pre["cpu"]
    out["memory_stats"] = sample["memory"]
    out["pids_stats"] = sample["pids"]
    if sample.get("blkio") is not None:
        out["blkio_stats"]["io_service_bytes_recursive"] = sample["blkio"]
    out["networks"] = sample.get("networks") or {}
    return out


# -- archive: Docker's ContainerPathStat ----------------------------------------------
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHARDEV = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode (what ContainerPathStat.mode carries)."""
    import stat as st

    mode = st_mode & 0o777
    if st.S_ISDIR(st_mode):
        mode |= GO_MODE_DIR
    elif st.S_ISLNK(st_mode):
        mode |= GO_MODE_SYMLINK
    elif st.S_ISFIFO(st_mode):
        mode |= GO_MODE_PIPE
    elif st.S_ISSOCK(st_mode):
        mode |= GO_MODE_SOCKET
    elif st.S_ISBLK(st_mode):
        mode |= GO_MODE_DEVICE
    elif st.S_ISCHR(st_mode):
        mode |= GO_MODE_DEVICE | GO_MODE_CHARDEV
    if st_mode & st.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & st.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & st.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


def _rfc3339_trimmed(ns: int) -> str:
    """Go's RFC3339Nano: the fraction without trailing zeros."""
    text = rfc3339nano(ns) if ns > 0 else "1970-01-01T00:00:00.000000000Z"
    head, _, frac = text[:-1].partition(".")
    frac = frac.rstrip("0")
    return head + ("." + frac if frac else "") + "Z"


def path_stat(name: str, st_result: os.stat_result, link_target: str = "") -> dict[str, Any]:
    return {"name": name, "size": st_result.st_size, "mode": go_file_mode(st_result.st_mode),
            "mtime": _rfc3339_trimmed(st_result.st_mtime_ns),
            "linkTarget": link_target}


# -- rename ---------------------------------------------------------------------------
def rename_check(rec: dict, new_name: str, names: dict[str, str]) -> str:
    """Docker's checks for a rename; returns the canonical '/name'."""
    if not new_name:
        raise ContainerError("Neither old nor new names may be empty")
    full = new_name if new_name.startswith("/") else "/" + new_name
    if rec["Name"] == full:
        raise ContainerError("Renaming a container with the same name as its current name")
    try:
        validate_name(new_name)
    except ContainerError as exc:
        raise ContainerError(f"Error when allocating new name: {exc.message}") from None
    other = names.get(full)
    if other and other != rec["Id"]:
        raise ContainerError(f'Error when allocating new name: Conflict. The container name "{full}" is '
                             f'already in use by container "{other}". You have to remove (or rename) '
                             "that container to be able to reuse that name.", 409)
    return full
