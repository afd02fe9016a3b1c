"""version, info, events."""

import sys

from cli.flags import Spec, Flag, FORMAT_HELP
from cli.main import CLIError


def spec(name):
    return _SPECS[name]()


_SPECS = {
    "version": lambda: Spec("version", "version [OPTIONS]", "Show the trioctr version information", [
        Flag("format", "f", "string", FORMAT_HELP),
    ], args=("none",)),
    "info": lambda: Spec("info", "info [OPTIONS]", "Display system-wide information", [
        Flag("format", "f", "string", FORMAT_HELP),
    ], args=("none",)),
    "events": lambda: Spec("events", "events [OPTIONS]", "Get real time events from the server", [
        Flag("filter", "f", "filter", "Filter output based on conditions provided"),
        Flag("format", None, "string", FORMAT_HELP),
        Flag("since", None, "string", "Show all events created since timestamp"),
        Flag("until", None, "string", "Stream events until this timestamp"),
    ], args=("none",)),
}


def _run_template(fmt, data, ctx):
    from cli.template import parse, prepare, TemplateError, ParseError
    _, src = prepare(fmt)
    try:
        tmpl = parse(src)
    except ParseError as e:
        raise CLIError("template parsing error: %s" % e) from None
    try:
        return tmpl.execute(data)
    except TemplateError as e:
        raise CLIError("template parsing error: %s" % e) from None


# --- version ----------------------------------------------------------------------------------

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def client_version():
    import os
    from cli import __version__, API_VERSION
    u = os.uname()
    return {
        "Platform": {"Name": "trioctr"},
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "PythonVersion": "%d.%d.%d" % sys.version_info[:3],
        "Os": u.sysname.lower(),
        "Arch": _GOARCH.get(u.machine, u.machine),
    }


def _server_components(sv):
    comps = sv.get("Components")
    if comps:
        return comps
    details = {
        "ApiVersion": sv.get("ApiVersion", ""),
        "Arch": sv.get("Arch", ""),
        "BuildTime": sv.get("BuildTime", ""),
        "Experimental": "true" if sv.get("Experimental") else "false",
        "GitCommit": sv.get("GitCommit", ""),
        "GoVersion": sv.get("GoVersion", ""),
        "KernelVersion": sv.get("KernelVersion", ""),
        "MinAPIVersion": sv.get("MinAPIVersion", ""),
        "Os": sv.get("Os", ""),
    }
    return [{"Name": "Engine", "Version": sv.get("Version", ""), "Details": details}]


def _reformat_date(s):
    """RFC 3339 -> Go's time.ANSIC ("Mon Jan  2 15:04:05 2006"), keeping its zone."""
    from cli.units import parse_rfc3339
    import time
    try:
        secs, _, off = parse_rfc3339(s)
    except ValueError:
        return s
    tm = time.gmtime(secs + off)
    return time.strftime("%a %b ", tm) + "%2d" % tm.tm_mday + time.strftime(" %H:%M:%S %Y", tm)


def _aligned(lines, minwidth):
    from cli.fmt import tabwrite
    return tabwrite("\n".join(lines) + "\n", minwidth, 1, 1)


def render_version(cv, sv):
    lines = ["Client:",
             " Version:\t" + cv["Version"],
             " API version:\t" + cv["ApiVersion"],
             " Python version:\t" + cv["PythonVersion"],
             " OS/Arch:\t%s/%s" % (cv["Os"], cv["Arch"])]
    if sv is not None:
        name = (sv.get("Platform") or {}).get("Name", "")
        lines += ["", "Server:" + (" " + name if name else "")]
        for c in _server_components(sv):
            d = c.get("Details") or {}
            lines.append(" %s:" % c.get("Name", ""))
            if c.get("Name") == "Engine":
                lines += ["  Version:\t" + str(c.get("Version", "")),
                          "  API version:\t%s (minimum version %s)"
                          % (d.get("ApiVersion", ""), d.get("MinAPIVersion", "")),
                          "  Go version:\t" + str(d.get("GoVersion", "")),
                          "  Git commit:\t" + str(d.get("GitCommit", "")),
                          "  Built:\t" + _reformat_date(str(d.get("BuildTime", ""))),
                          "  OS/Arch:\t%s/%s" % (d.get("Os", ""), d.get("Arch", "")),
                          "  Experimental:\t" + str(d.get("Experimental", ""))]
            else:
                lines.append("  Version:\t" + str(c.get("Version", "")))
                for k in sorted(d):
                    lines.append("  %s:\t%s" % (k, d[k]))
    return _aligned(lines, 20)


