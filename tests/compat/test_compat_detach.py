"""Detach keys with the real docker CLI (28) under a pty and the Docker SDK for
Python over the hijacked socket, on trioctrd."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.compat.compat_util import err, out, poll
from tests.helpers.engine import env
from tests.integration.test_detach import P, Q, Pty

pytestmark = pytest.mark.root


def docker_pty(engine, *args: str) -> Pty:
    e = env()
    e["DOCKER_HOST"] = f"unix://{engine.sock}"
    e.pop("DOCKER_CONTEXT", None)
    e["DOCKER_CONFIG"] = os.path.join(engine.base, "docker-config")
    return Pty(["docker", *args], e)


def running(engine, ref: str) -> bool:
    return out(engine.docker("inspect", "-f", "{{.State.Running}}", ref)) == "true\n"


def read_all(sock: socket.socket, timeout: float = 20) -> bytes:
    """Everything until the daemon closes the connection (a timeout fails)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


# -- docker CLI --------------------------------------------------------------------
def test_docker_run_it_detach_and_attach_again(engine):
    s = docker_pty(engine, "run", "-it", "--name", "cd-run", "busybox", "sh", "-c",
                   "echo ready; while read l; do echo \"got:$l\"; done")
    try:
        s.expect(b"ready")
        s.type(b"one\r")
        s.expect(b"got:one")
        s.type(P, Q)
        # docker run: the detach is no error
        assert s.wait() == 0, s.out
        assert b"read escape sequence" not in s.out
    finally:
        s.close()
    assert running(engine, "cd-run")

    s = docker_pty(engine, "attach", "cd-run")
    try:
        time.sleep(1)
        s.type(b"two\r")
        s.expect(b"got:two")
        s.type(P, Q)
        # docker attach: the escape error, printed, exit 1
        assert s.wait() == 1, s.out
        assert s.out.endswith(b"read escape sequence\r\n"), s.out
    finally:
        s.close()
    assert running(engine, "cd-run")

    # the trioctr CLI attaches after the docker CLI detached: stdin still open
    from tests.integration.test_detach import cli_pty
    s = cli_pty(engine, "attach", "--detach-keys", "ctrl-x,y", "cd-run")
    try:
        time.sleep(1)
        s.type(b"three\r")
        s.expect(b"got:three")
        s.type(b"\x18", b"y")
        assert s.wait() == 1, s.out
    finally:
        s.close()
    assert running(engine, "cd-run")
    engine.docker("rm", "-f", "cd-run")


def test_docker_attach_custom_keys_and_start_ai(engine):
    res = engine.docker("create", "-it", "--name", "cd-start", "busybox", "sh", "-c",
                        "echo ready; cat > /tmp/in")
    assert res.returncode == 0, err(res)
    s = docker_pty(engine, "start", "-ai", "--detach-keys", "ctrl-e,e", "cd-start")
    try:
        s.expect(b"ready")
        s.type(b"a", P, Q, b"\x05", b"b", b"\r")  # not our keys, a broken prefix: all typed
        s.type(b"\x05", b"e")
        assert s.wait() == 0, s.out
    finally:
        s.close()
    assert running(engine, "cd-start")
    # ctrl-q is the container's terminal's XON: its line discipline eats it
    assert poll(lambda: out(engine.docker("exec", "cd-start", "cat", "/tmp/in")) == "a\x10\x05b\n")
    engine.docker("rm", "-f", "cd-start")


def test_docker_exec_it_detach_leaves_the_exec_running(engine):
    res = engine.docker("run", "-d", "--name", "cd-exec", "busybox", "sleep", "600")
    assert res.returncode == 0, err(res)
    s = docker_pty(engine, "exec", "-it", "cd-exec", "sh", "-c", "echo $$ > /tmp/pid; echo ready; exec cat")
    try:
        s.expect(b"ready")
        s.type(P, Q)
        assert s.wait() == 1, s.out
        assert s.out.endswith(b"read escape sequence\r\n"), s.out
    finally:
        s.close()
    res = engine.docker("exec", "cd-exec", "sh", "-c", "kill -0 $(cat /tmp/pid) && echo alive")
    assert out(res) == "alive\n", err(res)
    engine.docker("rm", "-f", "cd-exec")


