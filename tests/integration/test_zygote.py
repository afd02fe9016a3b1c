"""The supervisor keeps one spare shim in hand, forked ahead by its shim zygote
(detached, linked to the supervisor and greeted, waiting for its directory): it
is used for the next container, replaced, holds nothing of a container
meanwhile, and never outlives the supervisor it was linked to."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from tests.helpers.wait import poll

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def zygote_pid(engine) -> int:
    sup = engine.supervisor_pid()
    for p in os.listdir("/proc"):
        if p.isdigit() and _ppid(int(p)) == sup and "actors.shim zygote" in _cmdline(int(p)):
            return int(p)
    return 0


def spare_pids(engine) -> list[int]:
    """The engine's spares: shims of its zygote's making that have no task
    yet (their working directory is the engine's shims directory; a shim's
    is its own directory)."""
    home = os.path.join(engine.exec_root, "shims")
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or "actors.shim zygote" not in _cmdline(int(p)):
            continue
        try:
            if os.readlink(f"/proc/{p}/cwd") == home and _alive(int(p)):
                out.append(int(p))
        except OSError:
            pass
    return out



def shim_pid(engine, cid: str) -> int:
    with open(os.path.join(engine.exec_root, "shims", cid, "shim.pid")) as f:
        return int(f.read())


def run_d(engine, *args: str) -> str:
    res = engine.cli("run", "-d", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode().strip()


def test_a_spare_waits_detached_and_is_used(fresh_engine):
    e = fresh_engine
    z = poll(lambda: zygote_pid(e))
    assert z
    (spare,) = poll(lambda: spare_pids(e))
    # detached (not the zygote's child), no mount namespace of its own, its
    # stdio let go of, nothing of the engine open
    assert _ppid(spare) != z
    assert os.readlink(f"/proc/{spare}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    for fd in ("0", "1", "2"):
        assert os.readlink(f"/proc/{spare}/fd/{fd}") == "/dev/null"
    for fd in os.listdir(f"/proc/{spare}/fd"):
        try:
            assert e.base not in os.readlink(f"/proc/{spare}/fd/{fd}")
        except FileNotFoundError:
            pass
    cid = run_d(e, "busybox", "sleep", "30")
    assert shim_pid(e, cid) == spare  # the spare became the container's shim
    (spare2,) = poll(lambda: spare_pids(e))
    assert spare2 != spare
    # the shim's mount namespace is its own, the spare's is the host's
    assert os.readlink(f"/proc/{spare}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{spare2}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert e.cli("rm", "-f", cid).returncode == 0


def test_many_containers_in_a_row_and_at_once(fresh_engine):
    e = fresh_engine
    for _ in range(6):
        res = e.cli("run", "--rm", "busybox", "true")
        assert res.returncode == 0, res.stderr
    ids: list[str] = []
    errors: list[str] = []

    def one() -> None:
        res = e.cli("run", "-d", "busybox", "sleep", "30")
        if res.returncode == 0:
            ids.append(res.stdout.decode().strip())
        else:
            errors.append(res.stderr.decode())

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    pids = {shim_pid(e, cid) for cid in ids}
    assert len(pids) == 8 and all(_alive(p) for p in pids)
    assert len(poll(lambda: spare_pids(e))) == 1
    assert e.cli("rm", "-f", *ids).returncode == 0


def test_a_spare_ends_with_its_supervisor_not_its_zygote(fresh_engine):
    e = fresh_engine
    cid = run_d(e, "busybox", "sleep", "60")
    shim = shim_pid(e, cid)
    z = poll(lambda: zygote_pid(e))
    (spare,) = poll(lambda: spare_pids(e))
    # the zygote dies: the spare in the supervisor's hand is still good
    os.kill(z, signal.SIGKILL)
    assert poll(lambda: not _alive(z), 5)
    time.sleep(0.3)
    assert _alive(spare) and _alive(shim)
    cid2 = run_d(e, "busybox", "sleep", "60")
    assert shim_pid(e, cid2) == spare
    # and the supervisor makes a new zygote for the next spare
    z2 = poll(lambda: zygote_pid(e))
    assert z2 and z2 != z
    (spare2,) = poll(lambda: spare_pids(e))
    # the supervisor dies: the zygote (EOF on its socket) and the spare
    # (EOF on its link) end, the shims live on and are adopted by the next one
    sup = e.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    assert poll(lambda: not _alive(z2) and not _alive(spare2), 5)
    assert _alive(shim) and _alive(shim_pid(e, cid2))
    new_sup = poll(lambda: e.supervisor_pid() not in (0, sup) and e.supervisor_pid(), 15)
    assert new_sup
    res = poll(lambda: (r := e.cli("run", "--rm", "busybox", "true")).returncode == 0 and r, 15)
    assert res
    for c in (cid, cid2):
        ps = e.cli("inspect", "-f", "{{.State.Running}}", c)
        assert ps.stdout.decode().strip() == "true", ps
    assert e.cli("rm", "-f", cid, cid2).returncode == 0


def test_a_spare_that_died_is_replaced_on_the_spot(fresh_engine):
    """A spare killed while in the supervisor's hand: the next create finds
    its link closed and spawns a shim instead; nothing fails."""
    e = fresh_engine
    (spare,) = poll(lambda: spare_pids(e))
    os.kill(spare, signal.SIGKILL)
    assert poll(lambda: not _alive(spare), 5)
    res = e.cli("run", "--rm", "busybox", "echo", "still")
    assert res.returncode == 0 and res.stdout == b"still\n", res.stderr
    assert poll(lambda: spare_pids(e))
