"""`trioctr volume create/ls/inspect/rm/prune`, and the parsing of run/create's
-v/--volume and --mount, as docker's CLI does them (docker/cli
internal/volumespec, opts/mount.go, cli/command/volume)."""

import sys

from cli.flags import Spec, Flag
from cli.fmt import TableRow
from cli.main import CLIError


def spec(name):
    return _SPECS[name]()


_SPECS = {
    "_volume_create": lambda: Spec("_volume_create", "create [OPTIONS] [VOLUME]", "Create a volume", [
        Flag("driver", "d", "string", "Specify volume driver name", "local"),
        Flag("label", None, "list", "Set metadata for a volume"),
        Flag("name", None, "string", "Specify volume name", hidden=True),
        Flag("opt", "o", "map", "Set driver specific options", show_default="map[]"),
    ], args=("range", 0, 1)),
    "_volume_ls": lambda: Spec("_volume_ls", "ls [OPTIONS]", "List volumes", [
        Flag("filter", "f", "filter", "Provide filter values (e.g. \"dangling=true\")"),
        Flag("format", None, "string",
             "Format output using a custom template:\n'table':            Print output in table "
             "format with column headers (default)\n'table TEMPLATE':   Print output in table "
             "format using the given Go template\n'json':             Print in JSON format\n"
             "'TEMPLATE':         Print output using the given Go template.\nRefer to "
             "https://docs.docker.com/go/formatting/ for more information about formatting "
             "output with templates"),
        Flag("quiet", "q", "bool", "Only display volume names"),
    ], args=("exact", 0)),
    "_volume_inspect": lambda: Spec("_volume_inspect", "inspect [OPTIONS] VOLUME [VOLUME...]",
                                    "Display detailed information on one or more volumes", [
                                        Flag("format", "f", "string",
                                             "Format output using a custom template:\n'json':"
                                             "             Print in JSON format\n'TEMPLATE':"
                                             "         Print output using the given Go template."
                                             "\nRefer to https://docs.docker.com/go/formatting/ "
                                             "for more information about formatting output with "
                                             "templates"),
                                    ], args=("min", 1)),
    "_volume_rm": lambda: Spec("_volume_rm", "rm [OPTIONS] VOLUME [VOLUME...]",
                               "Remove one or more volumes", [
                                   Flag("force", "f", "bool",
                                        "Force the removal of one or more volumes"),
                               ], args=("min", 1)),
    "_volume_prune": lambda: Spec("_volume_prune", "prune [OPTIONS]", "Remove unused local volumes", [
        Flag("all", "a", "bool", "Remove all unused volumes, not just anonymous ones"),
        Flag("filter", None, "filter", 'Provide filter values (e.g. "label=<label>")'),
        Flag("force", "f", "bool", "Do not prompt for confirmation"),
    ], args=("exact", 0)),
}


def _q(name):
    from cli.client import quote
    return quote(name)


# --- -v/--volume (docker/cli internal/volumespec.Parse) ----------------------------------


class VolumeSpecError(ValueError):
    pass


def _is_file_path(source):
    """A source docker's CLI takes for a host path (else a volume name)."""
    return source[:1] in (".", "/", "~") or source.startswith("\\\\")


def parse_volume_spec(spec):
    """-> {"Type", "Source", "Target", "ReadOnly"}; raises VolumeSpecError with
    docker's words ("invalid spec: X: too many colons")."""
    vol = {"Type": "", "Source": "", "Target": "", "ReadOnly": False}
    if len(spec) == 0:
        raise VolumeSpecError("invalid empty volume spec")
    if len(spec) <= 2:
        vol["Target"] = spec
        vol["Type"] = "volume"
        return vol
    parts = spec.split(":")
    n = len(parts)
    for i, part in enumerate(parts):
        end = i == n - 1
        if part == "":
            _populate_type(vol)
            raise VolumeSpecError("invalid spec: %s: empty section between colons" % spec)
        if vol["Source"] == "" and end and not vol["Target"]:
            vol["Target"] = part
        elif vol["Source"] == "":
            vol["Source"] = part
        elif vol["Target"] == "":
            vol["Target"] = part
        elif not end:
            _populate_type(vol)
            raise VolumeSpecError("invalid spec: %s: too many colons" % spec)
        else:
            for opt in part.split(","):
                if opt == "ro":
                    vol["ReadOnly"] = True
                elif opt == "rw":
                    vol["ReadOnly"] = False
    _populate_type(vol)
    return vol


def _populate_type(vol):
    if vol["Source"] == "":
        vol["Type"] = "volume"
    elif _is_file_path(vol["Source"]):
        vol["Type"] = "bind"
    else:
        vol["Type"] = "volume"


def split_volumes(values, cwd=None):
    """run/create's -v values -> (HostConfig.Binds, Config.Volumes), as
    docker's parse() splits them: a spec with a source is a bind (a host path
    starting with "." made absolute), one without is an anonymous volume."""
    import os
    binds, volumes = [], {}
    for v in values:
        parsed = parse_volume_spec(v)
        if parsed["Source"]:
            to_bind = v
            if parsed["Type"] == "bind" and ":" in v:
                host, target = v.split(":", 1)
                if not host.startswith("/") and host.startswith("."):
                    host = os.path.normpath(os.path.join(cwd or os.getcwd(), host))
                to_bind = host + ":" + target
            binds.append(to_bind)
        else:
            volumes[v] = {}
    return binds, volumes


