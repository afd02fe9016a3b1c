"""Image commands: images, pull, import, rmi, tag (and the pull used by run/create)."""

import sys

from cli.flags import Spec, Flag, FORMAT_TABLE_HELP
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
        display_messages(resp.iter_json(), out)
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


class ImageRow:
    tmpl_type = "*formatter.imageContext"
    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, img, repo, tag, digest, trunc, now):
        self.i = img
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = now

    def tmpl_field(self, name):
        if name not in _IMAGE_HEADERS:
            raise KeyError(name)
        return getattr(self, "f_" + name)()

    def tmpl_json(self):
        from cli.fmt import go_json
        return go_json({k: self.tmpl_field(k) for k in self.FIELDS})

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
        display_messages(resp.iter_json(), sys.stdout)
    except StreamFailed as e:
        raise CLIError(str(e)) from None
    finally:
        resp.close()
    return 0
