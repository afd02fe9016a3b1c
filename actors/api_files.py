"""File routes of the Docker Engine API: export, archive GET/HEAD/PUT
(docker cp both ways) and changes (docker diff).

A running container's files are reached through /proc/<init pid>/root (its
rootfs lives in its shim's private mount namespace, with the container's own
mounts).  A created or exited container has no mount at all: its overlay is
made as a *detached* mount (fsopen/fsconfig/fsmount), which is in no mount
namespace and vanishes with its last descriptor, so nothing is ever mounted
in the host's namespace and nothing can leak.  Reads mount the container's
upper directory as one more read-only lower layer; writes (PUT) mount it as
the upper directory, under the container's lock so that it cannot start
meanwhile, and so land where the container sees them when it starts.
Changes are computed from the upper directory against the image's layers,
without mounting anything."""

from __future__ import annotations

import json
import os

import trio

from . import containers as C
from .api_images import get_image
from .http import HTTPError, Response, StreamResponse, json_response


def add_routes(r, daemon) -> None:
    # -- export, archive (docker cp out of a container) -----------------------------------
    async def export(req):
        rec = daemon.find(req.params["id"])
        root = await open_root(daemon, rec)
        daemon.events.publish("container", "export", rec["Id"], daemon.event_attrs(rec))
        return StreamResponse(_ThreadStream(_export_tar(root), root.close), 200, "application/x-tar")

    r.add("GET", "/containers/{id}/export", export)

    async def archive(req):
        ref = req.params["id"]
        rec = daemon.find(ref)
        path = req.q("path") or ""
        if not path:
            raise HTTPError(400, "Path cannot be empty")
        root, inner = await open_root_for(daemon, rec, path)
        try:
            target = await trio.to_thread.run_sync(_locate, root, inner)
        except FileNotFoundError:
            root.close()
            raise HTTPError(404, f"Could not find the file {path} in container {ref}") from None
        except OSError as exc:
            root.close()
            raise HTTPError(400, f"{path}: {exc.strerror or exc}") from None
        except BaseException:
            root.close()
            raise
        stat_header = ("X-Docker-Container-Path-Stat", target.stat_header())
        if req.method == "HEAD":
            target.close()
            root.close()
            return Response(200, b"", "application/json", [stat_header])

        def release():
            target.close()
            root.close()

        daemon.events.publish("container", "archive-path", rec["Id"], daemon.event_attrs(rec))
        return StreamResponse(_ThreadStream(_archive_tar(root, target), release), 200,
                              "application/x-tar", [stat_header])

    r.add("GET", "/containers/{id}/archive", archive)

    # -- extract (docker cp into a container) ---------------------------------------------
    async def extract(req):
        ref = req.params["id"]
        rec = daemon.find(ref)
        path = req.q("path") or ""
        if not path:
            raise HTTPError(400, "Path cannot be empty")
        opts = ExtractOptions(no_overwrite_dir_non_dir=req.q_bool("noOverwriteDirNonDir"),
                              copy_uid_gid=req.q_bool("copyUIDGID"))
        body = _BodyReader(req.iter_body())
        cid = rec["Id"]
        if C.is_running(rec):
            root = await open_root(daemon, rec, write=True)
            try:
                await trio.to_thread.run_sync(_extract_checked, root, rec, ref, path, body, opts)
            finally:
                root.close()
        else:
            # a stopped container's layer is ours while we hold its lock: it
            # cannot start (and mount the same upper directory) meanwhile
            async with daemon.lock(cid):
                root, inner = await open_root_for(daemon, rec, path, write=True)
                try:
                    await trio.to_thread.run_sync(_extract_checked, root, rec, ref, inner, body, opts)
                finally:
                    root.close()
        daemon.events.publish("container", "extract-to-dir", cid, daemon.event_attrs(rec))
        return Response(200, b"", "text/plain")

    r.add("PUT", "/containers/{id}/archive", extract)

    # -- changes (docker diff) --------------------------------------------------------------
    async def changes(req):
        rec = daemon.find(req.params["id"])
        image = await get_image(daemon, rec["Image"])
        layers = await trio.to_thread.run_sync(daemon.images.layer_dirs, image)
        upper = rec["GraphDriver"]["Data"]["UpperDir"]
        result = await trio.to_thread.run_sync(overlay_changes, list(reversed(layers)), upper)
        return json_response([{"Path": p, "Kind": k} for p, k in result] or None)

    r.add("GET", "/containers/{id}/changes", changes)


