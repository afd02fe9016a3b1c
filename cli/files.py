"""Files of containers: cp (both ways), diff, export.

`cp` follows the docker CLI's rules (moby pkg/archive copy.go): the daemon
stats the container side (HEAD .../archive), the archive's top entry is
renamed to the destination's name where the destination is a new name or an
existing file, and the archive is extracted into the destination's directory.
"""

import base64
import json
import os
import posixpath
import stat as st_
import sys
import tarfile

from cli.flags import Flag, Spec
from cli.main import CLIError

SPECS = {
    "cp": lambda: Spec("cp", "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\ttrioctr cp [OPTIONS] "
                       "SRC_PATH|- CONTAINER:DEST_PATH",
                       "Copy files/folders between a container and the local filesystem", [
                           Flag("archive", "a", "bool", "Archive mode (copy all uid/gid information)"),
                           Flag("follow-link", "L", "bool", "Always follow symbol link in SRC_PATH"),
                           Flag("quiet", "q", "bool",
                                "Suppress progress output during copy. Progress output is "
                                "automatically suppressed if no terminal is attached"),
                       ], args=("exact", 2)),
    "diff": lambda: Spec("diff", "diff CONTAINER",
                         "Inspect changes to files or directories on a container's filesystem",
                         args=("exact", 1)),
    "export": lambda: Spec("export", "export [OPTIONS] CONTAINER",
                           "Export a container's filesystem as a tar archive", [
                               Flag("output", "o", "string", "Write to a file, instead of STDOUT"),
                           ], args=("exact", 1)),
}

KINDS = {0: "C", 1: "A", 2: "D"}


def spec(name):
    return SPECS[name]()


def _q(name):
    from cli.client import quote
    return quote(name)


# -- diff, export ---------------------------------------------------------------------------
def cmd_diff(ctx, opts, args):
    changes = ctx.client.get("/containers/%s/changes" % _q(args[0]))
    for c in changes or []:
        ctx.out("%s %s\n" % (KINDS.get(c.get("Kind"), "?"), c.get("Path", "")))
    return 0


def cmd_export(ctx, opts, args):
    out_path = opts["output"]
    if not out_path and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", "/containers/%s/export" % _q(args[0]))
    try:
        if out_path:
            tmp = out_path + ".tmp-trioctr"
            try:
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_chunks():
                        f.write(chunk)
                os.replace(tmp, out_path)
            except OSError as e:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise CLIError("failed to export container: %s" % (e.strerror or e)) from None
        else:
            sys.stdout.flush()
            out = sys.stdout.buffer
            for chunk in resp.iter_chunks():
                out.write(chunk)
            out.flush()
    finally:
        resp.close()
    return 0


# -- cp ---------------------------------------------------------------------------------------
def _split(arg):
    """docker's splitCpArg: (container, path); a local path may hold a colon
    when it starts with '/' or '.'."""
    if arg.startswith(("/", ".")):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep:
        return "", arg
    return container, path


def _abs_container_path(p):
    return p if p.startswith("/") else "/" + p


def _asserts_dir(p):
    return p.endswith("/") or p.endswith("/.") or p == "."


def _stat(ctx, container, path):
    """The X-Docker-Container-Path-Stat of a path in a container (HEAD
    .../archive), or None when the daemon says no (a HEAD answer has no body
    to tell why)."""
    from cli.client import APIError
    try:
        resp = ctx.client.request("HEAD", "/containers/%s/archive" % _q(container), [("path", path)])
    except APIError:
        return None
    resp.close()
    raw = resp.headers.get("x-docker-container-path-stat", "")
    try:
        return json.loads(base64.b64decode(raw))
    except ValueError:
        raise CLIError("unable to decode container path stat header: %r" % raw) from None


GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


