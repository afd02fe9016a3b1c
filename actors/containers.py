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


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


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
        "Mounts": [],
    }


# -- filters (GET /containers/json) ----------------------------------------
CONTAINER_FILTERS = {"id", "name", "label", "status", "ancestor", "exited", "before", "since"}
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
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
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