# --- --mount (docker/cli opts/mount.go) ---------------------------------------------------


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(val):
    if val in _TRUE:
        return True
    if val in _FALSE:
        return False
    raise ValueError


def parse_mount(value):
    """One --mount value -> a HostConfig.Mounts entry; ValueError in docker's words."""
    import csv
    import os
    try:
        fields = next(csv.reader([value], strict=True))
    except (csv.Error, StopIteration) as e:
        raise ValueError(str(e)) from None
    m = {"Type": "volume"}

    def vopts():
        o = m.setdefault("VolumeOptions", {"Labels": {}})
        o.setdefault("DriverConfig", {})
        return o

    def bopts():
        return m.setdefault("BindOptions", {})

    def topts():
        return m.setdefault("TmpfsOptions", {})

    for field in fields:
        key, eq, val = field.partition("=")
        if not eq:
            if key in ("readonly", "ro"):
                m["ReadOnly"] = True
            elif key == "volume-nocopy":
                vopts()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bopts()["NonRecursive"] = True
            else:
                raise ValueError("invalid field '%s' must be a key=value pair" % field)
            continue
        try:
            if key == "type":
                m["Type"] = val.lower()
            elif key in ("source", "src"):
                m["Source"] = val
                if val == "." or val.startswith("./"):
                    m["Source"] = os.path.abspath(val)
            elif key in ("target", "dst", "destination"):
                m["Target"] = val
            elif key in ("readonly", "ro"):
                m["ReadOnly"] = _go_bool(val)
            elif key == "consistency":
                m["Consistency"] = val.lower()
            elif key == "bind-propagation":
                bopts()["Propagation"] = val.lower()
            elif key == "bind-nonrecursive":
                bopts()["NonRecursive"] = _go_bool(val)
            elif key == "bind-recursive":
                if val == "enabled":
                    bopts()
                elif val == "disabled":
                    bopts()["NonRecursive"] = True
                elif val == "writable":
                    bopts()["ReadOnlyNonRecursive"] = True
                elif val == "readonly":
                    bopts()["ReadOnlyForceRecursive"] = True
                else:
                    raise ValueError("invalid value for %s: %s (must be \"enabled\", \"disabled\", "
                                     "\"writable\", or \"readonly\")" % (key, val))
            elif key == "bind-create-mountpoint":
                bopts()["CreateMountpoint"] = _go_bool(val)
            elif key == "volume-nocopy":
                try:
                    vopts()["NoCopy"] = _go_bool(val)
                except ValueError:
                    raise ValueError("invalid value for volume-nocopy: %s" % val) from None
            elif key == "volume-label":
                k, _, v = val.partition("=")
                if k:
                    vopts()["Labels"][k] = v
            elif key == "volume-driver":
                vopts()["DriverConfig"]["Name"] = val
            elif key == "volume-opt":
                k, _, v = val.partition("=")
                opts = vopts()["DriverConfig"].setdefault("Options", {})
                if k:
                    opts[k] = v
            elif key == "volume-subpath":
                vopts()["Subpath"] = val
            elif key == "tmpfs-size":
                from cli.units import ram_in_bytes
                try:
                    topts()["SizeBytes"] = ram_in_bytes(val)
                except ValueError:
                    raise ValueError() from None
            elif key == "tmpfs-mode":
                try:
                    mode = int(val, 8) if val[:1] not in "+-_" and "_" not in val else -1
                except ValueError:
                    mode = -1
                if not 0 <= mode < (1 << 32):
                    raise ValueError()
                topts()["Mode"] = mode
            else:
                raise ValueError("unexpected key '%s' in '%s'" % (key, field))
        except ValueError as e:
            if str(e):
                raise
            raise ValueError("invalid value for %s: %s" % (key, val)) from None
    if not m.get("Type"):
        raise ValueError("type is required")
    if not m.get("Target"):
        raise ValueError("target is required")
    if "VolumeOptions" in m and m["Type"] != "volume":
        raise ValueError("cannot mix 'volume-*' options with mount type '%s'" % m["Type"])
    if "BindOptions" in m and m["Type"] != "bind":
        raise ValueError("cannot mix 'bind-*' options with mount type '%s'" % m["Type"])
    if "TmpfsOptions" in m and m["Type"] != "tmpfs":
        raise ValueError("cannot mix 'tmpfs-*' options with mount type '%s'" % m["Type"])
    return m


# --- volume create ------------------------------------------------------------------------


