"""linux/: capability tables, mount option parsing, path resolution inside a
root (crafted symlinks in a temp dir), cgroup path computation and resource
files on a fake /sys/fs/cgroup tree.  No root needed."""

from __future__ import annotations

import errno
import os
import time

import pytest

from linux import caps, cgroups, mounts
from linux import syscalls as sc

# --- capabilities ---------------------------------------------------------------


def test_capability_names_and_numbers():
    assert caps.cap_number("CAP_CHOWN") == 0
    assert caps.cap_number("kill") == 5
    assert caps.cap_number("SYS_ADMIN") == 21
    assert caps.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    assert caps.cap_name(24) == "CAP_SYS_RESOURCE"
    with pytest.raises(ValueError, match="unknown capability"):
        caps.cap_number("CAP_FLY")
    assert all(caps.cap_name(caps.cap_number(n)) == n for n in caps.CAPABILITIES)


def test_capability_masks_round_trip():
    mask = caps.to_mask(caps.DOCKER_DEFAULT)
    assert len(caps.DOCKER_DEFAULT) == 14
    assert sorted(caps.from_mask(mask)) == sorted(caps.DOCKER_DEFAULT)
    assert mask == 0xA80425FB  # Docker's default CapEff/CapBnd as `grep Cap` shows it


def test_parse_status_caps():
    text = "Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n" \
           "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    got = caps.parse_status_caps(text)
    assert got == {"CapInh": 0, "CapPrm": 0xA80425FB, "CapEff": 0xA80425FB,
                   "CapBnd": 0xA80425FB, "CapAmb": 0}


def test_capget_of_self():
    eff, prm, inh = sc.capget()
    with open("/proc/self/status") as f:
        status = caps.parse_status_caps(f.read())
    assert (eff, prm, inh) == (status["CapEff"], status["CapPrm"], status["CapInh"])


# --- syscall wrappers report errors clearly ---------------------------------------

def test_syscall_errors_name_the_call(tmp_path):
    with pytest.raises(OSError) as info:
        sc.statfs_type(str(tmp_path / "missing"))
    assert info.value.errno == errno.ENOENT
    assert "statfs" in str(info.value) and "missing" in str(info.value)
    with pytest.raises(OSError) as info:
        sc.umount2(str(tmp_path / "not-a-mount"))
    assert "umount2" in str(info.value)


def test_close_fds_except():
    import subprocess
    import sys

    from tests.runtime.support import ENV, REPO

    code = (
        "import os; from linux import syscalls as sc\n"
        "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(5)]\n"
        "sc.close_fds_except([0, 1, 2, fds[2]])\n"
        "def is_open(fd):\n"
        "    try:\n"
        "        os.fstat(fd)\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(fds[2], *[fd for fd in range(256) if is_open(fd)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=ENV, check=True).stdout.split()
    keep, *left = map(int, out)
    assert left == [0, 1, 2, keep]


# --- mount options -----------------------------------------------------------------

def test_parse_options():
    o = mounts.parse_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                              "gid=5"])
    assert o.flags == sc.MS_NOSUID | sc.MS_NOEXEC
    assert o.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert not o.is_bind and o.propagation == []
    o = mounts.parse_options(["rbind", "ro", "rprivate"])
    assert o.is_bind and o.flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY
    assert o.propagation == [sc.MS_PRIVATE | sc.MS_REC]
    o = mounts.parse_options(["ro", "rw", "nodev", "dev"])  # later wins
    assert o.flags == 0
    assert mounts.parse_options(None).flags == 0


@pytest.mark.parametrize("opt", ["tmpcopyup", "idmap", "rro", "rnosuid"])
def test_parse_options_refuses(opt):
    with pytest.raises(ValueError, match="not supported"):
        mounts.parse_options([opt])


def test_mount_flags_of_root():
    flags = mounts.mount_flags_of("/proc")
    assert flags & sc.MS_NOSUID or flags == 0 or flags & sc.MS_RELATIME


# --- paths inside a root -------------------------------------------------------------

@pytest.fixture
def jail(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "file").write_text("x")
    os.symlink("/", root / "toroot")
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../../../etc", root / "climb")
    os.symlink("real", root / "rel")
    os.symlink("rel/file", root / "chain")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink(str(tmp_path), root / "host")  # an absolute host path
    return str(root)


