"""The runtime on the real kernel: namespaces, mounts, cgroups, capabilities.

Needs root.  Containers run a busybox rootfs; each test's cgroups live under
the session's /trioctr-test-<random> parent and its state dir in tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from linux import caps as capmod

pytestmark = pytest.mark.root


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


# --- run: what the container sees ------------------------------------------------

def test_run_namespaces_and_basics(rt):
    res = rt.run("basics", ["sh", "-c",
                            "echo pid=$$; hostname; test -e /proc/self/status && echo proc=yes; "
                            "ls /sys/class/net; echo env=$FOO; pwd"], cfg=None)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "pid=1"
    assert out[1] == "trioctr"
    assert out[2] == "proc=yes"
    assert out[3] == "lo"  # a new net namespace: only lo
    assert out[4] == "env="
    assert out[5] == "/"


def test_run_user_env_cwd(rt):
    cfg = rt.spec("user", ["sh", "-c", "id -u; id -g; id -G; echo $FOO; echo $HOME; pwd; umask"])
    cfg["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [5, 65534],
                              "umask": 0o027}
    cfg["process"]["env"] += ["FOO=bar baz"]
    cfg["process"]["cwd"] = "/tmp"
    res = rt.run("user", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "65534"
    assert out[1] == "65534"
    assert sorted(out[2].split()) == ["5", "65534"]
    assert out[3] == "bar baz"
    assert out[4] == "/nonexistent"  # HOME from the container's /etc/passwd
    assert out[5] == "/tmp"
    assert out[6] == "0027"


def test_run_exit_status(rt):
    assert rt.run("exit7", ["sh", "-c", "exit 7"]).returncode == 7
    # pid 1 of a pid namespace cannot be killed from inside it: share the host's
    cfg = rt.spec("killed", ["sh", "-c", "kill -9 $$"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]
    assert rt.run("killed", [], cfg=cfg).returncode == 137


def test_missing_command_127(rt):
    res = rt.run("nosuch", ["nosuch"])
    assert res.returncode == 127
    msg = 'exec: "nosuch": executable file not found in $PATH'
    assert msg in res.stderr
    assert any(line["level"] == "error" and msg in line["msg"] and line["time"]
               for line in rt.log_lines())
    res = rt.run("nosuch-abs", ["/nosuch"])
    assert res.returncode == 127
    assert 'exec: "/nosuch": stat /nosuch: no such file or directory' in res.stderr


def test_not_executable_126(rt):
    res = rt.run("isdir", ["/etc"])
    assert res.returncode == 126
    assert 'exec: "/etc": permission denied' in res.stderr
    res = rt.run("noexec", ["/etc/passwd"])
    assert res.returncode == 126
    assert 'exec: "/etc/passwd": permission denied' in res.stderr


def test_default_capabilities(rt):
    res = rt.run("caps", ["sh", "-c", "grep ^Cap /proc/self/status"])
    assert res.returncode == 0, res.stderr
    got = capmod.parse_status_caps(res.stdout)
    want = capmod.to_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    assert got["CapBnd"] == want
    assert got["CapEff"] == want
    assert got["CapPrm"] == want
    assert got["CapInh"] == 0
    assert got["CapAmb"] == 0


def test_docker_capabilities_for_non_root_with_ambient(rt):
    cfg = rt.spec("dockercaps", ["sh", "-c", "grep ^Cap /proc/self/status"])
    docker = list(capmod.DOCKER_DEFAULT)
    cfg["process"]["capabilities"] = {k: docker for k in
                                      ("bounding", "effective", "permitted", "inheritable",
                                       "ambient")}
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["noNewPrivileges"] = False
    res = rt.run("dockercaps", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    got = capmod.parse_status_caps(res.stdout)
    want = capmod.to_mask(docker)
    assert got["CapBnd"] == want
    # a non-root process keeps capabilities across execve only through ambient
    assert got["CapAmb"] == want
    assert got["CapEff"] == want


def test_no_extra_fds_reach_the_container(rt, tmp_path):
    # an fd the runtime inherits (not marked close-on-exec) must not leak in
    leak = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leak, True)
        cfg = rt.spec("fds", ["ls", "/proc/self/fd"])
        b = rt.bundle("fds", cfg)
        rt.ids.append("fds")
        res = rt.cmd("run", "--bundle", str(b), "fds", pass_fds=(leak,))
    finally:
        os.close(leak)
    assert res.returncode == 0, res.stderr
    assert sorted(lines(res.stdout)) == ["0", "1", "2", "3"]  # 3: ls's own dir fd


def test_readonly_root_and_paths(rt):
    cfg = rt.spec("ro", ["sh", "-c",
                         "touch /x 2>/dev/null && echo root=rw || echo root=ro; "
                         "touch /dev/shm/x && echo shm=rw; "
                         "echo 1 2>/dev/null > /proc/sys/kernel/domainname && echo sys=rw "
                         "|| echo sys=ro; "
                         "ls /sys/firmware | wc -l; wc -c < /proc/timer_list"])
    cfg["root"]["readonly"] = True
    res = rt.run("ro", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "root=ro"
    assert out[1] == "shm=rw"
    assert out[2] == "sys=ro"
    assert out[3].strip() == "0"  # masked dir: an empty tmpfs
    assert out[4].strip() == "0"  # masked file: /dev/null


def test_mounts_and_devices(rt, tmp_path):
    src = tmp_path / "vol"
    src.mkdir()
    (src / "hello").write_text("from the host\n")
    cfg = rt.spec("mounts", ["sh", "-c",
                             "cat /data/hello; touch /data/x 2>/dev/null || echo data=ro; "
                             "ls -l /dev/null /dev/zero /dev/full /dev/tty /dev/random "
                             "/dev/urandom | cut -c1; readlink /dev/fd; readlink /dev/ptmx; "
                             "head -c 3 /dev/zero | wc -c"])
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(src),
                          "options": ["rbind", "ro"]})
    res = rt.run("mounts", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "from the host"
    assert out[1] == "data=ro"
    assert out[2:8] == ["c"] * 6
    assert out[8:10] == ["/proc/self/fd", "pts/ptmx"]
    assert out[10].strip() == "3"


def test_symlinked_mount_destination_stays_inside_rootfs(rt, tmp_path):
    from tests.helpers.rootfs import make_busybox_rootfs

    rootfs = make_busybox_rootfs(tmp_path / "evilroot")
    outside = tmp_path / "outside"
    outside.mkdir()
    # absolute and climbing symlinks that point out of the rootfs from the host's view
    os.symlink(str(outside), os.path.join(rootfs, "abs"))
    os.symlink("../../../../../../../.." + str(outside), os.path.join(rootfs, "climb"))
    cfg = rt.spec("evil", ["sh", "-c", "ls -d /abs/m1 /climb/m2 " + str(outside) + "/m1"])
    cfg["root"]["path"] = rootfs
    cfg["mounts"] += [{"destination": "/abs/m1", "type": "tmpfs", "source": "tmpfs"},
                      {"destination": "/climb/m2", "type": "tmpfs", "source": "tmpfs"}]
    res = rt.run("evil", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    assert os.listdir(outside) == []  # nothing was created or mounted on the host path
    # both landed inside the rootfs, at <rootfs>/<outside>/m1 and m2
    assert os.path.isdir(os.path.join(rootfs, str(outside).lstrip("/"), "m1"))
    assert os.path.isdir(os.path.join(rootfs, str(outside).lstrip("/"), "m2"))


def test_rlimits_sysctl_oom_score(rt):
    cfg = rt.spec("limits", ["sh", "-c", "ulimit -n; cat /proc/sys/net/ipv4/ip_forward; "
                                         "cat /proc/self/oom_score_adj"])
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]
    cfg["process"]["oomScoreAdj"] = 500
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    res = rt.run("limits", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    assert lines(res.stdout) == ["321", "1", "500"]


def test_negative_oom_score_adj_is_tolerated(rt):
    cfg = rt.spec("oomneg", ["cat", "/proc/self/oom_score_adj"])
    cfg["process"]["oomScoreAdj"] = -500
    res = rt.run("oomneg", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    value = int(res.stdout)
    if value != -500:  # this host lacks CAP_SYS_RESOURCE: a warning, not a failure
        assert any(line["level"] == "warning" and "oom_score_adj" in line["msg"]
                   for line in rt.log_lines())


def test_cgroup_limits_visible_on_host_and_inside(rt):
    cfg = rt.spec("limited", ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                          "/sys/fs/cgroup/pids/pids.max; sleep 1000"])
    cfg["linux"]["resources"].update({"memory": {"limit": 64 << 20},
                                      "pids": {"limit": 42},
                                      "cpu": {"shares": 512, "quota": 50000, "period": 100000}})
    h = rt.create("limited", [], cfg=cfg)
    assert h.create_code() == 0, h.stderr()
    from linux.cgroups import from_state

    state = json.loads((rt.root / "limited" / "state.json").read_text())
    cg = from_state(state["cgroup"])
    pid = rt.pid("limited")
    if cg.version == 1:
        assert (open(os.path.join(cg.dirs["memory"], "memory.limit_in_bytes")).read().strip()
                == str(64 << 20))
        assert open(os.path.join(cg.dirs["pids"], "pids.max")).read().strip() == "42"
        assert open(os.path.join(cg.dirs["cpu"], "cpu.shares")).read().strip() == "512"
        assert open(os.path.join(cg.dirs["cpu"], "cpu.cfs_quota_us")).read().strip() == "50000"
        assert cg.dirs["memory"].endswith(f"{rt.cgroup_parent}/limited")
    else:
        assert open(os.path.join(cg.path, "memory.max")).read().strip() == str(64 << 20)
    assert cg.pids() == [pid]
    assert rt.cmd("start", "limited").returncode == 0
    deadline = time.monotonic() + 10
    while len(lines(h.output())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lines(h.output()) == [str(64 << 20), "42"]
    assert rt.cmd("delete", "--force", "limited").returncode == 0
    assert h.exit_code(pid) == 137
    assert not cg.exists()


def test_the_init_is_alone_in_its_cgroup_in_every_hierarchy(rt):
    # v1: the init moves itself in (tasks <- 0, Cgroup.open_self_join) before
    # any namespace: every hierarchy, nothing else with it (not the
    # intermediate: with pids.max 1 the container still runs)
    cfg = rt.spec("alone", ["cat", "/proc/self/cgroup"])
    cfg["linux"]["resources"]["pids"] = {"limit": 1}
    h = rt.create("alone", [], cfg=cfg)
    assert h.create_code() == 0, h.stderr()
    from linux.cgroups import from_state

    state = json.loads((rt.root / "alone" / "state.json").read_text())
    cg = from_state(state["cgroup"])
    pid = rt.pid("alone")
    with open(f"/proc/{pid}/cgroup") as f:
        host_view = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in f.read().splitlines()}
    if cg.version == 1:
        dirs = cg.unique_dirs()
        assert len(dirs) >= 8
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs")) as f:
                assert f.read().split() == [str(pid)], d
        for ctrls, path in host_view.items():
            if ctrls:  # (not a hybrid host's empty unified hierarchy)
                assert path == f"{rt.cgroup_parent}/alone", (ctrls, path)
    else:
        assert cg.pids() == [pid]
    assert rt.cmd("start", "alone").returncode == 0
    assert h.exit_code(pid) == 0
    out = lines(h.output())
    assert len(out) >= len(host_view) - 1
    # seen through its own cgroup namespace: the root of each
    assert [line for line in out if not line.endswith(":/")] == []
    assert rt.cmd("delete", "alone").returncode == 0
    assert not cg.exists()


# --- the create/start/state/kill/delete lifecycle ----------------------------------

def test_lifecycle(rt):
    script = "trap 'echo got TERM; exit 3' TERM; echo started; while :; do sleep 0.05; done"
    h = rt.create("life", ["sh", "-c", script])
    assert h.create_code() == 0, h.stderr()
    pid = rt.pid("life")
    st = rt.state("life")
    assert st["status"] == "created"
    assert st["pid"] == pid
    assert st["id"] == "life"
    assert st["bundle"] == str(rt.tmp / "bundle-life")
    assert h.output() == ""  # the user process has not started
    res = rt.cmd("start", "life")
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 10
    while "started" not in h.output() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rt.state("life")["status"] == "running"
    res = rt.cmd("start", "life")
    assert res.returncode == 1 and "is not in created state: running" in res.stderr
    res = rt.cmd("delete", "life")
    assert res.returncode == 1
    assert "cannot delete container life that is not stopped: running" in res.stderr
    res = rt.cmd("kill", "life", "TERM")
    assert res.returncode == 0, res.stderr
    assert h.exit_code(pid) == 3
    assert "got TERM" in h.output()
    st = rt.state("life")
    assert st["status"] == "stopped" and st["pid"] == 0
    res = rt.cmd("start", "life")
    assert res.returncode == 1 and "cannot start a container that has stopped" in res.stderr
    res = rt.cmd("kill", "life", "KILL")
    assert res.returncode == 1 and "container not running" in res.stderr
    res = rt.cmd("delete", "life")
    assert res.returncode == 0, res.stderr
    assert not (rt.root / "life").exists()
    res = rt.cmd("state", "life")
    assert res.returncode == 1 and "container does not exist" in res.stderr


def test_delete_created_container(rt):
    h = rt.create("created", ["true"])
    assert h.create_code() == 0, h.stderr()
    pid = rt.pid("created")
    assert rt.state("created")["status"] == "created"
    res = rt.cmd("delete", "created")
    assert res.returncode == 0, res.stderr
    assert h.exit_code(pid) == 137


def test_kill_all_and_force_delete(rt):
    h = rt.create("many", ["sh", "-c", "sleep 1000 & sleep 1000 & echo up; wait"])
    assert h.create_code() == 0, h.stderr()
    pid = rt.pid("many")
    assert rt.cmd("start", "many").returncode == 0
    deadline = time.monotonic() + 10
    while "up" not in h.output() and time.monotonic() < deadline:
        time.sleep(0.01)
    res = rt.cmd("ps", "--format", "json", "many")
    pids = json.loads(res.stdout)
    assert len(pids) == 3 and pid in pids
    res = rt.cmd("kill", "--all", "many", "KILL")
    assert res.returncode == 0, res.stderr
    assert h.exit_code(pid) == 137
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"
    assert rt.cmd("delete", "many").returncode == 0


def test_force_delete_running(rt):
    h = rt.create("forced", ["sleep", "1000"])
    assert h.create_code() == 0, h.stderr()
    pid = rt.pid("forced")
    assert rt.cmd("start", "forced").returncode == 0
    res = rt.cmd("delete", "--force", "forced")
    assert res.returncode == 0, res.stderr
    assert h.exit_code(pid) == 137
    assert not (rt.root / "forced").exists()


def test_pause_resume_and_list(rt):
    h = rt.create("pausable", ["sleep", "1000"])
    assert h.create_code() == 0, h.stderr()
    assert rt.cmd("start", "pausable").returncode == 0
    assert rt.cmd("pause", "pausable").returncode == 0
    assert rt.state("pausable")["status"] == "paused"
    res = rt.cmd("list", "--format", "json")
    listed = json.loads(res.stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("pausable", "paused")]
    res = rt.cmd("list")
    assert res.stdout.split("\n")[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED",
                                                 "OWNER"]
    assert rt.cmd("resume", "pausable").returncode == 0
    assert rt.state("pausable")["status"] == "running"
    assert rt.cmd("delete", "--force", "pausable").returncode == 0
    assert h.exit_code(rt.pid("pausable")) == 137


def test_sync_fd_reports_created_and_failed(rt):
    from messages.base import unpack
    from messages.runtime import ContainerCreated, CreateFailed
    from messages.wire import FrameDecoder

    def create_with_sync(cid, args):
        ours, theirs = socket.socketpair()
        try:
            cfg = rt.spec(cid, args)
            b = rt.bundle(cid, cfg)
            rt.ids.append(cid)
            # not pipes: the init inherits the runtime's stdio and keeps it open
            with open(rt.tmp / f"{cid}.stdio", "w") as stdio:
                res = rt.cmd("create", "--bundle", str(b), "--sync-fd", str(theirs.fileno()),
                             cid, pass_fds=(theirs.fileno(),), capture_output=False,
                             stdout=stdio, stderr=stdio)
            res.stderr = (rt.tmp / f"{cid}.stdio").read_text()
            theirs.close()
            ours.settimeout(10)
            data = b""
            while chunk := ours.recv(65536):
                data += chunk
            frames = FrameDecoder().feed(data)
            assert len(frames) == 1
            return res, unpack(frames[0])
        finally:
            ours.close()
            if theirs.fileno() >= 0:
                theirs.close()

    res, env = create_with_sync("syncbad", ["nosuch"])
    assert res.returncode == 1
    assert env.kind.value == "rep"
    assert env.msg == CreateFailed(message='exec: "nosuch": executable file not found in $PATH',
                                   exit_code=127)
    assert not (rt.root / "syncbad").exists()

    # a created container whose init is orphaned to init(1) here: kill it by delete
    res, env = create_with_sync("syncok", ["true"])
    assert res.returncode == 0, res.stderr
    assert isinstance(env.msg, ContainerCreated)
    assert env.msg.pid == rt.state("syncok")["pid"]
    assert rt.cmd("delete", "syncok").returncode == 0


def test_errors_are_one_line_and_leave_nothing(rt):
    res = rt.cmd("state", "nope")
    assert res.returncode == 1
    assert res.stderr.strip() == "trioctr-runtime: container does not exist: nope"
    cfg = rt.spec("badcfg", ["true"])
    del cfg["process"]["args"]
    res = rt.run("badcfg", [], cfg=cfg)
    assert res.returncode == 1
    assert "config.json: process.args must not be empty" in res.stderr
    assert len(lines(res.stderr)) == 1
    cfg = rt.spec("badmount", ["true"])
    cfg["mounts"].append({"destination": "/x", "type": "bind", "source": "/does/not/exist",
                          "options": ["bind"]})
    res = rt.run("badmount", [], cfg=cfg)
    assert res.returncode == 1
    assert "mount /x" in res.stderr and "No such file or directory" in res.stderr
    assert not (rt.root / "badmount").exists()
    assert not os.path.exists(f"/sys/fs/cgroup/memory{rt.cgroup_parent}/badmount")
    errors = [line for line in rt.log_lines() if line["level"] == "error"]
    assert len(errors) == 3
    res = rt.cmd("kill", "nope", "SIGFOO")
    assert res.returncode == 1


def test_existing_id_is_refused(rt):
    h = rt.create("dup", ["true"])
    assert h.create_code() == 0, h.stderr()
    cfg = rt.spec("dup", ["true"])
    b = rt.bundle("dup2", cfg)
    res = rt.cmd("create", "--bundle", str(b), "dup")
    assert res.returncode == 1
    assert "container with id exists: dup" in res.stderr
    assert rt.cmd("delete", "dup").returncode == 0


def test_signal_forwarding_in_run(rt):
    import subprocess
    import sys

    from tests.runtime.support import ENV, REPO

    cfg = rt.spec("fwd", ["sh", "-c", "trap 'echo TERM; exit 5' TERM; echo ready; "
                                      "while :; do sleep 0.05; done"])
    b = rt.bundle("fwd", cfg)
    rt.ids.append("fwd")
    proc = subprocess.Popen(rt.argv("run", "--bundle", str(b), "fwd"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 5, err
    assert out.strip() == "TERM"
    assert not (rt.root / "fwd").exists()
    del sys


def test_host_namespace_sharing(rt):
    # no pid, network or uts namespace of its own: the host's are shared
    cfg = rt.spec("hostns", ["sh", "-c", "echo $$; ls /sys/class/net | wc -l"])
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "ipc"}]
    cfg["hostname"] = None
    res = rt.run("hostns", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] != "1"
    assert out[1] == str(len(os.listdir("/sys/class/net")))


def test_join_network_namespace_by_path(rt):
    h = rt.create("netowner", ["sleep", "1000"])
    assert h.create_code() == 0, h.stderr()
    owner = rt.pid("netowner")
    cfg = rt.spec("netjoin", ["readlink", "/proc/self/ns/net"])
    cfg["linux"]["namespaces"] = [
        {"type": "network", "path": f"/proc/{owner}/ns/net"} if ns["type"] == "network" else ns
        for ns in cfg["linux"]["namespaces"]]
    res = rt.run("netjoin", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == os.readlink(f"/proc/{owner}/ns/net")
    assert rt.cmd("delete", "--force", "netowner").returncode == 0


# --- cgroup v2 on the real kernel (this host's unified hierarchy, if any) ----------------

def test_cgroup_v2_operations_on_the_unified_hierarchy(cgroup_parent):
    import subprocess

    from linux import cgroups
    from linux import syscalls as sc

    unified = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") \
        else "/sys/fs/cgroup"
    if not os.path.isdir(unified) or sc.statfs_type(unified) != sc.CGROUP2_SUPER_MAGIC:
        pytest.skip("no cgroup2 hierarchy")
    parent = os.path.join(unified, cgroup_parent.strip("/"))
    os.makedirs(parent, exist_ok=True)
    # the test parent plays the hierarchy root: nothing above it is touched
    cg = cgroups.CgroupV2(parent, os.path.join(parent, "v2leaf"))
    cg.create()
    assert cg.exists()
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        cg.add_pid(sleeper.pid)
        assert cg.pids() == [sleeper.pid]
        cg.freeze()
        assert cg.is_frozen()
        with open(f"/proc/{sleeper.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("S", "D")
        cg.thaw()
        assert not cg.is_frozen()
    finally:
        sleeper.kill()
        sleeper.wait()
    cg.remove()
    assert not cg.exists()


# --- seccomp --------------------------------------------------------------------------

@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_filter(rt, nnp):
    name = f"seccomp-{str(nnp).lower()}"
    cfg = rt.spec(name, ["sh", "-c",
                         "grep ^Seccomp: /proc/self/status; "
                         "mkdir /tmp/blocked-$$ 2>&1 || echo mkdir=denied; "
                         "kill -0 $$ && echo kill0=ok; "
                         "kill -USR1 $$ 2>&1 || echo usr1=denied; "
                         "grep ^NoNewPrivs: /proc/self/status"])
    cfg["process"]["noNewPrivileges"] = nnp
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            # kill(pid, SIGUSR1) only: an argument condition
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": int(signal.SIGUSR1), "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_here"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # = default: a no-op
        ],
    }
    res = rt.run(name, [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Seccomp:\t2" in out
    assert "Operation not permitted" in out and "mkdir=denied" in out
    assert "kill0=ok" in out
    assert "usr1=denied" in out
    assert f"NoNewPrivs:\t{int(nnp)}" in out
    assert not os.path.exists(os.path.join(rt.rootfs, "tmp", "blocked-1"))


def test_seccomp_errors_are_reported_at_create(rt):
    cfg = rt.spec("seccomp-bad", ["true"])
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": ["SCMP_ARCH_NOPE"]}
    res = rt.run("seccomp-bad", [], cfg=cfg)
    assert res.returncode == 1
    assert "seccomp" in res.stderr and "SCMP_ARCH_NOPE" in res.stderr


# an allow-list in the style of Docker's default profile (default: EPERM), small
# enough to read: what busybox sh and the runtime's own init need, nothing to
# mount, unshare, ptrace or load modules with
ALLOW_LIST = """
accept4 access arch_prctl bind brk capget capset chdir chmod chown clock_gettime
clock_nanosleep close close_range connect dup dup2 dup3 epoll_create1 epoll_ctl
epoll_pwait epoll_wait execve execveat exit exit_group faccessat faccessat2 fadvise64
fchdir fchmod fchmodat fchown fchownat fcntl fdatasync flock fork fstat fstatfs fsync
ftruncate futex getcwd getdents64 getegid geteuid getgid getgroups getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresuid getrlimit get_robust_list
getrusage getsid getsockname getsockopt gettid gettimeofday getuid ioctl kill lchown
link linkat listen lseek lstat madvise memfd_create mkdir mkdirat mmap mprotect mremap
munmap nanosleep newfstatat open openat openat2 pause pipe pipe2 poll ppoll prctl
pread64 prlimit64 pselect6 pwrite64 read readlink readlinkat readv recvfrom recvmsg
rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
sched_getaffinity sched_yield seccomp select sendmsg sendto set_robust_list
set_tid_address setgid setgroups setitimer setpgid setpriority setregid setresgid
setresuid setreuid setrlimit setsid setsockopt setuid sigaltstack socket socketpair
stat statfs statx symlink symlinkat sysinfo tgkill time times tkill umask uname
unlink unlinkat utimensat vfork wait4 waitid write writev
""".split()


def test_seccomp_allow_list_with_docker_defaults(rt):
    # Docker's defaults: noNewPrivileges false (the filter goes in before the
    # capabilities are dropped), its 14 capabilities, default EPERM
    cfg = rt.spec("seccomp-allow", ["sh", "-c",
                                    "echo hi > /tmp/f && cat /tmp/f; id -u; "
                                    "unshare -n true 2>&1 || echo unshare=denied; "
                                    "hostname other 2>&1 || echo sethostname=denied"])
    cfg["process"]["noNewPrivileges"] = False
    cfg["process"]["capabilities"] = {k: list(capmod.DOCKER_DEFAULT)
                                      for k in ("bounding", "effective", "permitted")}
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }
    res = rt.run("seccomp-allow", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.splitlines()[:2] == ["hi", "0"]
    assert "unshare=denied" in out
    assert "sethostname=denied" in out


# --- start-up cost ------------------------------------------------------------------

# what `run` may not import: each costs milliseconds on every container start
# (site processing is off under -S, as the shim runs the runtime)
HEAVY_MODULES = ("attrs", "cattrs", "msgpack", "messages", "json", "re", "enum", "socket",
                 "signal", "shutil", "subprocess", "typing", "site")


def test_run_under_dash_s_imports_only_what_it_needs(rt):
    import subprocess
    import sys as _sys

    from tests.runtime.support import REPO

    cfg = rt.spec("lean", ["true"])
    b = rt.bundle("lean", cfg)
    rt.ids.append("lean")
    res = subprocess.run([_sys.executable, "-S", "-X", "importtime", "-m", "actors.runtime",
                          "--root", str(rt.root), "run", "--bundle", str(b), "lean"],
                         capture_output=True, text=True, cwd=REPO, env=rt.env, timeout=60)
    assert res.returncode == 0, res.stderr
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines()
                if line.startswith("import time:")}
    assert "linux.syscalls" in imported
    assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def test_seccomp_programs_are_cached_and_load_the_same(tmp_path):
    """linux.seccomp.compile_cached: the first compile stores libseccomp's program,
    the next ones load it as it is (the same bytes a fresh compile exports), and
    it filters as the filter does."""
    import subprocess
    import sys
    import textwrap

    from linux import seccomp

    spec = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    cache = tmp_path / "cache"
    first = seccomp.compile_cached(spec, str(cache))
    assert isinstance(first, seccomp.Filter)
    first.release()
    (stored,) = cache.iterdir()
    second = seccomp.compile_cached(spec, str(cache))
    assert isinstance(second, seccomp.Program)
    fresh = seccomp.compile(spec)
    with open(tmp_path / "fresh.bpf", "wb") as f:
        fresh.export(f.fileno())
    fresh.release()
    assert second.code == (tmp_path / "fresh.bpf").read_bytes() == stored.read_bytes()
    # another spec, another program
    other = dict(spec, defaultAction="SCMP_ACT_LOG")
    seccomp.compile_cached(other, str(cache)).release()
    assert len(list(cache.glob("*.bpf"))) == 2
    # a damaged entry is not loaded: compiled again (and stored again)
    stored.write_bytes(b"\0" * 7)
    assert isinstance(seccomp.compile_cached(spec, str(cache)), seccomp.Filter)
    assert len(stored.read_bytes()) == len(second.code)
    # the cached program filters
    script = textwrap.dedent(f"""
        import ctypes, os
        from linux import seccomp
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        seccomp.compile_cached({spec!r}, {str(cache)!r}).load()
        try:
            os.mkdir({str(tmp_path / "blocked")!r})
        except PermissionError:
            print("denied")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert res.stdout.strip() == "denied", res
    assert not (tmp_path / "blocked").exists()