def cmd__volume_create(ctx, opts, args):
    name = opts["name"] or ""
    if args:
        if name and name != args[0]:
            raise CLIError("conflicting options: either specify --name or provide positional arg, "
                           "not both")
        name = args[0]
    labels = {}
    for lab in opts["label"]:
        k, _, v = lab.partition("=")
        labels[k] = v
    driver_opts = {}
    for o in opts["opt"]:
        k, _, v = o.partition("=")
        driver_opts[k] = v
    body = {"Name": name, "Driver": opts["driver"] or "local", "DriverOpts": driver_opts,
            "Labels": labels}
    vol = ctx.client.post("/volumes/create", None, body) or {}
    ctx.out(vol.get("Name", "") + "\n")
    return 0


# --- volume ls ----------------------------------------------------------------------------


_VOLUME_HEADERS = {
    "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED",
}


class VolumeRow(TableRow):
    tmpl_type = "*formatter.volumeContext"
    HEADERS = _VOLUME_HEADERS
    FIELDS = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name", "Scope",
              "Size", "Status")

    def __init__(self, v):
        self.v = v

    def tmpl_field(self, name):
        if name in ("Availability", "Group", "Status"):
            return "N/A" if name != "Group" else ""
        return super().tmpl_field(name)

    def label(self, name):
        return (self.v.get("Labels") or {}).get(name, "")

    def f_Name(self):
        return self.v.get("Name", "")

    def f_Driver(self):
        return self.v.get("Driver", "")

    def f_Scope(self):
        return self.v.get("Scope", "")

    def f_Mountpoint(self):
        return self.v.get("Mountpoint", "")

    def f_CreatedAt(self):
        return self.v.get("CreatedAt", "")

    def f_Labels(self):
        labels = self.v.get("Labels") or {}
        return ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels))

    def f_Links(self):
        u = self.v.get("UsageData")
        return str(u["RefCount"]) if u and u.get("RefCount", -1) >= 0 else "N/A"

    def f_Size(self):
        u = self.v.get("UsageData")
        if not u or u.get("Size", -1) < 0:
            return "N/A"
        from cli.units import human_size
        return human_size(u["Size"])


def _natural_key(s):
    import re
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", s)]


def cmd__volume_ls(ctx, opts, args):
    from cli.containers import filters_json, template_errors, HeaderCtx
    rep = ctx.client.get("/volumes", {"filters": filters_json(list(opts["filter"]))}) or {}
    vols = sorted(rep.get("Volumes") or [], key=lambda v: _natural_key(v.get("Name", "")))
    for w in rep.get("Warnings") or []:
        ctx.err(w + "\n")
    rows = [VolumeRow(v) for v in vols]
    fmt = opts["format"] or ""
    if opts["quiet"]:
        if fmt:
            ctx.err("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
        ctx.out("".join(r.f_Name() + "\n" for r in rows))
        return 0
    if fmt in ("", "table"):
        from cli.containers import plain_table
        ctx.out(plain_table(("Driver", "Name"), rows, _VOLUME_HEADERS))
        return 0
    from cli.template import render_rows
    ctx.out(template_errors(lambda: render_rows(fmt, rows, HeaderCtx(_VOLUME_HEADERS))))
    return 0


# --- volume inspect, rm, prune ---------------------------------------------------------------


def cmd__volume_inspect(ctx, opts, args):
    from cli.client import APIError
    raws, errors = [], []
    for name in args:
        try:
            resp = ctx.client.request("GET", "/volumes/%s" % _q(name))
            raws.append(resp.read().decode("utf-8", "replace").strip())
            resp.close()
        except APIError as e:
            errors.append(str(e))
    from cli.containers import print_inspect
    print_inspect(ctx, raws, opts["format"], errors)
    return 0


def cmd__volume_rm(ctx, opts, args):
    from cli.client import APIError
    errors = []
    for name in args:
        try:
            ctx.client.delete("/volumes/%s" % _q(name), {"force": "1" if opts["force"] else None})
        except APIError as e:
            errors.append(str(e))
            continue
        ctx.out(name + "\n")
        sys.stdout.flush()
    if errors:
        raise CLIError("\n".join(errors))
    return 0


_PRUNE_ALL_WARNING = ("WARNING! This will remove all local volumes not used by at least one "
                      "container.\nAre you sure you want to continue?")


def cmd__volume_prune(ctx, opts, args):
    from cli.containers import filters_json
    from cli.images import confirm
    from cli.units import human_size
    filters = list(opts["filter"])
    if opts["all"]:
        if any(f.split("=", 1)[0].strip().lower() == "all" for f in filters):
            raise CLIError("conflicting options: cannot specify both --all and --filter all=1")
        filters.append("all=true")
    # the daemon speaks API 1.41: every unused volume goes, as docker warns then
    if not opts["force"] and not confirm(ctx, _PRUNE_ALL_WARNING):
        return 0
    rep = ctx.client.post("/volumes/prune", {"filters": filters_json(filters)}) or {}
    out = []
    deleted = rep.get("VolumesDeleted") or []
    if deleted:
        out.append("Deleted Volumes:\n")
        out.extend(d + "\n" for d in deleted)
        out.append("\n")
    out.append("Total reclaimed space: %s\n" % human_size(rep.get("SpaceReclaimed") or 0))
    ctx.out("".join(out))
    return 0
