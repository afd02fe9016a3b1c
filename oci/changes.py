"""Dockerfile instructions applied to an image config (``docker import -c``,
``docker commit -c``).

``apply_changes(config, changes)`` takes the Docker ``container.Config``-shaped
dict (``Env``, ``Cmd``, ``Entrypoint``, ``WorkingDir``, ``User``, ``Labels``,
``ExposedPorts``, ``Volumes``, ``StopSignal``, ``OnBuild``, ``Healthcheck``) and
returns a new one.  Supported: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR (Docker's ``validCommitCommands``);
anything else is ``<cmd> is not a valid change command``.

Word processing follows the Dockerfile shell lexer: single and double quotes,
backslash escapes, and ``$VAR``/``${VAR}``/``${VAR:-x}``/``${VAR:+x}``/
``${VAR-x}``/``${VAR+x}`` from the config's Env for the instructions Docker
expands (ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal

from .errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VALID_COMMANDS = {"cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                  "onbuild", "stopsignal", "user", "volume", "workdir"}


def empty_container_config() -> dict:
    """Docker's zero ``container.Config`` as it appears in an image config."""
    return {
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "Tty": False, "OpenStdin": False, "StdinOnce": False,
        "Env": None, "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "",
        "Entrypoint": None, "OnBuild": None, "Labels": None,
    }


# --------------------------------------------------------------------------- lexer


