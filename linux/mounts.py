"""Mounts for a container root: option parsing, safe path resolution inside a
root, the OCI ``mounts`` entries, device nodes, pivot_root, masked and
read-only paths.

Mount destinations come from the image's point of view: a path such as
``/var/run`` may be a symlink in the rootfs, and a hostile image may point it
at ``/`` or ``../../..``.  ``resolve_in_root`` resolves every component
inside the root (an absolute link restarts at the root, ``..`` stops at it),
``open_in_root`` then opens the result ``O_PATH``, checks through
``/proc/self/fd`` where it really is, and the mount goes onto that fd, so a
destination can never land outside the rootfs.
"""

from __future__ import annotations

import errno
import os
import stat

from . import syscalls as sc
from .cgroups import V1_KNOWN

# name -> (clear?, flag)
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID), "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV), "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC), "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC),
    "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME), "atime": (True, sc.MS_NOATIME),
    "nodiratime": (False, sc.MS_NODIRATIME), "diratime": (True, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "silent": (False, sc.MS_SILENT), "loud": (True, sc.MS_SILENT),
    "iversion": (False, sc.MS_I_VERSION), "noiversion": (True, sc.MS_I_VERSION),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW), "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "defaults": (False, 0),  # fstab's word for "nothing special" (runc: a no-op)
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# options some runtimes understand that this one does not implement
UNSUPPORTED = {
    "tmpcopyup": "tmpcopyup (copy the rootfs content into a tmpfs)",
    "idmap": "idmapped mounts", "ridmap": "idmapped mounts",
    "copy-symlink": "copy-symlink",
}
# recursive mount attributes (rro, rnosuid, ...) need mount_setattr(2)
RECURSIVE_ATTRS = {"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                   "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime",
                   "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow"}

# statvfs f_flag bits that are mount flags to keep on a remount
_ST_TO_MS = ((os.ST_RDONLY, sc.MS_RDONLY), (os.ST_NOSUID, sc.MS_NOSUID),
             (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC),
             (os.ST_NOATIME, sc.MS_NOATIME), (os.ST_NODIRATIME, sc.MS_NODIRATIME),
             (os.ST_RELATIME, sc.MS_RELATIME))


class MountOptions:
    __slots__ = ("flags", "propagation", "data")

    def __init__(self, flags: int, propagation: list[int], data: str):
        self.flags = flags
        self.propagation = propagation
        self.data = data

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    def __repr__(self) -> str:
        return f"MountOptions(flags={self.flags:#x}, propagation={self.propagation}, data={self.data!r})"


