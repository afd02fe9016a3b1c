"""Safe extraction of a layer tar into a directory, with overlayfs whiteouts.

``unpack_layer(fileobj, dest)`` reads the (optionally compressed) tar stream
once, streaming: the diff_id (sha256 of the *uncompressed* tar) is computed from
the very bytes the extractor consumes, then the rest of the stream (the tar's
end blocks and padding) is drained into the hash.  Nothing is ever held whole
in memory.

Containment: whatever the tar says, nothing is created, changed or followed
outside ``dest``:

- names are cleaned lexically: leading ``/`` and ``.`` are dropped; a ``..``
  that climbs above the root is refused (``UnsafeLayer``, Docker's "breakout");
- every parent directory is opened component by component relative to the
  previous one (``openat`` with ``O_NOFOLLOW|O_DIRECTORY``): a symlink on the
  way is refused (``UnsafeLayer``), a missing directory is created (0755);
- the leaf is created with ``*at`` calls relative to its parent's fd; an
  existing leaf is removed first (unless both are directories, which merge), so
  ``O_CREAT|O_EXCL`` never follows a symlink planted by an earlier entry;
- hardlink targets are resolved the same way, inside the layer only, and linked
  with ``linkat`` without ``AT_SYMLINK_FOLLOW``;
- ``trusted.overlay.*`` xattrs in the tar are dropped (they would steer
  overlayfs: redirect, metacopy, opaque); only whiteouts produce them.

Whiteouts (OCI layer spec, overlayfs format as Docker's overlay2 driver):

- ``.wh.<name>``   -> character device 0/0 named ``<name>`` (``mknod``)
- ``.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on the parent directory
- other ``.wh..wh.*`` entries (aufs metadata) are skipped.

Both need root (CAP_MKNOD, CAP_SYS_ADMIN).  Unprivileged (``privileged=False``,
the default when not euid 0) they are *not* applied but recorded in
``UnpackResult.pending_whiteouts`` / ``pending_opaques``; device nodes are
recorded in ``skipped``; ownership is not changed.

Metadata preserved: mode (incl. setuid/setgid/sticky), uid/gid (lchown), mtime
(atime := mtime), symlinks, hardlinks, device nodes, fifos, and xattrs from PAX
headers (``SCHILY.xattr.*`` and ``LIBARCHIVE.xattr.*``).  Directory metadata is
applied after all entries (deepest first) so that read-only directories can be
filled and their mtimes are not disturbed by their children.
"""

from __future__ import annotations

import base64
import bz2
import errno
import gzip
import lzma
import os
import shutil
import stat
import tarfile
import urllib.parse
import zlib
from typing import BinaryIO

import attrs

from .digest import CHUNK, HashingReader
from .errors import InvalidArgument, UnsafeLayer, UnsupportedMediaType

# tarfile reads a GNU long name or a PAX extended header in one read of the
# size its header claims: a crafted archive (a few kilobytes gzipped) would
# make the daemon hold gigabytes.  These headers are refused beyond a bound.
MAX_EXTENDED_HEADER = 1 << 20


class GuardedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo (``tarfile.open(..., tarinfo=GuardedTarInfo)``),
    refusing a GNU long name/link or a PAX header larger than
    MAX_EXTENDED_HEADER before tarfile reads it into memory."""

    def _check_extended(self) -> None:
        if self.size > MAX_EXTENDED_HEADER:
            raise tarfile.ReadError(f"extended header of {self.size} bytes is too large "
                                    f"(at most {MAX_EXTENDED_HEADER})")

    def _proc_gnulong(self, tarfile):  # type: ignore[override]
        self._check_extended()
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):  # type: ignore[override]
        self._check_extended()
        return super()._proc_pax(tarfile)


WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


@attrs.define
class UnpackResult:
    diff_id: str
    """sha256 of the uncompressed tar stream."""
    size: int
    """Sum of the regular files' sizes (Docker's layer size)."""
    tar_size: int
    """Bytes in the uncompressed tar stream."""
    compression: str
    """"none", "gzip", "bzip2", "xz" or "zstd"."""
    whiteouts: list[str] = attrs.Factory(list)
    """Layer-relative paths whited out by this layer."""
    opaque_dirs: list[str] = attrs.Factory(list)
    """Layer-relative directories made opaque ("." for the root)."""
    pending_whiteouts: list[str] = attrs.Factory(list)
    """Whiteouts recorded but not created (unprivileged)."""
    pending_opaques: list[str] = attrs.Factory(list)
    """Opaque markers recorded but not set (unprivileged)."""
    skipped: list[tuple[str, str]] = attrs.Factory(list)
    """(path, reason) for entries or attributes that were not applied."""


# --------------------------------------------------------------------------- streams


class _Prefixed:
    """A reader that replays ``head`` then continues with ``f``."""

    def __init__(self, head: bytes, f: BinaryIO):
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                b, self._head = self._head + self._f.read(), b""
                return b
            b, self._head = self._head[:n], self._head[n:]
            if len(b) < n:
                b += self._f.read(n - len(b)) or b""
            return b
        return self._f.read(n) if n is not None else self._f.read()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        b = f.read(n - len(out))
        if not b:
            break
        out += b
    return out


def detect_compression(head: bytes) -> str:
    """Docker's ``DetectCompression``: by magic bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    return "none"


def decompress(f: BinaryIO) -> tuple[BinaryIO, str]:
    """Wrap ``f`` (any readable, not necessarily seekable) in a decompressor
    chosen by its magic bytes; return ``(reader, compression)``."""
    head = _read_exactly(f, 6)
    kind = detect_compression(head)
    src = _Prefixed(head, f)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=src, mode="rb"), kind  # type: ignore[arg-type]
    if kind == "bzip2":
        return bz2.BZ2File(src), kind  # type: ignore[arg-type]
    if kind == "xz":
        return lzma.LZMAFile(src), kind  # type: ignore[arg-type]
    if kind == "zstd":
        return _zstd_reader(src), kind
    return src, kind  # type: ignore[return-value]


