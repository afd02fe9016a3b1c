"""`trioctr events`: a live stream in Docker's shape, and the journal."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers.engine import ROOT, env

pytestmark = pytest.mark.root


def test_events_live_stream_shows_a_container_lifecycle(engine):
    since = f"{time.time():.9f}"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}", "events",
                             "--format", "{{json .}}", "--filter", "type=container"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        time.sleep(1.0)
        res = engine.cli("run", "--rm", "--name", "evt", "busybox", "true")
        assert res.returncode == 0, res.stderr
        actions = []
        deadline = time.time() + 20
        while time.time() < deadline and "destroy" not in actions:
            line = proc.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            assert ev["Type"] == "container"
            assert set(ev) >= {"Type", "Action", "Actor", "time", "timeNano", "status", "id", "from"}
            assert ev["Actor"]["Attributes"]["name"] == "evt"
            actions.append(ev["Action"])
        assert actions[:1] == ["create"]
        assert [a for a in actions if a in ("create", "start", "die", "destroy")] == \
            ["create", "start", "die", "destroy"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # the same events from the journal, with --since/--until
    res = engine.cli("events", "--since", since, "--until", f"{time.time():.9f}",
                     "--filter", "container=evt", "--format", "{{json .}}")
    got = [json.loads(line)["Action"] for line in res.stdout.decode().splitlines()]
    assert [a for a in got if a in ("create", "start", "die", "destroy")] == \
        ["create", "start", "die", "destroy"]
    die = [json.loads(line) for line in res.stdout.decode().splitlines()
           if json.loads(line)["Action"] == "die"][0]
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