def env_dict(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env or []:
        k, sep, v = e.partition("=")
        if sep:
            out[k] = v
    return out


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expand_var(s: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """``s[i] == "$"``; return (expansion, index after the reference)."""
    if i + 1 >= len(s):
        return "$", i + 1
    if s[i + 1] == "{":
        end = s.find("}", i + 2)
        if end < 0:
            raise InvalidArgument(f"missing '}}' in {s!r}")
        body = s[i + 2:end]
        m = _NAME_RE.match(body)
        if not m:
            raise InvalidArgument(f"bad substitution: {s!r}")
        name, rest = m.group(0), body[m.end():]
        val = env.get(name)
        if rest == "":
            return val or "", end + 1
        for op in (":-", ":+", "-", "+"):
            if rest.startswith(op):
                word = process_word(rest[len(op):], env)
                if op == ":-":
                    return (val if val else word), end + 1
                if op == ":+":
                    return (word if val else ""), end + 1
                if op == "-":
                    return (val if val is not None else word), end + 1
                return (word if val is not None else ""), end + 1
        raise InvalidArgument(f"unsupported modifier ({rest[:1]}) in substitution")
    m = _NAME_RE.match(s, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def _lex(s: str, env: dict[str, str] | None, split: bool) -> list[str]:
    """Split (if ``split``) and unquote; expand variables when ``env`` is given."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if split and c in " \t\r\n" :
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if c == "\\":
            if i + 1 < n:
                cur.append(s[i + 1])
                i += 2
            else:
                cur.append(c)
                i += 1
        elif c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise InvalidArgument(f"unexpected end of statement while looking for matching single-quote in {s!r}")
            cur.append(s[i + 1:end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise InvalidArgument(f"unexpected end of statement while looking for matching double-quote in {s!r}")
                c = s[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and s[i + 1] in '"$\\':
                    cur.append(s[i + 1])
                    i += 2
                elif c == "$" and env is not None:
                    v, i = _expand_var(s, i, env)
                    cur.append(v)
                else:
                    cur.append(c)
                    i += 1
        elif c == "$" and env is not None:
            v, i = _expand_var(s, i, env)
            cur.append(v)
        else:
            cur.append(c)
            i += 1
    if in_word:
        words.append("".join(cur))
    return words


def process_word(s: str, env: dict[str, str] | None) -> str:
    """One word: quotes removed, variables expanded (Docker's ProcessWord)."""
    return "".join(_lex(s, env, split=False))


def process_words(s: str, env: dict[str, str] | None) -> list[str]:
    return _lex(s, env, split=True)


def _raw_words(s: str) -> list[str]:
    """Whitespace split that keeps quotes (Docker's parseWords)."""
    words, cur, quote, i = [], [], None, 0
    while i < len(s):
        c = s[i]
        if quote is None and c in " \t":
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
            if c == "\\" and quote != "'" and i + 1 < len(s):
                cur.append(s[i + 1])
                i += 1
            elif quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _json_list(args: str) -> list[str] | None:
    a = args.strip()
    if not a.startswith("["):
        return None
    try:
        v = json.loads(a)
    except ValueError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def _name_vals(instr: str, args: str, env: dict[str, str]) -> list[tuple[str, str]]:
    words = _raw_words(args)
    if not words:
        raise InvalidArgument(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        # legacy form: NAME value with spaces
        parts = re.split(r"[ \t]+", args.strip(), maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{instr} must have two arguments")
        return [(process_word(parts[0], env), process_word(parts[1], env))]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidArgument(
                f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        k = process_word(k, env)
        if k == "":
            raise InvalidArgument(f"{instr} names can not be blank")
        out.append((k, process_word(v, env)))
    return out


# --------------------------------------------------------------------------- values


def _shell(config: dict) -> list[str]:
    return list(config.get("Shell") or ["/bin/sh", "-c"])


def _command(args: str, config: dict) -> list[str]:
    v = _json_list(args)
    if v is not None:
        return v
    return _shell(config) + [args.strip()]


def parse_signal(s: str) -> str:
    """Validate a STOPSIGNAL (``SIGTERM``, ``TERM``, ``15``); return it unchanged."""
    if s.isdigit():
        if int(s) <= 0 or int(s) > 64:
            raise InvalidArgument(f"Invalid signal: {s}")
        return s
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
        return s
    if not hasattr(signal.Signals, name) or name in ("SIG_DFL", "SIG_IGN"):
        raise InvalidArgument(f"Invalid signal: {s}")
    return s


def _ports(words: list[str]) -> list[str]:
    out = []
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        lo, sep, hi = port.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise InvalidArgument(f"invalid containerPort: {port}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a or b > 65535:
            raise InvalidArgument(f"invalid range format for --expose: {w}")
        out.extend(f"{p}/{proto}" for p in range(a, b + 1))
    return out


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(s: str) -> int:
    """Go's ``time.ParseDuration`` (non-negative subset) -> nanoseconds."""
    if s == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise InvalidArgument(f"time: invalid duration {s!r}")
    return int(total)


def _healthcheck(args: str, config: dict) -> dict:
    words = args.strip().split(None, 1)
    if not words:
        raise InvalidArgument("HEALTHCHECK requires an argument")
    if words[0].upper() == "NONE":
        if len(words) > 1:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    hc: dict = {}
    rest = args.strip()
    flags = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval", "retries": "Retries"}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, val = flag[2:].partition("=")
        if not eq or name not in flags:
            raise InvalidArgument(f"Unknown flag: {name}")
        if name == "retries":
            if not val.isdigit():
                raise InvalidArgument(f"invalid retries: {val}")
            hc["Retries"] = int(val)
        else:
            hc[flags[name]] = parse_duration_ns(val)
    kw, _, cmd = rest.partition(" ")
    if kw.upper() != "CMD" or not cmd.strip():
        raise InvalidArgument("Unknown type for HEALTHCHECK, expected CMD or NONE")
    v = _json_list(cmd)
    hc["Test"] = ["CMD"] + v if v is not None else ["CMD-SHELL", cmd.strip()]
    return hc


# --------------------------------------------------------------------------- apply


def split_instruction(line: str) -> tuple[str, str]:
    line = line.strip()
    # backslash-newline continuations
    line = re.sub(r"\\[ \t]*\r?\n", "", line)
    parts = line.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1] if len(parts) > 1 else "")


def apply_changes(config: dict | None, changes) -> dict:
    """Apply Dockerfile instructions to a container config dict (a copy is
    returned).  Raises ``InvalidArgument`` with Docker's wording."""
    cfg = copy.deepcopy(config) if config else empty_container_config()
    cmd_set = False
    for change in changes or ():
        for raw_line in str(change).splitlines() or [""]:
            if not raw_line.strip() or raw_line.lstrip().startswith("#"):
                continue
            instr, args = split_instruction(raw_line)
            low = instr.lower()
            if low not in VALID_COMMANDS:
                raise InvalidArgument(f"{low} is not a valid change command")
            env = env_dict(cfg.get("Env"))
            if low == "cmd":
                cfg["Cmd"] = _command(args, cfg)
                cmd_set = True
            elif low == "entrypoint":
                cfg["Entrypoint"] = _command(args, cfg)
                if not cmd_set:
                    cfg["Cmd"] = None
            elif low == "env":
                envl = list(cfg.get("Env") or [])
                for k, v in _name_vals("ENV", args, env):
                    envl = [e for e in envl if e.partition("=")[0] != k] + [f"{k}={v}"]
                    env[k] = v
                cfg["Env"] = envl
            elif low == "label":
                labels = dict(cfg.get("Labels") or {})
                for k, v in _name_vals("LABEL", args, env):
                    labels[k] = v
                cfg["Labels"] = labels
            elif low == "expose":
                ports = dict(cfg.get("ExposedPorts") or {})
                words = process_words(args, env)
                if not words:
                    raise InvalidArgument("EXPOSE requires at least one argument")
                for p in _ports(words):
                    ports[p] = {}
                cfg["ExposedPorts"] = ports
            elif low == "volume":
                vols = dict(cfg.get("Volumes") or {})
                v = _json_list(args)
                paths = v if v is not None else process_words(args, env)
                if not paths:
                    raise InvalidArgument("VOLUME requires at least one argument")
                for p in paths:
                    p = p.strip()
                    if not p:
                        raise InvalidArgument("VOLUME specified can not be an empty string")
                    vols[p] = {}
                cfg["Volumes"] = vols
            elif low == "workdir":
                w = process_word(args.strip(), env)
                if not w:
                    raise InvalidArgument("WORKDIR requires exactly one argument")
                if not w.startswith("/"):
                    w = posixpath.join("/", cfg.get("WorkingDir") or "", w)
                cfg["WorkingDir"] = posixpath.normpath(w)
            elif low == "user":
                u = process_word(args.strip(), env)
                if not u:
                    raise InvalidArgument("USER requires exactly one argument")
                cfg["User"] = u
            elif low == "stopsignal":
                s = process_word(args.strip(), env)
                if not s:
                    raise InvalidArgument("STOPSIGNAL requires exactly one argument")
                cfg["StopSignal"] = parse_signal(s)
            elif low == "onbuild":
                inner, _ = split_instruction(args)
                if inner.upper() in ("ONBUILD", ""):
                    raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
                if inner.upper() in ("FROM", "MAINTAINER"):
                    raise InvalidArgument(f"{inner.upper()} isn't allowed as an ONBUILD trigger")
                cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [args.strip()]
            elif low == "healthcheck":
                cfg["Healthcheck"] = _healthcheck(args, cfg)
    return cfg