class _ZstdFrames:
    """Walks the frame structure of a zstd stream as it passes (RFC 8878:
    frame header, block headers, checksum; skippable frames), so that a stream
    cut short is an error: the decompressor itself just stops at the end of
    its input.  The blocks' content is the decompressor's business."""

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4
        self._buf = b""
        self._skip = 0
        self._checksum = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            k = min(self._need - len(self._buf), n - i)
            self._buf += data[i:i + k]
            i += k
            if len(self._buf) == self._need:
                b, self._buf = self._buf, b""
                self._step(b)

    def _step(self, b: bytes) -> None:
        st = self._state
        if st == "magic":
            magic = int.from_bytes(b, "little")
            if magic == 0xFD2FB528:
                self._state, self._need = "fhd", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                raise OSError("zstd: not a zstd frame")
        elif st == "skippable":
            self._skip = int.from_bytes(b, "little")
            self._state, self._need = "magic", 4
        elif st == "fhd":
            fhd = b[0]
            single = (fhd >> 5) & 1
            self._checksum = bool((fhd >> 2) & 1)
            fcs = (single, 2, 4, 8)[fhd >> 6]
            rest = (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
            if rest:
                self._state, self._need = "header", rest
            else:
                self._state, self._need = "block", 3
        elif st == "header":
            self._state, self._need = "block", 3
        elif st == "block":
            h = int.from_bytes(b, "little")
            last, kind, size = h & 1, (h >> 1) & 3, h >> 3
            if kind == 3:
                raise OSError("zstd: reserved block type")
            self._skip = 1 if kind == 1 else size
            if last:
                if self._checksum:
                    self._state, self._need = "checksum", 4
                else:
                    self._end_frame()
        elif st == "checksum":
            self._end_frame()

    def _end_frame(self) -> None:
        self.frames += 1
        self._state, self._need = "magic", 4

    def finish(self) -> None:
        if self._skip or self._buf or self._state != "magic" or not self.frames:
            raise OSError("zstd: unexpected end of data (truncated frame)")


class _FrameChecked:
    """The compressed side of a zstd reader: passes ``src`` through
    ``_ZstdFrames``, which raises at the end of a truncated stream."""

    def __init__(self, src: BinaryIO):
        self._src = src
        self._frames = _ZstdFrames()

    def read(self, n: int = -1) -> bytes:
        b = self._src.read(n)
        if b:
            self._frames.feed(b)
        else:
            self._frames.finish()
        return b

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """Streaming zstd decompression (every frame of the stream, as ``zstd -d``
    and containerd do; skippable frames are skipped), output bounded by what
    is asked.  Corrupt or truncated input raises ``OSError`` without errno, as
    the stdlib decompressors do, so that ``unpack_layer`` reports it as an
    invalid archive."""

    def __init__(self, src: BinaryIO):
        import zstandard
        self._error = zstandard.ZstdError
        # read_size: what is asked from ``src`` per call (a blob file or a socket)
        self._r = zstandard.ZstdDecompressor().stream_reader(
            _FrameChecked(src), read_size=1 << 17, read_across_frames=True, closefd=False)

    def read(self, n: int = -1) -> bytes:
        try:
            if n is None or n < 0:
                return self._r.readall()
            return self._r.read(n)
        except self._error as e:
            raise OSError(f"zstd: {e}") from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._r.close()


def _zstd_reader(src: BinaryIO) -> BinaryIO:
    try:
        return _ZstdReader(src)  # type: ignore[return-value]
    except ImportError:
        raise UnsupportedMediaType("zstd-compressed layers need the zstandard package "
                                   "(pip install zstandard)") from None


# --------------------------------------------------------------------------- helpers


def clean_path(name: str) -> list[str]:
    """Lexically clean a tar member name into components under the root.

    ``/a/./b/`` -> ``["a", "b"]``; ``a/../b`` -> ``["b"]``; a ``..`` escaping the
    root raises ``UnsafeLayer``.  ``[]`` means the root itself.
    """
    parts: list[str] = []
    for c in name.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if not parts:
                raise UnsafeLayer(f"{name!r} is outside of the layer directory")
            parts.pop()
        else:
            parts.append(c)
    return parts


def _pax_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k, v in member.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out[k[len("SCHILY.xattr."):]] = v.encode("utf-8", "surrogateescape")
        elif k.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(k[len("LIBARCHIVE.xattr."):])
            try:
                out[name] = base64.b64decode(v + "=" * (-len(v) % 4))
            except ValueError:
                continue
    return out


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(round(float(member.mtime) * 1_000_000_000))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --------------------------------------------------------------------------- extractor


class _Extractor:
    def __init__(self, dest: str, privileged: bool, result: UnpackResult):
        self.root_fd = os.open(dest, _DIR_FLAGS)
        self.privileged = privileged
        self.result = result
        self._cache: dict[tuple[str, ...], int] = {}
        self._dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
        self._root_meta: tarfile.TarInfo | None = None

    # -- fds

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def _open_dir(self, parts: list[str] | tuple[str, ...], *, create: bool,
                  what: str) -> int | None:
        """fd of the directory ``parts`` (cached; do not close).  Never follows a
        symlink.  Returns None if missing and not ``create``."""
        cur = self.root_fd
        key: tuple[str, ...] = ()
        for comp in parts:
            key = key + (comp,)
            fd = self._cache.get(key)
            if fd is None:
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                    os.fchmod(fd, 0o755)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.lstat(comp, dir_fd=cur)
                    if stat.S_ISLNK(st.st_mode):
                        raise UnsafeLayer(
                            f"{what!r}: path component {'/'.join(key)!r} is a symlink; "
                            "refusing to write through it") from None
                    raise InvalidArgument(
                        f"{what!r}: path component {'/'.join(key)!r} is not a directory"
                    ) from None
                if len(self._cache) >= 512:
                    self._drop_cache()
                self._cache[key] = fd
            cur = fd
        return cur

    # -- entry handling

    def _remove_existing(self, pfd: int, leaf: str, keep_dir: bool) -> os.stat_result | None:
        """Remove ``leaf`` unless it is a directory and ``keep_dir``.  Returns the
        stat of what is left (a kept directory) or None."""
        try:
            st = os.lstat(leaf, dir_fd=pfd)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return st
            self._drop_cache()  # cached fds may point into the removed tree
            shutil.rmtree(leaf, dir_fd=pfd)
        else:
            os.unlink(leaf, dir_fd=pfd)
        return None

    def _xattrs(self, member: tarfile.TarInfo, path: str, setter) -> None:
        for k, v in _pax_xattrs(member).items():
            if k.startswith("trusted.overlay."):
                self.result.skipped.append((path, f"xattr {k} refused"))
                continue
            try:
                setter(k, v)
            except OSError as e:
                if e.errno in _IGNORED_XATTR_ERRNOS:
                    self.result.skipped.append((path, f"xattr {k}: {e.strerror}"))
                else:
                    raise

    def _meta_fd(self, fd: int, member: tarfile.TarInfo, path: str) -> None:
        if self.privileged:
            os.fchown(fd, member.uid, member.gid)
        self._xattrs(member, path, lambda k, v: os.setxattr(fd, k, v))
        os.fchmod(fd, member.mode & 0o7777)
        ns = _mtime_ns(member)
        os.utime(fd, ns=(ns, ns))

    def _meta_at(self, pfd: int, leaf: str, member: tarfile.TarInfo, path: str,
                 symlink: bool) -> None:
        if self.privileged:
            os.chown(leaf, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        proc = f"/proc/self/fd/{pfd}/{leaf}"
        self._xattrs(member, path,
                     lambda k, v: os.setxattr(proc, k, v, follow_symlinks=False))
        if not symlink:
            # fchmodat cannot refuse symlinks on Linux; the leaf was created by us
            # just now with mknod/mkfifo, so it is not one.
            os.chmod(leaf, member.mode & 0o7777, dir_fd=pfd)
        ns = _mtime_ns(member)
        os.utime(leaf, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_path(member.name)
        path = "/".join(parts) or "."
        if not parts:
            if member.isdir():
                self._root_meta = member
            else:
                self.result.skipped.append((member.name, "non-directory entry for the root"))
            return
        leaf = parts[-1]

        if leaf.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member)
            return

        pfd = self._open_dir(parts[:-1], create=True, what=member.name)
        assert pfd is not None

        if member.islnk():
            tparts = clean_path(member.linkname)
            if not tparts:
                raise UnsafeLayer(f"hardlink {member.name!r} to the layer root")
            if tparts == parts:
                return  # a link to itself: nothing to do
            tpfd = self._open_dir(tparts[:-1], create=False, what=member.linkname)
            if tpfd is None:
                raise UnsafeLayer(
                    f"hardlink {member.name!r} -> {member.linkname!r}: "
                    "target is not in the layer")
            try:
                os.lstat(tparts[-1], dir_fd=tpfd)
            except FileNotFoundError:
                raise UnsafeLayer(
                    f"hardlink {member.name!r} -> {member.linkname!r}: "
                    "target is not in the layer") from None
            self._remove_existing(pfd, leaf, keep_dir=False)
            # linkat() without AT_SYMLINK_FOLLOW: a symlink target is linked as is
            try:
                os.link(tparts[-1], leaf, src_dir_fd=tpfd, dst_dir_fd=pfd,
                        follow_symlinks=False)
            except (PermissionError, IsADirectoryError) as e:
                raise InvalidArgument(
                    f"hardlink {member.name!r} -> {member.linkname!r}: {e.strerror}") from None
            return

        if member.isdir():
            if self._remove_existing(pfd, leaf, keep_dir=True) is None:
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            self._dirs.append((tuple(parts), member))
            return

        self._remove_existing(pfd, leaf, keep_dir=False)

        if member.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                src = tf.extractfile(member)
                if src is not None:
                    while True:
                        b = src.read(CHUNK)
                        if not b:
                            break
                        _write_all(fd, b)
                self.result.size += member.size
                self._meta_fd(fd, member, path)
            finally:
                os.close(fd)
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=pfd)
            self._meta_at(pfd, leaf, member, path, symlink=True)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(leaf, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=pfd)
            except PermissionError:
                if self.privileged:
                    raise
                self.result.skipped.append((path, "device node (needs root)"))
                return
            self._meta_at(pfd, leaf, member, path, symlink=False)
        elif member.isfifo():
            os.mkfifo(leaf, 0o600, dir_fd=pfd)
            self._meta_at(pfd, leaf, member, path, symlink=False)
        else:
            self.result.skipped.append((path, f"unsupported tar entry type {member.type!r}"))

    def _whiteout(self, parts: list[str], member: tarfile.TarInfo) -> None:
        leaf = parts[-1]
        dparts = parts[:-1]
        dpath = "/".join(dparts) or "."
        if leaf == WHITEOUT_OPAQUE:
            self.result.opaque_dirs.append(dpath)
            pfd = self._open_dir(dparts, create=True, what=member.name)
            if not self.privileged:
                self.result.pending_opaques.append(dpath)
                return
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if leaf.startswith(WHITEOUT_META_PREFIX):
            self.result.skipped.append(("/".join(parts), "aufs metadata"))
            return
        name = leaf[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise UnsafeLayer(f"invalid whiteout {member.name!r}")
        target = "/".join(dparts + [name])
        self.result.whiteouts.append(target)
        pfd = self._open_dir(dparts, create=True, what=member.name)
        assert pfd is not None
        if not self.privileged:
            self.result.pending_whiteouts.append(target)
            return
        self._remove_existing(pfd, name, keep_dir=False)
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Apply directory metadata, deepest first, then the root's."""
        self._drop_cache()
        # keep only the last occurrence of each directory
        last: dict[tuple[str, ...], tarfile.TarInfo] = {}
        for parts, member in self._dirs:
            last[parts] = member
        for parts in sorted(last, key=len, reverse=True):
            member = last[parts]
            try:
                fd = self._open_dir(parts, create=False, what=member.name)
            except (UnsafeLayer, InvalidArgument):
                continue  # replaced by a symlink or a file later in the tar
            if fd is None:
                continue
            self._meta_fd(fd, member, "/".join(parts))
        self._drop_cache()
        if self._root_meta is not None:
            self._meta_fd(self.root_fd, self._root_meta, ".")


def unpack_layer(fileobj: BinaryIO, dest: str, *, privileged: bool | None = None
                 ) -> UnpackResult:
    """Extract a layer (plain tar, gzip, bzip2, xz or zstd) into the directory ``dest``.

    ``dest`` should be a fresh, empty directory (the store uses a temporary one
    and renames it into place).  ``privileged`` defaults to ``euid == 0``.
    Raises ``UnsafeLayer`` for escape attempts, ``InvalidArgument`` for broken
    archives; ``dest`` is then left partially filled for the caller to remove.
    """
    if privileged is None:
        privileged = os.geteuid() == 0
    reader, kind = decompress(fileobj)
    hr = HashingReader(reader)
    result = UnpackResult(diff_id="", size=0, tar_size=0, compression=kind)
    ex = _Extractor(dest, privileged, result)
    try:
        try:
            tf = tarfile.open(fileobj=hr, mode="r|", encoding="utf-8",  # type: ignore[call-overload]
                              errors="surrogateescape", tarinfo=GuardedTarInfo)
            with tf:
                for member in tf:
                    ex.entry(tf, member)
            hr.drain()
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
            # decompressors report corrupt data as OSError without errno
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise InvalidArgument(f"invalid layer archive: {e}") from None
        ex.finish()
    finally:
        ex.close()
    result.diff_id = hr.digest()
    result.tar_size = hr.count
    return result


def is_whiteout(st: os.stat_result) -> bool:
    """True for an overlayfs whiteout (character device 0/0)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