async def open_root(daemon, rec: dict, *, write: bool = False) -> "_ContainerRoot":
    """The container's root filesystem: a running container's, as its
    processes see it (with its mounts); a stopped or created container's as
    a detached overlay mount of its layers (in no mount namespace: it goes
    with its last descriptor).  For reading only, the container's upper
    directory is mounted as one more lower layer (read-only, no workdir):
    it cannot disturb a start that mounts the same upper meanwhile."""
    if C.is_running(rec):
        try:
            return await trio.to_thread.run_sync(_open_container_root, rec)
        except HTTPError:
            # it is stopping: read its layers aside; but never write through a
            # second overlay mount of an upper directory that may still be in use
            if write:
                raise HTTPError(409, f"Container {rec['Id']} is stopping: try again") from None
    image = await get_image(daemon, rec["Image"])
    layers = await trio.to_thread.run_sync(daemon.images.layer_dirs, image)
    gd = rec["GraphDriver"]["Data"]
    return await trio.to_thread.run_sync(_mount_layers, list(reversed(layers)), gd["UpperDir"],
                                         gd["WorkDir"], write)


async def open_root_for(daemon, rec: dict, path: str, *, write: bool = False) -> tuple["_ContainerRoot", str]:
    """The root to reach ``path`` in, and the path inside it.  A running
    container's volumes and binds are mounted where its processes see them;
    a stopped one's are not part of its layers: a path at or under one of
    them (lexically) is served from the volume's or the bind's directory, as
    dockerd mounts a stopped container's volumes for `docker cp`."""
    if not C.is_running(rec):
        found = _mount_for(rec, path)
        if found is not None:
            source, inner = found
            try:
                fd = os.open(source, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass  # (a bind whose source is made at start): the layers, then
            else:
                return _ContainerRoot(fd, {}), inner
    return await open_root(daemon, rec, write=write), path


def _mount_for(rec: dict, path: str) -> tuple[str, str] | None:
    """The volume or bind mounted at or above ``path`` in the container's
    config: (its source directory, ``path`` relative to it, trailing "/" or
    "/." kept); None when the path is in the container's own layers."""
    import posixpath

    def clean(p: str) -> str:  # (normpath keeps a leading "//")
        return posixpath.normpath("/" + p.lstrip("/"))

    norm = clean(path)
    best: tuple[str, str] | None = None
    for m in rec.get("Mounts") or []:
        if m.get("Type") not in ("volume", "bind") or not m.get("Source"):
            continue
        dest = clean(m.get("Destination") or "")
        if dest == "/":
            continue
        if (norm == dest or norm.startswith(dest + "/")) and (best is None or len(dest) > len(best[0])):
            best = (dest, m["Source"])
    if best is None:
        return None
    inner = norm[len(best[0]):] or "/"
    if path.endswith("/.") or path == ".":
        inner = inner.rstrip("/") + "/."
    elif path.endswith("/") and inner != "/":
        inner += "/"
    return best[1], inner


def _mount_layers(lowers: list[str], upper: str, work: str, write: bool) -> "_ContainerRoot":
    from linux import syscalls as sc

    if write:
        options = [("lowerdir+", d) for d in lowers] + [("upperdir", upper), ("workdir", work)]
        attrs = 0
    elif not lowers:  # an image with no layer: the upper directory is the whole filesystem
        return _ContainerRoot(os.open(upper, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), {})
    else:
        options = [("lowerdir+", d) for d in [upper, *lowers]]
        attrs = sc.MOUNT_ATTR_RDONLY
    try:
        fd = sc.open_detached_mount("overlay", options, attrs | sc.MOUNT_ATTR_NODEV)
    except OSError as exc:
        raise HTTPError(500, f"cannot mount the container's filesystem: {exc}") from None
    return _ContainerRoot(fd, {})


# -- walking a container's files ------------------------------------------------------
# The rootfs of a running container exists only in its shim's private mount
# namespace; /proc/<init pid>/root reaches it (a stopped one's is a detached
# mount: see open_root).  The kernel would resolve absolute symlinks
# and '..' met under that path against the *daemon's* root, so nothing is ever
# opened by path: every lookup walks one component at a time from a descriptor
# (O_PATH | O_NOFOLLOW), with '..' clamped at the container's root and symlinks
# read and interpreted relative to it (as runc's and dockerd's FollowSymlinkInScope).
MAX_SYMLINKS = 40
PSEUDO_FS = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
             "securityfs", "bpf", "configfs", "fusectl", "pstore", "hugetlbfs", "binfmt_misc"}
_O_PATH = getattr(os, "O_PATH", 0o10000000)


