"""Control groups, v1 (one hierarchy per controller) and v2 (unified).

The version is v2 iff ``statfs(/sys/fs/cgroup)`` says cgroup2 (a hybrid host,
cgroup2 mounted at /sys/fs/cgroup/unified next to the v1 hierarchies, is v1).

``open_cgroup(path)`` computes the directories of an OCI ``linux.cgroupsPath``
(absolute: from each hierarchy's root; relative: under the caller's own
cgroup), without touching them.  Then ``create()``, ``apply(resources)``,
``add_pid()``, ``pids()``, ``freeze()``/``thaw()`` and ``remove()`` (the
leaf only: whoever owns the parent removes the parent).

Everything is plain file I/O under a root directory, so the logic runs
against a fake tree in a temporary directory in tests.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

ROOT = "/sys/fs/cgroup"

# v1 controllers joined for every container, in the order they are created
V1_REQUIRED = ("cpuset", "cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer")
# joined too when the host mounts them (runc joins every hierarchy it knows)
V1_OPTIONAL = ("hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc", "name=systemd")
V1_KNOWN = V1_REQUIRED + V1_OPTIONAL
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb")


class CgroupError(OSError):
    pass


def detect_version(root: str = ROOT) -> int:
    from .syscalls import CGROUP2_SUPER_MAGIC, statfs_type

    return 2 if statfs_type(root) == CGROUP2_SUPER_MAGIC else 1


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[dict]:
    """Each mount of /proc/self/mountinfo as a dict: root, mountpoint,
    options, fstype, source, super_options."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        mounts.append({
            "root": _unescape(fields[3]),
            "mountpoint": _unescape(fields[4]),
            "options": fields[5],
            "fstype": fields[sep + 1],
            "source": _unescape(fields[sep + 2]),
            "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
        })
    return mounts


def v1_hierarchies(mountinfo: str) -> dict[str, dict]:
    """controller -> {"mountpoint", "root", "name", "controllers"} for every
    mounted v1 hierarchy (first mount of each wins)."""
    out: dict[str, dict] = {}
    for m in parse_mountinfo(mountinfo):
        if m["fstype"] != "cgroup":
            continue
        ctrls = [o for o in m["super_options"].split(",")
                 if o in V1_KNOWN or o.startswith("name=")]
        if not ctrls:
            continue
        info = {"mountpoint": m["mountpoint"], "root": m["root"],
                "name": os.path.basename(m["mountpoint"]), "controllers": ctrls,
                "options": ",".join(o for o in m["super_options"].split(",")
                                    if o not in ("rw", "ro"))}
        for c in ctrls:
            out.setdefault(c, info)
    return out


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 entry is under ''."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def own_procs_file(root: str = ROOT) -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup in one hierarchy (a v1
    controller's when there are any, else the unified one), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            mine = parse_proc_cgroup(f.read())
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    except OSError:
        return None
    for ctrl, info in v1_hierarchies(mountinfo).items():
        if ctrl in mine and not ctrl.startswith("name="):
            rel = _strip_root(mine[ctrl], info["root"])
            return os.path.join(info["mountpoint"], rel.lstrip("/"), "cgroup.procs")
    for m in parse_mountinfo(mountinfo):
        if m["fstype"] == "cgroup2" and "" in mine:
            rel = _strip_root(mine[""], m["root"])
            return os.path.join(m["mountpoint"], rel.lstrip("/"), "cgroup.procs")
    return None


def warm_migrations(procs_file: str | None) -> None:
    """Move this process into the cgroup it is already in (a no-op move).

    Any cgroup migration takes the kernel's global threadgroup rwsem for
    writing, and the first writer after a quiet spell waits for an RCU grace
    period (measured here: 15 ms for the first cgroup.procs write, 0.05 ms for
    the ones right after).  A shim does this in a thread as it starts, so that
    the runtime's own migration of the container's init, moments later, finds
    that wait already over instead of paying it on the critical path."""
    if not procs_file:
        return
    try:
        fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"%d" % os.getpid())
        finally:
            os.close(fd)
    except OSError:
        pass