def cmd_version(ctx, opts, args):
    from cli.client import APIError, DaemonUnavailable, ConnectionLost
    cv = client_version()
    sv = None
    err = None
    try:
        sv = ctx.client.get("/version")
    except (APIError, DaemonUnavailable, ConnectionLost) as e:
        err = e
    if opts["format"]:
        data = {"Client": cv, "Server": sv}
        if opts["format"] == "json":
            from cli.fmt import go_json
            ctx.out(go_json(data, escape_html=False) + "\n")
        else:
            ctx.out(_run_template(opts["format"], data, ctx) + "\n")
    else:
        ctx.out(render_version(cv, sv))
    if err is not None:
        raise CLIError(str(err))
    return 0


# --- info -------------------------------------------------------------------------------------


def render_info(info, debug=False):
    from cli import __version__
    from cli.units import bytes_size
    out = ["Client:\n Version:    %s\n Debug Mode: %s\n\nServer:\n"
           % (__version__, "true" if debug else "false")]
    w = out.append

    def line(label, key, indent=" ", fmt=str):
        if key in info:
            w("%s%s: %s\n" % (indent, label, fmt(info[key])))

    line("Containers", "Containers")
    line("Running", "ContainersRunning", "  ")
    line("Paused", "ContainersPaused", "  ")
    line("Stopped", "ContainersStopped", "  ")
    line("Images", "Images")
    line("Server Version", "ServerVersion")
    line("Storage Driver", "Driver")
    for pair in info.get("DriverStatus") or []:
        if len(pair) == 2:
            w("  %s: %s\n" % (pair[0], pair[1]))
    line("Logging Driver", "LoggingDriver")
    line("Cgroup Driver", "CgroupDriver")
    line("Cgroup Version", "CgroupVersion")
    plugins = info.get("Plugins")
    if plugins:
        w(" Plugins:\n")
        for k in ("Volume", "Network", "Authorization", "Log"):
            if plugins.get(k):
                w("  %s: %s\n" % (k, " ".join(plugins[k])))
    swarm = info.get("Swarm")
    if isinstance(swarm, dict) and swarm.get("LocalNodeState"):
        w(" Swarm: %s\n" % swarm["LocalNodeState"])
    runtimes = info.get("Runtimes")
    if runtimes:
        w(" Runtimes: %s\n" % " ".join(sorted(runtimes)))
    line("Default Runtime", "DefaultRuntime")
    line("Init Binary", "InitBinary")
    for label, key in (("containerd version", "ContainerdCommit"), ("runc version", "RuncCommit"),
                       ("init version", "InitCommit")):
        if isinstance(info.get(key), dict):
            w(" %s: %s\n" % (label, info[key].get("ID", "")))
    secopts = info.get("SecurityOptions")
    if secopts:
        w(" Security Options:\n")
        for so in secopts:
            fields = dict(kv.partition("=")[::2] for kv in so.split(","))
            w("  %s\n" % fields.get("name", so))
            if fields.get("profile"):
                w("   Profile: %s\n" % fields["profile"])
    line("Kernel Version", "KernelVersion")
    line("Operating System", "OperatingSystem")
    line("OSType", "OSType")
    line("Architecture", "Architecture")
    line("CPUs", "NCPU")
    line("Total Memory", "MemTotal", fmt=bytes_size)
    line("Name", "Name")
    line("ID", "ID")
    line("Docker Root Dir", "DockerRootDir")
    line("Debug Mode", "Debug", fmt=lambda v: "true" if v else "false")
    if info.get("HttpProxy"):
        line("HTTP Proxy", "HttpProxy")
    if info.get("HttpsProxy"):
        line("HTTPS Proxy", "HttpsProxy")
    if info.get("NoProxy"):
        line("No Proxy", "NoProxy")
    labels = info.get("Labels")
    if labels:
        w(" Labels:\n")
        for lab in labels:
            w("  %s\n" % lab)
    line("Experimental", "ExperimentalBuild", fmt=lambda v: "true" if v else "false")
    reg = info.get("RegistryConfig") or {}
    if reg.get("InsecureRegistryCIDRs"):
        w(" Insecure Registries:\n")
        for c in reg["InsecureRegistryCIDRs"]:
            w("  %s\n" % c)
    if reg.get("Mirrors"):
        w(" Registry Mirrors:\n")
        for m in reg["Mirrors"]:
            w("  %s\n" % m)
    line("Live Restore Enabled", "LiveRestoreEnabled", fmt=lambda v: "true" if v else "false")
    return "".join(out)


