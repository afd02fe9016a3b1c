"""Image commands: images, pull, push, import, rmi, tag, save, load, history,
image prune (and the pull used by run/create)."""

import sys

from cli.flags import Spec, Flag, FORMAT_TABLE_HELP
from cli.fmt import TableRow
from cli.main import CLIError


def spec(name):
    return _SPECS[name]()


_SPECS = {
    "images": lambda: Spec("images", "images [OPTIONS] [REPOSITORY[:TAG]]", "List images", [
        Flag("all", "a", "bool", "Show all images (default hides intermediate images)"),
        Flag("digests", None, "bool", "Show digests"),
        Flag("filter", "f", "filter", "Filter output based on conditions provided"),
        Flag("format", None, "string", FORMAT_TABLE_HELP),
        Flag("no-trunc", None, "bool", "Don't truncate output"),
        Flag("quiet", "q", "bool", "Only show image IDs"),
    ], args=("range", 0, 1)),
    "pull": lambda: Spec("pull", "pull [OPTIONS] NAME[:TAG|@DIGEST]",
                         "Download an image from a registry", [
                             Flag("platform", None, "string",
                                  "Set platform if server is multi-platform capable"),
                             Flag("quiet", "q", "bool", "Suppress verbose output"),
                         ], args=("exact", 1)),
    "push": lambda: Spec("push", "push [OPTIONS] NAME[:TAG]",
                         "Upload an image to a registry", [
                             Flag("all-tags", "a", "bool", "Push all tags of an image to the repository"),
                             Flag("quiet", "q", "bool", "Suppress verbose output"),
                         ], args=("exact", 1)),
    "import": lambda: Spec("import", "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                           "Import the contents from a tarball to create a filesystem image", [
                               Flag("change", "c", "list",
                                    "Apply Dockerfile instruction to the created image"),
                               Flag("message", "m", "string", "Set commit message for imported image"),
                               Flag("platform", None, "string",
                                    "Set platform if server is multi-platform capable"),
                           ], args=("range", 1, 2)),
    "rmi": lambda: Spec("rmi", "rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
        Flag("force", "f", "bool", "Force removal of the image"),
        Flag("no-prune", None, "bool", "Do not delete untagged parents"),
    ], args=("min", 1)),
    "tag": lambda: Spec("tag", "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                        "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", args=("exact", 2)),
    "save": lambda: Spec("save", "save [OPTIONS] IMAGE [IMAGE...]",
                         "Save one or more images to a tar archive (streamed to STDOUT by default)", [
                             Flag("output", "o", "string", "Write to a file, instead of STDOUT"),
                         ], args=("min", 1)),
    "load": lambda: Spec("load", "load [OPTIONS]", "Load an image from a tar archive or STDIN", [
        Flag("input", "i", "string", "Read from tar archive file, instead of STDIN"),
        Flag("quiet", "q", "bool", "Suppress the load output"),
    ], args=("exact", 0)),
    "history": lambda: Spec("history", "history [OPTIONS] IMAGE", "Show the history of an image", [
        Flag("format", None, "string", FORMAT_TABLE_HELP),
        Flag("human", "H", "bool", "Print sizes and dates in human readable format", default=True),
        Flag("no-trunc", None, "bool", "Don't truncate output"),
        Flag("quiet", "q", "bool", "Only show image IDs"),
    ], args=("exact", 1)),
    "_image_prune": lambda: Spec("_image_prune", "prune [OPTIONS]", "Remove unused images", [
        Flag("all", "a", "bool", "Remove all unused images, not just dangling ones"),
        Flag("filter", None, "filter", 'Provide filter values (e.g. "until=<timestamp>")'),
        Flag("force", "f", "bool", "Do not prompt for confirmation"),
    ], args=("exact", 0)),
}


def _q(name):
    from cli.client import quote
    return quote(name)


# --- the JSON progress stream (jsonmessage.DisplayJSONMessagesStream, non-terminal) ------


class StreamFailed(Exception):
    pass


