"""exec under attack: many at once, racing the container's exit, pause and
update during an exec, a restart loop, and supervisor SIGKILLs while output
streams."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.engine import ROOT, env
from tests.integration.test_exec import api_exec, wait_for

pytestmark = pytest.mark.root


def _run(e, cid, i):
    return e.cli("exec", cid, "sh", "-c", f"seq 1 2000 | sed 's/^/{i}-/'; echo err{i} >&2; exit {i % 7}",
                 timeout=120)


def test_fifty_concurrent_execs_with_output(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        with cf.ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda i: _run(engine, cid, i), range(50)))
        for i, res in enumerate(results):
            assert res.returncode == i % 7, (i, res.stderr[-300:])
            assert res.stdout == "".join(f"{i}-{n}\n" for n in range(1, 2001)).encode(), i
            assert res.stderr == f"err{i}\n".encode()
        assert engine.request("GET", f"/containers/{cid}/json")[1]["State"]["Running"]
    finally:
        engine.cli("rm", "-f", cid)


def test_execs_racing_the_containers_exit(engine):
    """execs started as the container exits: each fails or ends, none hangs,
    and the container can be removed."""
    for _ in range(5):
        cid = engine.cli("run", "-d", "busybox", "sh", "-c", "sleep 0.5",
                         check=True).stdout.decode().strip()
        with cf.ThreadPoolExecutor(10) as pool:
            futs = [pool.submit(engine.cli, "exec", cid, "sh", "-c", "echo hi; sleep 0.3", timeout=60)
                    for _ in range(20)]
            time.sleep(0.3)
            for f in futs:
                res = f.result()
                assert res.returncode in (0, 1, 126, 137, 255) or res.returncode > 0, res
        wait_for(lambda: not engine.request("GET", f"/containers/{cid}/json")[1]["State"]["Running"],
                 what="exit")
        assert engine.cli("rm", cid).returncode == 0


def test_pause_and_update_during_exec(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        p = subprocess.Popen([sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}", "exec", cid,
                              "sh", "-c", "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.05; done"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=ROOT)
        time.sleep(0.3)
        for _ in range(3):
            assert engine.cli("pause", cid).returncode == 0
            assert engine.cli("update", "--memory", "64m", cid).returncode == 0
            time.sleep(0.2)
            assert engine.cli("unpause", cid).returncode == 0
        out, err = p.communicate(timeout=60)
        assert out.decode().split() == [str(i) for i in range(30)], err
        assert p.returncode == 0
        # exec into a paused container: refused, then fine after unpause
        engine.cli("pause", cid, check=True)
        res = engine.cli("exec", cid, "true", timeout=30)
        assert res.returncode != 0
        engine.cli("unpause", cid, check=True)
        assert engine.cli("exec", cid, "true", timeout=30).returncode == 0
    finally:
        engine.cli("rm", "-f", cid)


def test_restart_in_a_tight_loop(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        for i in range(15):
            res = engine.cli("restart", "-t", "0", cid, timeout=60)
            assert res.returncode == 0, (i, res.stderr)
            st = engine.request("GET", f"/containers/{cid}/json")[1]["State"]
            assert st["Running"], (i, st)
        assert engine.cli("exec", cid, "echo", "ok").stdout == b"ok\n"
    finally:
        engine.cli("rm", "-f", cid)


def test_restart_loop_with_execs_running(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        for i in range(8):
            eid = api_exec(engine, cid, ["sh", "-c", "while true; do echo x; sleep 0.01; done"])
            assert engine.request("POST", f"/exec/{eid}/start", {"Detach": True})[0] == 200
            res = engine.cli("restart", "-t", "0", cid, timeout=60)
            assert res.returncode == 0, (i, res.stderr)
        assert engine.cli("exec", cid, "echo", "ok").stdout == b"ok\n"
    finally:
        engine.cli("rm", "-f", cid)


def test_supervisor_sigkills_during_big_exec_output(fresh_engine):
    e = fresh_engine
    cid = e.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    p = subprocess.Popen([sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "exec", cid,
                          "sh", "-c", "seq 1 300000; exit 3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    for _ in range(3):
        time.sleep(0.4)
        old = e.supervisor_pid()
        if old:
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: (q := e.supervisor_pid()) and q != old, what="a new supervisor")
    out, err = p.communicate(timeout=120)
    assert out == "".join(f"{n}\n" for n in range(1, 300001)).encode(), (len(out), err)
    assert p.returncode == 3, err
    e.cli("rm", "-f", cid, check=True)


def test_daemon_sigkill_during_exec_it(fresh_engine):
    e = fresh_engine
    cid = e.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "exec", "-it",
                                   cid, "sh"], env())
    try:
        time.sleep(1.5)
        os.write(fd, b"echo hello\n")
        time.sleep(0.5)
        e.kill_daemon(signal.SIGKILL)
        # the client ends (its connection is gone)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if os.read(fd, 4096) == b"":
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        pid = 0
        wait_for(lambda: not e.supervisor_pid(), what="the supervisor to go")
        e.start()
        assert e.cli("exec", cid, "echo", "ok", timeout=30).stdout == b"ok\n"
        # the orphaned sh was let go of: the container's execs list is empty
        info = e.request("GET", f"/containers/{cid}/json")[1]
        wait_for(lambda: not e.request("GET", f"/containers/{cid}/json")[1].get("ExecIDs"),
                 what="exec ids forgotten", timeout=10)
        assert e.cli("rm", "-f", cid).returncode == 0, info
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_first_in_process_call_racing_an_exec_fork(engine):
    """The shim's first pause/kill/update imports the runtime's cgroup code in
    a worker thread; an exec forked at that moment must not inherit a held
    import lock (the forked runtime would hang on its own import)."""
    for i in range(12):
        cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
        try:
            with cf.ThreadPoolExecutor(4) as pool:
                futs = [pool.submit(engine.cli, "exec", cid, "true", timeout=40) for _ in range(3)]
                time.sleep(0.01 * (i % 4))
                pz = pool.submit(engine.cli, "update", "--memory", "64m", cid, timeout=40)
                for f in futs:
                    assert f.result().returncode == 0, f.result()
                assert pz.result().returncode == 0, pz.result()
        finally:
            engine.cli("rm", "-f", cid, timeout=60)


class _Quiet:
    async def handle_request(self, link, msg):
        from messages.errors import ErrorCode, RemoteError

        raise RemoteError(ErrorCode.UNIMPLEMENTED, "no")

    async def handle_event(self, link, msg):
        pass


def _exec_cut_short(engine, cid: str, terminal: bool, delays: list[float]) -> list[int]:
    """For each delay: ask the shim for an exec, and let the link die (a
    supervisor SIGKILLed, or garbage on the socket) that long after; then ask
    again, as the daemon does of the next supervisor.  Returns how many times
    each exec's command ran."""
    import trio

    from messages import shim as sh
    from messages import supervisor as sup
    from messages.errors import ErrorCode, RemoteError
    from messages.link import open_unix_link

    sock = os.path.join(engine.exec_root, "shims", cid, "shim.sock")
    pid = engine.request("GET", f"/containers/{cid}/json")[1]["State"]["Pid"]
    runs = []

    async def main():
        for i, delay in enumerate(delays):
            eid = f"cut{int(terminal)}x{i}"
            msg = sh.ShimExec(exec_id=eid, process=sup.ExecProcess(
                args=["/bin/sh", "-c", f"echo x >> /tmp/{eid}; sleep 30"], terminal=terminal,
                env=["PATH=/bin:/usr/bin"]), capture=True)
            link = await open_unix_link(sock, role="supervisor", name="test")
            async with trio.open_nursery() as n:
                n.start_soon(link.serve, _Quiet())

                async def ask():
                    try:
                        await link.request(msg, timeout=30)
                    except RemoteError:
                        pass

                n.start_soon(ask)
                await trio.sleep(delay)
                if i % 2:
                    await link.stream.send_all(b"\xc1garbage\xc1")  # a frame msgpack refuses
                await link.aclose()
                n.cancel_scope.cancel()
            await trio.sleep(0.3)
            link = await open_unix_link(sock, role="supervisor", name="test2")
            async with trio.open_nursery() as n:
                n.start_soon(link.serve, _Quiet())
                try:
                    await link.request(msg, timeout=30)
                except RemoteError as exc:
                    assert exc.code is ErrorCode.ALREADY_EXISTS, exc
                await trio.sleep(0.5)
                path = f"/proc/{pid}/root/tmp/{eid}"
                runs.append(len(open(path).read().splitlines()) if os.path.exists(path) else 0)
                await link.aclose()
                n.cancel_scope.cancel()

    trio.run(main)
    return runs


