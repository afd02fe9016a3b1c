"""The shim makes its container's cgroup directories as it starts (ahead of the
runtime's create, see ShimService._warm_migrations), so they are its own until a
create takes them: a shim deleted before any create, or whose create fails
before the runtime got to the cgroup, removes them."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from contextlib import asynccontextmanager

import pytest
import trio

from messages import shim as sh
from messages.link import open_unix_link
from messages.errors import RemoteError
from tests.helpers.engine import ROOT, env

pytestmark = pytest.mark.root

CGROUP = "/sys/fs/cgroup/memory"


def _start_shim(base: str, parent: str, config: dict) -> tuple[str, str]:
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    d = os.path.join(base, "shims", cid)
    os.makedirs(os.path.join(d, "bundle", "rootfs"))
    config.setdefault("linux", {})["cgroupsPath"] = f"/{parent}/{cid}"
    with open(os.path.join(d, "bundle", "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(d, "shim.json"), "w") as f:
        json.dump({"id": cid, "runtime_root": os.path.join(base, "runtime"), "rootfs": []}, f)
    res = subprocess.run([sys.executable, "-m", "actors.shim", "start", d], cwd=ROOT, env=env(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return cid, d


class _Supervisor:
    """The supervisor's side of a shim link, as far as these tests need it."""

    async def handle_event(self, link, msg) -> None:
        pass

    async def handle_request(self, link, msg):
        raise RemoteError(0, "no requests here")


@asynccontextmanager
async def _shim_link(shim_dir: str):
    """A link to the shim, served meanwhile (replies are read by serve())."""
    link = await open_unix_link(os.path.join(shim_dir, "shim.sock"), role="supervisor")
    async with trio.open_nursery() as n:
        n.start_soon(link.serve, _Supervisor())
        try:
            yield link
        finally:
            n.cancel_scope.cancel()
    await link.aclose()


async def _wait_for(predicate, timeout: float = 5.0) -> bool:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return True
    return False


def _cleanup(base: str) -> None:
    """A shim a failed test left: killed, then its directory removed."""
    for pid_file in glob.glob(os.path.join(base, "shims", "*", "shim.pid")):
        try:
            with open(pid_file) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    subprocess.run(["rm", "-rf", base])


@pytest.fixture
def parent():
    name = f"trioctr-test-{uuid.uuid4().hex[:8]}"
    yield name
    for hier in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", hier, name)
        if os.path.isdir(p):
            for sub in os.listdir(p):
                if os.path.isdir(os.path.join(p, sub)):
                    os.rmdir(os.path.join(p, sub))
            os.rmdir(p)


@pytest.mark.skipif(not os.path.isdir(CGROUP), reason="no cgroup v1 memory hierarchy")
def test_a_shim_deleted_before_create_removes_the_cgroup_it_made(parent):
    base = tempfile.mkdtemp(prefix="trioctr-test-shim-")

    async def main():
        cid, d = _start_shim(base, parent, {"ociVersion": "1.0.2"})
        mine = os.path.join(CGROUP, parent, cid)
        assert await _wait_for(lambda: os.path.isdir(mine)), "the shim made no cgroup ahead"
        async with _shim_link(d) as link:
            await link.request(sh.ShimDelete(), timeout=10)
        assert not os.path.exists(mine)

    try:
        trio.run(main)
    finally:
        _cleanup(base)


@pytest.mark.skipif(not os.path.isdir(CGROUP), reason="no cgroup v1 memory hierarchy")
def test_a_create_refused_before_the_cgroup_step_removes_it_too(parent):
    """The runtime refuses this config when it loads it (no process): it never
    reached the cgroup, so the directories made ahead are the shim's to remove."""
    base = tempfile.mkdtemp(prefix="trioctr-test-shim-")

    async def main():
        cid, d = _start_shim(base, parent, {"ociVersion": "1.0.2", "process": "not an object"})
        mine = os.path.join(CGROUP, parent, cid)
        assert await _wait_for(lambda: os.path.isdir(mine)), "the shim made no cgroup ahead"
        async with _shim_link(d) as link:
            with pytest.raises(RemoteError) as refused:
                await link.request(sh.ShimCreate(), timeout=30)
            assert "config.json" in refused.value.message
            assert not os.path.exists(mine)
            await link.request(sh.ShimDelete(), timeout=10)

    try:
        trio.run(main)
    finally:
        _cleanup(base)


@pytest.mark.skipif(not os.path.isdir(CGROUP), reason="no cgroup v1 memory hierarchy")
def test_a_shim_lost_before_its_create_leaves_no_cgroup(parent):
    """The supervisor cleans up after a shim that died after it made its cgroup
    directories but before the runtime took them (the runtime's delete has no
    state to go by then); a cgroup with a process in it is left alone."""
    from actors.supervisor import ShimHandle, Supervisor
    from linux import cgroups

    base = tempfile.mkdtemp(prefix="trioctr-test-shim-")
    sleeper = None
    try:
        sup = Supervisor(base, {})
        handles = []
        for _ in range(2):
            cid = uuid.uuid4().hex + uuid.uuid4().hex
            d = os.path.join(base, "shims", cid)
            os.makedirs(os.path.join(d, "bundle"))
            with open(os.path.join(d, "bundle", "config.json"), "w") as f:
                json.dump({"linux": {"cgroupsPath": f"/{parent}/{cid}"}}, f)
            cgroups.open_cgroup(f"/{parent}/{cid}").create()  # what the shim made ahead
            handles.append(ShimHandle(cid, d))
        empty, busy = handles
        sleeper = subprocess.Popen(["sleep", "60"])
        cgroups.open_cgroup(f"/{parent}/{busy.container_id}").add_pid(sleeper.pid)

        events = sup._shim_lost(empty, "lost in a test")
        assert [type(e).__name__ for e in events] == ["ShimLost", "TaskExit"]
        assert events[1].exit_status == 255 and events[1].pid == 0
        assert not os.path.exists(os.path.join(CGROUP, parent, empty.container_id))
        assert not os.path.exists(empty.dir)

        sup._shim_lost(busy, "lost in a test")  # no error: rmdir refuses, it is left
        assert os.path.isdir(os.path.join(CGROUP, parent, busy.container_id))
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        _cleanup(base)
