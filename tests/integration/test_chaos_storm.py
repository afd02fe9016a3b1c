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

import pytest

pytestmark = pytest.mark.root


def _storm(e, stop: threading.Event, period: float, kills: list[int]):
    while not stop.wait(period):
        pid = e.supervisor_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass


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