@pytest.mark.parametrize("path, expect", [
    ("/etc", "etc"),
    ("etc/", "etc"),
    ("/toroot", ""),
    ("/toroot/etc/passwd", "etc/passwd"),
    ("/abs/x", "etc/x"),
    ("/climb/x", "etc/x"),
    ("/../../../etc", "etc"),
    ("/rel/file", "real/file"),
    ("/chain", "real/file"),
    ("/real/./file/../file", "real/file"),
    ("/missing/deeper/x", "missing/deeper/x"),
])
def test_resolve_in_root(jail, path, expect):
    assert mounts.resolve_in_root(jail, path) == os.path.join(jail, expect).rstrip("/")


def test_resolve_in_root_host_symlink_stays_inside(jail, tmp_path):
    got = mounts.resolve_in_root(jail, "/host/x")
    assert got == os.path.join(jail, str(tmp_path).lstrip("/"), "x")
    assert got.startswith(jail + "/")


def test_resolve_in_root_loop(jail):
    with pytest.raises(OSError) as info:
        mounts.resolve_in_root(jail, "/loop1/x")
    assert info.value.errno == errno.ELOOP


def test_open_in_root_creates_inside(jail, tmp_path):
    fd, target = mounts.open_in_root(jail, "/host/newdir/sub")
    try:
        assert target == os.path.join(jail, str(tmp_path).lstrip("/"), "newdir", "sub")
        assert os.readlink(f"/proc/self/fd/{fd}") == target
    finally:
        os.close(fd)
    assert not (tmp_path / "newdir").exists()  # nothing on the host side of the link
    fd, target = mounts.open_in_root(jail, "/abs/hosts", create="file")
    os.close(fd)
    assert os.path.isfile(os.path.join(jail, "etc", "hosts"))


# --- cgroups -----------------------------------------------------------------------

MOUNTINFO_V1 = """\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / {root} ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / {root}/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw
28 26 0:25 / {root}/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 26 0:26 / {root}/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
30 26 0:27 / {root}/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
31 26 0:28 / {root}/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
32 26 0:29 / {root}/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset
33 26 0:30 / {root}/blkio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,blkio
34 26 0:31 / {root}/devices rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,devices
35 26 0:32 / {root}/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
36 26 0:33 / {root}/with\\040space rw - cgroup cgroup rw,net_cls
"""

PROC_CGROUP = """\
12:net_cls:/
11:freezer:/
10:memory:/user.slice/me
9:cpu,cpuacct:/user.slice/me
8:pids:/user.slice
7:cpuset:/
6:blkio:/
5:devices:/user.slice
1:name=systemd:/user.slice/me/session-1.scope
0::/user.slice/me/session-1.scope
"""

