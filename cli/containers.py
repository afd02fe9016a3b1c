"""Container commands that are plain API calls: ps, logs, stop, restart, kill,
rm, wait, top, port, pause, unpause, update, rename, inspect."""

import sys

from cli.flags import Spec, Flag, FORMAT_TABLE_HELP, FORMAT_HELP
from cli.fmt import TableRow
from cli.main import CLIError


def spec(name):
    return _SPECS[name]()


def _ps_spec():
    return Spec("ps", "ps [OPTIONS]", "List containers", [
        Flag("all", "a", "bool", "Show all containers (default shows just running)"),
        Flag("filter", "f", "filter", "Filter output based on conditions provided"),
        Flag("format", None, "string", FORMAT_TABLE_HELP),
        Flag("last", "n", "int", "Show n last created containers (includes all states)", -1),
        Flag("latest", "l", "bool", "Show the latest created container (includes all states)"),
        Flag("no-trunc", None, "bool", "Don't truncate output"),
        Flag("quiet", "q", "bool", "Only display container IDs"),
        Flag("size", "s", "bool", "Display total file sizes"),
    ], args=("none",))


def _signal_flag():
    return Flag("signal", "s", "string", "Signal to send to the container")


def _timeout_flags():
    return [Flag("timeout", "t", "int", "Seconds to wait before killing the container"),
            Flag("time", None, "int", "Seconds to wait before killing the container", hidden=True)]