def test_docker_cli_bad_detach_keys(engine):
    res = engine.docker("run", "-d", "-i", "--name", "cd-bad", "busybox", "sleep", "600")
    assert res.returncode == 0, err(res)
    try:
        res = engine.docker("attach", "--no-stdin", "--detach-keys", "xyz", "cd-bad")
        assert (res.returncode, err(res)) == (1, "unable to upgrade to tcp, received 400\n")
        res = engine.docker("exec", "--detach-keys", "xyz", "cd-bad", "true")
        assert (res.returncode, err(res)) == (1, "Error response from daemon: Invalid escape keys (xyz) provided\n")
    finally:
        engine.docker("rm", "-f", "cd-bad")


# -- SDK / raw hijacked socket -----------------------------------------------------------
def test_sdk_attach_socket_with_detach_keys(engine, client):
    c = client.containers.run("busybox", ["sh", "-c", "cat > /tmp/in"], detach=True,
                              tty=True, stdin_open=True, name="cd-sdk")
    try:
        since = int(time.time()) - 1
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1,
                                                      "detachKeys": "ctrl-x,y"})
        raw = sock._sock
        raw.sendall(b"hello ")
        time.sleep(0.2)
        raw.sendall(b"\x18")  # a prefix, held by the daemon...
        time.sleep(0.2)
        raw.sendall(b"z\n")   # ...and broken: passed on
        time.sleep(0.2)
        raw.sendall(b"\x18y" + b"dropped\n")  # the keys: the daemon ends the attach
        read_all(raw)  # the daemon closed the connection
        sock.close()
        c.reload()
        assert c.status == "running"
        assert poll(lambda: c.exec_run(["cat", "/tmp/in"]).output == b"hello \x18z\n")
        evs = client.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"container": c.id, "event": "detach"})
        assert [e["Action"] for e in evs] == ["detach"]
    finally:
        c.remove(force=True)


def test_sdk_exec_socket_with_detach_keys(engine, client):
    c = client.containers.run("busybox", ["sleep", "600"], detach=True, name="cd-sdk-exec")
    try:
        since = int(time.time()) - 1
        e = client.api.exec_create(c.id, ["cat"], stdin=True, tty=True, detach_keys="ctrl-e,e")
        sock = client.api.exec_start(e["Id"], socket=True, tty=True)
        raw = sock._sock
        raw.sendall(b"x\n")
        time.sleep(0.2)
        raw.sendall(b"\x05e")
        read_all(raw)
        sock.close()
        info = client.api.exec_inspect(e["Id"])
        # dockerd's ExecInspect.DetachKeys is the parsed []byte: base64 of ctrl-e, e
        assert info["Running"] is True and info["DetachKeys"] == "BWU="
        evs = client.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"container": c.id, "event": "exec_detach"})
        assert [(ev["Action"], ev["Actor"]["Attributes"]["execID"]) for ev in evs] == [
            ("exec_detach", e["Id"])]
    finally:
        c.remove(force=True)


def test_sdk_bad_detach_keys(engine, client):
    docker = pytest.importorskip("docker")
    c = client.containers.run("busybox", ["sleep", "600"], detach=True, tty=True, stdin_open=True,
                              name="cd-sdk-bad")
    try:
        with pytest.raises(docker.errors.APIError) as exc:
            client.api.exec_create(c.id, ["true"], detach_keys="ctrl-")
        assert exc.value.status_code == 500
        assert exc.value.explanation == "Invalid escape keys (ctrl-) provided"
        status, body = engine.request("POST", f"/containers/{c.id}/attach?stream=1&detachKeys=,")
        assert (status, body) == (400, {"message": "Invalid detach keys (,) provided"})
    finally:
        c.remove(force=True)
