"""run, create, start, exec, attach: container configuration from flags and
the attach/exec sessions over hijacked connections."""

import os
import sys

from cli.flags import Spec, Flag
from cli.main import CLIError, Exit


def spec(name):
    return _SPECS[name]()


def _container_flags(run):
    pull_help = ('Pull image before %s ("always", "missing", "never")'
                 % ("running" if run else "creating"))
    flags = [
        Flag("add-host", None, "list", "Add a custom host-to-IP mapping (host:ip)"),
        Flag("attach", "a", "attach", "Attach to STDIN, STDOUT or STDERR"),
        Flag("cap-add", None, "list", "Add Linux capabilities"),
        Flag("cap-drop", None, "list", "Drop Linux capabilities"),
        Flag("cgroup-parent", None, "string", "Optional parent cgroup for the container"),
        Flag("cgroupns", None, "string", "Cgroup namespace to use (host|private)"),
        Flag("cidfile", None, "string", "Write the container ID to the file"),
        Flag("cpu-period", None, "int", "Limit CPU CFS (Completely Fair Scheduler) period"),
        Flag("cpu-quota", None, "int", "Limit CPU CFS (Completely Fair Scheduler) quota"),
        Flag("cpu-shares", "c", "int", "CPU shares (relative weight)"),
        Flag("cpus", None, "decimal", "Number of CPUs"),
        Flag("cpuset-cpus", None, "string", "CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", None, "string", "MEMs in which to allow execution (0-3, 0,1)"),
        Flag("dns", None, "list", "Set custom DNS servers"),
        Flag("dns-option", None, "list", "Set DNS options"),
        Flag("dns-search", None, "list", "Set custom DNS search domains"),
        Flag("domainname", None, "string", "Container NIS domain name"),
        Flag("entrypoint", None, "string", "Overwrite the default ENTRYPOINT of the image"),
        Flag("env", "e", "list", "Set environment variables"),
        Flag("env-file", None, "list", "Read in a file of environment variables"),
        Flag("expose", None, "list", "Expose a port or a range of ports"),
        Flag("group-add", None, "list", "Add additional groups to join"),
        Flag("help", None, "bool", "Print usage"),
        Flag("hostname", "h", "string", "Container host name"),
        Flag("init", None, "bool",
             "Run an init inside the container that forwards signals and reaps processes"),
        Flag("interactive", "i", "bool", "Keep STDIN open even if not attached"),
        Flag("ipc", None, "string", "IPC mode to use"),
        Flag("label", "l", "list", "Set meta data on a container"),
        Flag("label-file", None, "list", "Read in a line delimited file of labels"),
        Flag("log-driver", None, "string", "Logging driver for the container"),
        Flag("log-opt", None, "list", "Log driver options"),
        Flag("memory", "m", "bytes", "Memory limit"),
        Flag("memory-reservation", None, "bytes", "Memory soft limit"),
        Flag("memory-swap", None, "swap",
             "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
        Flag("memory-swappiness", None, "int", "Tune container memory swappiness (0 to 100)", -1),
        Flag("mount", None, "mount", "Attach a filesystem mount to the container"),
        Flag("name", None, "string", "Assign a name to the container"),
        Flag("network", None, "network", "Connect a container to a network"),
        Flag("oom-kill-disable", None, "bool", "Disable OOM Killer"),
        Flag("oom-score-adj", None, "int", "Tune host's OOM preferences (-1000 to 1000)"),
        Flag("pid", None, "string", "PID namespace to use"),
        Flag("pids-limit", None, "int", "Tune container pids limit (set -1 for unlimited)"),
        Flag("platform", None, "string", "Set platform if server is multi-platform capable"),
        Flag("privileged", None, "bool", "Give extended privileges to this container"),
        Flag("publish", "p", "list", "Publish a container's port(s) to the host"),
        Flag("publish-all", "P", "bool", "Publish all exposed ports to random ports"),
        Flag("pull", None, "string", pull_help, "missing"),
        Flag("quiet", "q", "bool", "Suppress the pull output"),
        Flag("read-only", None, "bool", "Mount the container's root filesystem as read only"),
        Flag("restart", None, "string", "Restart policy to apply when a container exits", "no"),
        Flag("rm", None, "bool", "Automatically remove the container and its associated "
             "anonymous volumes when it exits"),
        Flag("runtime", None, "string", "Runtime to use for this container"),
        Flag("security-opt", None, "list", "Security Options"),
        Flag("shm-size", None, "bytes", "Size of /dev/shm"),
        Flag("stop-signal", None, "string", "Signal to stop the container"),
        Flag("stop-timeout", None, "int", "Timeout (in seconds) to stop a container"),
        Flag("sysctl", None, "map", "Sysctl options", show_default="map[]"),
        Flag("tmpfs", None, "list", "Mount a tmpfs directory"),
        Flag("tty", "t", "bool", "Allocate a pseudo-TTY"),
        Flag("ulimit", None, "ulimit", "Ulimit options", show_default="[]"),
        Flag("user", "u", "string", "Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("userns", None, "string", "User namespace to use"),
        Flag("uts", None, "string", "UTS namespace to use"),
        Flag("volume", "v", "list", "Bind mount a volume"),
        Flag("volumes-from", None, "list", "Mount volumes from the specified container(s)"),
        Flag("workdir", "w", "string", "Working directory inside the container"),
    ]
    if run:
        flags += [
            Flag("detach", "d", "bool", "Run container in background and print container ID"),
            Flag("detach-keys", None, "string", "Override the key sequence for detaching a container"),
            Flag("sig-proxy", None, "bool", "Proxy received signals to the process", True),
        ]
    return flags


def _env_flags():
    return [Flag("env", "e", "list", "Set environment variables"),
            Flag("env-file", None, "list", "Read in a file of environment variables")]


_SPECS = {
    "run": lambda: Spec("run", "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
                        "Create and run a new container from an image", _container_flags(True),
                        args=("min", 1), interspersed=False),
    "create": lambda: Spec("create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
                           "Create a new container", _container_flags(False),
                           args=("min", 1), interspersed=False),
    "start": lambda: Spec("start", "start [OPTIONS] CONTAINER [CONTAINER...]",
                          "Start one or more stopped containers", [
                              Flag("attach", "a", "bool", "Attach STDOUT/STDERR and forward signals"),
                              Flag("detach-keys", None, "string",
                                   "Override the key sequence for detaching a container"),
                              Flag("interactive", "i", "bool", "Attach container's STDIN"),
                          ], args=("min", 1)),
    "exec": lambda: Spec("exec", "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
                         "Execute a command in a running container", [
                             Flag("detach", "d", "bool",
                                  "Detached mode: run command in the background"),
                             Flag("detach-keys", None, "string",
                                  "Override the key sequence for detaching a container"),
                             Flag("interactive", "i", "bool", "Keep STDIN open even if not attached"),
                             Flag("privileged", None, "bool",
                                  "Give extended privileges to the command"),
                             Flag("tty", "t", "bool", "Allocate a pseudo-TTY"),
                             Flag("user", "u", "string",
                                  'Username or UID (format: "<name|uid>[:<group|gid>]")'),
                             Flag("workdir", "w", "string", "Working directory inside the container"),
                         ] + _env_flags(), args=("min", 2), interspersed=False),
    "attach": lambda: Spec("attach", "attach [OPTIONS] CONTAINER",
                           "Attach local standard input, output, and error streams to a running "
                           "container", [
                               Flag("detach-keys", None, "string",
                                    "Override the key sequence for detaching a container"),
                               Flag("no-stdin", None, "bool", "Do not attach STDIN"),
                               Flag("sig-proxy", None, "bool",
                                    "Proxy all received signals to the process", True),
                           ], args=("exact", 1)),
}


def _q(name):
    from cli.client import quote
    return quote(name)


class ConfigError(Exception):
    """A bad option value found while building the container config (exit 125)."""


# --- environment, labels ----------------------------------------------------------------


def validate_env(val, environ=None):
    """docker's opts.ValidateEnv: KEY=VAL kept; bare KEY takes the CLI's value if set."""
    if environ is None:
        environ = os.environ
    k, eq, _ = val.partition("=")
    if not k:
        raise ConfigError("invalid environment variable: %s" % val)
    if eq:
        return val
    if k in environ:
        return "%s=%s" % (k, environ[k])
    return val


def parse_kv_file(path, lookup=None):
    """docker's parseKeyValueFile (env files and label files)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError("open %s: %s" % (path, (e.strerror or str(e)).lower())) from None
    lines = []
    for n, raw in enumerate(data.split(b"\n")):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("env file %s contains invalid utf8 bytes at line %d: %s"
                              % (path, n + 1, list(raw))) from None
        if n == 0:
            text = text.lstrip("\ufeff")
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        var, eq, value = line.partition("=")
        var = var.lstrip(" \t")
        if any(c in var for c in " \t"):
            raise ConfigError("variable '%s' contains whitespaces" % var)
        if not var:
            raise ConfigError("no variable name on line '%s'" % line)
        if eq:
            lines.append(var + "=" + value)
        elif lookup is not None:
            v = lookup(line)
            if v is not None:
                lines.append(var.strip() + "=" + v)
    return lines


def build_env(env_files, envs, environ=None):
    if environ is None:
        environ = os.environ
    out = []
    for path in env_files:
        out.extend(parse_kv_file(path, lambda k: environ.get(k.strip())))
    for e in envs:
        out.append(validate_env(e, environ))
    return out


def build_labels(label_files, labels):
    items = []
    for path in label_files:
        items.extend(parse_kv_file(path, lambda k: ""))
    items.extend(labels)
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


# --- ports, restart policy --------------------------------------------------------------


def _port_range(s):
    a, dash, b = s.partition("-")
    try:
        start = int(a)
        end = int(b) if dash else start
    except ValueError:
        raise ConfigError("invalid containerPort: %s" % s) from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise ConfigError("invalid port range: %s" % s)
    return start, end


def parse_publish(spec_):
    """-p [ip:][hostPort:]containerPort[/proto] -> list of (port/proto, HostIp, HostPort)."""
    rest, slash, proto = spec_.rpartition("/") if "/" in spec_ else (spec_, "", "tcp")
    if not slash:
        rest = spec_
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise ConfigError("invalid proto: %s" % proto)
    ip = ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ConfigError("invalid IP address: %s" % rest)
        ip, rest = rest[1:end], rest[end + 1:].lstrip(":")
        parts = rest.split(":")
        if len(parts) == 1:
            parts = ["", parts[0]]
        host_port, container_port = parts[0], parts[1]
    else:
        parts = rest.split(":")
        if len(parts) == 1:
            host_port, container_port = "", parts[0]
        elif len(parts) == 2:
            host_port, container_port = parts
        elif len(parts) == 3:
            ip, host_port, container_port = parts
        else:
            ip = ":".join(parts[:-2])
            host_port, container_port = parts[-2], parts[-1]
    if not container_port:
        raise ConfigError("no port specified: %s<empty>" % spec_)
    cstart, cend = _port_range(container_port)
    out = []
    if host_port:
        hstart, hend = _port_range(host_port)
        if hend - hstart != cend - cstart:
            if cend == cstart:
                return [("%d/%s" % (cstart, proto), ip, host_port)]
            raise ConfigError("invalid ranges specified for container and host Ports: %s and %s"
                              % (container_port, host_port))
        for i in range(cend - cstart + 1):
            out.append(("%d/%s" % (cstart + i, proto), ip, str(hstart + i)))
    else:
        for p in range(cstart, cend + 1):
            out.append(("%d/%s" % (p, proto), ip, ""))
    return out


def parse_restart(policy):
    if not policy:
        return None
    name, colon, count = policy.partition(":")
    if colon and not name:
        raise ConfigError("invalid restart policy format: no policy provided before colon")
    n = 0
    if count:
        try:
            n = int(count)
        except ValueError:
            raise ConfigError("invalid restart policy format: maximum retry count must be an "
                              "integer") from None
    return {"Name": name, "MaximumRetryCount": n}


# --- the create body -----------------------------------------------------------------------


def security_opts(opts):
    """The docker CLI's parseSecurityOpts: each option needs a value (but
    no-new-privileges), and a seccomp profile named by a file is sent as its
    content (compact JSON)."""
    out = []
    for opt in opts or []:
        k, sep, v = opt.partition("=")
        if not sep and k != "no-new-privileges":
            k, sep, v = opt.partition(":")
        if (not sep or not v) and k != "no-new-privileges":
            from cli.fmt import go_quote
            raise ConfigError("Invalid --security-opt: %s" % go_quote(opt))
        if k == "seccomp" and v not in ("builtin", "unconfined"):
            import json
            try:
                with open(v, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise ConfigError("opening seccomp profile (%s) failed: open %s: %s"
                                  % (v, v, (e.strerror or str(e)).lower())) from None
            try:
                profile = json.loads(data)
            except ValueError as e:
                raise ConfigError("compacting json for seccomp profile (%s) failed: %s" % (v, e)) from None
            opt = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        out.append(opt)
    return out


def build_config(opts, args, detach=False, environ=None):
    """-> (Config+HostConfig+NetworkingConfig dict, create query dict).  Raises ConfigError."""
    image, cmd = args[0], args[1:]
    changed = opts["_set"]
    attach = opts["attach"]
    attach_stdin = "stdin" in attach or opts["interactive"]
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    stdin_once = bool(opts["interactive"]) and attach_stdin
    if detach:
        if attach:
            raise ConfigError("Conflicting options: -a and -d")
        attach_stdin = attach_stdout = attach_stderr = stdin_once = False

    env = build_env(opts["env_file"], opts["env"], environ)
    labels = build_labels(opts["label_file"], opts["label"])

    entrypoint = None
    if opts["entrypoint"]:
        entrypoint = [opts["entrypoint"]]
    elif "entrypoint" in changed:
        entrypoint = [""]

    from cli.volumes import split_volumes, VolumeSpecError
    try:
        binds, volumes = split_volumes(opts["volume"])
    except VolumeSpecError as e:
        raise ConfigError(str(e)) from None

    exposed = {}
    bindings = {}
    for p in opts["expose"]:
        proto = "tcp"
        port = p
        if "/" in p:
            port, proto = p.split("/", 1)
        start, end = _port_range(port)
        for n in range(start, end + 1):
            exposed["%d/%s" % (n, proto)] = {}
    for p in opts["publish"]:
        for key, ip, hport in parse_publish(p):
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hport})

    restart = parse_restart(opts["restart"])
    if opts["rm"] and restart and restart["Name"] not in ("", "no"):
        raise ConfigError("Conflicting options: --restart and --rm")

    log_opts = {}
    for o in opts["log_opt"]:
        k, _, v = o.partition("=")
        log_opts[k] = v
    tmpfs = {}
    for t in opts["tmpfs"]:
        path, _, o = t.partition(":")
        tmpfs[path] = o
    sysctls = {}
    for s in opts["sysctl"]:
        k, eq, v = s.partition("=")
        if not eq:
            raise ConfigError("sysctl '%s' is not allowed" % s)
        sysctls[k] = v

    network = opts["network"] or "default"
    host = {
        "Binds": binds or None,
        "ContainerIDFile": opts["cidfile"] or "",
        "LogConfig": {"Type": opts["log_driver"] or "", "Config": log_opts},
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": restart or {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": bool(opts["rm"]),
        "VolumesFrom": opts["volumes_from"] or None,
        "CapAdd": opts["cap_add"] or None,
        "CapDrop": opts["cap_drop"] or None,
        "CgroupnsMode": opts["cgroupns"] or "",
        "Dns": opts["dns"],
        "DnsOptions": opts["dns_option"],
        "DnsSearch": opts["dns_search"],
        "ExtraHosts": opts["add_host"] or None,
        "GroupAdd": opts["group_add"] or None,
        "IpcMode": opts["ipc"] or "",
        "OomScoreAdj": opts["oom_score_adj"] or 0,
        "PidMode": opts["pid"] or "",
        "Privileged": bool(opts["privileged"]),
        "PublishAllPorts": bool(opts["publish_all"]),
        "ReadonlyRootfs": bool(opts["read_only"]),
        "SecurityOpt": security_opts(opts["security_opt"]) or None,
        "UTSMode": opts["uts"] or "",
        "UsernsMode": opts["userns"] or "",
        "ShmSize": opts["shm_size"] or 0,
        "CpuShares": opts["cpu_shares"] or 0,
        "Memory": opts["memory"] or 0,
        "NanoCpus": opts["cpus"] or 0,
        "CgroupParent": opts["cgroup_parent"] or "",
        "CpuPeriod": opts["cpu_period"] or 0,
        "CpuQuota": opts["cpu_quota"] or 0,
        "CpusetCpus": opts["cpuset_cpus"] or "",
        "CpusetMems": opts["cpuset_mems"] or "",
        "MemoryReservation": opts["memory_reservation"] or 0,
        "MemorySwap": opts["memory_swap"] or 0,
        "MemorySwappiness": opts["memory_swappiness"],
        "OomKillDisable": bool(opts["oom_kill_disable"]),
        "Ulimits": opts["ulimit"],
    }
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if opts["mount"]:
        host["Mounts"] = opts["mount"]
    if sysctls:
        host["Sysctls"] = sysctls
    if opts["runtime"]:
        host["Runtime"] = opts["runtime"]
    if "init" in changed:
        host["Init"] = bool(opts["init"])
    if "pids_limit" in changed:
        host["PidsLimit"] = opts["pids_limit"]

    endpoints = {}
    if network not in ("host", "none") and not network.startswith("container:"):
        endpoints[network] = {}
    config = {
        "Hostname": opts["hostname"] or "",
        "Domainname": opts["domainname"] or "",
        "User": opts["user"] or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": bool(opts["tty"]),
        "OpenStdin": bool(opts["interactive"]),
        "StdinOnce": stdin_once,
        "Env": env or None,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes,
        "WorkingDir": opts["workdir"] or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if opts["stop_signal"]:
        config["StopSignal"] = opts["stop_signal"]
    if "stop_timeout" in changed:
        config["StopTimeout"] = opts["stop_timeout"]
    config["HostConfig"] = host
    config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    query = {"name": opts["name"] or None, "platform": opts["platform"] or None}
    return config, query


def create_container(ctx, opts, config, query, pull_out):
    """POST /containers/create, pulling the image when it is missing (like docker).
    -> container id.  Raises APIError/CLIError."""
    from cli.client import APIError
    from cli import reference
    from cli.images import pull_image
    image = config["Image"]
    pull = opts["pull"]
    if pull not in ("always", "missing", "never", ""):
        raise ConfigError('invalid pull option: \'%s\': must be one of "always", "missing" or '
                          '"never"' % pull)
    out = None if opts["quiet"] else pull_out
    if opts["cidfile"] and os.path.exists(opts["cidfile"]):
        raise ConfigError("container ID file found, make sure the other container isn't running "
                          "or delete %s" % opts["cidfile"])
    if pull == "always":
        pull_image(ctx, image, out, opts["platform"])
    try:
        res = ctx.client.post("/containers/create", query, config)
    except APIError as e:
        if not (e.not_found and pull in ("missing", "") and "image" in e.message.lower()):
            raise
        ctx.err("Unable to find image '%s' locally\n" % reference.familiar(image, default_tag=True))
        pull_image(ctx, image, out, opts["platform"])
        res = ctx.client.post("/containers/create", query, config)
    for w in res.get("Warnings") or []:
        ctx.err("WARNING: %s\n" % w)
    cid = res["Id"]
    if opts["cidfile"]:
        try:
            with open(opts["cidfile"], "w") as f:
                f.write(cid)
        except OSError as e:
            raise CLIError("failed to write the container ID to the file: %s" % e) from None
    return cid


def run_error_code(message):
    """docker's runStartContainerErr: 127 not found, 126 not executable, else 125."""
    m = message
    if "executable file not found" in m or "no such file or directory" in m \
            or "system cannot find the file specified" in m:
        return 127
    if "permission denied" in m or "is a directory" in m:
        return 126
    return 125


def _run_failure(name, message, code=None):
    """docker's reportError(..., withHelp=true) + runStartContainerErr's exit status."""
    return CLIError("trioctr: %s\n\nRun 'trioctr %s --help' for more information"
                    % (message, name), run_error_code(message) if code is None else code)


def cmd_create(ctx, opts, args):
    from cli.client import APIError, DaemonUnavailable
    try:
        config, query = build_config(opts, args)
    except ConfigError as e:
        raise _run_failure("create", str(e), 125) from None
    try:
        cid = create_container(ctx, opts, config, query, sys.stderr)
    except ConfigError as e:
        raise _run_failure("create", str(e), 125) from None
    except (APIError, DaemonUnavailable) as e:
        raise CLIError(str(e)) from None
    ctx.out(cid + "\n")
    return 0


# --- sessions over a hijacked connection -------------------------------------------------------


class Terminal:
    """Raw mode for the local terminal while a TTY session runs."""

    def __init__(self, fd=0):
        self.fd = fd
        self.saved = None

    def __enter__(self):
        try:
            import termios
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        except Exception:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class _Session:
    detached = False


DETACH_GRACE = 2.0  # how long the daemon gets to end a detached session itself


def _stdin_pump(sock, proxy=None, session=None):
    """stdin -> the hijacked connection; at EOF, half-close it.

    With ``proxy`` (a TTY session), the docker CLI's hijack: the detach keys
    are matched as they are typed (a prefix is held back, a broken one sent
    on).  The whole sequence ends the session: the keys then go to the daemon,
    which matches them too (same keys, same matcher), ends the attach and
    records the `detach` event; the container keeps running."""
    import _socket
    fd = 0
    try:
        while True:
            data = os.read(fd, 32768)
            if not data:
                break
            if proxy is None:
                sock.sendall(data)
                continue
            data, detached = proxy.feed(data)
            if data:
                sock.sendall(data)
            if detached:
                session.detached = True
                sock.sendall(proxy.keys)
                _end_later(sock)
                return
    except OSError:
        pass
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def _end_later(sock):
    """A daemon that does not close a detached session is cut off after a moment."""
    import _socket
    import threading

    def cut():
        try:
            sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
    t = threading.Timer(DETACH_GRACE, cut)
    t.daemon = True
    t.start()


def start_stdin_pump(sock, proxy=None, session=None):
    import threading
    t = threading.Thread(target=_stdin_pump, args=(sock, proxy, session), daemon=True)
    t.start()
    return t


def detach_keys(opts):
    """--detach-keys, else the CLI config's "detachKeys" (the key of docker's
    config.json), else "" (the default ctrl-p,ctrl-q).  Read only by commands
    that attach, so that no other command reads the config file."""
    if opts.get("detach_keys"):
        return opts["detach_keys"]
    from cli.auth import load_config
    keys = load_config().get("detachKeys")
    return keys if isinstance(keys, str) else ""


def escape_proxy(detach_keys):
    """The docker CLI's: the given keys, or ctrl-p,ctrl-q if none (or bad ones:
    the daemon has refused those before we get here)."""
    from cli.escape import DEFAULT_KEYS, EscapeProxy, KeysError, to_bytes
    keys = DEFAULT_KEYS
    if detach_keys:
        try:
            keys = to_bytes(detach_keys)
        except KeysError:
            pass
    return EscapeProxy(keys)


DETACHED = "read escape sequence"  # moby/term's EscapeError: what attach and exec print


_FORWARD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def forward_signals(ctx, cid):
    """docker's sig-proxy: signals the CLI receives are sent to the container."""
    import signal

    def handler(signum, frame):
        name = signal.Signals(signum).name[3:]
        try:
            ctx.client.request("POST", "/containers/%s/kill" % cid, {"signal": name}).close()
        except Exception:
            pass
    for s in _FORWARD:
        try:
            signal.signal(getattr(signal, s), handler)
        except (OSError, ValueError, AttributeError):
            pass


def monitor_tty_size(ctx, path):
    """Resize the remote TTY now and on SIGWINCH (path: /containers/x or /exec/x)."""
    if not os.isatty(1):
        return
    import signal

    def resize(*_):
        try:
            size = os.get_terminal_size(1)
            ctx.client.request("POST", path + "/resize",
                               {"h": size.lines, "w": size.columns}).close()
        except Exception:
            pass
    resize()
    try:
        signal.signal(signal.SIGWINCH, resize)
    except (OSError, ValueError):
        pass


def hijack(ctx, path, query=None, body=None):
    """The docker client's hijack: any answer but the upgrade is one plain error
    (e.g. dockerd's 400 for bad detach keys: "unable to upgrade to tcp, received 400")."""
    from cli.client import APIError
    try:
        return ctx.client.hijack(path, query, body)
    except APIError as e:
        raise CLIError("unable to upgrade to tcp, received %d" % e.status) from None


def stream_session(resp, tty, stdin, detach_keys=""):
    """Copy the hijacked stream to stdout/stderr (and stdin to it) until it
    ends -> True if it ended because the user typed the detach keys."""
    from cli.stream import copy_stream, StreamError
    session = _Session()
    if stdin:
        start_stdin_pump(resp.sock, escape_proxy(detach_keys) if tty else None, session)
    try:
        copy_stream(resp.iter_chunks(), tty)
    except StreamError as e:
        if session.detached:
            return True
        raise CLIError(str(e)) from None
    except OSError:
        if not session.detached:
            raise
    return session.detached


class Waiter:
    """POST /containers/{id}/wait sent before start, read after the session.

    The daemon answers the head as soon as it registered the wait (dockerd and
    trioctrd both flush it at once), so we wait for the head before starting
    the container: otherwise a container that exits at once could exit before
    the wait exists and condition=next-exit would never fire.  A daemon that
    holds the head back costs at most HEAD_TIMEOUT."""
    HEAD_TIMEOUT = 2.0

    def __init__(self, ctx, cid, condition):
        self.ctx = ctx
        self.sent = ctx.client.send("POST", "/containers/%s/wait" % cid,
                                    {"condition": condition} if condition else None)
        self.resp = ctx.client.response(self.sent, timeout=self.HEAD_TIMEOUT)

    def status(self):
        return _read_wait(self.ctx, self.sent, self.resp)


def _read_wait(ctx, sent, resp=None):
    """Finish a /wait request sent earlier -> exit status (125 if it failed, like docker)."""
    from cli.client import APIError, ConnectionLost
    try:
        if resp is None:
            resp = ctx.client.response(sent)
        if resp.status >= 400:
            from cli.client import _error_message
            body = resp.read()
            resp.close()
            raise APIError(resp.status, _error_message(resp, body))
        res = resp.json() or {}
    except (APIError, ConnectionLost) as e:
        ctx.err("trioctr: error waiting for container: %s\n" % e)
        return 125
    err = res.get("Error")
    if err and err.get("Message"):
        ctx.err("trioctr: error waiting for container: %s\n" % err["Message"])
        return 125
    return res.get("StatusCode", 0)


def _check_tty(opts_stdin, tty):
    if tty and opts_stdin and not os.isatty(0):
        raise CLIError("the input device is not a TTY")


def cmd_run(ctx, opts, args):
    from cli.client import APIError, DaemonUnavailable, ConnectionLost
    detach = opts["detach"]
    try:
        config, query = build_config(opts, args, detach=detach)
    except ConfigError as e:
        raise _run_failure("run", str(e), 125) from None
    if not detach:
        _check_tty(config["AttachStdin"], config["Tty"])
    try:
        cid = create_container(ctx, opts, config, query, sys.stderr)
    except ConfigError as e:
        raise _run_failure("run", str(e), 125) from None
    except DaemonUnavailable as e:
        # no daemon: one clear line and exit 1, as for every other command
        raise CLIError(str(e)) from None
    except (APIError, ConnectionLost) as e:
        raise _run_failure("run", str(e)) from None
    except CLIError as e:
        raise _run_failure("run", e.message) from None

    tty = config["Tty"]
    attach = config["AttachStdin"] or config["AttachStdout"] or config["AttachStderr"]
    if detach or not attach:
        if not (config["AttachStdout"] or config["AttachStderr"]):
            ctx.out(cid + "\n")
            sys.stdout.flush()
        try:
            ctx.client.request("POST", "/containers/%s/start" % cid).close()
        except (APIError, ConnectionLost, DaemonUnavailable) as e:
            raise _run_failure("run", str(e)) from None
        return 0

    if opts["sig_proxy"] and not tty:
        forward_signals(ctx, cid)
    try:
        q = {"stream": "1", "stdin": "1" if config["AttachStdin"] else None,
             "stdout": "1" if config["AttachStdout"] else None,
             "stderr": "1" if config["AttachStderr"] else None,
             "detachKeys": detach_keys(opts) or None}
        resp = hijack(ctx, "/containers/%s/attach" % cid, q)
        wait = Waiter(ctx, cid, "removed" if opts["rm"] else "next-exit")
    except (APIError, ConnectionLost, DaemonUnavailable) as e:
        raise _run_failure("run", str(e)) from None
    try:
        ctx.client.request("POST", "/containers/%s/start" % cid).close()
    except (APIError, ConnectionLost, DaemonUnavailable) as e:
        resp.close()
        err = _run_failure("run", str(e))
        if opts["rm"]:
            wait.status()
        raise err from None
    with _maybe_raw(tty and config["AttachStdin"]):
        if tty:
            monitor_tty_size(ctx, "/containers/%s" % cid)
        detached = stream_session(resp, tty, config["AttachStdin"], detach_keys(opts))
    resp.close()
    if detached:
        return 0  # docker run: the container runs on, nothing printed
    return wait.status()


class _NoTerminal:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _maybe_raw(on):
    return Terminal(0) if on and os.isatty(0) else _NoTerminal()


def cmd_start(ctx, opts, args):
    from cli.client import APIError
    if opts["attach"] or opts["interactive"]:
        if len(args) > 1:
            raise CLIError("you cannot start and attach multiple containers at once")
        c = ctx.client.get("/containers/%s/json" % _q(args[0]))
        cid = c["Id"]
        cfg = c.get("Config") or {}
        tty = bool(cfg.get("Tty"))
        stdin = bool(opts["interactive"] and cfg.get("OpenStdin"))
        _check_tty(stdin, tty)
        if not tty:
            forward_signals(ctx, cid)
        resp = hijack(ctx, "/containers/%s/attach" % cid,
                                 {"stream": "1", "stdin": "1" if stdin else None,
                                  "stdout": "1", "stderr": "1",
                                  "detachKeys": detach_keys(opts) or None})
        auto_remove = bool((c.get("HostConfig") or {}).get("AutoRemove"))
        wait = Waiter(ctx, cid, "removed" if auto_remove else "next-exit")
        try:
            ctx.client.request("POST", "/containers/%s/start" % cid).close()
        except APIError:
            resp.close()
            raise
        with _maybe_raw(tty and stdin):
            if tty:
                monitor_tty_size(ctx, "/containers/%s" % cid)
            detached = stream_session(resp, tty, stdin, detach_keys(opts))
        resp.close()
        if detached:
            return 0  # docker start -a: as docker run
        return wait.status()
    failed = []
    for name in args:
        try:
            ctx.client.request("POST", "/containers/%s/start" % _q(name)).close()
        except APIError as e:
            ctx.err("%s\n" % e)
            failed.append(name)
            continue
        ctx.out(name + "\n")
        sys.stdout.flush()
    if failed:
        raise CLIError("Error: failed to start containers: %s" % ", ".join(failed))
    return 0


def cmd_exec(ctx, opts, args):
    name, cmd = args[0], args[1:]
    try:
        env = build_env(opts["env_file"], opts["env"])
    except ConfigError as e:
        raise CLIError(str(e)) from None
    tty = bool(opts["tty"])
    detach = bool(opts["detach"])
    stdin = bool(opts["interactive"]) and not detach
    if not detach:
        _check_tty(stdin, tty)
    body = {"User": opts["user"] or "", "Privileged": bool(opts["privileged"]), "Tty": tty,
            "AttachStdin": stdin, "AttachStderr": not detach, "AttachStdout": not detach,
            "Detach": detach, "DetachKeys": detach_keys(opts) or "", "Env": env or None,
            "WorkingDir": opts["workdir"] or "", "Cmd": cmd}
    res = ctx.client.post("/containers/%s/exec" % _q(name), None, body)
    eid = res["Id"]
    if detach:
        ctx.client.request("POST", "/exec/%s/start" % eid, None,
                           b'{"Detach":true,"Tty":%s}' % (b"true" if tty else b"false"),
                           content_type="application/json").close()
        return 0
    resp = hijack(ctx, "/exec/%s/start" % eid, None, {"Detach": False, "Tty": tty})
    with _maybe_raw(tty and stdin):
        if tty:
            monitor_tty_size(ctx, "/exec/%s" % eid)
        detached = stream_session(resp, tty, stdin, detach_keys(opts))
    resp.close()
    if detached:
        raise CLIError(DETACHED)  # docker exec returns the EscapeError: exit 1
    return _exec_exit_code(ctx, eid)


def _exec_exit_code(ctx, eid):
    import time
    deadline = time.monotonic() + 5
    while True:
        info = ctx.client.get("/exec/%s/json" % eid) or {}
        if not info.get("Running") or time.monotonic() > deadline:
            code = info.get("ExitCode")
            return code if isinstance(code, int) else 0
        time.sleep(0.05)


def cmd_attach(ctx, opts, args):
    c = ctx.client.get("/containers/%s/json" % _q(args[0]))
    state = c.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first")
    cid = c["Id"]
    cfg = c.get("Config") or {}
    tty = bool(cfg.get("Tty"))
    stdin = bool(cfg.get("OpenStdin")) and not opts["no_stdin"]
    _check_tty(stdin, tty)
    if opts["sig_proxy"] and not tty:
        forward_signals(ctx, cid)
    wait = Waiter(ctx, cid, None)
    resp = hijack(ctx, "/containers/%s/attach" % cid,
                             {"stream": "1", "stdin": "1" if stdin else None,
                              "stdout": "1", "stderr": "1",
                              "detachKeys": detach_keys(opts) or None})
    with _maybe_raw(tty and stdin):
        if tty:
            monitor_tty_size(ctx, "/containers/%s" % cid)
        detached = stream_session(resp, tty, stdin, detach_keys(opts))
    resp.close()
    if detached:
        raise CLIError(DETACHED)  # docker attach returns the EscapeError: exit 1
    code = wait.status()
    if code:
        raise Exit(code)
    return 0