_SPECS = {
    "ps": _ps_spec,
    "logs": lambda: Spec("logs", "logs [OPTIONS] CONTAINER", "Fetch the logs of a container", [
        Flag("details", None, "bool", "Show extra details provided to logs"),
        Flag("follow", "f", "bool", "Follow log output"),
        Flag("since", None, "string", 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") '
             'or relative (e.g. "42m" for 42 minutes)'),
        Flag("tail", "n", "string", "Number of lines to show from the end of the logs", "all"),
        Flag("timestamps", "t", "bool", "Show timestamps"),
        Flag("until", None, "string", 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") '
             'or relative (e.g. "42m" for 42 minutes)'),
    ], args=("exact", 1)),
    "stop": lambda: Spec("stop", "stop [OPTIONS] CONTAINER [CONTAINER...]",
                         "Stop one or more running containers",
                         [_signal_flag()] + _timeout_flags(), args=("min", 1)),
    "restart": lambda: Spec("restart", "restart [OPTIONS] CONTAINER [CONTAINER...]",
                            "Restart one or more containers",
                            [_signal_flag()] + _timeout_flags(), args=("min", 1)),
    "kill": lambda: Spec("kill", "kill [OPTIONS] CONTAINER [CONTAINER...]",
                         "Kill one or more running containers", [_signal_flag()], args=("min", 1)),
    "rm": lambda: Spec("rm", "rm [OPTIONS] CONTAINER [CONTAINER...]",
                       "Remove one or more containers", [
                           Flag("force", "f", "bool",
                                "Force the removal of a running container (uses SIGKILL)"),
                           Flag("link", "l", "bool", "Remove the specified link"),
                           Flag("volumes", "v", "bool",
                                "Remove anonymous volumes associated with the container"),
                       ], args=("min", 1)),
    "wait": lambda: Spec("wait", "wait CONTAINER [CONTAINER...]",
                         "Block until one or more containers stop, then print their exit codes",
                         args=("min", 1)),
    "top": lambda: Spec("top", "top CONTAINER [ps OPTIONS]",
                        "Display the running processes of a container", args=("min", 1),
                        interspersed=False),
    "port": lambda: Spec("port", "port CONTAINER [PRIVATE_PORT[/PROTO]]",
                         "List port mappings or a specific mapping for the container",
                         args=("range", 1, 2)),
    "pause": lambda: Spec("pause", "pause CONTAINER [CONTAINER...]",
                          "Pause all processes within one or more containers", args=("min", 1)),
    "unpause": lambda: Spec("unpause", "unpause CONTAINER [CONTAINER...]",
                            "Unpause all processes within one or more containers", args=("min", 1)),
    "update": lambda: Spec("update", "update [OPTIONS] CONTAINER [CONTAINER...]",
                           "Update configuration of one or more containers", [
        Flag("blkio-weight", None, "int",
             "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
        Flag("cpu-period", None, "int", "Limit CPU CFS (Completely Fair Scheduler) period"),
        Flag("cpu-quota", None, "int", "Limit CPU CFS (Completely Fair Scheduler) quota"),
        Flag("cpu-rt-period", None, "int", "Limit the CPU real-time period in microseconds"),
        Flag("cpu-rt-runtime", None, "int", "Limit the CPU real-time runtime in microseconds"),
        Flag("cpu-shares", "c", "int", "CPU shares (relative weight)"),
        Flag("cpus", None, "decimal", "Number of CPUs"),
        Flag("cpuset-cpus", None, "string", "CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", None, "string", "MEMs in which to allow execution (0-3, 0,1)"),
        Flag("memory", "m", "bytes", "Memory limit"),
        Flag("memory-reservation", None, "bytes", "Memory soft limit"),
        Flag("memory-swap", None, "swap",
             "Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
        Flag("pids-limit", None, "int", "Tune container pids limit (set -1 for unlimited)"),
        Flag("restart", None, "string", "Restart policy to apply when a container exits"),
    ], args=("min", 1)),
    "rename": lambda: Spec("rename", "rename CONTAINER NEW_NAME", "Rename a container",
                           args=("exact", 2)),
    "inspect": lambda: Spec("inspect", "inspect [OPTIONS] NAME|ID [NAME|ID...]",
                            "Return low-level information on trioctr objects", [
                                Flag("format", "f", "string", FORMAT_HELP),
                                Flag("size", "s", "bool",
                                     "Display total file sizes if the type is container"),
                                Flag("type", None, "string", "Only inspect objects of the given type"),
                            ], args=("min", 1)),
}


def _q(name):
    from cli.client import quote
    return quote(name)


def filters_json(filters):
    """["a=b", "a=c", "x=y"] -> docker's filters JSON {"a":{"b":true,"c":true},"x":{"y":true}}."""
    if not filters:
        return None
    m = {}
    for f in filters:
        k, _, v = f.partition("=")
        m.setdefault(k.strip().lower(), {})[v.strip()] = True
    import json
    return json.dumps({k: dict(sorted(v.items())) for k, v in sorted(m.items())},
                      separators=(",", ":"))


# --- ps ---------------------------------------------------------------------------


_CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
    "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
    "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
}


def label_header(name):
    last = name.split(".")[-1]
    return last.replace("-", " ").replace("_", " ")


class HeaderCtx:
    tmpl_type = "*formatter.HeaderContext"

    def __init__(self, headers):
        self.headers = headers

    def tmpl_field(self, name):
        if name == "Label":
            return label_header
        return self.headers[name]


def _join_host_port(ip, port):
    if ":" in ip:
        return "[%s]:%s" % (ip, port)
    return "%s:%s" % (ip, port)


def displayable_ports(ports):
    """docker's formatter.DisplayablePorts: "0.0.0.0:80->9090/tcp, 9988/tcp"."""
    def key(p):
        return (p.get("PrivatePort", 0), p.get("IP") or "", p.get("PublicPort", 0), p.get("Type", ""))
    groups = {}
    order = []
    result = []
    host_mappings = []
    for p in sorted(ports or [], key=key):
        current = p.get("PrivatePort", 0)
        ptype = p.get("Type", "")
        pkey = ptype
        ip = p.get("IP") or ""
        if ip:
            if p.get("PublicPort", 0) != current:
                host_mappings.append("%s->%d/%s" % (_join_host_port(ip, p.get("PublicPort", 0)),
                                                     current, ptype))
                continue
            pkey = ip + "/" + ptype
        g = groups.get(pkey)
        if g is None:
            groups[pkey] = [current, current]
            order.append(pkey)
            continue
        if current == g[1] + 1:
            g[1] = current
            continue
        result.append(_form_group(pkey, g[0], g[1]))
        groups[pkey] = [current, current]
    for pkey in order:
        g = groups[pkey]
        result.append(_form_group(pkey, g[0], g[1]))
    result.extend(host_mappings)
    return ", ".join(result)


def _form_group(key, start, last):
    parts = key.split("/")
    gtype = parts[0]
    ip = ""
    if len(parts) > 1:
        ip = parts[0]
        gtype = parts[1]
    group = str(start)
    if start != last:
        group = "%s-%d" % (group, last)
    if ip:
        group = "%s->%s" % (_join_host_port(ip, group), group)
    return group + "/" + gtype


class ContainerRow(TableRow):
    """One row of `ps`, with the fields docker's ContainerContext offers."""
    tmpl_type = "*formatter.ContainerContext"
    HEADERS = _CONTAINER_HEADERS
    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
              "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status")

    def __init__(self, c, trunc, now):
        self.c = c
        self.trunc = trunc
        self.now = now

    def label(self, name):
        return (self.c.get("Labels") or {}).get(name, "")

    def f_ID(self):
        from cli.fmt import truncate_id
        cid = self.c.get("Id", "")
        return truncate_id(cid) if self.trunc else cid

    def f_Names(self):
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            for n in names:
                if "/" not in n:
                    return n
            return ""
        return ",".join(names)

    def f_Image(self):
        image = self.c.get("Image", "")
        if not image:
            return "<no image>"
        if not self.trunc:
            return image
        from cli.fmt import truncate_id
        t = truncate_id(self.c.get("ImageID", ""))
        if t == truncate_id(image):
            return t
        if "/" not in image and "@" not in image:
            return image  # already familiar
        from cli import reference
        name, tag, digest = reference.split(image)
        if digest is not None:
            image = name + (":" + tag if tag else "")
        return reference.familiar(image)

    def f_Command(self):
        from cli.fmt import ellipsis, go_quote
        cmd = self.c.get("Command", "")
        if self.trunc:
            cmd = ellipsis(cmd, 20)
        return go_quote(cmd)

    def f_CreatedAt(self):
        from cli.units import go_time_string
        return go_time_string(self.c.get("Created", 0))

    def f_RunningFor(self):
        from cli.units import human_duration
        return human_duration(self.now - self.c.get("Created", 0)) + " ago"

    def f_Ports(self):
        return displayable_ports(self.c.get("Ports"))

    def f_State(self):
        return self.c.get("State", "")

    def f_Status(self):
        return self.c.get("Status", "")

    def f_Size(self):
        from cli.units import human_size
        srw = human_size(self.c.get("SizeRw") or 0, 3)
        rootfs = self.c.get("SizeRootFs") or 0
        if rootfs > 0:
            return "%s (virtual %s)" % (srw, human_size(rootfs, 3))
        return srw

    def f_Labels(self):
        labels = self.c.get("Labels") or {}
        return ",".join(sorted("%s=%s" % (k, v) for k, v in labels.items()))

    def f_Mounts(self):
        from cli.fmt import ellipsis
        out = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            if self.trunc:
                name = ellipsis(name, 15)
            out.append(name)
        return ",".join(out)

    def f_LocalVolumes(self):
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def f_Networks(self):
        ns = self.c.get("NetworkSettings") or {}
        return ",".join((ns.get("Networks") or {}).keys())

    def f_Platform(self):
        return None


