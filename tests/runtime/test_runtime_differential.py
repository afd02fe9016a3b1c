"""Differential tests: the same bundle under runc and under ours, the same
view from inside the container.

Needs root and runc.  Each case changes the test spec, runs a probe with
`run` under both runtimes and compares stdout and stderr line by line, each
on its own (runc's foreground `run` copies the two through pipes of its own,
so their interleaving on one merged pipe is not deterministic).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from linux import caps as capmod

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not any(os.path.exists(p) for p in ("/usr/sbin/runc", "/usr/bin/runc")),
                       reason="runc is not installed"),
]

BASELINE = ("hostname; id; grep ^Cap /proc/self/status; "
            "echo mounts: $(cut -d' ' -f2,3 /proc/self/mounts); "
            "echo dev: $(ls -A /dev); "
            "echo links: $(for l in fd stdin ptmx; do readlink /dev/$l; done); "
            "echo ro: $(grep -E ' (/|/sys|/proc/sys|/proc/bus) ' /proc/self/mounts | "
            "cut -d' ' -f2,4 | cut -d, -f1); "
            "cat /proc/self/cgroup; ulimit -a; grep NoNewPrivs /proc/self/status; umask; "
            "env | sort; ls /sys/class/net; "
            "echo masked: $(wc -c < /proc/timer_list) $(ls /sys/firmware | wc -l); "
            "echo pid1: $(cat /proc/1/comm); echo sid: $(cut -d' ' -f6 /proc/self/stat)")


def both(rt, name: str, cfg_for) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Run cfg_for(container id) under ours and under runc."""

    def run(cid, argv):
        b = rt.bundle(cid, cfg_for(cid))
        return subprocess.run(argv(b), capture_output=True, stdin=subprocess.DEVNULL,
                              text=True, timeout=60)

    ours_id, runc_id = f"{name}-ours", f"{name}-runc"
    rt.ids.append(ours_id)
    ours = run(ours_id, lambda b: rt.argv("run", "--bundle", str(b), ours_id))
    runc_root = str(rt.tmp / "runc-state")
    try:
        theirs = run(runc_id, lambda b: ["runc", "--root", runc_root, "run", "--bundle", str(b),
                                         runc_id])
    finally:
        subprocess.run(["runc", "--root", runc_root, "delete", "--force", runc_id],
                       capture_output=True, timeout=60)
    return ours, theirs


def assert_same(ours, theirs) -> None:
    assert ours.returncode == theirs.returncode, (ours, theirs)
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    assert ours.stderr.splitlines() == theirs.stderr.splitlines()