class _ContainerRoot:
    def __init__(self, fd: int, mounts: dict[str, str]):
        self.fd = fd
        self.mounts = mounts  # mount point (container path) -> filesystem type

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _unescape_mountinfo(field: str) -> str:
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _parse_mounts(mountinfo: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        out[_unescape_mountinfo(fields[4])] = right.split()[0] if right.split() else ""
    return out


def _open_container_root(rec: dict) -> _ContainerRoot:
    cid = rec["Id"]
    not_running = HTTPError(409, f"Container {cid} is not running")
    pid = rec["State"].get("Pid") or 0
    if not rec["State"]["Running"] or pid <= 0:
        raise not_running
    try:
        fd = os.open(f"/proc/{pid}/root", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise not_running from None
    try:
        # the pid is still this container's init, not a recycled one
        with open(f"/proc/{pid}/cgroup") as f:
            if cid not in f.read():
                raise not_running
        with open(f"/proc/{pid}/mountinfo") as f:
            mounts = _parse_mounts(f.read())
    except OSError:
        os.close(fd)
        raise not_running from None
    except BaseException:
        os.close(fd)
        raise
    return _ContainerRoot(fd, mounts)


def _resolve(root_fd: int, path: str) -> tuple[int, list[str]]:
    """An O_PATH descriptor of the directory or file at ``path`` inside the
    root, following every symlink in scope; and the resolved components."""
    import errno
    import stat as st_

    queue = [p for p in reversed(path.split("/")) if p and p != "."]
    fds: list[int] = []
    names: list[str] = []
    links = 0
    try:
        while queue:
            comp = queue.pop()
            if comp == "..":
                if fds:
                    os.close(fds.pop())
                    names.pop()
                continue
            cur = fds[-1] if fds else root_fd
            st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            if st_.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    for fd in fds:
                        os.close(fd)
                    fds.clear()
                    names.clear()
                queue.extend(p for p in reversed(target.split("/")) if p and p != ".")
                continue
            if queue and not st_.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            fds.append(os.open(comp, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
            names.append(comp)
        result = fds.pop() if fds else os.open(".", _O_PATH | os.O_CLOEXEC, dir_fd=root_fd)
        return result, names
    finally:
        for fd in fds:
            os.close(fd)


def _go_base(p: str) -> str:
    """Go's filepath.Base."""
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p.rsplit("/", 1)[-1]


class _Target:
    """The object a `docker cp` asks for: an O_PATH descriptor (the last
    component not followed), its stat, its container path and archive name."""

    def __init__(self, fd: int, st: os.stat_result, cpath: str, name: str, link_target: str):
        self.fd, self.st, self.cpath, self.name, self.link_target = fd, st, cpath, name, link_target

    def stat_header(self) -> str:
        import base64

        return base64.b64encode(json.dumps(C.path_stat(self.name, self.st, self.link_target)).encode()).decode()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _locate(root: _ContainerRoot, path: str) -> _Target:
    """dockerd's ResolvePath + StatPath: the directory part is resolved in the
    container's scope, the last component is not followed."""
    import posixpath
    import stat as st_

    abs_path = "/" + posixpath.normpath("/" + path).lstrip("/")
    if abs_path != "/" and (path.endswith("/.") or path == "."):
        abs_path += "/."  # "dir/." : the directory's contents (Docker keeps this)
    elif abs_path != "/" and path.endswith("/"):
        abs_path += "/"
    name = _go_base(abs_path)
    if abs_path == "/" or abs_path.endswith("/") or abs_path.endswith("/."):
        parent, base = abs_path, ""  # a trailing separator follows the last link too
    else:
        parent, base = posixpath.split(abs_path)
    dfd, names = _resolve(root.fd, parent)
    try:
        if not base:
            st = os.stat(dfd)
            return _Target(os.dup(dfd), st, "/" + "/".join(names), name, "")
        st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
        fd = os.open(base, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        cpath = "/" + "/".join(names + [base])
        link_target = ""
        if st_.S_ISLNK(st.st_mode):
            try:
                lfd, lnames = _resolve(root.fd, cpath)
                os.close(lfd)
                link_target = "/" + "/".join(lnames)
            except OSError:
                link_target = os.readlink(base, dir_fd=dfd)
        return _Target(fd, st, cpath, name, link_target)
    finally:
        os.close(dfd)


def _tarinfo(name: str, st: os.stat_result, link: str = ""):
    import stat as st_
    import tarfile

    ti = tarfile.TarInfo(name)
    ti.mode = st_.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = int(st.st_mtime)
    ti.uname = ti.gname = ""
    if st_.S_ISREG(st.st_mode):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif st_.S_ISDIR(st.st_mode):
        ti.type = tarfile.DIRTYPE
        if not ti.name.endswith("/"):
            ti.name += "/"
    elif st_.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, link
    elif st_.S_ISCHR(st.st_mode) or st_.S_ISBLK(st.st_mode):
        ti.type = tarfile.CHRTYPE if st_.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif st_.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
    else:
        return None  # sockets are not archived (as Go's archive/tar)
    return ti


def _header(ti) -> bytes:
    import tarfile

    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_blocks(fd: int, size: int):
    """Exactly ``size`` bytes of an open file (zero-padded if it shrank,
    cut if it grew), padded to the tar block."""
    left = size
    while left > 0:
        data = os.read(fd, min(left, 1 << 20))
        if not data:
            break
        left -= len(data)
        yield data
    if left > 0:
        yield b"\0" * left
    if size % 512:
        yield b"\0" * (512 - size % 512)


def _tar_tree(root: _ContainerRoot, fd: int, cpath: str, arcname: str, *, export: bool):
    """Tar entries for the object open at ``fd`` (O_PATH, not followed) and
    everything under it, without crossing into pseudo filesystems (nor, for
    export, into any mount: mounts are not part of the container's layers)."""
    import stat as st_

    hardlinks: dict[tuple[int, int], str] = {}

    def entry(parent_fd: int | None, name: str, st: os.stat_result, cp: str, arc: str):
        link = ""
        if st_.S_ISLNK(st.st_mode):
            # readlinkat(fd, "") reads the link an O_PATH descriptor refers to
            link = os.readlink(name, dir_fd=parent_fd if parent_fd is not None else fd)
        ti = _tarinfo(arc, st, link)
        if ti is None:
            return
        is_mount = cp in root.mounts and cp != "/"
        if st_.S_ISREG(st.st_mode) and export and is_mount:
            ti.size = 0  # a bind-mounted file (/etc/hosts ...): not part of the container
        if st_.S_ISREG(st.st_mode) and st.st_nlink > 1 and ti.size:
            key = (st.st_dev, st.st_ino)
            if key in hardlinks:
                import tarfile

                ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, hardlinks[key], 0
            else:
                hardlinks[key] = arc
        if st_.S_ISREG(st.st_mode) and ti.size:
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            try:
                # by name under its directory, never following, as O_PATH (opens
                # nothing: the container may have swapped the file for a device
                # or a fifo since the stat); checked, then the very inode
                # reopened through /proc/self/fd
                pfd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd) \
                    if parent_fd is not None else os.dup(fd)
            except OSError:
                return  # gone meanwhile
            try:
                if not st_.S_ISREG(os.fstat(pfd).st_mode):
                    return  # replaced meanwhile
                rfd = os.open(f"/proc/self/fd/{pfd}", flags)
            except OSError:
                return
            finally:
                os.close(pfd)
            try:
                yield _header(ti)
                yield from _file_blocks(rfd, ti.size)
            finally:
                os.close(rfd)
            return
        yield _header(ti)

    def descend(cp: str) -> bool:
        fstype = root.mounts.get(cp)
        if fstype is None or cp == "/":
            return True
        return not export and fstype not in PSEUDO_FS

    def enter(dfd: int, top_dev: int) -> bool:
        # the same decision from the directory actually opened: a running
        # container can rename a directory holding a mount point after its
        # mountinfo was read; a pseudo filesystem is never walked, and an
        # export never leaves the root's filesystem
        if _fstype_magic(dfd) in _PSEUDO_MAGIC:
            return False
        return not export or os.fstat(dfd).st_dev == top_dev

    st = os.stat(fd)  # the O_PATH descriptor itself (lstat of the object)
    if arcname:
        yield from entry(None, "", st, cpath, arcname)
    if not st_.S_ISDIR(st.st_mode) or not descend(cpath):
        return
    top_dev = st.st_dev
    # an explicit stack (no recursion limit): (directory fd, sorted names, cpath, arc prefix)
    stack = []
    try:
        dfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if not enter(dfd, top_dev):
            os.close(dfd)
            return
        stack.append((dfd, iter(sorted(os.listdir(dfd))), cpath, arcname))
        while stack:
            dfd, names, cp, arc = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(dfd)
                stack.pop()
                continue
            child_cp = cp.rstrip("/") + "/" + name
            child_arc = f"{arc.rstrip('/')}/{name}" if arc else name
            try:
                cst = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            yield from entry(dfd, name, cst, child_cp, child_arc)
            if st_.S_ISDIR(cst.st_mode) and descend(child_cp):
                try:
                    cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    if not enter(cfd, top_dev):
                        os.close(cfd)
                        continue
                    listing = iter(sorted(os.listdir(cfd)))
                except OSError:
                    os.close(cfd)
                    continue
                stack.append((cfd, listing, child_cp, child_arc))
    finally:
        for item in stack:
            os.close(item[0])


def _export_tar(root: _ContainerRoot):
    fd = os.open(".", _O_PATH | os.O_CLOEXEC, dir_fd=root.fd)
    try:
        yield from _tar_tree(root, fd, "/", "", export=True)
        yield b"\0" * 1024
    finally:
        os.close(fd)


def _archive_tar(root: _ContainerRoot, target: _Target):
    yield from _tar_tree(root, target.fd, target.cpath, target.name, export=False)
    yield b"\0" * 1024


def _take(gen, limit: int = 1 << 20) -> bytes:
    parts, n = [], 0
    for chunk in gen:
        parts.append(chunk)
        n += len(chunk)
        if n >= limit:
            break
    return b"".join(parts)


class _ThreadStream:
    """An async iterator over a blocking generator, run in worker threads in
    batches of about 1 MiB; aclose() always releases what it holds, even when
    the stream never started."""

    def __init__(self, gen, cleanup=None):
        self._gen = gen
        self._cleanup = cleanup
        self._done = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        chunk = await trio.to_thread.run_sync(_take, self._gen)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._gen.close()
        finally:
            if self._cleanup is not None:
                self._cleanup()


# -- extracting a tar into a container (PUT /containers/{id}/archive) ------------------------
# As dockerd: the destination must exist and be a directory; the archive's
# names are relative to it, and a name, hard link or symlink whose target
# leaves the destination is refused.  Every lookup is resolved inside the
# container's root (openat2 RESOLVE_IN_ROOT: symlinks and '..' stay in it, as
# in dockerd's chroot), every entry is created relative to the descriptor of
# its directory, never following a last component, and an existing entry is
# replaced, never written through.  Writes never enter a pseudo filesystem
# (a running container's /proc, /sys ...).
_PSEUDO_MAGIC = {0x9FA0, 0x62656572, 0x27E0EB, 0x63677270, 0x1CD1, 0x19800202, 0x64626720,
                 0x74726163, 0x73636673, 0xCAFE4A11, 0x62656570, 0x65735543, 0x6165676C,
                 0x958458F6, 0x42494E4D, 0xF97CFF8C, 0xDE5E81E4, 0x5A3C69F0}


class ExtractOptions:
    def __init__(self, *, no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False):
        self.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        self.copy_uid_gid = copy_uid_gid


class ExtractError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _BodyReader:
    """A blocking file object over the request body, for a worker thread
    started by trio.to_thread (each read that needs data asks trio)."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = b""
        self._eof = False

    async def _next(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            chunk = trio.from_thread.run(self._next)
            if not chunk:
                self._eof = True
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _extract_checked(root: "_ContainerRoot", rec: dict, ref: str, path: str, body, opts: ExtractOptions) -> None:
    try:
        _extract(root, rec, path, body, opts)
    except ExtractError as exc:
        raise HTTPError(exc.status, exc.message) from None
    except FileNotFoundError as exc:
        if getattr(exc, "_dest", False):
            raise HTTPError(404, f"Could not find the file {path} in container {ref}") from None
        raise HTTPError(500, _os_message(exc)) from None
    except PermissionError as exc:
        raise HTTPError(403, _os_message(exc)) from None
    except OSError as exc:
        raise HTTPError(500, _os_message(exc)) from None
    except tarfile_errors() as exc:
        raise HTTPError(500, f"Error processing tar file({exc})") from None


def tarfile_errors():
    import tarfile

    return (tarfile.TarError, EOFError, __import__("zlib").error, __import__("lzma").LZMAError, OSError)


def _os_message(exc: OSError) -> str:
    name = exc.filename
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc.strerror or exc)


def _in_root(root_fd: int, cpath: str, flags: int) -> int:
    from linux import syscalls as sc

    return sc.openat2(root_fd, cpath or "/", flags, 0, sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)


def _fstype_magic(fd: int) -> int:
    from linux import syscalls as sc

    return sc.statfs_type(f"/proc/self/fd/{fd}")


def _lexical_inside(rel: str) -> bool:
    return rel != ".." and not rel.startswith("../")


_MAX_USER_TABLE = 16 << 20


def _open_regular(root_fd: int, cpath: str) -> int:
    """A read descriptor of the regular file at ``cpath`` in the root, never
    opening anything else: the inode is pinned with O_PATH and checked
    first, then reopened through /proc/self/fd (no fifo open can block, no
    device is opened, no swap between the check and the open)."""
    import errno
    import stat as st_

    pfd = _in_root(root_fd, cpath, _O_PATH | os.O_NOFOLLOW)
    try:
        if not st_.S_ISREG(os.fstat(pfd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", cpath)
        return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pfd)


def _container_user(root_fd: int, user: str) -> tuple[int, int] | None:
    """The uid and gid of the container's configured user (`docker cp -a`),
    looked up in the container's own /etc/passwd and /etc/group."""
    if not user:
        return None
    name, _, group = user.partition(":")

    def table(path: str) -> list[list[str]]:
        # the container owns these files: only a regular file is read (a fifo
        # would block the daemon, a device read forever), and only so much of it
        try:
            fd = _open_regular(root_fd, path)
        except OSError:
            return []
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_USER_TABLE).decode("utf-8", "replace")
        return [line.split(":") for line in data.split("\n") if line.strip() and not line.startswith("#")]

    uid = gid = None
    if name.isdigit():
        uid = int(name)
        for e in table("/etc/passwd"):
            if len(e) > 3 and e[2] == name and e[3].isdigit():
                gid = int(e[3])
                break
    else:
        for e in table("/etc/passwd"):
            if len(e) > 3 and e[0] == name and e[2].isdigit() and e[3].isdigit():
                uid, gid = int(e[2]), int(e[3])
                break
        if uid is None:
            raise ExtractError(500, f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for e in table("/etc/group"):
                if len(e) > 2 and e[0] == group and e[2].isdigit():
                    gid = int(e[2])
                    break
            else:
                raise ExtractError(500, f"unable to find group {group}: no matching entries in group file")
    return uid, gid if gid is not None else 0


_XATTR = "SCHILY.xattr."


def _set_xattrs(fd: int, m) -> None:
    """The archive's extended attributes (PAX SCHILY.xattr.*), as dockerd:
    where the filesystem or the kernel refuses them, they are skipped."""
    import errno

    for key, value in m.pax_headers.items():
        if not key.startswith(_XATTR):
            continue
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        try:
            os.setxattr(fd, key[len(_XATTR):], raw)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


class _Extractor:
    def __init__(self, root: "_ContainerRoot", dest: str, opts: ExtractOptions, owner, live: bool):
        self.root, self.dest, self.opts, self.owner, self.live = root, dest, opts, owner, live
        self.dirs: list[tuple[str, object]] = []  # (container path, member): times set last

    def cpath(self, rel: str) -> str:
        return self.dest.rstrip("/") + "/" + rel if rel != "." else self.dest

    def open_dir(self, cpath: str, create: bool) -> int:
        """A descriptor of the directory at ``cpath`` (resolved in the root),
        made with its missing ancestors (0755) when ``create``."""
        import errno
        import posixpath

        try:
            fd = _in_root(self.root.fd, cpath, _O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create or cpath in ("", "/"):
                raise
            parent, base = posixpath.split(cpath.rstrip("/"))
            pfd = self.open_dir(parent, True)
            try:
                self.check_writable(pfd, parent)
                try:
                    os.mkdir(base, 0o755, dir_fd=pfd)
                except FileExistsError:
                    pass
            finally:
                os.close(pfd)
            fd = _in_root(self.root.fd, cpath, _O_PATH | os.O_DIRECTORY)
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, "not a directory", cpath) from None
        return fd

    def check_writable(self, fd: int, cpath: str) -> None:
        if self.live and _fstype_magic(fd) in _PSEUDO_MAGIC:
            raise ExtractError(403, f"{cpath}: cannot write into a kernel pseudo filesystem")

    def member(self, tf, m) -> None:
        import posixpath
        import stat as st_
        import tarfile

        name = m.name
        rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
        if not _lexical_inside(rel):
            raise ExtractError(500, f'"{name}" is outside of "{self.dest}"')
        if m.type in (tarfile.XGLTYPE, tarfile.XHDTYPE):
            return
        is_dir = m.isdir()
        if rel == ".":
            return  # the destination itself: it is there, and a directory
        parent_rel, base = posixpath.split(rel)
        parent = self.cpath(parent_rel or ".")
        target = self.cpath(rel)
        pfd = self.open_dir(parent, True)
        try:
            self.check_writable(pfd, parent)
            try:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                exists_dir = st_.S_ISDIR(st.st_mode)
                if self.opts.no_overwrite_dir_non_dir and exists_dir and not is_dir:
                    raise ExtractError(500, f'cannot overwrite directory "{target}" with non-directory "{self.dest}"')
                if self.opts.no_overwrite_dir_non_dir and not exists_dir and is_dir:
                    raise ExtractError(500, f'cannot overwrite non-directory "{target}" with directory "{self.dest}"')
                if not (exists_dir and is_dir):
                    if exists_dir:
                        import shutil

                        shutil.rmtree(base, dir_fd=pfd)
                    else:
                        os.unlink(base, dir_fd=pfd)
            mode = m.mode & 0o7777
            if is_dir:
                if st is None or not st_.S_ISDIR(st.st_mode):
                    os.mkdir(base, mode & 0o777 or 0o755, dir_fd=pfd)
                if any(k.startswith(_XATTR) for k in m.pax_headers):
                    dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                    try:
                        _set_xattrs(dfd, m)
                    finally:
                        os.close(dfd)
            elif m.isreg():
                fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=pfd)
                try:
                    src = tf.extractfile(m)
                    left = m.size
                    while left > 0:
                        data = src.read(min(left, 1 << 20))
                        if not data:
                            raise ExtractError(500, "unexpected EOF")
                        left -= len(data)
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view):]
                    _set_xattrs(fd, m)
                finally:
                    os.close(fd)
            elif m.issym():
                link = m.linkname
                if not link.startswith("/"):
                    # dockerd: the link, taken from its directory, stays in the destination
                    if not _lexical_inside(posixpath.normpath(posixpath.join(parent_rel, link))):
                        raise ExtractError(500, f'invalid symlink "{target}" -> "{link}"')
                os.symlink(link, base, dir_fd=pfd)
            elif m.islnk():
                lrel = posixpath.normpath(m.linkname.lstrip("/")) if m.linkname.strip("/") else "."
                if not _lexical_inside(lrel) or lrel == ".":
                    raise ExtractError(500, f'invalid hardlink "{target}" -> "{m.linkname}"')
                lparent, lbase = posixpath.split(lrel)
                lfd = self.open_dir(self.cpath(lparent or "."), False)
                try:
                    os.link(lbase, base, src_dir_fd=lfd, dst_dir_fd=pfd, follow_symlinks=False)
                finally:
                    os.close(lfd)
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = st_.S_IFCHR if m.ischr() else st_.S_IFBLK if m.isblk() else st_.S_IFIFO
                os.mknod(base, kind | (mode & 0o777), os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            else:
                raise ExtractError(500, f"unhandled tar header type {m.type!r}")
            uid, gid = self.owner if self.owner is not None else (m.uid, m.gid)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            if m.islnk():
                pass  # the link shares its target's inode: that one's mode stays
            elif not m.issym():
                os.chmod(base, mode, dir_fd=pfd, follow_symlinks=False)
            if is_dir:
                self.dirs.append((target, m))
            else:
                mtime_ns = int(m.mtime * 1e9)
                try:
                    os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)
                except OSError:
                    pass
        finally:
            os.close(pfd)

    def finish(self) -> None:
        import posixpath

        for target, m in reversed(self.dirs):
            parent, base = posixpath.split(target)
            try:
                pfd = self.open_dir(parent, False)
            except OSError:
                continue
            try:
                mtime_ns = int(m.mtime * 1e9)
                os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)
            except OSError:
                pass
            finally:
                os.close(pfd)


