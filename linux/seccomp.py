"""seccomp filters from an OCI ``linux.seccomp`` object, built with
libseccomp (libseccomp.so.2, through ctypes).

``check(spec)`` validates without touching the kernel.  ``compile(spec)``
builds the filter in memory (do it before pivot_root: the library must be
loaded from the host), ``Filter.load()`` installs it (the last thing before
exec, or before dropping capabilities when no_new_privs is off, because
then loading needs CAP_SYS_ADMIN).  As runc: rules for syscalls this kernel
or architecture does not know are skipped, rules whose action is the
default action are no-ops, and several conditions on one argument become
one rule per condition (libseccomp refuses them in one rule).
"""

from __future__ import annotations

import ctypes
import errno
import os

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
}

OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": None,  # single-threaded init: nothing to sync
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}


# the OCI names of the architectures (defs-linux.json SeccompArch); which of
# them work depends on the libseccomp at hand (see known_architectures)
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib = None


def _libseccomp():
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise OSError(errno.ENOSYS, f"seccomp: cannot load libseccomp.so.2: {exc}") from None
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def known_architectures() -> list[str]:
    """The OCI architecture names this host's libseccomp resolves (an
    OSError if there is no libseccomp)."""
    lib = _libseccomp()
    return [a for a in ARCHITECTURES if lib.seccomp_arch_resolve_name(arch_name(a).encode())]


_version: str | None = None


def library_version() -> str:
    """libseccomp's version, e.g. '2.5.4' ('' if unknown)."""
    global _version
    if _version is None:
        _version = _library_version()
    return _version


def _library_version() -> str:

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = _libseccomp()
    fn = getattr(lib, "seccomp_version", None)
    if fn is None:
        return ""
    fn.restype = ctypes.POINTER(_Version)
    v = fn().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def action(name: str, errno_ret: int | None = None, default_errno: int | None = None) -> int:
    """An OCI action name (+ errnoRet) as a libseccomp action value."""
    if name not in ACTIONS:
        if name == "SCMP_ACT_NOTIFY":
            raise ValueError("SCMP_ACT_NOTIFY (a seccomp agent) is not supported")
        raise ValueError(f"unknown seccomp action {name!r}")
    value = ACTIONS[name]
    if value in (ACT_ERRNO, ACT_TRACE):
        ret = errno_ret if errno_ret is not None else default_errno
        value |= (errno.EPERM if ret is None else ret) & 0xFFFF
    return value


def arch_name(oci: str) -> str:
    """SCMP_ARCH_X86_64 -> x86_64 (libseccomp's name)."""
    if not isinstance(oci, str) or not oci.startswith("SCMP_ARCH_"):
        raise ValueError(f"bad seccomp architecture {oci!r}")
    return oci[len("SCMP_ARCH_"):].lower()


def rules(spec: dict) -> list[tuple[int, str, list[tuple[int, int, int, int]]]]:
    """The (action, syscall name, [(index, op, value, valueTwo)]) rules to add,
    in order, after the runc conventions described above.  Pure."""
    default = action(spec["defaultAction"], default_errno=spec.get("defaultErrnoRet"))
    out = []
    for i, call in enumerate(spec.get("syscalls") or []):
        if not isinstance(call, dict):
            raise ValueError(f"syscalls[{i}] must be an object")
        act = action(call.get("action", ""), call.get("errnoRet"), None)
        names = call.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"syscalls[{i}].names must be an array of strings")
        conds = []
        for j, arg in enumerate(call.get("args") or []):
            if not isinstance(arg, dict) or arg.get("op") not in OPERATORS:
                raise ValueError(f"syscalls[{i}].args[{j}]: bad operator {arg.get('op')!r}")
            index = arg.get("index")
            if not isinstance(index, int) or not 0 <= index < 6:
                raise ValueError(f"syscalls[{i}].args[{j}].index must be 0..5")
            conds.append((index, OPERATORS[arg["op"]], int(arg.get("value", 0)),
                          int(arg.get("valueTwo", 0))))
        if act == default:
            continue
        indexes = [c[0] for c in conds]
        groups = [conds] if len(set(indexes)) == len(indexes) else [[c] for c in conds]
        for name in names:
            for group in groups:
                out.append((act, name, group))
    return out


def check(spec) -> None:
    """Validate an OCI seccomp object; raise ValueError with a one-line reason."""
    if not isinstance(spec, dict):
        raise ValueError("must be an object")
    if "defaultAction" not in spec:
        raise ValueError("defaultAction is required")
    if spec.get("listenerPath") or spec.get("listenerMetadata"):
        raise ValueError("listenerPath (a seccomp agent) is not supported")
    for flag in spec.get("flags") or []:
        if flag not in FLAGS:
            raise ValueError(f"flag {flag!r} is not supported")
    for arch in spec.get("architectures") or []:
        arch_name(arch)
    rules(spec)


class Filter:
    def __init__(self, ctx: int):
        self.ctx = ctx

    def export(self, fd: int) -> None:
        """Write the filter's BPF program (what seccomp_load would load) to fd."""
        lib = _libseccomp()
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        ret = lib.seccomp_export_bpf(self.ctx, fd)
        if ret < 0:
            raise OSError(-ret, f"seccomp: export the filter: {_strerror(ret)}")

    def load(self) -> None:
        ret = _libseccomp().seccomp_load(self.ctx)
        if ret < 0:
            raise OSError(-ret, f"seccomp: load the filter: {errno.errorcode.get(-ret, -ret)}")

    def release(self) -> None:
        if self.ctx:
            _libseccomp().seccomp_release(self.ctx)
            self.ctx = 0