def _human(n):
    """go-units HumanSize: 3 significant digits, decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    size = float(n)
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return "%.4g%s" % (float("%.3g" % size), units[i])


def _report(ctx, opts, size, dest):
    if opts["quiet"] or not sys.stderr.isatty():
        return
    ctx.err("Successfully copied %s to %s\n" % (_human(size), dest))


def cmd_cp(ctx, opts, args):
    src_c, src = _split(args[0])
    dst_c, dst = _split(args[1])
    if src_c and dst_c:
        raise CLIError("copying between containers is not supported")
    if not src_c and not dst_c:
        raise CLIError("must specify at least one container source")
    if not (src if src_c else dst):
        raise CLIError("filepath cannot be empty")  # docker: an empty container path
    if src_c:
        return _copy_from(ctx, opts, src_c, src, dst)
    return _copy_to(ctx, opts, src, dst_c, dst)


# ---- out of a container
def _rebase(members_src, old, new):
    """Rename the first path component ``old`` of every entry to ``new``."""
    for m in members_src:
        for attr in ("name", "linkname") if m.islnk() else ("name",):
            v = getattr(m, attr)
            head, sep, rest = v.lstrip("/").partition("/")
            if head == old or (old == "." and head == "" and not rest):
                setattr(m, attr, new + sep + rest if new != "." else rest or ".")
        yield m


def _safe_local_extract(tf, dest_dir, members):
    """Extract into dest_dir as `tar` would for the docker CLI: no ownership
    change, never replacing a directory by a non-directory or the reverse,
    nothing written outside dest_dir."""
    real_dest = os.path.realpath(dest_dir)
    dirs = []
    for m in members:
        name = posixpath.normpath(m.name.lstrip("/")) if m.name.strip("/") else "."
        if name == ".." or name.startswith("../"):
            raise CLIError('"%s" is outside of "%s"' % (m.name, dest_dir))
        target = os.path.join(real_dest, name) if name != "." else real_dest
        parent = os.path.realpath(os.path.dirname(target)) if name != "." else os.path.dirname(real_dest)
        if name != "." and not (parent == real_dest or parent.startswith(real_dest.rstrip("/") + "/")):
            raise CLIError('"%s" is outside of "%s"' % (m.name, dest_dir))
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            raise CLIError("%s: not a directory" % os.path.dirname(target)) from None
        if st is not None:
            is_dir = st_.S_ISDIR(st.st_mode)
            if is_dir and not m.isdir():
                raise CLIError('cannot overwrite directory "%s" with non-directory "%s"' % (target, dest_dir))
            if not is_dir and m.isdir():
                raise CLIError('cannot overwrite non-directory "%s" with directory "%s"' % (target, dest_dir))
            if is_dir and name == ".":
                continue
            if not is_dir:
                os.unlink(target)
        if m.issym() or m.islnk():
            if m.islnk():
                lname = posixpath.normpath(m.linkname.lstrip("/"))
                if lname == ".." or lname.startswith("../"):
                    raise CLIError('invalid hardlink "%s" -> "%s"' % (m.name, m.linkname))
        m.name = name
        if m.islnk():
            m.linkname = posixpath.normpath(m.linkname.lstrip("/"))
        if m.isdir():
            dirs.append(m)
        tf.extract(m, real_dest, set_attrs=not m.isdir(), numeric_owner=True)
    for m in sorted(dirs, key=lambda x: x.name, reverse=True):
        path = os.path.join(real_dest, m.name)
        try:
            os.chmod(path, m.mode & 0o7777)
            os.utime(path, (m.mtime, m.mtime))
        except OSError:
            pass


class _NoChownTar(tarfile.TarFile):
    def chown(self, tarinfo, targetpath, numeric_owner):  # the docker CLI does not chown (NoLchown)
        pass


def _copy_from(ctx, opts, container, src, dst):
    from cli.client import APIError
    src = _abs_container_path(src)
    rebase_name = ""
    if opts["follow_link"]:
        stat = _stat(ctx, container, src)
        if stat is None:
            raise CLIError("Error: No such container:path: %s:%s" % (container, src))
        if stat.get("mode", 0) & GO_SYMLINK:
            link = stat.get("linkTarget") or src
            rebase_name = posixpath.basename(src.rstrip("/"))
            src = link
    try:
        resp = ctx.client.request("GET", "/containers/%s/archive" % _q(container), [("path", src)])
    except APIError as e:
        raise CLIError("Error response from daemon: %s" % e.message) from None
    try:
        stat = json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat", "")))
    except ValueError:
        stat = {}
    src_is_dir = bool(stat.get("mode", 0) & GO_DIR)
    try:
        if dst == "-":
            sys.stdout.flush()
            out = sys.stdout.buffer
            for chunk in resp.iter_chunks():
                out.write(chunk)
            out.flush()
            return 0
        return _extract_local(ctx, opts, resp, src, src_is_dir, rebase_name, dst)
    finally:
        resp.close()


class _ChunkReader:
    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""
        self.count = 0

    def read(self, n=-1):
        while n < 0 or len(self._buf) < n:
            chunk = next(self._it, b"")
            if not chunk:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        self.count += len(out)
        return out


def _extract_local(ctx, opts, resp, src, src_is_dir, rebase_name, dst):
    # moby's CopyInfoDestinationPath: follow the destination's symlinks
    dst_path = dst
    for _ in range(255):
        try:
            st = os.lstat(dst_path)
        except FileNotFoundError:
            st = None
            break
        except NotADirectoryError:
            raise CLIError("lstat %s: not a directory" % dst_path) from None
        if not st_.S_ISLNK(st.st_mode):
            break
        link = os.readlink(dst_path)
        dst_path = link if os.path.isabs(link) else os.path.join(os.path.dirname(dst_path), link)
    exists = st is not None
    if not exists:
        parent = os.path.dirname(dst_path.rstrip("/")) or "."
        if not os.path.isdir(parent):
            raise CLIError("lstat %s: no such file or directory" % os.path.abspath(parent)
                           if not os.path.exists(parent) else "lstat %s: not a directory" % parent)
    dst_is_dir = exists and st_.S_ISDIR(st.st_mode)
    src_base = rebase_name or posixpath.basename(src.rstrip("/")) or "/"
    if src.endswith("/.") or src == "/.":
        src_base = "."
    dst_dir, dst_base = os.path.dirname(dst_path.rstrip("/")) or ".", os.path.basename(dst_path.rstrip("/"))
    rename = None
    if dst_is_dir:
        into = dst_path
        if rebase_name:
            rename = (posixpath.basename(src.rstrip("/")), rebase_name)
    elif exists and src_is_dir:
        raise CLIError("cannot copy directory")
    elif exists:
        into, rename = dst_dir, (posixpath.basename(src.rstrip("/")), dst_base)
    elif src_is_dir:
        into, rename = dst_dir, (posixpath.basename(src.rstrip("/")) if src_base != "." else ".", dst_base)
    elif _asserts_dir(dst):
        raise CLIError("no such directory")
    else:
        into, rename = dst_dir, (posixpath.basename(src.rstrip("/")), dst_base)
    reader = _ChunkReader(resp.iter_chunks())
    try:
        with _NoChownTar.open(fileobj=reader, mode="r|") as tf:
            members = iter(tf)
            if rename is not None and rename[0] != rename[1]:
                members = _rebase(members, rename[0], rename[1])
            _safe_local_extract(tf, into, members)
    except tarfile.TarError as e:
        raise CLIError("failed to copy files: %s" % e) from None
    except OSError as e:
        raise CLIError("failed to copy files: %s" % e) from None
    _report(ctx, opts, reader.count, dst)
    return 0


# ---- into a container
def _counted(chunks, counter):
    for chunk in chunks:
        counter[0] += len(chunk)
        yield chunk


def _tar_local(src, top, follow):
    """A tar of the local path ``src`` whose top entry is named ``top``
    (None: the contents of the directory ``src`` with no top entry)."""
    import io

    class _Sink(io.RawIOBase):
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, b):
            self.parts.append(bytes(b))
            return len(b)

    sink = _Sink()
    tf = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, dereference=False)

    def drain():
        out = b"".join(sink.parts)
        sink.parts.clear()
        return out

    def add(path, arc, deref_top):
        st = os.stat(path) if deref_top else os.lstat(path)
        ti = tf.gettarinfo(path if not deref_top else os.path.realpath(path), arcname=arc)
        ti.uname = ti.gname = ""
        if st_.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                tf.addfile(ti, f)
        elif st_.S_ISSOCK(st.st_mode):
            return
        else:
            tf.addfile(ti)
        data = drain()
        if data:
            yield data
        if st_.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                yield from add(os.path.join(path, name), (arc.rstrip("/") + "/" + name) if arc else name, False)

    def gen():
        try:
            if top is None:
                for name in sorted(os.listdir(src)):
                    yield from add(os.path.join(src, name), name, False)
            else:
                yield from add(src, top, follow)
            tf.close()
            yield drain()
        except OSError as e:
            raise CLIError("failed to copy files: %s" % e) from None

    return gen()


def _copy_to(ctx, opts, src, container, dst):
    from cli.client import APIError
    dst = _abs_container_path(dst)
    dst_path = dst
    stat = _stat(ctx, container, dst)
    if stat is not None and stat.get("mode", 0) & GO_SYMLINK:
        link = stat.get("linkTarget") or ""
        if not link.startswith("/"):
            link = posixpath.join(posixpath.dirname(dst.rstrip("/")), link)
        dst_path = link
        stat = _stat(ctx, container, link)
    sent = [0]
    dst_exists = stat is not None
    dst_is_dir = dst_exists and bool(stat.get("mode", 0) & GO_DIR)
    query = [("path", dst_path), ("noOverwriteDirNonDir", "true")]
    if opts["archive"]:
        query.append(("copyUIDGID", "true"))
    if src == "-":
        if not dst_is_dir:
            raise CLIError('destination "%s:%s" must be a directory' % (container, dst))

        def stdin_chunks():
            while True:
                data = sys.stdin.buffer.read(1 << 16)
                if not data:
                    return
                yield data

        body = _counted(stdin_chunks(), sent)
        shown = dst
    else:
        local = src
        try:
            st = os.stat(local) if opts["follow_link"] else os.lstat(local)
        except OSError as e:
            raise CLIError("lstat %s: %s" % (os.path.abspath(local), (e.strerror or str(e)).lower())) from None
        src_is_dir = st_.S_ISDIR(st.st_mode)
        contents = src_is_dir and (src.endswith("/.") or src == ".")
        src_base = os.path.basename(os.path.normpath(os.path.abspath(local)))
        dst_base = posixpath.basename(dst_path.rstrip("/")) or "/"
        dst_dir = posixpath.dirname(dst_path.rstrip("/")) or "/"
        if dst_is_dir:
            target, top = dst_path, (None if contents else src_base)
        elif dst_exists and src_is_dir:
            raise CLIError("cannot copy directory")
        elif dst_exists:
            target, top = dst_dir, dst_base
        elif src_is_dir:
            target, top = dst_dir, dst_base
        elif _asserts_dir(dst):
            raise CLIError("no such directory")
        else:
            target, top = dst_dir, dst_base
        query[0] = ("path", target)
        body = _counted(_tar_local(local, top, opts["follow_link"]), sent)
        shown = "%s:%s" % (container, dst)
    try:
        resp = ctx.client.request("PUT", "/containers/%s/archive" % _q(container), query, body=body,
                                  content_type="application/x-tar")
    except APIError as e:
        raise CLIError("Error response from daemon: %s" % e.message) from None
    resp.read()
    resp.close()
    _report(ctx, opts, sent[0], shown)
    return 0
