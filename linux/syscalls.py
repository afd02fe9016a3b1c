"""Thin ctypes wrappers for the Linux system calls the runtime needs.

Every wrapper raises ``OSError(errno, "<call>(<args>): <strerror>")`` on
failure, so that the message says which call failed on what.  Only what the
standard library lacks (in Python 3.11) lives here; ``os`` already gives
mknod, setuid, setgroups, pidfd_open, ...
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# --- constants -------------------------------------------------------------

# clone(2) / unshare(2) / setns(2)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE

# umount2(2)
MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

# close_range(2)
CLOSE_RANGE_CLOEXEC = 4

# statfs f_type
CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# syscall numbers for calls glibc has no wrapper for
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "close_range": 436, "bpf": 321},
    "aarch64": {"pivot_root": 41, "close_range": 436, "bpf": 280},
    "riscv64": {"pivot_root": 41, "close_range": 436, "bpf": 280},
    "ppc64le": {"pivot_root": 203, "close_range": 436, "bpf": 361},
    "s390x": {"pivot_root": 217, "close_range": 436, "bpf": 351},
}
_NR = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])


def _fs(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _check(ret: int, what) -> int:
    if ret == -1:
        raise _fail(what() if callable(what) else what)
    return ret


# --- mounts ----------------------------------------------------------------

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    ret = _libc.mount(_fs(source), _fs(target), _fs(fstype), flags, _fs(data or None))
    _check(ret, lambda: f"mount {source or 'none'} on {target} "
                        f"(type {fstype or 'none'}, flags {flags:#x}, data {data!r})")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_fs(target), flags), lambda: f"umount2 {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    ret = _libc.syscall(ctypes.c_long(_NR["pivot_root"]), _fs(new_root), _fs(put_old))
    _check(ret, lambda: f"pivot_root({new_root}, {put_old})")


# --- namespaces --------------------------------------------------------------

_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), lambda: f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), lambda: f"setns(fd {fd}, {nstype:#x})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))),
           lambda: f"sethostname({name!r})")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))),
           lambda: f"setdomainname({name!r})")


# --- prctl and capabilities ---------------------------------------------------

_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5),
                  lambda: f"prctl({option}, {arg2}, {arg3})")


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    """PR_SET_DUMPABLE: a non-dumpable process's /proc/PID (exe, fd, mem,
    environ, ...) is out of reach of anyone without CAP_SYS_PTRACE; execve
    makes a process dumpable again."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def capbset_read(cap: int) -> bool:
    return prctl(PR_CAPBSET_READ, cap) == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def ambient_clear_all() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc.capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data),
           lambda: f"capset(effective={effective:#x}, permitted={permitted:#x}, "
                   f"inheritable={inheritable:#x})")


# --- misc ----------------------------------------------------------------------

_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
_libc.personality.argtypes = [ctypes.c_ulong]


