"""exec end to end (CLI/API -> daemon -> supervisor -> shim -> runtime): the
output (live, stdout and stderr apart), the exit code, stdin, a TTY, Docker's
errors and events, every runtime, and an exec that outlives a SIGKILL of the
supervisor."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from tests.helpers.engine import ROOT, env
from tests.integration.test_runtimes import crun_usable, need  # noqa: F401 - fixture
from tests.helpers.pty import run_in_pty
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root



@pytest.fixture(scope="module")
def box(engine):
    """One long-running container for the module's execs."""
    cid = engine.cli("run", "-d", "--name", "box", "busybox", "sleep", "600",
                     check=True).stdout.decode().strip()
    yield cid
    engine.cli("rm", "-f", cid)


def api_exec(engine, cid, cmd, **extra):
    body = {"AttachStdout": True, "AttachStderr": True, "Cmd": cmd, **extra}
    status, res = engine.request("POST", f"/containers/{cid}/exec", body)
    assert status == 201, res
    return res["Id"]


def start_raw(engine, eid, body=None) -> socket.socket:
    """POST /exec/ID/start with an upgrade, as the docker CLI does; returns the
    hijacked socket after the 101 head."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(engine.sock)
    data = json.dumps(body or {"Detach": False, "Tty": False}).encode()
    s.sendall(f"POST /v1.41/exec/{eid}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
              f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
              .encode() + data)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_frames(s: socket.socket, until=None) -> list[tuple[int, bytes, float]]:
    """Multiplexed frames (stream, data, arrival time) until EOF (or ``until``)."""
    buf = b""
    frames = []
    while True:
        while len(buf) >= 8:
            stream, size = struct.unpack(">BxxxI", buf[:8])
            if len(buf) < 8 + size:
                break
            frames.append((stream, buf[8:8 + size], time.monotonic()))
            buf = buf[8 + size:]
            if until and until(frames):
                return frames
        data = s.recv(65536)
        if not data:
            return frames
        buf += data


def test_exec_output_and_exit_code(engine, box):
    res = engine.cli("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout == b"out\n" and res.stderr == b"err\n"
    assert engine.cli("exec", "box", "true").returncode == 0


def test_exec_command_not_found_and_not_executable(engine, box):
    res = engine.docker("exec", "box", "nosuchcmd")
    assert res.returncode == 127
    assert (b'OCI runtime exec failed: exec failed: unable to start container process: '
            b'exec: "nosuchcmd": executable file not found in $PATH: unknown') in res.stdout
    res = engine.docker("exec", "box", "/etc")
    assert res.returncode == 126
    assert b'exec: "/etc": permission denied' in res.stdout
    # the container is not disturbed
    assert engine.cli("exec", "box", "true").returncode == 0


def test_exec_stdin_is_piped_and_closed_at_eof(engine, box):
    res = engine.cli("exec", "-i", "box", "sh", "-c", "cat; echo done",
                     input=b"line one\nline two\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"line one\nline two\ndone\n"
    # without -i the exec's stdin is empty
    res = engine.cli("exec", "box", "sh", "-c", "cat; echo done", input=b"ignored\n")
    assert res.stdout == b"done\n"


def test_exec_env_user_workdir(engine, box):
    res = engine.cli("exec", "-u", "nobody", "-w", "/tmp", "-e", "FOO=bar", "box",
                     "sh", "-c", "id -u; pwd; echo $FOO; echo $HOSTNAME")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().split() == ["65534", "/tmp", "bar", box[:12]]


def test_exec_tty_under_a_pty(engine, box):
    argv = [sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}", "exec", "-t", "box",
            "sh", "-c", "tty; [ -t 1 ] && echo out-is-a-tty; echo $TERM; exit 6"]
    code, out, _ = run_in_pty(argv, env())
    text = out.decode(errors="replace")
    assert code == 6, text
    assert "/dev/pts/" in text and "out-is-a-tty" in text and "xterm" in text


def winsize(pid: int) -> tuple[int, int]:
    import fcntl
    import termios

    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NOCTTY)
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    finally:
        os.close(fd)
    return rows, cols


def test_exec_tty_size_and_resize(engine, box):
    eid = api_exec(engine, box, ["sleep", "30"], Tty=True, ConsoleSize=[33, 101])
    assert engine.request("POST", f"/exec/{eid}/start", {"Detach": True, "Tty": True})[0] == 200
    pid = engine.request("GET", f"/exec/{eid}/json")[1]["Pid"]
    assert winsize(pid) == (33, 101)
    status, _ = engine.request("POST", f"/exec/{eid}/resize?h=40&w=120")
    assert status == 200
    assert winsize(pid) == (40, 120)
    status, res = engine.request("POST", "/exec/nosuch/resize?h=1&w=1")
    assert (status, res["message"]) == (404, "No such exec instance: nosuch")
    os.kill(pid, signal.SIGKILL)
    info = wait_for(lambda: (i := engine.request("GET", f"/exec/{eid}/json")[1]) and not i["Running"] and i)
    assert info["ExitCode"] == 137


def test_exec_output_streams_live(engine, box):
    eid = api_exec(engine, box, ["sh", "-c", "echo first; sleep 2; echo second >&2"])
    s = start_raw(engine, eid)
    t0 = time.monotonic()
    frames = read_frames(s)
    s.close()
    assert [(st, d) for st, d, _ in frames] == [(1, b"first\n"), (2, b"second\n")]
    assert frames[0][2] - t0 < 1.5, "the first line came only at the end"
    assert frames[1][2] - t0 >= 1.5


def test_exec_large_output_is_complete(engine, box):
    res = engine.cli("exec", "box", "sh", "-c", "head -c 6000000 /dev/zero | tr '\\0' x")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout) == 6000000 and set(res.stdout) == {ord("x")}


def test_exec_inspect_fields(engine, box):
    eid = api_exec(engine, box, ["sh", "-c", "sleep 1; exit 4"], User="nobody")
    status, info = engine.request("GET", f"/exec/{eid}/json")
    assert status == 200
    assert info["ID"] == eid and info["ContainerID"] == box
    assert info["Running"] is False and info["ExitCode"] is None and info["Pid"] == 0
    assert info["ProcessConfig"] == {"tty": False, "entrypoint": "sh",
                                     "arguments": ["-c", "sleep 1; exit 4"],
                                     "privileged": False, "user": "nobody"}
    assert info["OpenStdout"] is True and info["OpenStdin"] is False
    status, _ = engine.request("POST", f"/exec/{eid}/start", {"Detach": True})
    assert status == 200
    status, info = engine.request("GET", f"/exec/{eid}/json")
    assert info["Running"] is True and info["Pid"] > 0
    status, c = engine.request("GET", f"/containers/{box}/json")
    assert eid in c["ExecIDs"]
    wait_for(lambda: engine.request("GET", f"/exec/{eid}/json")[1]["Running"] is False,
             what="the exec to end")
    assert engine.request("GET", f"/exec/{eid}/json")[1]["ExitCode"] == 4
    assert engine.request("GET", f"/containers/{box}/json")[1]["ExecIDs"] is None
    status, res = engine.request("POST", f"/exec/{eid}/start", {"Detach": True})
    assert status == 409 and res["message"] == f"exec command {eid} has already run"


def test_exec_errors(engine, box):
    status, res = engine.request("POST", "/containers/nosuch/exec", {"Cmd": ["true"]})
    assert (status, res["message"]) == (404, "No such container: nosuch")
    status, res = engine.request("POST", f"/containers/{box}/exec", {"Cmd": []})
    assert (status, res["message"]) == (400, "No exec command specified")
    status, res = engine.request("POST", f"/containers/{box}/exec", {"Cmd": ["true"], "Privileged": True})
    assert status == 400 and "Privileged" in res["message"]
    status, res = engine.request("POST", f"/containers/{box}/exec", {"Cmd": ["true"], "User": "nosuchuser"})
    assert (status, res["message"]) == (400, "unable to find user nosuchuser: no matching entries in passwd file")
    status, res = engine.request("POST", "/exec/deadbeef/start", {"Detach": True})
    assert (status, res["message"]) == (404, "No such exec instance: deadbeef")
    status, res = engine.request("GET", "/exec/deadbeef/json")
    assert status == 404
    stopped = engine.cli("create", "busybox", "true", check=True).stdout.decode().strip()
    try:
        status, res = engine.request("POST", f"/containers/{stopped}/exec", {"Cmd": ["true"]})
        assert (status, res["message"]) == (409, f"Container {stopped} is not running")
    finally:
        engine.cli("rm", stopped)


def test_exec_dies_with_its_container(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    eid = api_exec(engine, cid, ["sleep", "600"])
    assert engine.request("POST", f"/exec/{eid}/start", {"Detach": True})[0] == 200
    engine.cli("kill", cid, check=True)
    info = wait_for(lambda: (i := engine.request("GET", f"/exec/{eid}/json")[1]) and not i["Running"] and i,
                    what="the exec to die")
    assert info["ExitCode"] == 137
    engine.cli("rm", cid, check=True)
    assert engine.request("GET", f"/exec/{eid}/json")[0] == 404


def test_exec_events(engine, box):
    since = f"{time.time():.9f}"
    engine.cli("exec", "box", "sh", "-c", "exit 2")
    until = f"{time.time() + 1:.9f}"
    res = engine.cli("events", "--since", since, "--until", until, "--format", "{{json .}}")
    evs = [json.loads(line) for line in res.stdout.decode().splitlines()]
    acts = [(e["Action"], e["Actor"]["Attributes"].get("exitCode")) for e in evs if e["Type"] == "container"]
    assert acts == [("exec_create: sh -c exit 2", None), ("exec_start: sh -c exit 2", None),
                    ("exec_die", "2")]
    ids = {e["Actor"]["Attributes"]["execID"] for e in evs}
    assert len(ids) == 1


@pytest.mark.parametrize("runtime", ["trioctr", "runc", "crun"])
def test_exec_with_every_runtime(engine, request, runtime):
    need(request, runtime)
    cid = engine.cli("run", "-d", "--runtime", runtime, "busybox", "sleep", "600",
                     check=True).stdout.decode().strip()
    try:
        res = engine.cli("exec", cid, "sh", "-c", "echo $$; echo err >&2; exit 5")
        assert res.returncode == 5 and res.stderr == b"err\n", res
        assert int(res.stdout) > 1  # not the init; in the container's pid namespace
        res = engine.cli("exec", "-i", cid, "cat", input=b"abc")
        assert (res.returncode, res.stdout) == (0, b"abc")
        res = engine.docker("exec", cid, "nosuchcmd")
        assert res.returncode == 127 and b"nosuchcmd" in res.stdout
    finally:
        engine.cli("rm", "-f", cid)


def test_exec_survives_a_supervisor_sigkill(fresh_engine):
    e = fresh_engine
    e.cli("run", "-d", "--name", "cc", "busybox", "sleep", "600", check=True)
    e2 = env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "exec", "-i", "cc", "sh", "-c",
         "i=0; while [ $i -lt 40 ]; do echo $i; i=$((i+1)); sleep 0.05; done; read x; echo got $x; exit 9"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e2, cwd=ROOT)
    first = proc.stdout.readline()
    assert first == b"0\n"
    old = e.supervisor_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (p := e.supervisor_pid()) and p != old, what="a new supervisor")
    out, err = proc.communicate(b"hello\n", timeout=60)
    lines = (first + out).decode().splitlines()
    assert lines == [str(i) for i in range(40)] + ["got hello"], err
    assert proc.returncode == 9


def test_an_exec_left_by_a_dead_daemon_runs_on_unheard(fresh_engine):
    """Its reader died with the daemon: once the new daemon has let go of it,
    its output is dropped instead of blocking it (dockerd forgets execs too)."""
    e = fresh_engine
    cid = e.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    eid = api_exec(e, cid, ["sh", "-c", "head -c 8000000 /dev/zero; echo end > /tmp/finished"])
    s = start_raw(e, eid)  # attached, and never read
    time.sleep(1)
    pid = e.request("GET", f"/containers/{cid}/json")[1]["State"]["Pid"]
    assert not os.path.exists(f"/proc/{pid}/root/tmp/finished"), "the unread output did not hold it"
    e.kill_daemon(signal.SIGKILL)
    s.close()
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to go with the daemon")
    e.start()
    wait_for(lambda: os.path.exists(f"/proc/{pid}/root/tmp/finished"), what="the exec to finish")
    assert e.cli("exec", cid, "true").returncode == 0
    assert e.request("GET", f"/exec/{eid}/json")[0] == 404
    e.cli("rm", "-f", cid, check=True)


def test_bad_exec_requests_to_a_shim_get_errors_and_change_nothing(engine, box):
    """A supervisor (here: the test) that asks nonsense gets error replies;
    the shim, its container and its execs go on."""
    import trio

    from messages import shim as sh
    from messages import supervisor as sup
    from messages.errors import ErrorCode, RemoteError
    from messages.link import open_unix_link

    async def main():
        link = await open_unix_link(os.path.join(engine.exec_root, "shims", box, "shim.sock"),
                                    role="supervisor", name="test")
        async with trio.open_nursery() as n:
            class Quiet:
                async def handle_request(self, link, msg):
                    raise RemoteError(ErrorCode.UNIMPLEMENTED, "no")

                async def handle_event(self, link, msg):
                    pass

            n.start_soon(link.serve, Quiet())
            codes = []
            for msg in (
                sh.ShimExec(exec_id="../../x", process=sup.ExecProcess(args=["true"])),
                sh.ShimExec(exec_id="abc", process=sup.ExecProcess(args=[])),
                sh.ShimExec(exec_id="abc", process=sup.ExecProcess(args=["true"], height=70000)),
                sh.ShimExecRead(exec_id="nosuch"),
                sh.ShimExecStdin(exec_id="nosuch", data=b"x"),
                sh.ShimExecResize(exec_id="nosuch", height=1, width=1),
                sh.ShimExecDelete(exec_id="nosuch"),
                sh.ShimResume(),
            ):
                try:
                    await link.request(msg, timeout=10)
                    codes.append(None)
                except RemoteError as exc:
                    codes.append(exc.code)
            # a real exec, then a bad stdin offset and an early delete
            started = await link.request(sh.ShimExec(exec_id="good1", stdin=True,
                                                     process=sup.ExecProcess(args=["/bin/cat"])), timeout=30)
            assert started.pid > 0
            for msg in (sh.ShimExecStdin(exec_id="good1", offset=5, data=b"x"),
                        sh.ShimExecDelete(exec_id="good1"),
                        sh.ShimExecRead(exec_id="good1", offset=99)):
                try:
                    await link.request(msg, timeout=10)
                    codes.append(None)
                except RemoteError as exc:
                    codes.append(exc.code)
            await link.request(sh.ShimExecStdin(exec_id="good1", data=b"hi", eof=True), timeout=10)
            # a repeated write (same offset) is not written twice
            await link.request(sh.ShimExecStdin(exec_id="good1", data=b"hi", eof=True), timeout=10)
            out, offset = b"", 0
            while True:
                reply = await link.request(sh.ShimExecRead(exec_id="good1", offset=offset), timeout=30)
                out += b"".join(c.data for c in reply.chunks)
                offset = reply.offset
                if reply.done:
                    break
            assert (out, reply.exit_status) == (b"hi", 0)
            await link.request(sh.ShimExecDelete(exec_id="good1"), timeout=10)
            await link.aclose()
            n.cancel_scope.cancel()
        return codes

    codes = trio.run(main)
    from messages.errors import ErrorCode as E

    assert codes == [E.INVALID_ARGUMENT, E.INVALID_ARGUMENT, E.INVALID_ARGUMENT, E.NOT_FOUND,
                     E.NOT_FOUND, E.NOT_FOUND, E.NOT_FOUND, E.FAILED_PRECONDITION,
                     E.INVALID_ARGUMENT, E.FAILED_PRECONDITION, E.INVALID_ARGUMENT]
    assert engine.cli("exec", "box", "echo", "fine").stdout == b"fine\n"