V1_FILES = {
    "memory": ["cgroup.procs", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
               "memory.soft_limit_in_bytes", "memory.swappiness", "memory.oom_control",
               "memory.kmem.tcp.limit_in_bytes", "memory.use_hierarchy"],
    "pids": ["cgroup.procs", "pids.max"],
    "cpu,cpuacct": ["cgroup.procs", "cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
    "cpuset": ["cgroup.procs", "cpuset.cpus", "cpuset.mems"],
    "blkio": ["cgroup.procs", "blkio.weight", "blkio.throttle.read_bps_device"],
    "devices": ["cgroup.procs", "devices.allow", "devices.deny"],
    "freezer": ["cgroup.procs", "freezer.state"],
    "systemd": ["cgroup.procs"],
    "with space": ["cgroup.procs"],
}


def fake_v1(tmp_path, rel: str) -> str:
    """A fake v1 tree, with the kernel's files pre-made along rel in every hierarchy."""
    root = str(tmp_path / "cg")
    for hier, files in V1_FILES.items():
        current = os.path.join(root, hier)
        for part in [""] + rel.strip("/").split("/"):
            current = os.path.join(current, part) if part else current
            os.makedirs(current, exist_ok=True)
            for name in files:
                path = os.path.join(current, name)
                if not os.path.exists(path):
                    with open(path, "w") as f:
                        f.write("")
    with open(os.path.join(root, "cpuset", "cpuset.cpus"), "w") as f:
        f.write("0-3\n")
    with open(os.path.join(root, "cpuset", "cpuset.mems"), "w") as f:
        f.write("0\n")
    with open(os.path.join(root, "freezer", "freezer.state"), "w") as f:
        f.write("THAWED\n")
    return root


def read(*parts) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def test_parse_mountinfo_and_hierarchies():
    info = MOUNTINFO_V1.format(root="/sys/fs/cgroup")
    hier = cgroups.v1_hierarchies(info)
    assert hier["cpu"]["mountpoint"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert hier["cpuacct"] is hier["cpu"]
    assert hier["name=systemd"]["options"] == "xattr,name=systemd"
    assert hier["net_cls"]["mountpoint"] == "/sys/fs/cgroup/with space"
    assert "unified" not in {h["name"] for h in hier.values()}
    own = cgroups.parse_proc_cgroup(PROC_CGROUP)
    assert own["cpu"] == own["cpuacct"] == "/user.slice/me"
    assert own[""] == "/user.slice/me/session-1.scope"


def test_open_cgroup_v1_absolute_and_relative(tmp_path):
    root = str(tmp_path / "cg")
    info = MOUNTINFO_V1.format(root=root)
    cg = cgroups.open_cgroup("/trioctr-test-x/c1", root=root, version=1, mountinfo=info,
                             self_cgroup=PROC_CGROUP)
    assert cg.dirs["memory"] == f"{root}/memory/trioctr-test-x/c1"
    assert cg.dirs["cpu"] == cg.dirs["cpuacct"] == f"{root}/cpu,cpuacct/trioctr-test-x/c1"
    assert cg.dirs["name=systemd"] == f"{root}/systemd/trioctr-test-x/c1"
    assert len(cg.unique_dirs()) == 9
    rel = cgroups.open_cgroup("ctr/c1", root=root, version=1, mountinfo=info,
                              self_cgroup=PROC_CGROUP)
    assert rel.dirs["memory"] == f"{root}/memory/user.slice/me/ctr/c1"
    assert rel.dirs["pids"] == f"{root}/pids/user.slice/ctr/c1"
    assert rel.dirs["cpuset"] == f"{root}/cpuset/ctr/c1"
    restored = cgroups.from_state(cg.to_state())
    assert restored.dirs == cg.dirs and restored.version == 1


def test_open_cgroup_v1_needs_controllers(tmp_path):
    info = "30 26 0:27 / /x/memory rw - cgroup cgroup rw,memory\n"
    with pytest.raises(OSError, match="not mounted: cpuset, cpu, cpuacct, pids"):
        cgroups.open_cgroup("/a", root="/x", version=1, mountinfo=info, self_cgroup="")


@pytest.mark.parametrize("bad", ["", "/", ".", "/a/../b", "../a", "a:b:c"])
def test_check_cgroups_path_refuses(bad):
    with pytest.raises(ValueError):
        cgroups.check_cgroups_path(bad)


def test_v1_create_copies_cpuset_and_applies_resources(tmp_path):
    root = fake_v1(tmp_path, "/trioctr-test-x/c1")
    info = MOUNTINFO_V1.format(root=root)
    cg = cgroups.open_cgroup("/trioctr-test-x/c1", root=root, version=1, mountinfo=info,
                             self_cgroup="")
    cg.create()
    # cpus and mems copied down from the hierarchy root through the new parent
    assert read(root, "cpuset/trioctr-test-x/cpuset.cpus") == "0-3"
    assert read(root, "cpuset/trioctr-test-x/c1/cpuset.mems") == "0"
    cg.apply({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                   "swappiness": 10, "disableOOMKiller": True},
        "pids": {"limit": 42},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                               "rate": 1000}]},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    })
    leaf = lambda h, f: read(root, h, "trioctr-test-x/c1", f)  # noqa: E731
    assert leaf("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert leaf("memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert leaf("memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert leaf("memory", "memory.swappiness") == "10"
    assert leaf("memory", "memory.oom_control") == "1"
    assert leaf("pids", "pids.max") == "42"
    assert leaf("cpu,cpuacct", "cpu.shares") == "512"
    assert leaf("cpu,cpuacct", "cpu.cfs_quota_us") == "50000"
    assert leaf("cpu,cpuacct", "cpu.cfs_period_us") == "100000"
    assert leaf("cpuset", "cpuset.cpus") == "1"
    assert leaf("blkio", "blkio.weight") == "300"
    assert leaf("blkio", "blkio.throttle.read_bps_device") == "8:0 1000"
    assert leaf("devices", "devices.deny") == "a"
    assert leaf("devices", "devices.allow") == "c 1:3 rwm"
    cg.apply({"pids": {"limit": -1}})
    assert leaf("pids", "pids.max") == "max"
    cg.add_pid(1234)
    assert leaf("memory", "cgroup.procs") == "1234"
    assert cg.pids() == [1234]
    assert not cg.is_frozen()


def test_v1_refuses_what_it_cannot_do(tmp_path):
    root = fake_v1(tmp_path, "/t/c")
    info = MOUNTINFO_V1.format(root=root)
    cg = cgroups.open_cgroup("/t/c", root=root, version=1, mountinfo=info, self_cgroup="")
    with pytest.raises(OSError, match="needs the hugetlb controller"):
        cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
    with pytest.raises(OSError, match="needs cgroup v2"):
        cg.apply({"unified": {"memory.high": "1"}})
    with pytest.raises(OSError) as info_:
        cg.apply({"cpu": {"idle": 1}})  # no cpu.idle file in this fake kernel
    assert "cpu.idle" in str(info_.value)


def test_v1_remove_leaf_only(tmp_path):
    root = str(tmp_path / "cg")
    info = MOUNTINFO_V1.format(root=root)
    cg = cgroups.open_cgroup("/p/leaf", root=root, version=1, mountinfo=info, self_cgroup="")
    for d in cg.unique_dirs():
        os.makedirs(d)
    assert cg.exists()
    cg.remove()
    assert not cg.exists()
    assert os.path.isdir(os.path.join(root, "memory", "p"))  # the parent is the caller's
    cg.remove()  # idempotent


@pytest.mark.parametrize("rule, line", [
    ({"allow": False, "access": "rwm"}, "a"),
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}, "c 1:3 rwm"),
    ({"allow": True, "type": "c", "major": 136, "access": "rw"}, "c 136:* rw"),
    ({"allow": True, "type": "b", "access": "m"}, "b *:* m"),
    ({"allow": True, "type": "c", "major": -1, "minor": -1}, "c *:* rwm"),
])
def test_device_rule(rule, line):
    assert cgroups.device_rule(rule) == line