def statfs_type(path: str) -> int:
    """f_type of statfs(2): the filesystem magic number."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    _check(_libc.statfs(_fs(path), buf), lambda: f"statfs {path}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def personality(persona: int) -> None:
    _check(_libc.personality(persona), lambda: f"personality({persona:#x})")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    ret = _libc.syscall(ctypes.c_long(_NR["close_range"]), ctypes.c_uint(first),
                        ctypes.c_uint(last), ctypes.c_uint(flags))
    if ret == -1:
        if ctypes.get_errno() == 38:  # ENOSYS on old kernels: do it by hand
            if flags & CLOSE_RANGE_CLOEXEC:
                for fd in _open_fds():
                    if first <= fd <= last:
                        try:
                            os.set_inheritable(fd, False)
                        except OSError:
                            pass
            else:
                os.closerange(first, min(last, os.sysconf("SC_OPEN_MAX")) + 1)
            return
        raise _fail(f"close_range({first}, {last}, {flags})")


def close_fds_except(keep) -> None:
    """Close every fd except those in ``keep`` (which should include 0, 1, 2)."""
    start = 0
    for fd in sorted(set(keep)):
        if fd > start:
            close_range(start, fd - 1)
        start = max(start, fd + 1)
    close_range(start)


def _open_fds() -> list[int]:
    return [int(n) for n in os.listdir("/proc/self/fd")]


class _Rlimit(ctypes.Structure):
    _fields_ = [("rlim_cur", ctypes.c_uint64), ("rlim_max", ctypes.c_uint64)]


_libc.prlimit.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Rlimit),
                          ctypes.POINTER(_Rlimit)]
RLIM_INFINITY = 2**64 - 1
RLIMIT_NAMES = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
                "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
                "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
                "RLIMIT_RTPRIO", "RLIMIT_RTTIME")


def setrlimit(resource_id: int, soft: int, hard: int) -> None:
    """setrlimit(2) of the calling process (a negative value or 2**64-1 is
    unlimited).  Raising a hard limit needs CAP_SYS_RESOURCE: EPERM."""

    def norm(v: int) -> int:
        return RLIM_INFINITY if v < 0 or v >= RLIM_INFINITY else v

    new = _Rlimit(norm(soft), norm(hard))
    name = RLIMIT_NAMES[resource_id] if 0 <= resource_id < len(RLIMIT_NAMES) else resource_id
    _check(_libc.prlimit(0, resource_id, ctypes.byref(new), None),
           lambda: f"setrlimit({name}, soft={soft}, hard={hard})")


# --- new mount API and openat2 (added for detached overlay mounts) ----------------

_NR_FSOPEN, _NR_FSCONFIG, _NR_FSMOUNT, _NR_OPENAT2 = 430, 431, 432, 437  # same on every arch
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def open_detached_mount(fstype: str, options: list[tuple[str, str]], attrs: int = 0) -> int:
    """A new ``fstype`` filesystem configured with ``options`` (fsconfig
    string keys, in order: repeat ``lowerdir+`` for overlayfs layers) as a
    detached mount: the returned descriptor is its root, and the mount is in
    no mount namespace at all; it goes away with the last descriptor."""
    fs = _check(_libc.syscall(ctypes.c_long(_NR_FSOPEN), _fs(fstype), ctypes.c_uint(FSOPEN_CLOEXEC)),
                lambda: f"fsopen({fstype})")
    try:
        for key, value in options:
            _check(_libc.syscall(ctypes.c_long(_NR_FSCONFIG), ctypes.c_int(fs),
                                 ctypes.c_uint(FSCONFIG_SET_STRING), _fs(key), _fs(value), ctypes.c_int(0)),
                   lambda: f"fsconfig({fstype}, {key}={value})")
        _check(_libc.syscall(ctypes.c_long(_NR_FSCONFIG), ctypes.c_int(fs), ctypes.c_uint(FSCONFIG_CMD_CREATE),
                             None, None, ctypes.c_int(0)), lambda: f"fsconfig({fstype}, create)")
        return _check(_libc.syscall(ctypes.c_long(_NR_FSMOUNT), ctypes.c_int(fs), ctypes.c_uint(FSMOUNT_CLOEXEC),
                                    ctypes.c_uint(attrs)), lambda: f"fsmount({fstype})")
    finally:
        os.close(fs)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2); ``resolve`` is RESOLVE_* (RESOLVE_IN_ROOT: ``path``, its
    symlinks and '..' all stay under ``dirfd`` as if it were the root)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(ctypes.c_long(_NR_OPENAT2), ctypes.c_int(dirfd), _fs(path),
                                ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))),
                  lambda: f"openat2({path})")


# --- bpf(2) -------------------------------------------------------------------

def bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    """bpf(cmd, &attr, sizeof attr): the result (an fd for loads)."""
    ret = _libc.syscall(ctypes.c_long(_NR["bpf"]), ctypes.c_int(cmd), attr,
                        ctypes.c_uint(ctypes.sizeof(attr)))
    return _check(ret, what)