def _extract(root: "_ContainerRoot", rec: dict, path: str, body, opts: ExtractOptions) -> None:
    import stat as st_
    import tarfile

    try:
        dfd, names = _resolve(root.fd, path)
    except FileNotFoundError as exc:
        exc._dest = True  # type: ignore[attr-defined]
        raise
    except NotADirectoryError:
        raise ExtractError(400, "extraction point is not a directory") from None
    try:
        if not st_.S_ISDIR(os.stat(dfd).st_mode):
            raise ExtractError(400, "extraction point is not a directory")
    finally:
        os.close(dfd)
    if rec["HostConfig"].get("ReadonlyRootfs"):
        raise ExtractError(403, "container rootfs is marked read-only")
    dest = "/" + "/".join(names)
    owner = _container_user(root.fd, rec["Config"].get("User") or "") if opts.copy_uid_gid else None
    ex = _Extractor(root, dest, opts, owner, live=bool(root.mounts))
    from oci.unpack import GuardedTarInfo

    # a PAX or GNU long-name header is read whole by tarfile: bounded
    with tarfile.open(fileobj=body, mode="r|*", tarinfo=GuardedTarInfo) as tf:
        for m in tf:
            ex.member(tf, m)
    ex.finish()


# -- changes (GET /containers/{id}/changes, docker diff) ----------------------------------------
# Computed from the container's overlay upper directory against its image's
# layers, as dockerd's overlay2 driver does: a whiteout (a 0/0 character
# device) or an opaque directory is a deletion; anything else is a
# modification if the path exists in the layers below, an addition if not; a
# directory whose size, mode and mtime equal the lower one's is not a change
# itself; the parent of an addition or a deletion is a modification.
KIND_MODIFY, KIND_ADD, KIND_DELETE = 0, 1, 2