def test_device_rule_refuses():
    with pytest.raises(ValueError):
        cgroups.device_rule({"type": "z"})
    with pytest.raises(ValueError):
        cgroups.device_rule({"type": "c", "access": "rwx"})


def test_v2_conversions():
    assert cgroups.cpu_shares_to_weight(1024) == 39
    assert cgroups.cpu_shares_to_weight(2) == 1
    assert cgroups.cpu_shares_to_weight(262144) == 10000
    assert cgroups.swap_v2(None, 100) is None
    assert cgroups.swap_v2(-1, 100) == "max"
    assert cgroups.swap_v2(300, 100) == "200"
    with pytest.raises(ValueError):
        cgroups.swap_v2(50, 100)
    with pytest.raises(ValueError):
        cgroups.swap_v2(50, None)


def test_v2_create_enables_controllers_in_ancestors(tmp_path):
    root = tmp_path / "unified"
    (root / "a").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    (root / "a" / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "a" / "cgroup.subtree_control").write_text("")
    cg = cgroups.open_cgroup("/a/c1", root=str(root), version=2, self_cgroup="0::/\n")
    assert cg.path == str(root / "a" / "c1")
    cg.create()
    assert (root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +pids +hugetlb"
    assert (root / "a" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / "a" / "c1").is_dir()
    for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.weight", "cpu.max",
                 "cgroup.procs", "cgroup.freeze"):
        (root / "a" / "c1" / name).write_text("")
    cg.apply({"memory": {"limit": 100, "swap": 300}, "pids": {"limit": 5},
              "cpu": {"shares": 1024, "quota": 20000, "period": 100000}})
    leaf = root / "a" / "c1"
    assert (leaf / "memory.max").read_text() == "100"
    assert (leaf / "memory.swap.max").read_text() == "200"
    assert (leaf / "pids.max").read_text() == "5"
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "cpu.max").read_text() == "20000 100000"
    with pytest.raises(OSError, match="device filter"):
        cg.apply({"devices": [{"allow": False, "access": "rwm"}]})
    rel = cgroups.open_cgroup("c2", root=str(root), version=2, self_cgroup="0::/a\n")
    assert rel.path == str(root / "a" / "c2")
    assert cgroups.from_state(cg.to_state()).path == cg.path


def test_detect_version_here():
    # this host: v1 hierarchies under a tmpfs (hybrid) or pure v2; either way a known answer
    assert cgroups.detect_version() in (1, 2)


# --- seccomp (built, never loaded, in the test process) ---------------------------------

