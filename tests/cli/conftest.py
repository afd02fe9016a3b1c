import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.cli.fakedaemon import FakeDaemon  # noqa: E402


def cli_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRIOCTR_HOST", "DOCKER_HOST")}
    env["PYTHONPATH"] = ROOT
    env.update(extra or {})
    return env


def run_cli(*args, host=None, input=None, env=None, timeout=30):
    argv = [sys.executable, "-m", "cli"]
    if host:
        argv += ["-H", host]
    return subprocess.run(argv + list(args), cwd=ROOT, capture_output=True, input=input,
                          timeout=timeout, env=cli_env(env))


@pytest.fixture
def fake():
    d = FakeDaemon()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def cli(fake):
    """cli(*args) runs `python -m cli -H <fake> args` -> CompletedProcess."""
    def run(*args, **kw):
        return run_cli(*args, host=fake.host, **kw)
    return run
