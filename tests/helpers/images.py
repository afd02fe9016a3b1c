"""Test images built locally (no network): a minimal busybox rootfs tar.

``busybox_rootfs_tar(path)`` writes, with Python's tarfile, a deterministic tar
(sorted entries, fixed mtimes, root ownership) so the layer's diff_id, and so
the image id of an import with a fixed ``created``, are stable for a given
/usr/bin/busybox.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

BUSYBOX = "/usr/bin/busybox"
MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "app:x:1000:\n"
    "nobody:x:65534:\n"
)


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True)
    return sorted({a.strip() for a in out.stdout.split() if a.strip()
                   and "/" not in a and a.strip() != "busybox"})


def _info(name: str, type_: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.size = size
    ti.linkname = linkname
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def busybox_rootfs_entries(busybox: str = BUSYBOX) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The (TarInfo, data) entries of the rootfs, sorted by name."""
    with open(busybox, "rb") as f:
        bb = f.read()
    entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def d(name: str, mode: int = 0o755) -> None:
        entries[name] = (_info(name, tarfile.DIRTYPE, mode), None)

    def f(name: str, data: bytes, mode: int = 0o644) -> None:
        entries[name] = (_info(name, tarfile.REGTYPE, mode, len(data)), data)

    for name in ("bin", "dev", "etc", "home", "home/app", "proc", "sys",
                 "usr", "usr/bin", "usr/sbin", "sbin", "var", "var/tmp"):
        d(name)
    d("root", 0o700)
    d("tmp", 0o1777)
    f("bin/busybox", bb, 0o755)
    for applet in busybox_applets(busybox):
        entries[f"bin/{applet}"] = (
            _info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"), None)
    f("etc/passwd", PASSWD.encode())
    f("etc/group", GROUP.encode())
    f("etc/hostname", b"")
    f("etc/hosts", b"127.0.0.1\tlocalhost\n")
    f("etc/resolv.conf", b"")
    return [entries[k] for k in sorted(entries)]


def write_tar(path: str, entries, *, gzip: bool = False) -> str:
    mode = "w:gz" if gzip else "w"
    kwargs = {"format": tarfile.PAX_FORMAT}
    if gzip:
        # gzip stores the file name and mtime in its header: pin them
        import gzip as _gzip
        with open(path, "wb") as raw:
            with _gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", **kwargs) as tf:
                    for ti, data in entries:
                        tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return path
    with tarfile.open(path, mode, **kwargs) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def busybox_rootfs_tar(path: str, *, gzip: bool = False, busybox: str = BUSYBOX) -> str:
    """Write a minimal busybox rootfs tar (optionally gzipped) at ``path``; return it.

    Contents: bin/busybox plus a symlink per applet, etc/{passwd,group,hostname,
    hosts,resolv.conf} (users root, nobody 65534, app 1000), tmp (1777), root
    (0700), home, home/app, proc, sys, dev, usr/bin, usr/sbin, sbin, var/tmp.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_tar(path, busybox_rootfs_entries(busybox), gzip=gzip)


def tar_entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None,
              linkname: str = "", uid: int = 0, gid: int = 0, mtime: int = MTIME,
              devmajor: int = 0, devminor: int = 0, xattrs: dict[str, bytes] | None = None
              ) -> tuple[tarfile.TarInfo, bytes | None]:
    """One crafted tar entry: kind is file, dir, symlink, hardlink, char, block, fifo."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
    default_mode = {"dir": 0o755, "symlink": 0o777}.get(kind, 0o644)
    ti = tarfile.TarInfo(name)
    ti.type = types[kind]
    ti.mode = default_mode if mode is None else mode
    ti.linkname = linkname
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    ti.devmajor, ti.devminor = devmajor, devminor
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                          for k, v in xattrs.items()}
    if kind == "file":
        ti.size = len(data)
        return ti, data
    return ti, None


def make_tar(entries, *, gzip: bool = False) -> bytes:
    """Bytes of a (PAX) tar of ``tar_entry`` results, optionally gzipped."""
    raw = io.BytesIO()
    if gzip:
        import gzip as _gzip
        with _gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT,
                              encoding="utf-8", errors="surrogateescape") as tf:
                for ti, data in entries:
                    tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return raw.getvalue()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()