def display_messages(messages, out):
    """Print a pull/import progress stream the way docker does on a non-terminal.
    Raises StreamFailed with the daemon's message on an error message."""
    from cli.units import rfc3339_nano_fixed
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("error") or m.get("errorDetail"):
            detail = m.get("errorDetail") or {}
            raise StreamFailed(detail.get("message") or m.get("error") or "unknown error")
        progress = m.get("progressDetail") or {}
        if progress and ((progress.get("current") or 0) > 0 or (progress.get("total") or 0) > 0):
            continue  # progress bars are not shown on a non-terminal
        if out is None:
            continue
        line = []
        if m.get("timeNano"):
            t = m["timeNano"]
            line.append(rfc3339_nano_fixed(t // 10 ** 9, t % 10 ** 9) + " ")
        elif m.get("time"):
            line.append(rfc3339_nano_fixed(m["time"]) + " ")
        if m.get("id"):
            line.append("%s: " % m["id"])
        if m.get("from"):
            line.append("(from %s) " % m["from"])
        if m.get("progress") and not progress:
            line.append("%s %s" % (m.get("status", ""), m["progress"]))
        elif m.get("stream"):
            line.append(m["stream"])
        else:
            line.append("%s\n" % m.get("status", ""))
        if m.get("stream") or m.get("progress"):
            s = "".join(line)
            out.write(s if m.get("stream") else s + "\n")
        else:
            out.write("".join(line))
        out.flush()


def show_stream(messages, out):
    """Render a JSON progress stream: docker's progress bars when `out` is a
    terminal (cli.progress), plain lines otherwise (display_messages)."""
    if out is not None and _isatty(out):
        from cli import progress
        try:
            progress.render(messages, out, terminal=True, width=progress.terminal_width(out.fileno()))
        except progress.StreamFailed as e:
            raise StreamFailed(str(e)) from None
        return
    display_messages(messages, out)


def _isatty(f):
    try:
        return f.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _stream_progress(ctx, path, query, image, out):
    """POST a pull or push with the registry credentials of `image`; render
    the JSON progress stream to `out` (None: quiet).  CLIError on failure."""
    from cli.auth import registry_header
    from cli.client import APIError
    try:
        resp = ctx.client.request("POST", path, query,
                                  headers={"X-Registry-Auth": registry_header(image)})
    except APIError as e:
        raise CLIError(str(e)) from None
    try:
        show_stream(resp.iter_json(), out)
    except StreamFailed as e:
        raise CLIError(str(e)) from None
    finally:
        resp.close()


def _checked_reference(image):
    from cli import reference
    try:
        reference.validate(image)
    except reference.InvalidReference as e:
        raise CLIError(str(e)) from None
    return reference.split(image)


def _default_tag_notice(ctx, quiet):
    if not quiet:
        ctx.out("Using default tag: latest\n")
        sys.stdout.flush()


def pull_image(ctx, image, out, platform=None):
    """POST /images/create?fromImage=...&tag=...; progress to `out` (None: quiet).
    Raises CLIError (message only) when the pull fails."""
    from cli import reference
    name, tag, digest = reference.split(image)
    q = {"fromImage": reference.normalize_name(name),
         "tag": digest if digest is not None else (tag or "latest")}
    if platform:
        q["platform"] = platform
    _stream_progress(ctx, "/images/create", q, image, out)


def cmd_pull(ctx, opts, args):
    from cli import reference
    image = args[0]
    _, tag, digest = _checked_reference(image)
    if tag is None and digest is None:
        _default_tag_notice(ctx, opts["quiet"])
    pull_image(ctx, image, None if opts["quiet"] else sys.stdout, opts["platform"])
    ctx.out(reference.normalize(image) + "\n")
    return 0


def cmd_push(ctx, opts, args):
    """POST /images/{name}/push?tag=; progress like pull's."""
    from cli import reference
    image = args[0]
    name, tag, digest = _checked_reference(image)
    if digest is not None:
        raise CLIError("invalid reference format: push takes NAME[:TAG], not a digest")
    if tag is None and not opts["all_tags"]:
        _default_tag_notice(ctx, opts["quiet"])
        tag = "latest"
    _stream_progress(ctx, "/images/%s/push" % _q(reference.normalize_name(name)),
                     {"tag": tag} if tag else {}, image, None if opts["quiet"] else sys.stdout)
    if opts["quiet"]:
        ctx.out(reference.normalize(image) + "\n")
    return 0


# --- images ------------------------------------------------------------------------------

_IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


class ImageRow(TableRow):
    tmpl_type = "*formatter.imageContext"
    HEADERS = _IMAGE_HEADERS
    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, img, repo, tag, digest, trunc, now):
        self.i = img
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = now

    def f_ID(self):
        from cli.fmt import truncate_id
        iid = self.i.get("Id", "")
        return truncate_id(iid) if self.trunc else iid

    def f_Repository(self):
        return self.repo

    def f_Tag(self):
        return self.tag

    def f_Digest(self):
        return self.digest

    def f_CreatedSince(self):
        from cli.units import human_duration
        return human_duration(self.now - (self.i.get("Created") or 0)) + " ago"

    def f_CreatedAt(self):
        from cli.units import go_time_string
        return go_time_string(self.i.get("Created") or 0)

    def f_Size(self):
        from cli.units import human_size
        return human_size(self.i.get("Size") or 0, 3)

    def f_Containers(self):
        c = self.i.get("Containers", -1)
        return "N/A" if c is None or c == -1 else str(c)

    def f_VirtualSize(self):
        from cli.units import human_size
        v = self.i.get("VirtualSize")
        return human_size(self.i.get("Size") or 0 if v is None else v)

    def f_SharedSize(self):
        from cli.units import human_size
        s = self.i.get("SharedSize", -1)
        return "N/A" if s is None or s == -1 else human_size(s, 3)

    def f_UniqueSize(self):
        from cli.units import human_size
        s = self.i.get("SharedSize", -1)
        size = self.i.get("Size", -1)
        if s is None or s == -1 or size == -1:
            return "N/A"
        return human_size(size - s, 3)


def image_rows(images, digests, trunc, now):
    """docker's imageFormat/imageFormatTaggedAndDigest: one row per repository:tag."""
    from cli import reference
    rows = []
    for img in images:
        tags = img.get("RepoTags") or []
        dgsts = img.get("RepoDigests") or []
        dangling = (not tags and not dgsts) or (tags == ["<none>:<none>"] and
                                                dgsts in ([], ["<none>@<none>"]))
        if dangling:
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        repo_tags = {}
        repo_digests = {}
        for ref in tags:
            name, tag, _ = reference.split(ref)
            if tag is None or ref == "<none>:<none>":
                continue
            repo_tags.setdefault(reference.familiar_name(name), []).append(tag)
        for ref in dgsts:
            name, _, digest = reference.split(ref)
            if digest is None or ref == "<none>@<none>":
                continue
            repo_digests.setdefault(reference.familiar_name(name), []).append(digest)
        for repo, rtags in repo_tags.items():
            ds = repo_digests.pop(repo, [])
            if not digests:
                ds = []
            for tag in rtags:
                if not ds:
                    rows.append(ImageRow(img, repo, tag, "<none>", trunc, now))
                    continue
                for d in ds:
                    rows.append(ImageRow(img, repo, tag, d, trunc, now))
        for repo, ds in repo_digests.items():
            if digests:
                for d in ds:
                    rows.append(ImageRow(img, repo, "<none>", d, trunc, now))
            else:
                rows.append(ImageRow(img, repo, "<none>", "", trunc, now))
    return rows


def cmd_images(ctx, opts, args):
    from cli.containers import filters_json, template_errors, HeaderCtx
    filters = list(opts["filter"])
    if args:
        filters.append("reference=" + args[0])
    q = {"all": "1" if opts["all"] else None, "filters": filters_json(filters)}
    images = ctx.client.get("/images/json", q) or []
    trunc = not opts["no_trunc"]
    fmt = opts["format"] or ""
    import time
    rows = image_rows(images, opts["digests"], trunc, time.time())
    if opts["quiet"]:
        if fmt:
            ctx.err("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
        ctx.out("".join(r.f_ID() + "\n" for r in rows))
        return 0
    if fmt in ("", "table"):
        from cli.containers import plain_table
        fields = ("Repository", "Tag") + (("Digest",) if opts["digests"] else ()) + \
            ("ID", "CreatedSince", "Size")
        ctx.out(plain_table(fields, rows, _IMAGE_HEADERS))
        return 0
    from cli.template import render_rows
    ctx.out(template_errors(lambda: render_rows(fmt, rows, HeaderCtx(_IMAGE_HEADERS))))
    return 0


# --- rmi, tag -------------------------------------------------------------------------------


def cmd_rmi(ctx, opts, args):
    from cli.client import APIError
    q = {"force": "1" if opts["force"] else None, "noprune": "1" if opts["no_prune"] else None}
    errors = []
    fatal = False
    for name in args:
        try:
            dels = ctx.client.delete("/images/%s" % _q(name), q) or []
        except APIError as e:
            if not e.not_found:
                fatal = True
            errors.append(str(e))
            continue
        out = []
        for d in dels:
            if d.get("Deleted"):
                out.append("Deleted: %s\n" % d["Deleted"])
            else:
                out.append("Untagged: %s\n" % d.get("Untagged", ""))
        ctx.out("".join(out))
        sys.stdout.flush()
    if errors:
        msg = "\n".join(errors)
        if not opts["force"] or fatal:
            raise CLIError(msg)
        ctx.err(msg + "\n")
    return 0


def cmd_tag(ctx, opts, args):
    from cli import reference
    src, target = args
    for r in (src, target):
        try:
            reference.validate(r)
        except reference.InvalidReference as e:
            raise CLIError(str(e)) from None
    name, tag, digest = reference.split(target)
    if digest is not None:
        raise CLIError("refusing to create a tag with a digest reference")
    ctx.client.request("POST", "/images/%s/tag" % _q(src),
                       {"repo": reference.normalize_name(name), "tag": tag or "latest"}).close()
    return 0


# --- import ----------------------------------------------------------------------------------


def _file_chunks(f, size=1 << 16):
    while True:
        data = f.read(size)
        if not data:
            break
        yield data


def cmd_import(ctx, opts, args):
    src = args[0]
    q = {}
    body = None
    f = None
    if len(args) > 1:
        from cli import reference
        ref = args[1]
        try:
            reference.validate(ref)
        except reference.InvalidReference as e:
            raise CLIError(str(e)) from None
        name, tag, digest = reference.split(ref)
        q["repo"] = name
        if tag:
            q["tag"] = tag
    if src == "-":
        q["fromSrc"] = "-"
        body = _file_chunks(sys.stdin.buffer)
    elif src.startswith(("http://", "https://")):
        q["fromSrc"] = src
    else:
        q["fromSrc"] = "-"
        try:
            f = open(src, "rb")
        except OSError as e:
            raise CLIError("open %s: %s" % (src, (e.strerror or str(e)).lower())) from None
        body = _file_chunks(f)
    if opts["message"]:
        q["message"] = opts["message"]
    if opts["change"]:
        q["changes"] = opts["change"]
    if opts["platform"]:
        q["platform"] = opts["platform"]
    items = sorted(q.items())
    try:
        resp = ctx.client.request("POST", "/images/create", items, body=body,
                                  content_type="application/x-tar" if body is not None else None)
    finally:
        if f is not None:
            f.close()
    try:
        show_stream(resp.iter_json(), sys.stdout)
    except StreamFailed as e:
        raise CLIError(str(e)) from None
    finally:
        resp.close()
    return 0


# --- save, load ------------------------------------------------------------------------------


def _validate_output_path(path):
    """docker's command.ValidateOutputPath."""
    import os
    import stat
    d = os.path.dirname(os.path.normpath(path))
    if d and d != ".":
        try:
            os.stat(d)
        except FileNotFoundError:
            raise CLIError("failed to save image: invalid output path: stat %s: no such file or "
                           "directory" % d) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise CLIError("failed to save image: %s" % e) from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise CLIError('failed to save image: invalid output path: "%s" must be a directory '
                       "or a regular file" % path)


def _copy_to_file(chunks, path):
    """docker's command.CopyToFile: a temp file in the same directory, renamed
    into place once complete (a failed save leaves no partial file)."""
    import os
    import tempfile
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".docker_temp_")
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask():
    import os
    m = os.umask(0)
    os.umask(m)
    return m


def cmd_save(ctx, opts, args):
    out_path = opts["output"]
    if not out_path and _isatty(sys.stdout):
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if out_path:
        _validate_output_path(out_path)
    resp = ctx.client.request("GET", "/images/get", [("names", n) for n in args])
    try:
        if out_path:
            _copy_to_file(resp.iter_chunks(), out_path)
        else:
            sys.stdout.flush()
            w = sys.stdout.buffer
            for c in resp.iter_chunks():
                w.write(c)
            w.flush()
    finally:
        resp.close()
    return 0


def cmd_load(ctx, opts, args):
    f = None
    if opts["input"]:
        try:
            f = open(opts["input"], "rb")
        except OSError as e:
            raise CLIError("open %s: %s" % (opts["input"], (e.strerror or str(e)).lower())) from None
        body = _file_chunks(f)
    else:
        if _isatty(sys.stdin):
            raise CLIError("requested load from stdin, but stdin is empty")
        body = _file_chunks(sys.stdin.buffer)
    quiet = opts["quiet"] or not _isatty(sys.stdout)
    try:
        resp = ctx.client.request("POST", "/images/load", {"quiet": "1" if quiet else None},
                                  body=body, content_type="application/x-tar")
    finally:
        if f is not None:
            f.close()
    try:
        if "json" in (resp.headers.get("content-type") or ""):
            show_stream(resp.iter_json(), sys.stdout)
        else:
            for c in resp.iter_chunks():
                sys.stdout.buffer.write(c)
    except StreamFailed as e:
        raise CLIError(str(e)) from None
    finally:
        resp.close()
    return 0


# --- history ---------------------------------------------------------------------------------

_HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                    "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


class HistoryRow(TableRow):
    tmpl_type = "*image.historyContext"
    HEADERS = _HISTORY_HEADERS
    FIELDS = ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")

    def __init__(self, h, trunc, human, now):
        self.h = h
        self.trunc = trunc
        self.human = human
        self.now = now

    def f_ID(self):
        from cli.fmt import truncate_id
        i = self.h.get("Id", "")
        return truncate_id(i) if self.trunc else i

    def f_CreatedAt(self):
        from cli.units import rfc3339_local
        return rfc3339_local(self.h.get("Created") or 0)

    def f_CreatedSince(self):
        if not self.human:
            return self.f_CreatedAt()
        from cli.units import human_duration
        return human_duration(self.now - (self.h.get("Created") or 0)) + " ago"

    def f_CreatedBy(self):
        from cli.fmt import ellipsis
        by = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(by, 45) if self.trunc else by

    def f_Size(self):
        size = self.h.get("Size") or 0
        if self.human:
            from cli.units import human_size
            return human_size(size, 3)
        return str(size)

    def f_Comment(self):
        return self.h.get("Comment") or ""


def cmd_history(ctx, opts, args):
    import time
    from cli.containers import template_errors, HeaderCtx
    hist = ctx.client.get("/images/%s/history" % _q(args[0])) or []
    rows = [HistoryRow(h, not opts["no_trunc"], opts["human"], time.time()) for h in hist]
    fmt = opts["format"] or ""
    if opts["quiet"]:
        ctx.out("".join(r.f_ID() + "\n" for r in rows))
        return 0
    if fmt in ("", "table"):
        from cli.containers import plain_table
        created = "CreatedSince" if opts["human"] else "CreatedAt"  # docker swaps the column
        ctx.out(plain_table(("ID", created, "CreatedBy", "Size", "Comment"), rows,
                            _HISTORY_HEADERS))
        return 0
    from cli.template import render_rows
    ctx.out(template_errors(lambda: render_rows(fmt, rows, HeaderCtx(_HISTORY_HEADERS))))
    return 0


# --- image prune -----------------------------------------------------------------------------

_PRUNE_ALL_WARNING = ("WARNING! This will remove all images without at least one container "
                      "associated to them.\nAre you sure you want to continue?")
_PRUNE_DANGLING_WARNING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"


def confirm(ctx, message):
    """docker's prompt.Confirm: "<message> [y/N] ", one line from stdin."""
    ctx.out(message + " [y/N] ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.strip().lower() == "y"


def cmd__image_prune(ctx, opts, args):
    from cli.containers import filters_json
    from cli.units import human_size
    filters = list(opts["filter"]) + ["dangling=%s" % ("false" if opts["all"] else "true")]
    if not opts["force"]:
        if not confirm(ctx, _PRUNE_ALL_WARNING if opts["all"] else _PRUNE_DANGLING_WARNING):
            return 0
    rep = ctx.client.post("/images/prune", {"filters": filters_json(filters)}) or {}
    out = []
    deleted = rep.get("ImagesDeleted") or []
    if deleted:
        out.append("Deleted Images:\n")
        for d in deleted:
            if d.get("Untagged"):
                out.append("untagged: %s\n" % d["Untagged"])
            if d.get("Deleted"):
                out.append("deleted: %s\n" % d["Deleted"])
        out.append("\n")
    out.append("Total reclaimed space: %s\n" % human_size(rep.get("SpaceReclaimed") or 0))
    ctx.out("".join(out))
    return 0