DEFAULT_PS_FORMAT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
                     "\t{{.Ports}}\t{{.Names}}")
DEFAULT_PS_FIELDS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")


def plain_table(fields, rows, headers):
    """What render_rows gives for "table {{.A}}\\t{{.B}}..." without the template
    engine (the default formats: keeps the common path light)."""
    from cli.fmt import tabwrite
    out = ["\t".join(headers[f] for f in fields)]
    for r in rows:
        out.append("\t".join(r.tmpl_field(f) for f in fields))
    return tabwrite("\n".join(out) + "\n")


def template_errors(fn):
    """Run fn() mapping template errors to docker's wording."""
    from cli.template import ParseError, TemplateError
    try:
        return fn()
    except ParseError as e:
        raise CLIError("failed to parse template: %s" % e) from None
    except TemplateError as e:
        raise CLIError("failed to execute template: %s" % e) from None


def cmd_ps(ctx, opts, args):
    fmt = opts["format"] or ""
    query = {}
    if opts["all"]:
        query["all"] = "1"
    limit = opts["last"]
    if limit == -1 and opts["latest"]:
        limit = 1
    if limit > 0:
        query["limit"] = str(limit)
    if opts["size"] or ".Size" in fmt:
        query["size"] = "1"
    query["filters"] = filters_json(opts["filter"])
    containers = ctx.client.get("/containers/json", query)
    trunc = not opts["no_trunc"]
    if opts["quiet"]:
        if fmt:
            ctx.err("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
        from cli.fmt import truncate_id
        ctx.out("".join((truncate_id(c["Id"]) if trunc else c["Id"]) + "\n" for c in containers))
        return 0
    import time
    now = time.time()
    rows = [ContainerRow(c, trunc, now) for c in containers]
    if fmt in ("", "table"):
        fields = DEFAULT_PS_FIELDS + (("Size",) if opts["size"] else ())
        ctx.out(plain_table(fields, rows, _CONTAINER_HEADERS))
        return 0
    from cli.template import render_rows
    ctx.out(template_errors(lambda: render_rows(fmt, rows, HeaderCtx(_CONTAINER_HEADERS))))
    return 0


# --- simple multi-container commands ---------------------------------------------------


def _each(ctx, names, do, print_name=True):
    """Run do(name) for each name; print names that succeeded, errors at the end."""
    from cli.client import APIError
    errors = []
    for name in names:
        try:
            do(name)
        except APIError as e:
            errors.append(str(e))
            continue
        if print_name:
            ctx.out(name + "\n")
            sys.stdout.flush()
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def _stop_query(opts):
    q = {}
    t = opts.get("timeout")
    if t is None:
        t = opts.get("time")
    if t is not None:
        q["t"] = str(t)
    if opts.get("signal"):
        q["signal"] = opts["signal"]
    return q


def cmd_stop(ctx, opts, args):
    q = _stop_query(opts)
    return _each(ctx, args, lambda n: ctx.client.request("POST", "/containers/%s/stop" % _q(n), q)
                 .close())


def cmd_restart(ctx, opts, args):
    q = _stop_query(opts)
    return _each(ctx, args, lambda n: ctx.client.request("POST", "/containers/%s/restart" % _q(n), q)
                 .close())


def cmd_kill(ctx, opts, args):
    q = {"signal": opts["signal"] or None}
    return _each(ctx, args, lambda n: ctx.client.request("POST", "/containers/%s/kill" % _q(n), q)
                 .close())


def cmd_pause(ctx, opts, args):
    return _each(ctx, args, lambda n: ctx.client.request("POST", "/containers/%s/pause" % _q(n))
                 .close())


def cmd_unpause(ctx, opts, args):
    return _each(ctx, args, lambda n: ctx.client.request("POST", "/containers/%s/unpause" % _q(n))
                 .close())


_UPDATE_FIELDS = (("blkio-weight", "BlkioWeight"), ("cpu-period", "CpuPeriod"),
                  ("cpu-quota", "CpuQuota"), ("cpu-rt-period", "CpuRealtimePeriod"),
                  ("cpu-rt-runtime", "CpuRealtimeRuntime"), ("cpu-shares", "CpuShares"),
                  ("cpus", "NanoCpus"), ("cpuset-cpus", "CpusetCpus"),
                  ("cpuset-mems", "CpusetMems"), ("memory", "Memory"),
                  ("memory-reservation", "MemoryReservation"), ("memory-swap", "MemorySwap"))


def cmd_update(ctx, opts, args):
    """docker update: only the flags given go in the body (an unset field
    keeps its value on the daemon's side)."""
    from cli.client import APIError
    from cli.run import ConfigError, parse_restart
    given = opts["_set"]
    if not any(_given(given, f) for f in [name for name, _ in _UPDATE_FIELDS] + ["pids-limit", "restart"]):
        raise CLIError("you must provide one or more flags when using this command")
    body = {}
    for flag, key in _UPDATE_FIELDS:
        v = opts[flag.replace("-", "_")]
        if v:
            body[key] = v
    if _given(given, "pids-limit"):
        body["PidsLimit"] = opts["pids_limit"]
    if _given(given, "restart"):
        try:
            body["RestartPolicy"] = parse_restart(opts["restart"])
        except ConfigError as e:
            raise CLIError(str(e)) from None
    errors, warnings = [], []
    for name in args:
        try:
            res = ctx.client.post("/containers/%s/update" % _q(name), None, body) or {}
        except APIError as e:
            errors.append(str(e))
            continue
        warnings.extend(res.get("Warnings") or [])
        ctx.out(name + "\n")
        sys.stdout.flush()
    for w in warnings:
        sys.stderr.write(w + "\n")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def _given(given, flag):
    return flag in given or flag.replace("-", "_") in given


def cmd_rm(ctx, opts, args):
    from cli.client import APIError
    q = {"force": "1" if opts["force"] else None, "v": "1" if opts["volumes"] else None,
         "link": "1" if opts["link"] else None}
    errors = []
    for name in args:
        try:
            ctx.client.request("DELETE", "/containers/%s" % _q(name), q).close()
        except APIError as e:
            if opts["force"] and e.not_found:
                ctx.err("%s\n" % e)
                continue
            errors.append(str(e))
            continue
        ctx.out(name + "\n")
        sys.stdout.flush()
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_wait(ctx, opts, args):
    from cli.client import APIError
    errors = []
    for name in args:
        try:
            res = ctx.client.post("/containers/%s/wait" % _q(name))
        except APIError as e:
            errors.append(str(e))
            continue
        ctx.out("%s\n" % (res or {}).get("StatusCode", 0))
        sys.stdout.flush()
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_rename(ctx, opts, args):
    old, new = args
    if not old.strip() or not new.strip():
        raise CLIError("Error: neither old nor new names may be empty")
    ctx.client.request("POST", "/containers/%s/rename" % _q(old), {"name": new}).close()
    return 0


def cmd_top(ctx, opts, args):
    q = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    res = ctx.client.get("/containers/%s/top" % _q(args[0]), q) or {}
    from cli.fmt import tabwrite
    lines = ["\t".join(res.get("Titles") or [])]
    for p in res.get("Processes") or []:
        lines.append("\t".join(p))
    ctx.out(tabwrite("\n".join(lines) + "\n", 20, 1, 3))
    return 0


def cmd_port(ctx, opts, args):
    c = ctx.client.get("/containers/%s/json" % _q(args[0]))
    ports = ((c.get("NetworkSettings") or {}).get("Ports")) or {}
    if len(args) > 1:
        want = args[1]
        port, _, proto = want.partition("/")
        proto = proto or "tcp"
        key = "%s/%s" % (port, proto)
        bindings = ports.get(key)
        if bindings:
            for b in bindings:
                ctx.out(_join_host_port(b.get("HostIp") or "0.0.0.0", b.get("HostPort", "")) + "\n")
            return 0
        raise CLIError("Error: No public port '%s' published for %s" % (key, args[0]))
    out = []

    def pkey(k):
        p, _, proto = k.partition("/")
        return (int(p) if p.isdigit() else 0, proto)
    for k in sorted(ports, key=pkey):
        for b in ports[k] or []:
            out.append("%s -> %s\n" % (k, _join_host_port(b.get("HostIp") or "0.0.0.0",
                                                         b.get("HostPort", ""))))
    ctx.out("".join(out))
    return 0


# --- logs ---------------------------------------------------------------------------------


def since_until(opts, q):
    """--since/--until as the API's Unix timestamps, into the query ``q``."""
    from cli.units import get_timestamp
    try:
        if opts["since"]:
            q["since"] = get_timestamp(opts["since"])
        if opts["until"]:
            q["until"] = get_timestamp(opts["until"])
    except ValueError as e:
        raise CLIError(str(e)) from None
    return q


def cmd_logs(ctx, opts, args):
    c = ctx.client.get("/containers/%s/json" % _q(args[0]))
    q = since_until(opts, {"stdout": "1", "stderr": "1"})
    if opts["timestamps"]:
        q["timestamps"] = "1"
    if opts["follow"]:
        q["follow"] = "1"
    q["tail"] = opts["tail"]
    if opts["details"]:
        q["details"] = "1"
    resp = ctx.client.request("GET", "/containers/%s/logs" % c.get("Id", args[0]), q)
    tty = bool((c.get("Config") or {}).get("Tty"))
    ctype = resp.headers.get("content-type", "")
    if "multiplexed" in ctype:
        tty = False
    elif "raw-stream" in ctype:
        tty = True
    from cli.stream import copy_stream, StreamError
    try:
        copy_stream(resp.iter_chunks(), tty)
    except StreamError as e:
        raise CLIError(str(e)) from None
    finally:
        resp.close()
    return 0


# --- inspect --------------------------------------------------------------------------------


def _inspect_raw(ctx, kind, name, size):
    """-> raw JSON bytes of one object, or raise APIError."""
    if kind == "container":
        q = {"size": "1"} if size else None
        resp = ctx.client.request("GET", "/containers/%s/json" % _q(name), q)
    elif kind == "volume":
        resp = ctx.client.request("GET", "/volumes/%s" % _q(name))
    else:
        resp = ctx.client.request("GET", "/images/%s/json" % _q(name))
    data = resp.read()
    resp.close()
    return data


def cmd_inspect(ctx, opts, args):
    from cli.client import APIError
    kind = opts["type"]
    if kind and kind not in ("container", "image", "volume"):
        raise CLIError('"%s" is not a valid value for --type' % kind)
    raws = []
    errors = []
    for name in args:
        if kind:
            try:
                raws.append(_inspect_raw(ctx, kind, name, opts["size"]))
            except APIError as e:
                errors.append(str(e))
            continue
        for k in ("container", "image", "volume"):  # docker's order (no networks yet)
            try:
                raws.append(_inspect_raw(ctx, k, name, opts["size"]))
                break
            except APIError as e:
                if not e.not_found:
                    errors.append(str(e))
                    break
        else:
            errors.append("Error: No such object: %s" % name)
    print_inspect(ctx, [r.decode("utf-8", "replace").strip() for r in raws], opts["format"], errors)
    return 0


def print_inspect(ctx, texts, fmt, errors):
    """docker/cli's inspect output for raw JSON objects: an indented array,
    `json`, or a template per object; then the errors (exit 1)."""
    if not fmt:
        from cli.fmt import json_indent
        if not texts:
            ctx.out("[]\n")
        else:
            ctx.out(json_indent("[" + ",".join(texts) + "]") + "\n")
    elif fmt == "json":
        ctx.out("[" + ",".join(texts) + "]\n")
    else:
        import json
        from cli.template import parse, TemplateError
        try:
            tmpl = parse(fmt.replace("\\t", "\t").replace("\\n", "\n"))
        except TemplateError as e:
            raise CLIError("template parsing error: %s" % e) from None
        out = []
        for t in texts:
            try:
                out.append(tmpl.execute(json.loads(t)) + "\n")
            except TemplateError as e:
                ctx.out("".join(out) + "\n")
                raise CLIError("template parsing error: %s" % e) from None
        ctx.out("".join(out))
    if errors:
        raise CLIError("\n".join(errors))