def compile(spec: dict) -> Filter:  # noqa: A001  (the word for it)
    lib = _libseccomp()
    default = action(spec["defaultAction"], default_errno=spec.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(errno.EINVAL, f"seccomp: seccomp_init({spec['defaultAction']}) failed")
    filt = Filter(ctx)
    try:
        # no_new_privs is the config's business (process.noNewPrivileges), not libseccomp's
        _attr(lib, ctx, _ATTR_CTL_NNP, 0)
        for flag in spec.get("flags") or []:
            if FLAGS[flag] is not None:
                _attr(lib, ctx, FLAGS[flag], 1)
        for arch in spec.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch_name(arch).encode())
            if token == 0:
                raise OSError(errno.EINVAL, f"seccomp: unknown architecture {arch}")
            ret = lib.seccomp_arch_add(ctx, token)
            if ret < 0 and -ret != errno.EEXIST:
                raise OSError(-ret, f"seccomp: add architecture {arch}: {_strerror(ret)}")
        for act, name, conds in rules(spec):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not a syscall here: runc skips it too
            array = (_ArgCmp * max(len(conds), 1))(*[_ArgCmp(*c) for c in conds])
            ret = lib.seccomp_rule_add_array(ctx, act, nr, len(conds), array)
            if ret < 0:
                raise OSError(-ret, f"seccomp: rule for {name}: {_strerror(ret)}")
    except BaseException:
        filt.release()
        raise
    return filt


# seccomp(2): the syscall number per machine (no cache where it is not known)
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}
_SET_MODE_FILTER = 1
_LOAD_FLAGS = {"SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_MAX_INSNS = 4096  # BPF_MAXINSNS
CACHE_FORMAT = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Program:
    """A filter as the kernel takes it (its BPF program, exported by libseccomp
    before), loaded with seccomp(2) as seccomp_load does: same program, same
    flags, without building it again."""

    def __init__(self, code: bytes, flags: int, nr: int):
        if not code or len(code) % 8 or len(code) // 8 > _MAX_INSNS:
            raise ValueError("not a BPF program")
        self.code = code
        self.flags = flags
        self.nr = nr

    def load(self) -> None:
        buf = ctypes.create_string_buffer(self.code, len(self.code))
        prog = _SockFprog(len(self.code) // 8, ctypes.addressof(buf))
        libc = ctypes.CDLL(None, use_errno=True)
        ret = libc.syscall(ctypes.c_long(self.nr), ctypes.c_long(_SET_MODE_FILTER),
                           ctypes.c_long(self.flags), ctypes.byref(prog))
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp: load the filter: {errno.errorcode.get(err, err)}")

    def release(self) -> None:
        pass


def cache_key(spec: dict) -> str:
    """What a compiled filter depends on: the spec, libseccomp (its syscall
    tables) and the machine."""
    import json

    try:
        from _sha256 import sha256  # (hashlib would import OpenSSL's: slower)
    except ImportError:
        from hashlib import sha256
    data = json.dumps([CACHE_FORMAT, spec, library_version(), os.uname().machine],
                      sort_keys=True, separators=(",", ":")).encode()
    return sha256(data).hexdigest()


CACHE_MAX = 64  # compiled programs kept; the least recently used go first
CACHE_TMP_AGE = 3600.0  # seconds after which a writer's temporary file is litter


def compile_cached(spec: dict, cache_dir: str | None) -> "Filter | Program":
    """``compile(spec)``, through a cache of exported programs in
    ``cache_dir`` (root's, 0700): building Docker's default profile with
    libseccomp takes ~15 ms per container, loading the program it made ~0.1.
    A miss builds the filter (and stores its program for next time); a hit
    marks its entry used (mtime).  At most CACHE_MAX entries are kept."""
    nr = _NR_SECCOMP.get(os.uname().machine)
    if not cache_dir or nr is None:
        return compile(spec)
    flags = 0
    for flag in spec.get("flags") or []:
        flags |= _LOAD_FLAGS.get(flag, 0)
    name = cache_key(spec) + ".bpf"
    path = os.path.join(cache_dir, name)
    try:
        with open(path, "rb") as f:
            program = Program(f.read(), flags, nr)
    except (OSError, ValueError):
        pass
    else:
        try:
            os.utime(path)  # (for the eviction: least recently used first)
        except OSError:
            pass
        return program
    filt = compile(spec)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            filt.export(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    else:
        _evict(cache_dir, keep=name)
    return filt


def _evict(cache_dir: str, keep: str) -> None:
    """Bound the cache: the least recently used programs beyond CACHE_MAX go
    (``keep``, just written, stays), and so do old temporary files (of a
    writer that died)."""
    import time

    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    now = time.time()
    programs = []
    for name in names:
        path = os.path.join(cache_dir, name)
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if name.endswith(".bpf"):
            if name != keep:
                programs.append((mtime, path))
        elif ".bpf.tmp" in name and now - mtime > CACHE_TMP_AGE:
            _unlink_quietly(path)
    programs.sort()
    for _, path in programs[:max(0, len(programs) + 1 - CACHE_MAX)]:
        _unlink_quietly(path)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _attr(lib, ctx, attr: int, value: int) -> None:
    ret = lib.seccomp_attr_set(ctx, attr, value)
    if ret < 0:
        raise OSError(-ret, f"seccomp: set attribute {attr}: {_strerror(ret)}")


def _strerror(ret: int) -> str:
    return os.strerror(-ret)