def test_seccomp_actions_and_rules():
    from linux import seccomp

    assert seccomp.action("SCMP_ACT_ERRNO") == seccomp.ACT_ERRNO | errno.EPERM
    assert seccomp.action("SCMP_ACT_ERRNO", 38) == seccomp.ACT_ERRNO | 38
    assert seccomp.action("SCMP_ACT_ERRNO", None, 13) == seccomp.ACT_ERRNO | 13
    assert seccomp.action("SCMP_ACT_KILL") == seccomp.ACT_KILL_THREAD
    assert seccomp.arch_name("SCMP_ARCH_X86_64") == "x86_64"
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"},
                  {"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},  # = default
    ]}
    got = seccomp.rules(spec)
    allow = seccomp.ACT_ALLOW
    assert got == [
        (allow, "read", []), (allow, "write", []),
        # two conditions on one argument: one rule each (they are ORed)
        (allow, "personality", [(0, 4, 0, 0)]), (allow, "personality", [(0, 4, 8, 0)]),
        (allow, "clone", [(0, 7, 0x7E020000, 0), (1, 1, 0, 0)]),
    ]
    filt = seccomp.compile(dict(spec, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
    filt.release()


@pytest.mark.parametrize("spec, why", [
    ([], "must be an object"),
    ({}, "defaultAction is required"),
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "unknown seccomp action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]},
     "not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}, "bad seccomp arch"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}]}, "index must be 0..5"),
])
def test_seccomp_check_refuses(spec, why):
    from linux import seccomp

    with pytest.raises(ValueError, match=why):
        seccomp.check(spec)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_warm_migration_is_a_no_op_move_into_our_own_cgroup():
    procs = cgroups.own_procs_file()
    assert procs and os.path.basename(procs) == "cgroup.procs"
    with open(procs) as f:
        assert str(os.getpid()) in f.read().split()
    with open("/proc/self/cgroup") as f:
        before = f.read()
    cgroups.warm_migrations(procs)
    with open("/proc/self/cgroup") as f:
        assert f.read() == before
    cgroups.warm_migrations(None)  # nothing to do, no error
    cgroups.warm_migrations("/nonexistent/cgroup.procs")  # errors are ignored


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_forked_child_joins_a_v1_cgroup_by_itself(cgroup_parent):
    cg = cgroups.open_cgroup(f"{cgroup_parent}/selfjoin")
    if cg.version != 1:
        pytest.skip("cgroup v1 only (v2 adds the process by pid)")
    cg.create()
    try:
        with open("/proc/self/cgroup") as f:
            before = f.read()
        fds = cg.open_self_join()
        assert len(fds) == len(cg.unique_dirs())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # single-threaded: its one thread is all of it
            code = 1
            try:
                cgroups.join_self(fds)
                with open("/proc/self/cgroup") as f:
                    os.write(w, f.read().encode())
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        os.close(w)
        with os.fdopen(r) as f:
            seen = f.read()
        assert os.waitpid(pid, 0)[1] == 0
        paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in seen.splitlines()}
        for ctrls, path in paths.items():
            if ctrls:
                assert path == f"{cgroup_parent}/selfjoin", (ctrls, path)
        with open("/proc/self/cgroup") as f:
            assert f.read() == before  # the parent stays where it was
    finally:
        cg.remove()


def test_v2_has_no_self_join():
    assert cgroups.CgroupV2("/sys/fs/cgroup", "/sys/fs/cgroup/x").open_self_join() is None


def test_the_seccomp_program_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    from linux import seccomp

    monkeypatch.setattr(seccomp, "CACHE_MAX", 3)
    cache = tmp_path / "cache"

    def spec(n: int) -> dict:
        return {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": n}]}

    def entry(n: int):
        return cache / (seccomp.cache_key(spec(n)) + ".bpf")

    for n, age in ((1, 400), (2, 300), (3, 200)):
        seccomp.compile_cached(spec(n), str(cache)).release()
        os.utime(entry(n), (time.time() - age, time.time() - age))
    # a hit marks its entry used: 1 is now the most recent, 2 the least
    assert isinstance(seccomp.compile_cached(spec(1), str(cache)), seccomp.Program)
    litter = cache / (entry(9).name + ".tmp4242")
    litter.write_bytes(b"half")
    os.utime(litter, (time.time() - 2 * seccomp.CACHE_TMP_AGE,) * 2)
    fresh_litter = cache / (entry(8).name + ".tmp4343")
    fresh_litter.write_bytes(b"being written")
    seccomp.compile_cached(spec(4), str(cache)).release()  # a miss: 4 in, 2 out
    assert sorted(p.name for p in cache.glob("*.bpf")) == sorted(entry(n).name for n in (1, 3, 4))
    assert not litter.exists() and fresh_litter.exists()
