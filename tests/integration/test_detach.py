"""Detach keys with the trioctr CLI on a real daemon: `run -it`, `attach`,
`start -ai` and `exec -it` under a pty, the default ctrl-p,ctrl-q and custom
--detach-keys, a broken prefix passed on, the `detach` / `exec_detach` events,
and bad keys refused as dockerd refuses them."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

from tests.helpers.engine import ROOT, env
from tests.helpers.wait import poll

pytestmark = pytest.mark.root

P, Q = b"\x10", b"\x11"  # ctrl-p, ctrl-q


class Pty:
    """A command on a pty: type into it, read what it prints, wait for its end."""

    def __init__(self, argv: list[str], envv: dict | None = None):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     env=envv or env(), cwd=ROOT, start_new_session=True)
        os.close(slave)
        self.out = b""

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.out += data

    def expect(self, needle: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.out and time.monotonic() < deadline:
            self.pump(0.1)
            if self.proc.poll() is not None:
                self.pump(0.2)
                break
        assert needle in self.out, self.out

    def type(self, *keys: bytes, pause: float = 0.3) -> None:
        # one key per write, with a pause: they arrive as separate reads
        for k in keys:
            os.write(self.master, k)
            self.pump(pause)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.1)
        self.pump(0.2)
        return self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def cli_pty(engine, *args: str) -> Pty:
    e = env()
    e.setdefault("TRIOCTR_CONFIG", os.path.join(engine.base, "cli-config"))
    return Pty([sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}", *args], e)


def inspect(engine, ref: str) -> dict:
    status, body = engine.request("GET", f"/containers/{ref}/json")
    assert status == 200, body
    return body


def events(engine, since: float, cid: str) -> list[dict]:
    res = engine.cli("events", "--since", "%.3f" % since, "--until", "%.3f" % time.time(),
                     "--filter", f"container={cid}", "--format", "{{json .}}", check=True)
    return [json.loads(line) for line in res.stdout.decode().splitlines() if line.strip()]


def actions(engine, since: float, cid: str) -> list[str]:
    return [ev["Action"] for ev in events(engine, since, cid)]


def read_file_in(engine, cid: str, path: str) -> bytes:
    return engine.cli("exec", cid, "cat", path, check=True).stdout



def test_run_it_detach_then_attach_again(engine):
    t0 = time.time() - 1
    s = cli_pty(engine, "run", "-it", "--name", "dt-run", "busybox", "sh", "-c",
                "echo ready; while read l; do echo \"got:$l\"; done")
    try:
        s.expect(b"ready")
        s.type(b"one\r")
        s.expect(b"got:one")
        s.type(P, Q)
        code = s.wait()
        # docker run: a detach is no error, nothing is printed
        assert code == 0, s.out
        assert b"read escape sequence" not in s.out
    finally:
        s.close()
    cid = inspect(engine, "dt-run")["Id"]
    assert inspect(engine, cid)["State"]["Running"] is True
    assert poll(lambda: "detach" in actions(engine, t0, cid)), events(engine, t0, cid)
    acts = actions(engine, t0, cid)
    assert acts.index("attach") < acts.index("start") < acts.index("detach")

    # attach again: input reaches it (its stdin stayed open), and it detaches too
    t1 = time.time()
    s = cli_pty(engine, "attach", "dt-run")
    try:
        time.sleep(1)
        s.type(b"two\r")
        s.expect(b"got:two")
        s.type(P, Q)
        code = s.wait()
        # docker attach returns the escape error: printed, exit 1
        assert code == 1, s.out
        assert s.out.endswith(b"read escape sequence\r\n"), s.out
    finally:
        s.close()
    assert inspect(engine, cid)["State"]["Running"] is True
    assert poll(lambda: actions(engine, t1, cid).count("detach") == 1)
    engine.cli("rm", "-f", cid, check=True)


def test_custom_keys_and_a_broken_prefix_reach_the_container(engine):
    s = cli_pty(engine, "run", "-it", "--name", "dt-keys", "--detach-keys", "ctrl-x,y",
                "busybox", "sh", "-c", "echo ready; cat > /tmp/in")
    try:
        s.expect(b"ready")
        # ctrl-p is no detach key here; ctrl-x then 'a' breaks the prefix: both go on
        s.type(b"a", P, b"b", b"\x18", b"c", b"\r")
        s.type(b"\x18", b"y")
        assert s.wait() == 0, s.out
    finally:
        s.close()
    cid = inspect(engine, "dt-keys")["Id"]
    assert inspect(engine, cid)["State"]["Running"] is True
    assert poll(lambda: read_file_in(engine, cid, "/tmp/in") == b"a\x10b\x18c\n")
    engine.cli("rm", "-f", cid, check=True)


def test_detach_keys_from_the_cli_config(engine):
    """The CLI config's "detachKeys" (as in docker's config.json) replaces
    ctrl-p,ctrl-q; --detach-keys still wins over it."""
    cfg_dir = os.path.join(engine.base, "cli-config")
    os.makedirs(cfg_dir, exist_ok=True)
    path = os.path.join(cfg_dir, "config.json")
    old = open(path).read() if os.path.exists(path) else None
    cfg = json.loads(old) if old else {}
    with open(path, "w") as f:
        json.dump(dict(cfg, detachKeys="ctrl-x,y"), f)
    try:
        s = cli_pty(engine, "run", "-it", "--name", "dt-cfg", "busybox", "sh", "-c",
                    "echo ready; cat > /tmp/in")
        try:
            s.expect(b"ready")
            s.type(b"a", P, Q)  # ctrl-p ctrl-q are no keys now: they go on
            assert s.proc.poll() is None, s.out
            s.type(b"b", b"\r", b"\x18", b"y")
            assert s.wait() == 0, s.out
        finally:
            s.close()
        cid = inspect(engine, "dt-cfg")["Id"]
        assert inspect(engine, cid)["State"]["Running"] is True
        # (the container's tty may take ctrl-q as its own START character)
        first = (b"a\x10\x11b\n", b"a\x10b\n")
        assert poll(lambda: read_file_in(engine, cid, "/tmp/in") in first)
        first = read_file_in(engine, cid, "/tmp/in")
        # the option wins over the config
        s = cli_pty(engine, "attach", "--detach-keys", "ctrl-z", "dt-cfg")
        try:
            time.sleep(1)
            s.type(b"\x18", b"y", b"\r", b"\x1a")
            assert s.wait() == 1, s.out
            assert s.out.endswith(b"read escape sequence\r\n"), s.out
        finally:
            s.close()
        assert poll(lambda: read_file_in(engine, cid, "/tmp/in") == first + b"\x18y\n")
        engine.cli("rm", "-f", cid, check=True)
    finally:
        if old is None:
            os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(old)


def test_default_keys_broken_prefix_is_forwarded(engine):
    s = cli_pty(engine, "run", "-it", "--name", "dt-prefix", "busybox", "sh", "-c",
                "echo ready; cat > /tmp/in")
    try:
        s.expect(b"ready")
        s.type(b"x", P, b"a", b"\r")  # ctrl-p then 'a': not a detach, both are typed
        s.type(P, Q)
        assert s.wait() == 0, s.out
    finally:
        s.close()
    cid = inspect(engine, "dt-prefix")["Id"]
    assert inspect(engine, cid)["State"]["Running"] is True
    assert poll(lambda: read_file_in(engine, cid, "/tmp/in") == b"x\x10a\n")
    engine.cli("rm", "-f", cid, check=True)


def test_start_ai_detach(engine):
    cid = engine.cli("create", "-it", "--name", "dt-start", "busybox", "sh", "-c",
                     "echo ready; cat", check=True).stdout.decode().strip()
    t0 = time.time() - 1
    s = cli_pty(engine, "start", "-ai", "--detach-keys", "ctrl-e,e", "dt-start")
    try:
        s.expect(b"ready")
        s.type(b"\x05", b"e")
        # docker start -a: as docker run, no error
        assert s.wait() == 0, s.out
        assert b"read escape sequence" not in s.out
    finally:
        s.close()
    assert inspect(engine, cid)["State"]["Running"] is True
    assert poll(lambda: "detach" in actions(engine, t0, cid))
    engine.cli("rm", "-f", cid, check=True)


def test_exec_it_detach_leaves_the_exec_running(engine):
    cid = engine.cli("run", "-d", "--name", "dt-exec", "busybox", "sleep", "600",
                     check=True).stdout.decode().strip()
    t0 = time.time() - 1
    s = cli_pty(engine, "exec", "-it", "dt-exec", "sh", "-c", "echo $$ > /tmp/pid; echo ready; exec cat")
    try:
        s.expect(b"ready")
        s.type(b"hi\r")
        s.expect(b"hi\r\nhi")
        s.type(P, Q)
        code = s.wait()
        # docker exec returns the escape error: printed, exit 1
        assert code == 1, s.out
        assert s.out.endswith(b"read escape sequence\r\n"), s.out
    finally:
        s.close()
    evs = poll(lambda: [e for e in events(engine, t0, cid) if e["Action"] == "exec_detach"])
    assert evs, events(engine, t0, cid)
    eid = evs[0]["Actor"]["Attributes"]["execID"]
    status, info = engine.request("GET", f"/exec/{eid}/json")
    assert status == 200 and info["Running"] is True, info
    res = engine.cli("exec", cid, "sh", "-c", "kill -0 $(cat /tmp/pid) && echo alive", check=True)
    assert res.stdout == b"alive\n"
    engine.cli("rm", "-f", cid, check=True)


def test_bad_detach_keys_are_refused(engine):
    cid = engine.cli("run", "-d", "-i", "--name", "dt-bad", "busybox", "sleep", "600",
                     check=True).stdout.decode().strip()
    try:
        # the API: checked before anything else, dockerd's 400 and wording
        for ref in (cid, "nosuchcontainer"):
            status, body = engine.request(
                "POST", f"/containers/{ref}/attach?stream=1&stdin=1&detachKeys=ctrl-x,xyz")
            assert (status, body) == (400, {"message": "Invalid detach keys (ctrl-x,xyz) provided"})
        status, body = engine.request("POST", f"/containers/{cid}/exec",
                                      {"Cmd": ["true"], "DetachKeys": "ctrl-P"})
        # dockerd: a plain error for exec create, and "escape" keys
        assert (status, body) == (500, {"message": "Invalid escape keys (ctrl-P) provided"})
        status, body = engine.request("POST", f"/containers/{cid}/exec",
                                      {"Cmd": ["true"], "DetachKeys": "ctrl-x,y"})
        assert status == 201, body

        # the CLI: the docker client's hijack error, exit 1
        res = engine.cli("attach", "--detach-keys", "xyz", cid)
        assert (res.returncode, res.stdout, res.stderr) == (
            1, b"", b"unable to upgrade to tcp, received 400\n")
        res = engine.cli("exec", "--detach-keys", "xyz", cid, "true")
        assert (res.returncode, res.stderr) == (
            1, b"Error response from daemon: Invalid escape keys (xyz) provided\n")
        res = engine.cli("run", "-i", "--detach-keys", "xyz", "busybox", "true", input=b"")
        assert (res.returncode, res.stderr) == (1, b"unable to upgrade to tcp, received 400\n")
    finally:
        engine.cli("rm", "-f", cid)
        for c in engine.cli("ps", "-aq", "--filter", "status=created").stdout.decode().split():
            engine.cli("rm", "-f", c)
