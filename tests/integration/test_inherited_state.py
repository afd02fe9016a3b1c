"""What a container's processes inherit from the engine: nothing.

The shim forks our runtime instead of starting a new interpreter; whatever the
shim holds (its sockets, the log, trio's wakeup fd, its signal handlers) must
not reach the container's init or an exec'd process (the CVE-2024-21626 class
of leaks), and no signal may be left ignored or blocked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

FDS = ("ls", "/proc/self/fd")
SIGNALS = ("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")


def _check(fds: bytes, sigs: bytes) -> None:
    # 0-2 and the fd of the directory `ls` itself reads
    assert fds.replace(b"\r\n", b"\n").split() == [b"0", b"1", b"2", b"3"], fds
    # (the probes run as the container's process itself: a shell as PID 1
    # ignores SIGQUIT on its own, under runc as well)
    assert sigs.replace(b"\r\n", b"\n").decode().splitlines() == [
        "SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"], sigs


@pytest.mark.parametrize("tty", [False, True])
def test_init_inherits_no_fd_and_no_signal_state(engine, tty):
    t = ["-t"] if tty else []
    fds = engine.cli("run", "--rm", *t, "busybox", *FDS)
    sigs = engine.cli("run", "--rm", *t, "busybox", *SIGNALS)
    assert fds.returncode == 0 and sigs.returncode == 0, (fds.stderr, sigs.stderr)
    _check(fds.stdout, sigs.stdout)


def test_exec_inherits_no_fd_and_no_signal_state(engine):
    cid = engine.cli("run", "-d", "busybox", "sleep", "60", check=True).stdout.decode().strip()
    try:
        fds = engine.cli("exec", cid, *FDS)
        sigs = engine.cli("exec", cid, *SIGNALS)
        assert fds.returncode == 0 and sigs.returncode == 0, (fds.stderr, sigs.stderr)
        _check(fds.stdout, sigs.stdout)
    finally:
        engine.cli("rm", "-f", cid)