def cmd_info(ctx, opts, args):
    info = ctx.client.get("/info") or {}
    if opts["format"]:
        from cli import __version__
        data = dict(info)
        data["ClientInfo"] = {"Version": __version__, "Debug": bool(ctx.debug)}
        if opts["format"] == "json":
            from cli.fmt import go_json
            ctx.out(go_json(data, escape_html=False) + "\n")
        else:
            ctx.out(_run_template(opts["format"], data, ctx) + "\n")
        return 0
    ctx.out(render_info(info, ctx.debug))
    warnings = info.get("Warnings") or []
    if warnings:
        sys.stdout.flush()
        ctx.err("\n" + "".join(w + "\n" for w in warnings))
    return 0


# --- events -------------------------------------------------------------------------------------


class EventView:
    """An event as Go's events.Message: template fields use Go names
    (.Status .ID .From .Type .Action .Actor .Scope .Time .TimeNano), JSON uses its tags."""
    tmpl_type = "events.Message"
    _GO = {"Status": "status", "ID": "id", "From": "from", "Type": "Type", "Action": "Action",
           "Scope": "scope", "Time": "time", "TimeNano": "timeNano"}

    def __init__(self, ev):
        self.ev = ev

    def actor(self):
        from cli.template import MapDict
        a = self.ev.get("Actor") or {}
        attrs = a.get("Attributes")
        return {"ID": a.get("ID", ""),
                "Attributes": MapDict(sorted(attrs.items())) if attrs is not None else None}

    def tmpl_field(self, name):
        if name == "Actor":
            return self.actor()
        key = self._GO.get(name)
        if key is None:
            raise KeyError(name)
        default = 0 if name in ("Time", "TimeNano") else ""
        return self.ev.get(key, default)

    def as_json_obj(self):
        ev = self.ev
        out = {}
        for k in ("status", "id", "from"):
            if ev.get(k):
                out[k] = ev[k]
        out["Type"] = ev.get("Type", "")
        out["Action"] = ev.get("Action", "")
        out["Actor"] = self.actor()
        for k in ("scope", "time", "timeNano"):
            if ev.get(k):
                out[k] = ev[k]
        return out

    def tmpl_json(self):
        from cli.fmt import go_json
        return go_json(self.as_json_obj(), escape_html=False)


def pretty_event(ev):
    """docker's prettyPrintEvent: TIME TYPE ACTION ACTOR_ID (k=v, ...)."""
    from cli.units import rfc3339_nano_fixed
    out = []
    tn = ev.get("timeNano") or 0
    if tn:
        out.append(rfc3339_nano_fixed(tn // 10 ** 9, tn % 10 ** 9) + " ")
    elif ev.get("time"):
        out.append(rfc3339_nano_fixed(ev["time"]) + " ")
    actor = ev.get("Actor") or {}
    out.append("%s %s %s" % (ev.get("Type", ""), ev.get("Action", ""), actor.get("ID", "")))
    attrs = actor.get("Attributes") or {}
    if attrs:
        out.append(" (%s)" % ", ".join("%s=%s" % (k, attrs[k]) for k in sorted(attrs)))
    return "".join(out) + "\n"


def cmd_events(ctx, opts, args):
    from cli.containers import filters_json, since_until
    q = since_until(opts, {})
    q["filters"] = filters_json(opts["filter"])
    fmt = opts["format"] or ""
    tmpl = None
    if fmt and fmt not in ("json", "{{json .}}"):
        from cli.template import parse, prepare, ParseError
        try:
            tmpl = parse(prepare(fmt)[1])
        except ParseError as e:
            raise CLIError("template parsing error: %s" % e) from None
    resp = ctx.client.request("GET", "/events", q)
    out = sys.stdout
    try:
        for ev in resp.iter_json():
            if not isinstance(ev, dict):
                continue
            if not fmt:
                out.write(pretty_event(ev))
            elif tmpl is None:
                out.write(EventView(ev).tmpl_json() + "\n")
            else:
                from cli.template import TemplateError
                try:
                    out.write(tmpl.execute(EventView(ev)) + "\n")
                except TemplateError as e:
                    raise CLIError("template parsing error: %s" % e) from None
            out.flush()
    finally:
        resp.close()
    return 0