def parse_options(options) -> MountOptions:
    """OCI mount options -> (mount flags, propagation flags, fs data string).
    Raises ValueError for options this runtime does not implement."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options or ():
        if not isinstance(opt, str):
            raise ValueError(f"mount option {opt!r} is not a string")
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in UNSUPPORTED:
            raise ValueError(f"mount option {opt!r} ({UNSUPPORTED[opt]}) is not supported")
        elif opt in RECURSIVE_ATTRS:
            raise ValueError(f"mount option {opt!r} (recursive mount attribute) is not supported")
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data))


def mount_flags_of(path: str) -> int:
    """The mount flags (MS_*) currently set on the mount holding path."""
    f = os.statvfs(path).f_flag
    out = 0
    for st_bit, ms_bit in _ST_TO_MS:
        if f & st_bit:
            out |= ms_bit
    return out


# --- paths inside a root ------------------------------------------------------

def resolve_in_root(root: str, path: str, max_links: int = 255) -> str:
    """Resolve ``path`` as if ``root`` were ``/``: symlinks are followed inside
    the root (absolute targets restart at it, ``..`` never climbs above it).
    Components that do not exist are kept literally.  Returns a host path
    under ``root``."""
    root = root.rstrip("/") or "/"
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()  # a stack: pop() takes the next component
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
        else:
            resolved.append(part)
    return os.path.join(root, *resolved)


def _inside(root: str, path: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def open_in_root(root: str, path: str, *, create: str | None = "dir", mode: int = 0o755) -> tuple[int, str]:
    """Resolve ``path`` inside ``root``, create it if missing (``create`` is
    "dir", "file" or None), open it O_PATH and check where the fd really is.
    Returns (fd, host path).  The caller closes the fd."""
    target = resolve_in_root(root, path)
    if create and not os.path.lexists(target):
        parent = os.path.dirname(target)
        if not _inside(root, parent):
            raise OSError(errno.EXDEV, f"{path} resolves outside the rootfs")
        os.makedirs(parent, mode=0o755, exist_ok=True)
        try:
            if create == "file":
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
                                 | os.O_NOFOLLOW, 0o644))
            else:
                os.mkdir(target, mode)
        except FileExistsError:
            pass
    fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    real = os.readlink(f"/proc/self/fd/{fd}")
    if not _inside(root, real):
        os.close(fd)
        raise OSError(errno.EXDEV, f"{path} resolves to {real}, outside the rootfs {root}")
    return fd, target


# --- mounting -----------------------------------------------------------------

def _remount(target: str, flags: int) -> None:
    # a bind mount takes its flags only from a remount; keep the flags we did
    # not ask to change, so that locked ones (nosuid, nodev, ...) survive
    keep = mount_flags_of(target) & ~sc.MS_RDONLY
    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | keep | flags)


def mount_entry(rootfs: str, bundle: str, entry: dict, *, cgroup=None,
                new_cgroupns: bool = False, userns: bool = False) -> None:
    """Mount one OCI ``mounts`` entry under rootfs.  In a user namespace
    (``userns``) what cannot be mounted there is bound from the host, as
    runc does: v1 cgroup hierarchies, and sysfs when the kernel refuses it."""
    dest = entry["destination"]
    fstype = entry.get("type") or ""
    opts = parse_options(entry.get("options"))
    source = entry.get("source") or ""
    bind = opts.is_bind or fstype == "bind"
    if fstype == "cgroup" and not bind:
        return _mount_cgroup(rootfs, dest, opts, cgroup, new_cgroupns, userns)
    if bind:
        if not source:
            raise ValueError(f"mount {dest}: a bind mount needs a source")
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
        try:
            src_is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as exc:
            raise OSError(exc.errno, f"mount {dest}: source {source}: {exc.strerror}") from None
        fd, target = open_in_root(rootfs, dest, create="dir" if src_is_dir else "file")
        try:
            sc.mount(source, f"/proc/self/fd/{fd}", None, sc.MS_BIND | (opts.flags & sc.MS_REC))
        finally:
            os.close(fd)
        extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            _remount(target, extra)
    else:
        if fstype in ("proc", "sysfs"):
            # the kernel refuses proc or sysfs on anything but a plain directory
            check = resolve_in_root(rootfs, dest)
            if os.path.lexists(check) and not os.path.isdir(check):
                raise ValueError(f"mount {dest}: {fstype} needs a directory destination")
        fd, target = open_in_root(rootfs, dest, create="dir")
        try:
            sc.mount(source or fstype, f"/proc/self/fd/{fd}", fstype,
                     opts.flags & ~sc.MS_PROPAGATION, opts.data or None)
        except PermissionError:
            if not (userns and fstype == "sysfs"):
                raise
            # a sysfs of our own needs a network namespace of our own (and a
            # fully visible /sys): bind the host's instead
            sc.mount("/sys", f"/proc/self/fd/{fd}", None, sc.MS_BIND | sc.MS_REC)
            extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT | sc.MS_PROPAGATION)
            if extra:
                _remount(target, extra)
        finally:
            os.close(fd)
    for prop in opts.propagation:
        sc.mount(None, target, None, prop)


def _mount_cgroup(rootfs: str, dest: str, opts: MountOptions, cgroup, new_cgroupns: bool,
                  userns: bool = False) -> None:
    """/sys/fs/cgroup in the container: the container's own cgroup(s) only.
    With a cgroup namespace, fresh cgroup filesystems (rooted at the
    container's cgroup by the namespace); without, bind mounts of its
    directories (and always for v1 in a user namespace: a v1 hierarchy
    cannot be mounted there)."""
    flags = opts.flags & ~(sc.MS_RDONLY | sc.MS_PROPAGATION | sc.MS_BIND | sc.MS_REC)
    readonly = bool(opts.flags & sc.MS_RDONLY)
    if cgroup is None:
        raise ValueError(f"mount {dest}: a cgroup mount needs linux.cgroupsPath")
    if cgroup.version == 2:
        fd, target = open_in_root(rootfs, dest)
        try:
            if new_cgroupns:
                sc.mount("cgroup2", f"/proc/self/fd/{fd}", "cgroup2",
                         flags | (sc.MS_RDONLY if readonly else 0))
            else:
                sc.mount(cgroup.path, f"/proc/self/fd/{fd}", None, sc.MS_BIND)
                _remount(target, flags | (sc.MS_RDONLY if readonly else 0))
        finally:
            os.close(fd)
        return
    fd, target = open_in_root(rootfs, dest)
    try:
        sc.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs",
                 flags & ~sc.MS_RDONLY, "mode=755")
    finally:
        os.close(fd)
    done: set[str] = set()
    for ctrl, directory in cgroup.dirs.items():
        options = cgroup.hierarchies.get(ctrl) or ctrl
        ctrls = [c for c in options.split(",") if c in V1_KNOWN or c.startswith("name=")]
        mountpoint = cgroup.mountpoints[ctrl]
        name = os.path.basename(mountpoint)
        if name in done:
            continue
        done.add(name)
        sub = os.path.join(target, name)
        os.mkdir(sub, 0o755)
        if new_cgroupns and not userns:
            sc.mount("cgroup", sub, "cgroup", flags | (sc.MS_RDONLY if readonly else 0), options)
        else:
            sc.mount(directory, sub, None, sc.MS_BIND)
            _remount(sub, flags | (sc.MS_RDONLY if readonly else 0))
        for c in ctrls:  # cpu,cpuacct -> cpu and cpuacct links
            if c != name and not c.startswith("name="):
                link = os.path.join(target, c)
                if not os.path.lexists(link):
                    os.symlink(name, link)
    if readonly:
        _remount(target, sc.MS_RDONLY | flags)


# --- root, /dev -----------------------------------------------------------------

def make_rootfs_mount(rootfs: str, propagation: int) -> None:
    """Set '/' propagation in our new mount namespace (default rslave, so no
    mount we make reaches the host) and bind the rootfs onto itself so that
    it is a mount point (pivot_root needs one)."""
    sc.mount(None, "/", None, propagation)
    if propagation & sc.MS_SHARED:
        _make_parent_private(rootfs)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def _make_parent_private(rootfs: str) -> None:
    # pivot_root refuses a new root whose parent mount is shared
    from .cgroups import parse_mountinfo  # noqa: PLC0415

    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    best = "/"
    for m in mounts:
        mp = m["mountpoint"]
        if (rootfs == mp or rootfs.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    sc.mount(None, best, None, sc.MS_PRIVATE)


DEFAULT_DEVICES = (
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
)

_DEV_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_device(rootfs: str, dev: dict) -> None:
    """mknod one OCI linux.devices entry; bind-mount the host node if mknod
    is refused.  An existing node is left as it is."""
    path = dev["path"]
    kind = dev.get("type", "c")
    mode = dev.get("fileMode")
    mode = 0o666 if mode is None else mode
    target = resolve_in_root(rootfs, path)
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    fmt = _DEV_TYPES[kind]
    rdev = 0 if kind == "p" else os.makedev(int(dev["major"]), int(dev["minor"]))
    try:
        os.mknod(target, fmt | (mode & 0o7777), rdev)
        os.chmod(target, mode & 0o7777)  # mknod is subject to the umask
    except PermissionError:
        if kind == "p":
            raise
        fd, target = open_in_root(rootfs, path, create="file")
        try:
            sc.mount(path, f"/proc/self/fd/{fd}", None, sc.MS_BIND)
        finally:
            os.close(fd)
        return
    uid, gid = dev.get("uid"), dev.get("gid")
    if uid is not None or gid is not None:
        os.chown(target, -1 if uid is None else uid, -1 if gid is None else gid)


def dev_symlinks(rootfs: str, ptmx: bool) -> None:
    links = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for src, dst in links:
        target = resolve_in_root(rootfs, dst)
        try:
            os.symlink(src, target)
        except FileExistsError:
            pass
    if ptmx:
        target = resolve_in_root(rootfs, "/dev/ptmx")
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", target)


def pivot_root(rootfs: str) -> None:
    """Make rootfs '/', with the pivot_root(".", ".") trick (no put_old
    directory needed), then detach the old root."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        # the old root is now stacked on '.': make it a slave so that the
        # detach below cannot propagate an unmount anywhere, then drop it
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def mask_path(path: str) -> None:
    """maskedPaths: /dev/null over a file, an empty read-only tmpfs over a dir."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def readonly_path(path: str) -> None:
    """readonlyPaths: bind the path onto itself, then remount it read-only."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    _remount(path, sc.MS_RDONLY | sc.MS_REC)


def remount_root_readonly() -> None:
    _remount("/", sc.MS_RDONLY)
