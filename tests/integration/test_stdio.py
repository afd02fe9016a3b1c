"""-i (stdin) and -t (a TTY): the container's stdio through daemon ->
supervisor -> shim, with our CLI and the real docker CLI."""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers.engine import env
from tests.helpers.pty import run_in_pty

pytestmark = pytest.mark.root


def test_run_i_pipes_stdin_and_closes_it_at_eof(engine):
    res = engine.cli("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done",
                     input=b"line one\nline two\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"line one\nline two\ndone\n"


def test_docker_run_i(engine):
    res = engine.docker("run", "-i", "--rm", "busybox", "sh", "-c", "read x; echo got $x; exit 4",
                        input=b"abc\n")
    assert res.returncode == 4, res.stderr
    assert res.stdout == b"got abc\n"


@pytest.mark.parametrize("client", ["trioctr", "docker"])
def test_run_t_gives_the_container_a_terminal(engine, client):
    if client == "trioctr":
        argv = [sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}"]
        e = env()
    else:
        argv = ["docker"]
        e = env()
        e["DOCKER_HOST"] = f"unix://{engine.sock}"
        e["DOCKER_CONFIG"] = os.path.join(engine.base, "docker-config")
    code, out, _ = run_in_pty(argv + ["run", "-t", "--rm", "busybox", "sh", "-c",
                                   "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 5"], e)
    text = out.decode(errors="replace")
    assert code == 5, text
    assert "/dev/pts/0" in text or "/dev/console" in text, text
    assert "stdin-is-a-tty" in text
