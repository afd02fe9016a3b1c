"""`run --rm` with a lot of output: the client gets every line although the
container (and its log) is removed as soon as it exits."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


@pytest.mark.parametrize("client", ["trioctr", "docker"])
def test_run_rm_delivers_all_output(engine, client):
    run = engine.docker if client == "docker" else engine.cli
    want = "".join(f"{i}\n" for i in range(1, 20001)).encode()
    for _ in range(4):
        res = run("run", "--rm", "busybox", "seq", "1", "20000")
        assert res.returncode == 0, res.stderr
        assert res.stdout == want, (len(res.stdout), res.stdout[-40:])
