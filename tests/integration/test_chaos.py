"""Chaos: kill the supervisor and the daemon while containers run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root



def inspect(engine, ref):
    return json.loads(engine.cli("inspect", ref).stdout)[0]


def test_supervisor_sigkill_containers_keep_running_and_exits_are_reported(fresh_engine):
    e = fresh_engine
    keep = e.cli("run", "-d", "--name", "keep", "busybox", "sleep", "600").stdout.decode().strip()
    # this one exits with 7 once it sees the flag file, which we create while
    # the supervisor is down
    e.cli("run", "-d", "--name", "quit", "busybox", "sh", "-c",
          "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7", check=True)
    keep_pid = inspect(e, "keep")["State"]["Pid"]
    quit_info = inspect(e, "quit")
    since = f"{time.time():.9f}"
    old = e.supervisor_pid()
    assert old
    os.kill(old, signal.SIGKILL)
    # while the supervisor is down, let "quit" exit: write the flag into its rootfs
    # through its init's root (/proc/PID/root)
    with open(f"/proc/{quit_info['State']['Pid']}/root/tmp/go", "w"):
        pass
    new = wait_for(lambda: (p := e.supervisor_pid()) and p != old and p, what="a new supervisor")
    assert new != old
    # the running container was not touched
    os.kill(keep_pid, 0)
    assert inspect(e, "keep")["State"]["Running"] is True
    assert inspect(e, "keep")["State"]["Pid"] == keep_pid
    # the exit that happened while nobody listened is reported, with its code
    wait_for(lambda: inspect(e, "quit")["State"]["Status"] == "exited", what="quit to be exited")
    assert inspect(e, "quit")["State"]["ExitCode"] == 7
    ps = e.cli("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert "keep Up" in ps
    assert "quit Exited (7)" in ps
    res = e.cli("events", "--since", since, "--until", f"{time.time():.9f}", "--format", "{{json .}}")
    evs = [json.loads(line) for line in res.stdout.decode().splitlines()]
    dies = [ev for ev in evs if ev["Action"] == "die"]
    assert [d["Actor"]["Attributes"]["name"] for d in dies] == ["quit"]
    assert dies[0]["Actor"]["Attributes"]["exitCode"] == "7"
    daemon_actions = [ev["Action"] for ev in evs if ev["Type"] == "daemon"]
    assert "supervisor-exit" in daemon_actions and "supervisor-restart" in daemon_actions
    # and the engine still works end to end
    res = e.cli("run", "--rm", "busybox", "echo", "still here")
    assert res.stdout == b"still here\n", res.stderr
    assert e.cli("stop", "-t", "1", "keep").returncode == 0
    assert inspect(e, "keep")["State"]["ExitCode"] == 137


def test_daemon_sigkill_and_restart_readopts_running_containers(fresh_engine):
    e = fresh_engine
    e.cli("run", "-d", "--name", "survivor", "busybox", "sh", "-c",
          "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done", check=True)
    pid = inspect(e, "survivor")["State"]["Pid"]
    e.kill_daemon(signal.SIGKILL)
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to die with the daemon")
    time.sleep(0.5)
    os.kill(pid, 0)  # the container outlived both
    e.start()
    info = inspect(e, "survivor")
    assert info["State"]["Running"] is True and info["State"]["Pid"] == pid
    # the shim kept logging while nobody listened
    logs = e.cli("logs", "survivor").stdout.decode().splitlines()
    assert len(logs) > 5 and logs[0] == "tick 0"
    nums = [int(line.split()[1]) for line in logs]
    assert nums == list(range(len(nums))), "a log line was lost"
    assert e.cli("rm", "-f", "survivor").returncode == 0
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)


def test_shim_sigkill_kills_its_container_and_says_why(fresh_engine):
    e = fresh_engine
    cid = e.cli("run", "-d", "busybox", "sleep", "600").stdout.decode().strip()
    pid = inspect(e, cid)["State"]["Pid"]
    with open(os.path.join(e.exec_root, "shims", cid, "shim.pid")) as f:
        shim_pid = int(f.read())
    since = f"{time.time():.9f}"
    os.kill(shim_pid, signal.SIGKILL)
    wait_for(lambda: inspect(e, cid)["State"]["Status"] == "exited", what="the container to be marked exited")
    assert inspect(e, cid)["State"]["ExitCode"] == 137

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for(gone, what="the orphaned container to be killed")
    res = e.cli("events", "--since", since, "--until", f"{time.time():.9f}", "--format", "{{json .}}")
    actions = [json.loads(line)["Action"] for line in res.stdout.decode().splitlines()]
    assert "shim-lost" in actions and "die" in actions
    e.cli("rm", cid, check=True)


def test_garbage_on_a_shim_socket_drops_that_link_only(engine):
    import socket

    cid = engine.cli("run", "-d", "busybox", "sleep", "600").stdout.decode().strip()
    pid = inspect(engine, cid)["State"]["Pid"]
    sock_dir = os.path.join(engine.exec_root, "shims", cid)
    dirfd = os.open(sock_dir, os.O_PATH)
    try:
        for junk in (b"\xc1" * 64, b"\x92\x01" + b"\xff" * 100, os.urandom(4096)):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(f"/proc/self/fd/{dirfd}/shim.sock")
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):  # the shim says hello, then drops us
                pass
            s.close()
    finally:
        os.close(dirfd)
    # the shim, its container and the supervisor's own link are all fine
    os.kill(pid, 0)
    assert inspect(engine, cid)["State"]["Running"] is True
    assert engine.cli("stop", "-t", "1", cid).returncode == 0
    assert inspect(engine, cid)["State"]["ExitCode"] == 137
    engine.cli("rm", cid, check=True)


def test_directories_left_in_the_trash_by_killed_actors_go_at_their_next_start(fresh_engine):
    # a removed container's directory is moved to <root>/trash and deleted in
    # the background, a deleted shim's to <shims>/.gone-<id>-<pid> and deleted
    # as the shim exits: what a kill left there goes when the actor starts again
    e = fresh_engine
    res = e.cli("run", "--rm", "--name", "gone", "busybox", "true")
    assert res.returncode == 0, res.stderr
    trash = os.path.join(e.root, "trash")
    shims = os.path.join(e.exec_root, "shims")
    wait_for(lambda: not os.listdir(trash), what="the trash to be emptied")
    wait_for(lambda: not [n for n in os.listdir(shims) if n.startswith(".gone-")],
             what="the deleted shim's directory to go")
    for d in (os.path.join(trash, "f" * 64 + "-0badc0de", "rootfs", "upper", "etc"),
              os.path.join(shims, ".gone-" + "e" * 64 + "-4242", "bundle", "rootfs")):
        os.makedirs(d)
        with open(os.path.join(d, "file"), "w") as f:
            f.write("left over")
    old = e.supervisor_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (p := e.supervisor_pid()) and p != old, what="a new supervisor")
    wait_for(lambda: not [n for n in os.listdir(shims) if n.startswith(".gone-")],
             what="the new supervisor to remove the shim's leftover")
    assert os.listdir(os.path.join(trash, "f" * 64 + "-0badc0de"))  # the daemon's: still there
    e.kill_daemon(signal.SIGKILL)
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to die with the daemon")
    e.start()
    wait_for(lambda: not os.listdir(trash), what="the daemon to empty its trash")
    assert e.cli("ps", "-aq").stdout == b""


def test_a_start_the_record_did_not_keep_is_learnt_from_the_running_task(fresh_engine):
    # the record of a start is written after the answer (the supervisor's task
    # is the truth); a daemon killed before it was written finds the task
    # running at its next start and says so
    e = fresh_engine
    cid = e.cli("run", "-d", "--name", "unsaid", "busybox", "sleep", "600").stdout.decode().strip()
    pid = inspect(e, "unsaid")["State"]["Pid"]
    e.kill_daemon(signal.SIGKILL)
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to die with the daemon")
    path = os.path.join(e.root, "containers", cid, "config.v2.json")
    with open(path) as f:
        rec = json.load(f)
    rec["State"].update(Status="created", Running=False, Pid=0)
    with open(path, "w") as f:
        json.dump(rec, f)
    e.start()
    wait_for(lambda: inspect(e, "unsaid")["State"]["Running"], what="the start to be learnt")
    info = inspect(e, "unsaid")
    assert info["State"]["Status"] == "running" and info["State"]["Pid"] == pid
    with open(path) as f:
        assert json.load(f)["State"]["Running"] is True  # and written down
    assert e.cli("stop", "-t", "1", "unsaid").returncode == 0
    assert inspect(e, "unsaid")["State"]["ExitCode"] == 137


def test_a_stopped_rm_container_left_by_a_killed_daemon_is_removed_at_its_next_start(fresh_engine):
    # an auto-removed container's exit is not written before its removal: a
    # daemon killed in between leaves its record; the next one removes it
    # (as dockerd does), whatever that record says
    e = fresh_engine
    cid = e.cli("run", "-d", "--rm", "--name", "leftover", "busybox", "sleep", "600").stdout.decode().strip()
    pid = inspect(e, "leftover")["State"]["Pid"]
    e.cli("create", "--rm", "--name", "never-started", "busybox", "true", check=True)
    e.kill_daemon(signal.SIGKILL)
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to die with the daemon")
    os.kill(pid, signal.SIGKILL)
    path = os.path.join(e.root, "containers", cid, "config.v2.json")
    with open(path) as f:
        rec = json.load(f)
    rec["State"].update(Status="exited", Running=False, Pid=0, ExitCode=137)
    with open(path, "w") as f:
        json.dump(rec, f)
    e.start()
    wait_for(lambda: e.cli("ps", "-a", "--format", "{{.Names}}").stdout == b"never-started\n",
             what="the stopped --rm container to be removed")
    assert not os.path.exists(os.path.join(e.root, "containers", cid))
    assert e.cli("rm", "never-started").returncode == 0