def join_self(fds: list[int]) -> None:
    """Move the calling thread into the cgroup of each fd (``open_self_join``)
    and close them.  Raises OSError (after closing them all)."""
    try:
        for fd in fds:
            os.write(fd, b"0")
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def check_cgroups_path(path: str) -> str:
    """Validate an OCI cgroupsPath; return it normalized.  Raises ValueError."""
    if not isinstance(path, str) or not path:
        raise ValueError("linux.cgroupsPath must be a non-empty string")
    if ":" in path and "/" not in path:
        raise ValueError(f"linux.cgroupsPath {path!r} looks like a systemd path "
                         "(slice:prefix:name); only cgroupfs paths are supported")
    if "\x00" in path or any(part == ".." for part in path.split("/")):
        raise ValueError(f"linux.cgroupsPath {path!r} must not contain '..'")
    norm = posixpath.normpath(path)
    if norm in ("/", "."):
        raise ValueError(f"linux.cgroupsPath {path!r} names the root cgroup")
    return norm


def _under(base: str, rel: str) -> str:
    joined = posixpath.normpath(posixpath.join(base, rel.lstrip("/")))
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise ValueError(f"cgroup path {rel!r} escapes {base}")
    return joined


def _strip_root(path: str, root: str) -> str:
    if root not in ("", "/") and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def open_cgroup(cgroups_path: str, *, root: str = ROOT, version: int | None = None,
                mountinfo: str | None = None, self_cgroup: str | None = None) -> "Cgroup":
    """The container cgroup for an OCI cgroupsPath (nothing is created yet)."""
    path = check_cgroups_path(cgroups_path)
    if version is None:
        version = detect_version(root)
    if self_cgroup is None and not path.startswith("/"):
        with open("/proc/self/cgroup") as f:
            self_cgroup = f.read()
    own = parse_proc_cgroup(self_cgroup or "")
    if version == 2:
        if mountinfo is not None:
            mounts = [m for m in parse_mountinfo(mountinfo) if m["fstype"] == "cgroup2"]
            mroot = mounts[0]["root"] if mounts else "/"
        else:
            mroot = "/"
        rel = path if path.startswith("/") else posixpath.join(
            _strip_root(own.get("", "/"), mroot), path)
        return CgroupV2(root, _under(root, rel))
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    hier = v1_hierarchies(mountinfo)
    missing = [c for c in V1_REQUIRED if c not in hier]
    if missing:
        raise CgroupError(errno.ENOENT, "cgroup v1 controllers not mounted: " + ", ".join(missing))
    dirs: dict[str, str] = {}
    mountpoints: dict[str, str] = {}
    for ctrl, info in hier.items():
        if path.startswith("/"):
            rel = path
        else:
            rel = posixpath.join(_strip_root(own.get(ctrl, "/"), info["root"]), path)
        dirs[ctrl] = _under(info["mountpoint"], rel)
        mountpoints[ctrl] = info["mountpoint"]
    return CgroupV1(dirs, mountpoints, {c: h["options"] for c, h in hier.items()})


def from_state(data: dict) -> "Cgroup":
    if data.get("version") == 2:
        return CgroupV2(data["mount"], data["path"])
    return CgroupV1(data["dirs"], data["mountpoints"], data.get("hierarchies") or {})


# --- file helpers ---------------------------------------------------------------

def _write(directory: str, name: str, value) -> None:
    path = os.path.join(directory, name)
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(exc.errno, f"cgroup: open {path}: {exc.strerror}") from None
    try:
        os.write(fd, data)
    except OSError as exc:
        raise CgroupError(exc.errno, f"cgroup: write {str(value)!r} to {path}: "
                                     f"{exc.strerror}") from None
    finally:
        os.close(fd)


def _read(directory: str, name: str) -> str:
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def _int_or_max(value: int) -> str:
    return "max" if value < 0 else str(value)


