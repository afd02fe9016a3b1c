"""Chaos: a storm of supervisor SIGKILLs while foreground `run`s wait for their exit codes.

Every container exits with its own code; whatever the supervisor's fate while it
ran, the CLI must report exactly that code (never 0, never a stale one), and the
records must agree with it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.parse

import pytest

from tests.helpers.engine import UnixHTTPConnection

pytestmark = pytest.mark.root


def _supervisors_up(e, stop: threading.Event, up: list[tuple[float, str]]):
    """Follow the daemon's events: each supervisor-start/-restart, with when it came."""
    conn = UnixHTTPConnection(e.sock, timeout=None)
    # (since=0: the first supervisor came before us)
    conn.request("GET", "/events?since=0&filters=" + urllib.parse.quote(json.dumps({"type": ["daemon"]})))
    resp = conn.getresponse()
    try:
        while not stop.is_set():
            line = resp.readline()
            if not line:
                return
            ev = json.loads(line)
            if ev.get("Action") in ("supervisor-start", "supervisor-restart"):
                up.append((time.monotonic(), ev["Actor"]["Attributes"]["pid"]))
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def _storm(e, stop: threading.Event, period: float, kills: list[int]):
    """SIGKILL each supervisor `period` seconds after the daemon has it up: every
    one gets to serve a little (a loaded host may take longer than `period` to
    start one, and killing it before it is up only starves the requests, which
    give up after SUP_ATTEMPTS supervisors in a row)."""
    up: list[tuple[float, str]] = []
    threading.Thread(target=_supervisors_up, args=(e, stop, up), daemon=True).start()
    while not stop.wait(0.05):
        if not up or time.monotonic() - up[-1][0] < period:
            continue
        pid = int(up[-1][1])
        if kills and kills[-1] == pid:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
        except ProcessLookupError:
            pass


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def test_a_shim_lost_in_a_create_does_not_end_the_task_made_again(fresh_engine):
    """The supervisor dies while a shim is being spawned for a start: the next one
    finds a shim directory with nobody listening and reports that task lost
    (exit 255, no pid), while the daemon makes the task again and starts it.
    That late exit is not of the running task: the container runs on and
    exits with its own code (it used to be marked 255 and killed)."""
    e = fresh_engine
    cid = e.cli("create", "--name", "lost", "busybox", "sh", "-c",
                "echo start; sleep 2; echo end; exit 7", check=True).stdout.decode().strip()
    sup = e.supervisor_pid()
    zygotes = [p for p in _children(sup) if b"zygote" in _cmdline(p)]
    assert zygotes, "no shim zygote under the supervisor"
    # and the spare shim in the supervisor's hand (a shim of the zygote's
    # making whose working directory is still the engine's shims directory)
    home = os.path.join(e.exec_root, "shims")
    deadline = time.monotonic() + 10
    while True:
        spares = [int(p) for p in os.listdir("/proc") if p.isdigit()
                  and b"actors.shim\0zygote" in _cmdline(int(p)) and _cwd(int(p)) == home]
        if spares or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert spares, "no spare shim"
    zygotes += spares
    for z in zygotes:
        os.kill(z, signal.SIGSTOP)  # the supervisor's create waits for them now
    started: list = []
    start = threading.Thread(target=lambda: started.append(e.cli("start", "lost", timeout=90)))
    start.start()
    try:
        shim_json = os.path.join(e.exec_root, "shims", cid, "shim.json")
        deadline = time.monotonic() + 30
        while not os.path.exists(shim_json) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.exists(shim_json), "the supervisor never began the create"
        time.sleep(0.2)
        assert not os.path.exists(os.path.join(e.exec_root, "shims", cid, "shim.sock"))
        os.kill(sup, signal.SIGKILL)
    finally:
        for z in zygotes:
            os.kill(z, signal.SIGKILL)
        start.join(100)
    assert started and started[0].returncode == 0, started
    res = e.cli("wait", "lost", timeout=60)
    assert res.stdout == b"7\n", (res.stdout, res.stderr, e.daemon_log()[-3000:])
    assert e.cli("logs", "lost").stdout == b"start\nend\n"
    events = e.cli("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "container=lost",
                   "--format", "{{.Action}}").stdout.decode().split()
    assert events.count("die") == 1, events


@pytest.mark.parametrize("client", ["trioctr", "docker"])
def test_exit_codes_survive_a_supervisor_kill_storm(fresh_engine, client):
    e = fresh_engine
    stop = threading.Event()
    kills: list[int] = []
    storm = threading.Thread(target=_storm, args=(e, stop, 0.7, kills), daemon=True)
    storm.start()
    results = []
    try:
        for code in range(1, 7):
            # the container lives across at least one kill most of the time
            args = ("run", "--name", f"storm{code}", "busybox", "sh", "-c",
                    f"echo start {code}; sleep 0.{code % 5 + 3}; echo end {code}; exit {code}")
            run = e.docker if client == "docker" else e.cli
            res = run(*args, timeout=90)
            results.append((code, res.returncode, res.stdout, res.stderr))
    finally:
        stop.set()
        storm.join()
    assert len(kills) >= 3, f"the storm killed only {len(kills)} supervisors"
    for code, rc, out, err in results:
        assert rc == code, (code, rc, out, err)
        # attached output is complete, in order
        assert out == f"start {code}\nend {code}\n".encode(), (code, out, err)
    # the records agree with what the clients saw once the supervisor is back
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not e.supervisor_pid():
        time.sleep(0.05)
    for code in range(1, 7):
        st = json.loads(e.cli("inspect", f"storm{code}").stdout)[0]["State"]
        assert (st["Status"], st["ExitCode"]) == ("exited", code)
    # and the engine still works
    res = e.cli("run", "--rm", "busybox", "echo", "calm")
    assert res.returncode == 0 and res.stdout == b"calm\n", res.stderr