def _is_whiteout(st: os.stat_result) -> bool:
    import stat as st_

    return st_.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _lower_stat(lowers: list[str], rel: str) -> os.stat_result | None:
    """The lstat of ``rel`` in the union of the lower layers (top first)."""
    import stat as st_

    parts = rel.strip("/").split("/")
    for layer in lowers:
        hidden = False
        # a whiteout or a non-directory over an ancestor hides the rest of this layer and below
        for i in range(1, len(parts)):
            try:
                ast = os.lstat(os.path.join(layer, *parts[:i]))
            except OSError:
                break
            if not st_.S_ISDIR(ast.st_mode):
                return None
        try:
            st = os.lstat(os.path.join(layer, *parts))
        except OSError:
            st = None
        if st is not None:
            return None if _is_whiteout(st) else st
        # an opaque ancestor in this layer: nothing below it shows through
        for i in range(1, len(parts)):
            if _is_opaque(os.path.join(layer, *parts[:i])):
                hidden = True
                break
        if hidden:
            return None
    return None


def _same_time(a_ns: int, b_ns: int) -> bool:
    return a_ns == b_ns or (a_ns // 10**9 == b_ns // 10**9 and (a_ns % 10**9 == 0 or b_ns % 10**9 == 0))


def _fd_opaque(fd: int) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(fd, attr) == b"y":
                return True
        except OSError:
            pass
    return False


def overlay_changes(lowers: list[str], upper: str) -> list[tuple[str, int]]:
    """[(path, kind)] of an overlay upper directory over ``lowers`` (top first).

    A running container changes its upper directory while it is walked: the
    walk goes by descriptors, each directory opened under its parent's with
    O_NOFOLLOW (a directory swapped for a symlink is never followed) and
    looked at through that descriptor only."""
    import stat as st_

    out: list[tuple[str, int]] = []
    changed_dirs: set[str] = set()

    def visit(rel: str, st: os.stat_result, opaque: bool) -> None:
        kind = None
        if _is_whiteout(st) or (st_.S_ISDIR(st.st_mode) and opaque):
            kind = KIND_DELETE
        else:
            kind = KIND_ADD
            lst = _lower_stat(lowers, rel)
            if lst is not None:
                if st_.S_ISDIR(lst.st_mode) and st_.S_ISDIR(st.st_mode) and lst.st_size == st.st_size \
                        and lst.st_mode == st.st_mode and _same_time(lst.st_mtime_ns, st.st_mtime_ns):
                    return
                kind = KIND_MODIFY
        if st_.S_ISDIR(st.st_mode):
            changed_dirs.add(rel)
        if kind in (KIND_ADD, KIND_DELETE):
            parent = rel.rsplit("/", 1)[0] or "/"
            if parent != "/" and parent not in changed_dirs:
                out.append((parent, KIND_MODIFY))
                changed_dirs.add(parent)
        out.append((rel, kind))

    def listing(fd: int):
        try:
            return iter(sorted(os.listdir(fd)))
        except OSError:
            return iter(())

    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        root_fd = os.open(upper, dir_flags)
    except OSError:
        return out
    # pre-order, names sorted (Go's filepath.Walk), with an explicit stack
    stack = [("/", root_fd, listing(root_fd))]
    try:
        while stack:
            rel, dfd, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(dfd)
                stack.pop()
                continue
            crel = f"{rel.rstrip('/')}/{name}"
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if not st_.S_ISDIR(st.st_mode):
                visit(crel, st, False)
                continue
            try:
                cfd = os.open(name, dir_flags, dir_fd=dfd)
            except OSError:
                continue  # gone, or no longer a directory
            try:
                st = os.fstat(cfd)
                visit(crel, st, _fd_opaque(cfd))
            except BaseException:
                os.close(cfd)
                raise
            stack.append((crel, cfd, listing(cfd)))
    finally:
        for item in stack:
            os.close(item[1])
    return out