def _rmdir(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(exc.errno, f"cgroup: rmdir {path}: {exc.strerror}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _dev(entry: dict) -> str:
    return f"{int(entry['major'])}:{int(entry['minor'])}"


def device_rule(rule: dict) -> str:
    """An OCI linux.resources.devices entry as a v1 devices.allow/deny line."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise ValueError(f"bad device rule type {kind!r}")
    if kind == "a":
        return "a"
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major < 0 else str(major)
    minor = "*" if minor is None or minor < 0 else str(minor)
    access = rule.get("access") or "rwm"
    if not access or any(ch not in "rwm" for ch in access):
        raise ValueError(f"bad device access {access!r}")
    return f"{kind} {major}:{minor} {access}"


def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc's formula)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_v2(swap: int | None, limit: int | None) -> str | None:
    """OCI memory.swap is memory+swap (v1 memsw); v2 memory.swap.max is swap only."""
    if swap is None or swap == 0:
        # unlimited memory and no word about swap: unlimited swap too (runc,
        # for cgroup v1 compatibility)
        return "max" if limit is not None and limit < 0 else None
    if swap < 0:
        return "max"
    if limit is None or limit <= 0:
        raise ValueError("memory.swap needs memory.limit on cgroup v2")
    if swap < limit:
        raise ValueError(f"memory.swap ({swap}) must be >= memory.limit ({limit})")
    return str(swap - limit)


class Cgroup:
    version = 0

    def to_state(self) -> dict:
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, resources: dict | None) -> None:
        raise NotImplementedError

    def add_pid(self, pid: int) -> None:
        raise NotImplementedError

    def open_self_join(self) -> list[int] | None:
        """fds with which a single-threaded process can move itself into this
        cgroup (``join_self``), opened now (the permission to move is the
        opener's: the process may be in a user namespace by then).  None where
        that cannot be done: the process is then added by pid (``add_pid``).

        Why: moving a process by pid (cgroup.procs) takes the kernel's global
        threadgroup rwsem for writing, and its first writer after a quiet
        spell waits for an RCU grace period (7-25 ms measured here) -- on every
        container start, in its critical path.  A v1 ``tasks`` file given "0"
        moves the writing thread alone, which the kernel does without that
        lock (0.3 ms); for a single-threaded process that is all of it."""
        return None

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def remove(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    @staticmethod
    def _read_pids(directory: str) -> list[int]:
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []


class CgroupV1(Cgroup):
    version = 1

    def __init__(self, dirs: dict[str, str], mountpoints: dict[str, str],
                 hierarchies: dict[str, str] | None = None):
        # hierarchies: controller -> the hierarchy's mount options ("cpu,cpuacct")
        self.dirs = dict(dirs)
        self.mountpoints = dict(mountpoints)
        self.hierarchies = dict(hierarchies or {})

    def to_state(self) -> dict:
        return {"version": 1, "dirs": self.dirs, "mountpoints": self.mountpoints,
                "hierarchies": self.hierarchies}

    def unique_dirs(self) -> list[str]:
        seen: list[str] = []
        for ctrl in V1_KNOWN + tuple(sorted(self.dirs)):
            d = self.dirs.get(ctrl)
            if d and d not in seen:
                seen.append(d)
        return seen

    def _main(self) -> str:
        for ctrl in ("pids", "freezer", "memory"):
            if ctrl in self.dirs:
                return self.dirs[ctrl]
        return next(iter(self.dirs.values()))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def create(self) -> None:
        for ctrl in self.dirs:
            directory, mp = self.dirs[ctrl], self.mountpoints[ctrl]
            if ctrl == "cpuset":
                self._create_cpuset(directory, mp)
            else:
                try:
                    os.makedirs(directory, exist_ok=True)
                except OSError as exc:
                    raise CgroupError(exc.errno, f"cgroup: mkdir {directory}: {exc.strerror}") from None

    @staticmethod
    def _create_cpuset(directory: str, mountpoint: str) -> None:
        # a new cpuset cgroup starts with empty cpus and mems and refuses tasks
        # until they are set: copy them down from the nearest ancestor that has them
        rel = os.path.relpath(directory, mountpoint)
        current = mountpoint
        for part in rel.split("/"):
            parent, current = current, os.path.join(current, part)
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            except OSError as exc:
                raise CgroupError(exc.errno, f"cgroup: mkdir {current}: {exc.strerror}") from None
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(current, name):
                    _write(current, name, _read(parent, name))

    def add_pid(self, pid: int) -> None:
        for d in self.unique_dirs():
            _write(d, "cgroup.procs", pid)

    def open_self_join(self) -> list[int]:
        fds: list[int] = []
        try:
            for d in self.unique_dirs():
                path = os.path.join(d, "tasks")
                try:
                    fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
                except OSError as exc:
                    raise CgroupError(exc.errno, f"cgroup: open {path}: {exc.strerror}") from None
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def pids(self) -> list[int]:
        return self._read_pids(self._main())

    def freeze(self, timeout: float = 5.0) -> None:
        self._freezer("FROZEN", timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._freezer("THAWED", timeout)

    def _freezer(self, want: str, timeout: float) -> None:
        d = self.dirs.get("freezer")
        if d is None:
            raise CgroupError(errno.ENOTSUP, "cgroup: the freezer controller is not mounted")
        deadline = time.monotonic() + timeout
        while True:
            _write(d, "freezer.state", want)
            if _read(d, "freezer.state") == want:
                return
            if time.monotonic() > deadline:
                raise CgroupError(errno.ETIMEDOUT, f"cgroup: {d} did not become {want}")
            time.sleep(0.001)

    def is_frozen(self) -> bool:
        d = self.dirs.get("freezer")
        return bool(d) and _read(d, "freezer.state") in ("FROZEN", "FREEZING")

    def remove(self, timeout: float = 5.0) -> None:
        for d in self.unique_dirs():
            _rmdir(d, timeout)

    # --- resources ---

    def apply(self, resources: dict | None) -> None:
        r = resources or {}
        self._memory(r.get("memory") or {})
        pids = r.get("pids") or {}
        if pids.get("limit") is not None and pids["limit"] != 0:
            _write(self.dirs["pids"], "pids.max", _int_or_max(pids["limit"]))
        self._cpu(r.get("cpu") or {})
        self._blkio(r.get("blockIO") or {})
        for hp in r.get("hugepageLimits") or ():
            d = self._need("hugetlb", "hugepageLimits")
            _write(d, f"hugetlb.{hp['pageSize']}.limit_in_bytes", hp["limit"])
        net = r.get("network") or {}
        if net.get("classID") is not None:
            _write(self._need("net_cls", "network.classID"), "net_cls.classid", net["classID"])
        for prio in net.get("priorities") or ():
            _write(self._need("net_prio", "network.priorities"), "net_prio.ifpriomap",
                   f"{prio['name']} {prio['priority']}")
        if r.get("devices") is not None:
            self.apply_devices(r["devices"])
        if r.get("unified"):
            raise CgroupError(errno.ENOTSUP, "cgroup: linux.resources.unified needs cgroup v2")

    def _need(self, ctrl: str, what: str) -> str:
        d = self.dirs.get(ctrl)
        if d is None:
            raise CgroupError(errno.ENOTSUP, f"cgroup: {what} needs the {ctrl} controller, "
                                             "which is not mounted")
        return d

    def _memory(self, mem: dict) -> None:
        if not mem:
            return
        d = self.dirs["memory"]
        limit, swap = mem.get("limit"), mem.get("swap")
        if limit == 0:
            limit = None
        if swap == 0:
            swap = None
        if swap is not None and not _exists(d, "memory.memsw.limit_in_bytes"):
            if swap > 0:
                raise CgroupError(errno.ENOTSUP, "cgroup: memory.swap is not supported "
                                  "(no memory.memsw.limit_in_bytes: swap accounting is off)")
            swap = None
        if limit is not None and swap is not None:
            # memsw must stay >= limit at every step: try limit first, and if the
            # kernel refuses (the new limit exceeds the current memsw), swap first
            try:
                _write(d, "memory.limit_in_bytes", limit)
                _write(d, "memory.memsw.limit_in_bytes", swap)
            except CgroupError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                _write(d, "memory.memsw.limit_in_bytes", swap)
                _write(d, "memory.limit_in_bytes", limit)
        elif limit is not None:
            _write(d, "memory.limit_in_bytes", limit)
        elif swap is not None:
            _write(d, "memory.memsw.limit_in_bytes", swap)
        if mem.get("reservation"):
            _write(d, "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("kernelTCP"):
            _write(d, "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"])
        if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
            _write(d, "memory.swappiness", mem["swappiness"])
        if mem.get("disableOOMKiller"):
            _write(d, "memory.oom_control", 1)
        if mem.get("useHierarchy") is not None:
            want = "1" if mem["useHierarchy"] else "0"
            if _read(d, "memory.use_hierarchy") != want:
                _write(d, "memory.use_hierarchy", want)

    def _cpu(self, cpu: dict) -> None:
        if not cpu:
            return
        d = self.dirs["cpu"]
        if cpu.get("shares"):
            _write(d, "cpu.shares", cpu["shares"])
        period = cpu.get("period")
        if period:
            try:
                _write(d, "cpu.cfs_period_us", period)
                period = None
            except CgroupError as exc:
                # a shorter period can be refused (EINVAL) while the old quota
                # would exceed the parent's limit: set the quota, then retry
                if exc.errno != errno.EINVAL or not cpu.get("quota"):
                    raise
        if cpu.get("quota"):
            _write(d, "cpu.cfs_quota_us", cpu["quota"])
            if period:
                _write(d, "cpu.cfs_period_us", period)
        if cpu.get("burst") is not None:
            _write(d, "cpu.cfs_burst_us", cpu["burst"])
        if cpu.get("realtimePeriod"):
            _write(d, "cpu.rt_period_us", cpu["realtimePeriod"])
        if cpu.get("realtimeRuntime"):
            _write(d, "cpu.rt_runtime_us", cpu["realtimeRuntime"])
        if cpu.get("idle") is not None:
            _write(d, "cpu.idle", cpu["idle"])
        if cpu.get("cpus"):
            _write(self.dirs["cpuset"], "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            _write(self.dirs["cpuset"], "cpuset.mems", cpu["mems"])

    def _blkio(self, bio: dict) -> None:
        if not bio:
            return
        d = self.dirs["blkio"]
        if bio.get("weight"):
            name = "blkio.weight" if _exists(d, "blkio.weight") else "blkio.bfq.weight"
            if not _exists(d, name):
                raise CgroupError(errno.ENOTSUP, "cgroup: blockIO.weight is not supported "
                                  "by this kernel (no blkio.weight or blkio.bfq.weight)")
            _write(d, name, bio["weight"])
        if bio.get("leafWeight"):
            _write(d, "blkio.leaf_weight", bio["leafWeight"])
        for wd in bio.get("weightDevice") or ():
            name = "blkio.weight_device" if _exists(d, "blkio.weight_device") else "blkio.bfq.weight_device"
            if wd.get("weight"):
                _write(d, name, f"{_dev(wd)} {wd['weight']}")
            if wd.get("leafWeight"):
                _write(d, "blkio.leaf_weight_device", f"{_dev(wd)} {wd['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                          ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                          ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                          ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for td in bio.get(key) or ():
                _write(d, name, f"{_dev(td)} {td['rate']}")

    def apply_devices(self, rules: list[dict]) -> None:
        d = self.dirs["devices"]
        for rule in rules:
            line = device_rule(rule)
            _write(d, "devices.allow" if rule.get("allow") else "devices.deny", line)


class CgroupV2(Cgroup):
    version = 2

    def __init__(self, mount: str, path: str):
        self.mount = mount
        self.path = path

    def to_state(self) -> dict:
        return {"version": 2, "mount": self.mount, "path": self.path}

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def create(self) -> None:
        rel = os.path.relpath(self.path, self.mount)
        current = self.mount
        for part in rel.split("/"):
            # controllers must be enabled in every ancestor's subtree_control
            available = _read(current, "cgroup.controllers").split()
            enabled = _read(current, "cgroup.subtree_control").split()
            want = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
            if want:
                _write(current, "cgroup.subtree_control", " ".join("+" + c for c in want))
            current = os.path.join(current, part)
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            except OSError as exc:
                raise CgroupError(exc.errno, f"cgroup: mkdir {current}: {exc.strerror}") from None

    def add_pid(self, pid: int) -> None:
        _write(self.path, "cgroup.procs", pid)

    def pids(self) -> list[int]:
        return self._read_pids(self.path)

    def freeze(self, timeout: float = 5.0) -> None:
        self._freeze("1", timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._freeze("0", timeout)

    def _freeze(self, want: str, timeout: float) -> None:
        _write(self.path, "cgroup.freeze", want)
        deadline = time.monotonic() + timeout
        while True:
            events = dict(line.split(" ", 1) for line in
                          _read(self.path, "cgroup.events").splitlines() if " " in line)
            if events.get("frozen", want) == want:
                return
            if time.monotonic() > deadline:
                raise CgroupError(errno.ETIMEDOUT, f"cgroup: {self.path} did not "
                                  f"{'freeze' if want == '1' else 'thaw'}")
            time.sleep(0.001)

    def is_frozen(self) -> bool:
        return _read(self.path, "cgroup.freeze") == "1"

    def remove(self, timeout: float = 5.0) -> None:
        _rmdir(self.path, timeout)

    def apply(self, resources: dict | None) -> None:
        r = resources or {}
        d = self.path
        mem = r.get("memory") or {}
        if mem:
            limit = mem.get("limit") or None
            if limit is not None and limit > 0 and mem.get("checkBeforeUpdate"):
                usage = _read(d, "memory.current")
                if usage.isdigit() and int(usage) >= limit:
                    raise CgroupError(errno.EBUSY, f"cgroup: rejecting memory limit {limit} "
                                      f"below the current usage {usage}")
            sw = swap_v2(mem.get("swap"), limit)
            # swap first: memory.swap.max does not depend on memory.max
            if sw is not None and (sw != "max" or _exists(d, "memory.swap.max")):
                _write(d, "memory.swap.max", sw)
            if limit is not None:
                _write(d, "memory.max", _int_or_max(limit))
            if mem.get("reservation"):
                _write(d, "memory.low", mem["reservation"])
            if mem.get("disableOOMKiller"):
                raise CgroupError(errno.ENOTSUP, "cgroup: memory.disableOOMKiller is not "
                                  "supported on cgroup v2")
            # v1-only knobs: refused rather than ignored
            if mem.get("kernelTCP"):
                raise CgroupError(errno.ENOTSUP, "cgroup: memory.kernelTCP needs cgroup v1")
            if mem.get("swappiness") is not None:
                raise CgroupError(errno.ENOTSUP, "cgroup: memory.swappiness needs cgroup v1")
            if mem.get("useHierarchy") is False:
                raise CgroupError(errno.ENOTSUP, "cgroup: memory.useHierarchy false: cgroup "
                                  "v2 is always hierarchical")
        pids = r.get("pids") or {}
        if pids.get("limit") is not None and pids["limit"] != 0:
            _write(d, "pids.max", _int_or_max(pids["limit"]))
        cpu = r.get("cpu") or {}
        if cpu:
            if cpu.get("shares"):
                _write(d, "cpu.weight", cpu_shares_to_weight(cpu["shares"]))
            quota, period = cpu.get("quota"), cpu.get("period")
            if quota or period:
                q = "max" if not quota or quota < 0 else str(quota)
                _write(d, "cpu.max", f"{q} {period}" if period else q)
            if cpu.get("burst") is not None:
                _write(d, "cpu.max.burst", cpu["burst"])
            if cpu.get("idle") is not None:
                _write(d, "cpu.idle", cpu["idle"])
            if cpu.get("cpus"):
                _write(d, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                _write(d, "cpuset.mems", cpu["mems"])
            if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
                raise CgroupError(errno.ENOTSUP, "cgroup: realtime cpu limits need cgroup v1")
        bio = r.get("blockIO") or {}
        if bio.get("weight"):
            if _exists(d, "io.bfq.weight"):
                _write(d, "io.bfq.weight", bio["weight"])
            else:
                _write(d, "io.weight", blkio_weight_to_io_weight(bio["weight"]))
        if bio.get("leafWeight"):
            raise CgroupError(errno.ENOTSUP, "cgroup: blockIO.leafWeight needs cgroup v1")
        for wd in bio.get("weightDevice") or ():
            if wd.get("leafWeight"):
                raise CgroupError(errno.ENOTSUP, "cgroup: blockIO.weightDevice leafWeight "
                                  "needs cgroup v1")
            if wd.get("weight"):
                _write(d, "io.weight", f"{_dev(wd)} {blkio_weight_to_io_weight(wd['weight'])}")
        for key, field in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                           ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for td in bio.get(key) or ():
                _write(d, "io.max", f"{_dev(td)} {field}={td['rate']}")
        for hp in r.get("hugepageLimits") or ():
            _write(d, f"hugetlb.{hp['pageSize']}.max", hp["limit"])
        net = r.get("network") or {}
        if net.get("classID") is not None or net.get("priorities"):
            raise CgroupError(errno.ENOTSUP, "cgroup: network.classID and priorities need "
                              "cgroup v1 (net_cls, net_prio)")
        for key, value in (r.get("unified") or {}).items():
            if "/" in key or key.startswith("."):
                raise CgroupError(errno.EINVAL, f"cgroup: bad unified key {key!r}")
            _write(d, key, value)
        if r.get("devices"):
            self.apply_devices(r["devices"])

    def apply_devices(self, rules: list[dict]) -> None:
        """The device rules as an eBPF program attached to this cgroup."""
        from .bpf import apply_device_rules

        try:
            apply_device_rules(self.path, rules)
        except ValueError as exc:
            raise CgroupError(errno.EINVAL, f"cgroup: device rules: {exc}") from None
        except OSError as exc:
            raise CgroupError(exc.errno, f"cgroup: device filter for {self.path}: "
                                         f"{exc.strerror}") from None
