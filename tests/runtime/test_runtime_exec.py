"""`exec`: one more process in a running container, on the real kernel.

Needs root.  Each test starts a container (`sleep`) under a harness, execs
into it, and the rt fixture deletes it and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest

from linux import caps as capmod
from tests.runtime.support import ENV, REPO
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root

NS = ("ipc", "uts", "net", "pid", "mnt", "cgroup")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]



def test_exec_joins_every_namespace_the_root_and_the_cgroup(rt):
    h = rt.started("target", ["sleep", "1000"])
    init = rt.pid("target")
    res = rt.cmd("exec", "target", "sh", "-c",
                 "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done; "
                 "echo pid=$$ ppid=$PPID; cat /proc/1/comm; hostname; ls /sys/class/net; "
                 "grep -c . /proc/self/cgroup; grep -v ':/$' /proc/self/cgroup; "
                 "echo $(ls /); pwd; echo sid=$(cut -d' ' -f6 /proc/self/stat)")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[:len(NS)] == [os.readlink(f"/proc/{init}/ns/{n}") for n in NS]
    rest = out[len(NS):]
    assert rest[0] == "pid=2 ppid=0"  # pid 2 of the container's pid namespace
    assert rest[1] == "sleep"  # pid 1 is the init
    assert rest[2] == "trioctr"
    assert rest[3] == "lo"
    # in the container's cgroup (v1: every hierarchy), seen through its
    # cgroup namespace: every line ends in ":/"
    n = int(rest[4])
    assert n >= 8
    assert rest[5].split() == sorted(os.listdir(rt.rootfs))  # the container's root
    assert rest[6] == "/"
    assert rest[7] == "sid=2"  # a session of its own, as runc
    assert rt.cmd("delete", "--force", "target").returncode == 0
    assert h.exit_code(init) == 137


def test_exec_uses_the_containers_process_and_the_overrides(rt):
    cfg = rt.spec("settings", ["sleep", "1000"])
    cfg["process"]["env"].append("FROM_CONFIG=1")
    cfg["process"]["user"] = {"uid": 65534, "gid": 65534}
    cfg["process"]["cwd"] = "/tmp"
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444}]
    rt.started("settings", [], cfg=cfg)
    probe = ("id -u; id -g; id -G; pwd; echo $FROM_CONFIG $FOO; ulimit -n; echo $HOME; "
             "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    res = rt.cmd("exec", "settings", "sh", "-c", probe)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[:5] == ["65534", "65534", "65534", "/tmp", "1"]
    assert out[5] == "333"
    assert out[6] == "/nonexistent"
    caps = capmod.parse_status_caps(res.stdout)
    assert caps["CapEff"] == 0  # a non-root user: no effective capabilities
    assert "NoNewPrivs:\t1" in res.stdout  # the default spec's noNewPrivileges

    res = rt.cmd("exec", "--user", "1000:1001", "--additional-gids", "5", "-g", "7",
                 "--cwd", "/", "--env", "FOO=bar", "-e", "FROM_CONFIG=2",
                 "--cap", "CAP_SYS_ADMIN", "settings", "sh", "-c", probe)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[:5] == ["1000", "1001", "1001 5 7", "/", "2 bar"]
    caps = capmod.parse_status_caps(res.stdout)
    assert caps["CapEff"] & capmod.to_mask(["CAP_SYS_ADMIN"])  # through the ambient set
    assert rt.cmd("delete", "--force", "settings").returncode == 0


def test_exec_exit_status_and_unrunnable_commands(rt):
    rt.started("codes", ["sleep", "1000"])
    assert rt.cmd("exec", "codes", "sh", "-c", "exit 7").returncode == 7
    assert rt.cmd("exec", "codes", "sh", "-c", "kill -9 $$").returncode == 137
    res = rt.cmd("exec", "codes", "nosuch")
    assert res.returncode == 127
    assert 'exec: "nosuch": executable file not found in $PATH' in res.stderr
    res = rt.cmd("exec", "codes", "/etc")
    assert res.returncode == 126
    assert 'exec: "/etc": permission denied' in res.stderr
    res = rt.cmd("exec", "--cwd", "/nowhere", "codes", "true")
    assert res.returncode == 1
    assert "chdir to cwd ('/nowhere')" in res.stderr
    res = rt.cmd("exec", "codes")
    assert res.returncode == 1 and "a command is needed" in res.stderr
    res = rt.cmd("exec", "--user", "app", "codes", "true")
    assert res.returncode == 1 and "want UID[:GID]" in res.stderr
    assert rt.cmd("delete", "--force", "codes").returncode == 0


def test_exec_seccomp_of_the_container_applies(rt):
    cfg = rt.spec("filtered", ["sleep", "1000"])
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}],
    }
    rt.started("filtered", [], cfg=cfg)
    res = rt.cmd("exec", "filtered", "sh", "-c",
                 "grep ^Seccomp: /proc/self/status; mkdir /tmp/x 2>/dev/null || echo denied")
    assert res.returncode == 0, res.stderr
    assert lines(res.stdout) == ["Seccomp:\t2", "denied"]
    assert rt.cmd("delete", "--force", "filtered").returncode == 0


def test_exec_detached_pid_file_cgroup_and_delete(rt):
    from linux.cgroups import from_state

    rt.started("bg", ["sleep", "1000"])
    h = rt.exec_detached("bg-exec", "bg", ["sh", "-c", "echo started; exec sleep 1000"])
    assert h.create_code() == 0, h.stderr()
    pid = int((rt.tmp / "bg-exec.pid").read_text())
    wait_for(lambda: "started" in h.output())
    state = json.loads((rt.root / "bg" / "state.json").read_text())
    cg = from_state(state["cgroup"])
    assert sorted(cg.pids()) == sorted([rt.pid("bg"), pid])
    res = rt.cmd("ps", "--format", "json", "bg")
    assert pid in json.loads(res.stdout)
    with open(f"/proc/{pid}/status") as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert nspid == [str(pid), "2"]  # host pid and pid 2 in the container
    assert rt.cmd("delete", "--force", "bg").returncode == 0
    assert h.exit_code(pid) == 137  # it dies with the container


def test_exec_sync_fd_reports_pid_and_failure(rt):
    from messages.base import unpack
    from messages.runtime import ContainerCreated, CreateFailed
    from messages.wire import FrameDecoder

    rt.started("synced", ["sleep", "1000"])

    def exec_with_sync(*args):
        ours, theirs = socket.socketpair()
        try:
            with open(rt.tmp / "sync.stdio", "w") as stdio:
                res = rt.cmd("exec", "--detach", "--sync-fd", str(theirs.fileno()), "synced",
                             *args, pass_fds=(theirs.fileno(),), capture_output=False,
                             stdout=stdio, stderr=stdio)
            theirs.close()
            ours.settimeout(10)
            data = b""
            while chunk := ours.recv(65536):
                data += chunk
            frames = FrameDecoder().feed(data)
            assert len(frames) == 1
            return res, unpack(frames[0]).msg
        finally:
            ours.close()
            if theirs.fileno() >= 0:
                theirs.close()

    res, msg = exec_with_sync("nosuch")
    assert res.returncode == 1
    assert msg == CreateFailed(message='exec: "nosuch": executable file not found in $PATH',
                               exit_code=127)
    res, msg = exec_with_sync("sleep", "1000")
    assert res.returncode == 0
    assert isinstance(msg, ContainerCreated)
    assert os.path.exists(f"/proc/{msg.pid}")
    assert rt.cmd("delete", "--force", "synced").returncode == 0
    wait_for(lambda: not os.path.exists(f"/proc/{msg.pid}") or
             open(f"/proc/{msg.pid}/stat").read().split()[2] == "Z")


def test_exec_process_file(rt, tmp_path):
    rt.started("withfile", ["sleep", "1000"])
    process = {"args": ["sh", "-c", "echo $A; id -u; pwd; exit 3"], "cwd": "/tmp",
               "env": ["A=from the file", "PATH=/bin"], "user": {"uid": 123, "gid": 456},
               "terminal": False}
    pfile = tmp_path / "process.json"
    pfile.write_text(json.dumps(process))
    res = rt.cmd("exec", "--process", str(pfile), "withfile")
    assert res.returncode == 3, res.stderr
    assert lines(res.stdout) == ["from the file", "123", "/tmp"]
    res = rt.cmd("exec", "--process", str(pfile), "withfile", "true")
    assert res.returncode == 1 and "not both" in res.stderr
    res = rt.cmd("exec", "--process", str(pfile), "--env", "X=1", "withfile")
    assert res.returncode == 1 and "--env cannot be combined with --process" in res.stderr
    pfile.write_text(json.dumps(dict(process, cwd="relative")))
    res = rt.cmd("exec", "--process", str(pfile), "withfile")
    assert res.returncode == 1
    assert f"exec: --process {pfile}: process.cwd must be an absolute path" in res.stderr
    assert rt.cmd("delete", "--force", "withfile").returncode == 0


def test_exec_refused_when_paused_or_stopped(rt):
    h = rt.started("frozen", ["sleep", "1000"])
    assert rt.cmd("pause", "frozen").returncode == 0
    res = rt.cmd("exec", "frozen", "true")
    assert res.returncode == 1 and "cannot exec in a paused container" in res.stderr
    assert rt.cmd("resume", "frozen").returncode == 0
    assert rt.cmd("kill", "frozen", "KILL").returncode == 0
    assert h.exit_code(rt.pid("frozen")) == 137
    res = rt.cmd("exec", "frozen", "true")
    assert res.returncode == 1 and "cannot exec in a stopped container" in res.stderr
    assert rt.cmd("delete", "frozen").returncode == 0
    res = rt.cmd("exec", "frozen", "true")
    assert res.returncode == 1 and "container does not exist: frozen" in res.stderr


def test_exec_relays_signals_and_leaks_no_fds(rt, tmp_path):
    rt.started("relay", ["sleep", "1000"])
    proc = subprocess.Popen(rt.argv("exec", "relay", "sh", "-c",
                                    "trap 'echo TERM; exit 5' TERM; echo ready; "
                                    "while :; do sleep 0.05; done"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=ENV)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 5, err
    assert out.strip() == "TERM"

    leak = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leak, True)
        res = rt.cmd("exec", "relay", "ls", "/proc/self/fd", pass_fds=(leak,))
    finally:
        os.close(leak)
    assert res.returncode == 0, res.stderr
    assert sorted(lines(res.stdout)) == ["0", "1", "2", "3"]  # 3: ls's own dir fd
    assert rt.cmd("delete", "--force", "relay").returncode == 0


def test_exec_into_a_container_sharing_the_hosts_pid_namespace(rt):
    cfg = rt.spec("hostpid", ["sleep", "1000"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "pid"]
    rt.started("hostpid", [], cfg=cfg)
    init = rt.pid("hostpid")
    res = rt.cmd("exec", "hostpid", "sh", "-c",
                 "readlink /proc/self/ns/pid; readlink /proc/self/ns/net; echo $$")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == os.readlink("/proc/self/ns/pid")  # the host's, as the init's
    assert out[1] == os.readlink(f"/proc/{init}/ns/net")
    assert out[2] != "2"
    assert rt.cmd("delete", "--force", "hostpid").returncode == 0