def test_same_bundle_same_view_as_runc(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c", BASELINE])
        cfg["root"]["readonly"] = True
        cfg["hostname"] = "differential"
        cfg["process"]["env"].append("PROBE=1")
        cfg["process"]["capabilities"] = {k: list(capmod.DOCKER_DEFAULT)
                                          for k in ("bounding", "effective", "permitted")}
        return cfg

    ours, theirs = both(rt, "diff", cfg_for)
    assert ours.returncode == 0, ours.stderr
    # (mount options are not compared: runc leaves the /sys/fs/cgroup tmpfs
    # itself read-write under "ro"; we make it read-only too)
    assert_same(ours, theirs)
    assert "links: /proc/self/fd /proc/self/fd/0 pts/ptmx" in ours.stdout
    assert "sid: 1" in ours.stdout


def test_rlimits_like_runc(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c", "cat /proc/self/limits; ulimit -a"])
        cfg["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 1 << 20},
            {"type": "RLIMIT_STACK", "soft": 4 << 20, "hard": 16 << 20},
            {"type": "RLIMIT_MEMLOCK", "soft": 65536, "hard": 65536},
            {"type": "RLIMIT_FSIZE", "soft": 1 << 30, "hard": 2**64 - 1},  # hard: unlimited
            {"type": "RLIMIT_MSGQUEUE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_NICE", "soft": 0, "hard": 0},
        ]
        return cfg

    ours, theirs = both(rt, "rlimits", cfg_for)
    assert ours.returncode == 0, ours.stderr
    assert_same(ours, theirs)
    assert "Max open files            1000                 2000" in ours.stdout


def test_raising_a_hard_rlimit_fails_without_cap_sys_resource_like_runc(rt):
    import resource

    from linux import syscalls as sc

    if sc.capget()[0] >> capmod.cap_number("CAP_SYS_RESOURCE") & 1:
        pytest.skip("this host grants CAP_SYS_RESOURCE: raising a hard limit is allowed")
    hard = resource.getrlimit(resource.RLIMIT_NICE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NICE is unlimited here: nothing to raise")

    def cfg_for(cid):
        cfg = rt.spec(cid, ["true"])
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NICE", "soft": 0, "hard": hard + 5}]
        return cfg

    ours, theirs = both(rt, "rlimit-raise", cfg_for)
    assert ours.returncode == theirs.returncode == 1
    assert (f"setrlimit(RLIMIT_NICE, soft=0, hard={hard + 5}): Operation not permitted"
            in ours.stderr)


def test_user_and_groups_like_runc(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c",
                            "id; grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs)' /proc/self/status; "
                            "umask; echo $HOME; echo to-dev-stdout > /dev/stdout; "
                            "touch /root/x 2>&1; ls -n /proc/self/fd/0 >/dev/null && echo fd0"])
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100, 65534],
                                  "umask": 0o027}
        cfg["process"]["capabilities"] = {k: ["CAP_CHOWN", "CAP_KILL"] for k in
                                          ("bounding", "effective", "permitted", "inheritable",
                                           "ambient")}
        cfg["process"]["noNewPrivileges"] = False
        return cfg

    ours, theirs = both(rt, "user", cfg_for)
    assert ours.returncode == theirs.returncode  # touch fails as uid 1000: both the same way
    assert_same(ours, theirs)
    assert "uid=1000 gid=1000 groups=5(tty),100,65534(nogroup)" in ours.stdout
    assert "to-dev-stdout" in ours.stdout  # the stdio is the user's (runc's rule)
    assert "touch: /root/x: Permission denied" in ours.stdout  # (2>&1 in the probe)


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_and_no_new_privs_like_runc(rt, nnp):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c",
                            "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status; "
                            "mkdir /tmp/denied-$$ 2>&1; kill -USR1 $$ 2>&1; echo alive"])
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
            ],
        }
        return cfg

    ours, theirs = both(rt, f"seccomp-{str(nnp).lower()}", cfg_for)
    assert ours.returncode == 0, ours.stderr
    assert_same(ours, theirs)
    assert "Seccomp:\t2" in ours.stdout
    assert f"NoNewPrivs:\t{int(nnp)}" in ours.stdout
    assert "Permission denied" in ours.stdout and "alive" in ours.stdout


def test_cgroup_limits_like_runc(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c",
                            "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes "
                            "memory/memory.soft_limit_in_bytes memory/memory.swappiness "
                            "pids/pids.max cpu/cpu.shares cpu/cpu.cfs_quota_us "
                            "cpu/cpu.cfs_period_us; cat /proc/self/cgroup; "
                            "ls memory/memory.limit_in_bytes pids/pids.current >/dev/null && "
                            "echo files; echo $(ls)"])
        cfg["linux"]["resources"].update({
            "memory": {"limit": 96 << 20, "reservation": 32 << 20, "swappiness": 10},
            "pids": {"limit": 42},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        })
        return cfg

    ours, theirs = both(rt, "cgroups", cfg_for)
    assert ours.returncode == 0, ours.stderr
    assert_same(ours, theirs)
    assert ours.stdout.splitlines()[:7] == [str(96 << 20), str(32 << 20), "10", "42", "512",
                                            "50000", "100000"]


def test_readonly_rootfs_like_runc(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sh", "-c",
                            "touch /x 2>&1; mkdir /etc/new 2>&1; echo w > /tmp/t 2>&1; "
                            "touch /dev/shm/ok && echo shm=rw; touch /dev/ok && echo dev=rw; "
                            "echo 1 > /proc/sys/kernel/domainname 2>&1; "
                            "echo root: $(grep ' / ' /proc/self/mounts | cut -d' ' -f4 | "
                            "cut -d, -f1)"])
        cfg["root"]["readonly"] = True
        return cfg

    ours, theirs = both(rt, "readonly", cfg_for)
    assert_same(ours, theirs)
    assert "root: ro" in ours.stdout and "Read-only file system" in ours.stdout
    assert "shm=rw" in ours.stdout and "dev=rw" in ours.stdout
