"""`trioctr run` end to end: CLI -> daemon -> supervisor -> shim -> runtime,
on the real kernel."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.root


def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")


def test_run_prints_and_returns_the_exit_code(engine):
    res = engine.cli("run", "--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert res.returncode == 3, err(res)
    assert out(res) == "hello\n"
    assert err(res) == "oops\n"


def test_run_isolation_inside_the_container(engine):
    res = engine.cli("run", "--rm", "--hostname", "boxy", "busybox", "sh", "-c",
                     "echo $$; hostname; ls /sys/class/net; cat /proc/self/cgroup | head -1; id -u")
    assert res.returncode == 0, err(res)
    lines = out(res).split()
    assert lines[0] == "1"  # pid namespace: the command is init
    assert lines[1] == "boxy"  # uts namespace
    assert lines[2] == "lo"  # network namespace with loopback only
    assert lines[-1] == "0"


def test_run_env_workdir_user_entrypoint(engine):
    res = engine.cli("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "app", "busybox",
                     "sh", "-c", 'echo "$FOO $(pwd) $(id -u):$(id -g)"; echo $PATH')
    assert res.returncode == 0, err(res)
    first, path = out(res).splitlines()
    assert first == "bar /tmp 1000:1000"
    assert path == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    res = engine.cli("run", "--rm", "-u", "65534:65534", "busybox", "id")
    assert out(res).startswith("uid=65534"), out(res) + err(res)
    res = engine.cli("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
    assert out(res) == "via entrypoint\n", err(res)


def test_run_limits_are_applied(engine):
    res = engine.cli("run", "--rm", "--memory", "64m", "--pids-limit", "50", "busybox", "sh", "-c",
                     "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
                     "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    assert res.returncode == 0, err(res)
    mem, pids = out(res).split()
    assert int(mem) == 64 * 1024 * 1024
    assert pids == "50"
    res = engine.cli("run", "--rm", "--cpus", "0.5", "--cpu-shares", "512", "busybox", "sh", "-c",
                     "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                     "/sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.max")
    assert res.returncode == 0, err(res)
    values = out(res).split()
    assert values in (["50000", "100000", "512"], ["50000", "100000"]), values


def test_detached_lifecycle_ps_logs_stop_rm(engine):
    res = engine.cli("run", "-d", "--name", "web", "-l", "app=demo", "busybox", "sh", "-c",
                     "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    assert len(cid) == 64
    try:
        deadline = time.time() + 10
        while time.time() < deadline and "started" not in out(engine.cli("logs", "web")):
            time.sleep(0.1)
        assert out(engine.cli("logs", "web")) == "started\n"
        ps = out(engine.cli("ps"))
        assert "web" in ps and cid[:12] in ps and "Up " in ps
        assert out(engine.cli("ps", "-q")).split() == [cid[:12]]
        info = json.loads(out(engine.cli("inspect", "web")))[0]
        assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
        assert info["Config"]["Labels"] == {"app": "demo"}
        os.kill(info["State"]["Pid"], 0)  # the init pid is real
        res = engine.cli("rm", "web")
        assert res.returncode != 0
        assert "container is running" in err(res)
        res = engine.cli("stop", "-t", "5", "web")
        assert res.returncode == 0, err(res)
        info = json.loads(out(engine.cli("inspect", "web")))[0]
        assert info["State"]["Status"] == "exited"
        assert info["State"]["ExitCode"] == 0
        assert out(engine.cli("logs", "web")) == "started\nbye\n"
        assert out(engine.cli("logs", "--tail", "1", "web")) == "bye\n"
        assert "Exited (0)" in out(engine.cli("ps", "-a"))
    finally:
        engine.cli("rm", "-f", "web")
    assert engine.cli("inspect", "web").returncode != 0
    # the shim went away and took its directory (and its rootfs mount) with it
    assert cid not in os.listdir(os.path.join(engine.exec_root, "shims"))
    assert not os.path.exists(os.path.join(engine.root, "containers", cid))


def test_stop_escalates_to_sigkill(engine):
    # sh as pid 1 ignores SIGTERM: stop must fall back to SIGKILL after -t
    cid = out(engine.cli("run", "-d", "busybox", "sleep", "60")).strip()
    t0 = time.monotonic()
    assert engine.cli("stop", "-t", "1", cid).returncode == 0
    assert time.monotonic() - t0 < 10
    info = json.loads(out(engine.cli("inspect", cid)))[0]
    assert info["State"]["ExitCode"] == 137
    engine.cli("rm", cid, check=True)


def test_kill_with_signal_and_wait(engine):
    cid = out(engine.cli("run", "-d", "busybox", "sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done")).strip()
    time.sleep(0.5)
    res = engine.cli("kill", "-s", "USR1", cid)
    assert res.returncode == 0, (err(res), out(engine.cli("inspect", cid)), engine.cli("logs", cid))
    res = engine.cli("wait", cid)
    assert out(res).strip() == "42"
    engine.cli("rm", cid, check=True)


def test_logs_follow_streams_until_exit(engine):
    cid = out(engine.cli("run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done")).strip()
    res = engine.cli("logs", "-f", cid, timeout=30)
    assert out(res) == "1\n2\n3\n"
    engine.cli("rm", cid, check=True)


def test_command_not_found_and_not_executable(engine):
    res = engine.cli("run", "--rm", "busybox", "nosuchcommand")
    assert res.returncode == 127
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in err(res)
    res = engine.cli("run", "--rm", "busybox", "/etc/passwd")
    assert res.returncode == 126, err(res)
    assert "permission denied" in err(res)


def _cgroup_dirs_of(engine, cid: str) -> list[str]:
    import glob

    return [d for d in glob.glob(f"/sys/fs/cgroup/**/{engine.cgroup_parent}/**", recursive=True)
            if cid in d]


def test_no_cgroup_outlives_its_task(engine):
    """The shim makes the container's cgroup directories ahead of the runtime
    (see ShimService._warm_migrations): they are the task's, made or not by
    the runtime, and go with it however it ends."""
    # a running task has them
    cid = out(engine.cli("run", "-d", "busybox", "sleep", "30", check=True)).strip()
    assert any(d.endswith(cid) for d in _cgroup_dirs_of(engine, cid))
    engine.cli("rm", "-f", cid, check=True)
    assert _cgroup_dirs_of(engine, cid) == []
    # a create the runtime refuses (the executable is checked at create)
    res = engine.cli("run", "--name", "nocg", "busybox", "/nonexistent")
    assert res.returncode == 127, err(res)
    cid = out(engine.cli("inspect", "-f", "{{.Id}}", "nocg")).strip()
    assert _cgroup_dirs_of(engine, cid) == []
    engine.cli("rm", "nocg", check=True)
    # a task that ran and exited, removed by --rm
    res = engine.cli("run", "--rm", "--name", "rmcg", "busybox", "true")
    assert res.returncode == 0, err(res)
    ids = set(out(engine.cli("events", "--since", "0", "--until", str(int(time.time()) + 1),
                             "--filter", "container=rmcg", "--format", "{{.ID}}")).split())
    assert len(ids) == 1, ids
    assert _cgroup_dirs_of(engine, ids.pop()) == []


def test_bad_input_is_refused_and_changes_nothing(engine):
    before = out(engine.cli("ps", "-aq"))
    res = engine.cli("run", "--rm", "nosuchimage")
    assert res.returncode == 125
    assert "nosuchimage" in err(res)
    res = engine.cli("run", "--rm", "Bad:Ref:X", "true")
    assert res.returncode == 125
    assert "invalid reference format" in err(res)
    res = engine.cli("run", "--no-such-flag", "busybox")
    assert res.returncode == 125
    assert "unknown flag: --no-such-flag" in err(res)
    res = engine.cli("run", "--memory", "12x", "busybox", "true")
    assert res.returncode == 125
    assert "invalid" in err(res).lower()
    res = engine.cli("run", "--memory", "1m", "busybox", "true")
    assert res.returncode == 125
    assert "Minimum memory limit allowed is 6MB" in err(res)
    assert out(engine.cli("ps", "-aq")) == before
    cid = out(engine.cli("create", "--name", "dup", "busybox", "true")).strip()
    res = engine.cli("create", "--name", "dup", "busybox", "true")
    assert res.returncode != 0
    assert 'The container name "/dup" is already in use' in err(res)
    engine.cli("rm", cid, check=True)
    assert out(engine.cli("ps", "-aq")) == before


def test_garbage_on_the_api_socket(engine):
    import socket

    for junk in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /containers/create HTTP/1.1\r\n"
                 b"Content-Length: 5\r\n\r\n{bad", b"x" * 100000):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(engine.sock)
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            data = s.recv(65536)
        except OSError:
            data = b""
        finally:
            s.close()
        assert data == b"" or data.split(b" ")[1][:1] == b"4", data[:200]
    status, body = engine.request("POST", "/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = engine.request("GET", "/containers/nope/json")
    assert status == 404 and body["message"] == "No such container: nope"
    status, _ = engine.request("GET", "/_ping")
    assert status == 200
    # the API socket is root's and its group's only
    assert os.stat(engine.sock).st_mode & 0o777 == 0o660


def test_no_daemon_is_one_clear_line(tmp_path):
    from tests.helpers.engine import Engine

    e = Engine(base=str(tmp_path))
    res = e.cli("ps")
    assert res.returncode == 1
    lines = err(res).strip().splitlines()
    assert len(lines) == 1 and "Is the trioctr daemon running?" in lines[0]
    assert "Traceback" not in err(res)


def test_images_import_and_rmi(engine, busybox_tar):
    res = engine.cli("import", busybox_tar, "other:v1")
    assert res.returncode == 0, err(res)
    assert out(res).startswith("sha256:")
    listing = out(engine.cli("images"))
    assert "other" in listing and "v1" in listing and "busybox" in listing
    cid = out(engine.cli("create", "other:v1", "true")).strip()
    res = engine.cli("rmi", "other:v1")
    # its only name, and a container uses it: Docker's conflict, nothing changes
    assert res.returncode == 1
    assert 'unable to remove repository reference "other:v1" (must force)' in err(res)
    assert "other" in out(engine.cli("images"))
    engine.cli("rm", cid, check=True)
    res = engine.cli("rmi", "other:v1")
    assert res.returncode == 0, err(res)
    assert "Untagged: other:v1" in out(res) and "Deleted: sha256:" in out(res)
    assert "other" not in out(engine.cli("images"))
    res = engine.cli("rmi", "nosuch:tag")
    assert res.returncode != 0 and "No such image" in err(res)


def test_version_and_info(engine):
    res = engine.cli("version")
    assert res.returncode == 0, err(res)
    assert "1.41" in out(res)
    res = engine.cli("info")
    assert res.returncode == 0, err(res)
    assert "Containers:" in out(res)