@pytest.mark.parametrize("terminal", [False, True])
def test_an_exec_whose_requester_died_runs_once(engine, terminal):
    """The daemon asks a new supervisor again for an exec whose request died
    with the old one: the shim must have kept the exec it started (answering
    ALREADY_EXISTS), not forgotten it and run the command a second time."""
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        runs = _exec_cut_short(engine, cid, terminal, [0.005, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2])
        assert runs == [1] * len(runs)
    finally:
        engine.cli("rm", "-f", cid)


def test_exec_stdin_write_blocked_when_the_exec_ends(engine):
    """A stdin write waiting on a full pipe (a background child holds its read
    end and never reads) when the exec ends: the shim closes the pipe, and
    the waiting write must be told (not left waiting on a closed fd number
    that the next pipe or socket may reuse)."""
    import trio

    from messages import shim as sh
    from messages import supervisor as sup
    from messages.errors import RemoteError
    from messages.link import open_unix_link

    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    sock = os.path.join(engine.exec_root, "shims", cid, "shim.sock")

    async def main():
        link = await open_unix_link(sock, role="supervisor", name="test")
        async with trio.open_nursery() as n:
            n.start_soon(link.serve, _Quiet())
            await link.request(sh.ShimExec(exec_id="bgin", stdin=True, capture=True, process=sup.ExecProcess(
                args=["/bin/sh", "-c", "exec 3<&0; sleep 30 <&3 >/dev/null 2>&1 & sleep 1"], env=["PATH=/bin"])), timeout=30)
            t0 = time.monotonic()
            try:
                await link.request(sh.ShimExecStdin(exec_id="bgin", data=b"x" * (1 << 20)), timeout=15)
                outcome = "ok"
            except RemoteError as exc:
                outcome = exc.code.name
            took = time.monotonic() - t0
            # the shim still serves, and a new exec's pipes work
            res = await link.request(sh.ShimExec(exec_id="after", capture=True, process=sup.ExecProcess(
                args=["/bin/echo", "fine"], env=["PATH=/bin"])), timeout=30)
            assert res.pid > 0
            await link.aclose()
            n.cancel_scope.cancel()
        return outcome, took

    try:
        outcome, took = trio.run(main)
        assert took < 10, (outcome, took)
    finally:
        engine.cli("rm", "-f", cid)


def test_kill_racing_a_pause_still_kills(engine):
    """docker kill (or rm -f) while a docker pause is on its way: the task
    must die, not stay frozen with the SIGKILL pending (the cgroup v1 freezer
    holds even SIGKILL) and rm -f wait for ever."""
    for i in range(8):
        cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
        try:
            with cf.ThreadPoolExecutor(2) as pool:
                pz = pool.submit(engine.cli, "pause", cid, timeout=30)
                time.sleep(0.01 * (i % 4))
                pk = pool.submit(engine.cli, "kill", cid, timeout=30)
                pz.result()
                pk.result()
            wait_for(lambda: not engine.request("GET", f"/containers/{cid}/json")[1]["State"]["Running"],
                     timeout=15, what=f"the killed container to stop (round {i})")
        finally:
            subprocess.run(["timeout", "60", sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}",
                            "rm", "-f", cid], env=env(), cwd=ROOT, capture_output=True)
