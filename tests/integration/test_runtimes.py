"""Pluggable OCI runtimes, end to end: `trioctr run --runtime runc|crun|trioctr`
(CLI -> daemon -> supervisor -> shim -> runtime) on the real kernel.

The daemon registers runc and crun when they are on PATH (actors/daemon.py
Config); trioctr's own runtime is the default.  Each runtime must give the
same container: the output and exit code, its own hostname, pid 1, only
``lo``, the memory limit, and nothing left behind (runtime state, cgroups).

crun on a hybrid cgroup host: crun (1.8) refuses any container while the
cgroup2 hierarchy at /sys/fs/cgroup/unified has a controller ("cgroups in
hybrid mode not supported, drop all controllers from cgroupv2").  A host
whose v1 hierarchies leave a controller to cgroup2 (hugetlb, often) is such
a host.  For the crun tests the ``crun_usable`` fixture binds those
controllers to a v1 hierarchy mounted in a private mount namespace of a
helper process: the binding is the kernel's (global), the mount nobody
else's, and when the helper exits the mount goes, the empty hierarchy is
destroyed and the controllers return to cgroup2 by themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.helpers.engine import Engine

pytestmark = pytest.mark.root

UNIFIED = "/sys/fs/cgroup/unified"
RUNTIMES = ["trioctr", "runc", "crun"]
PROBE = ("echo out; echo err >&2; echo pid=$$; hostname; echo net: $(ls /sys/class/net); "
         "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
         "cat /sys/fs/cgroup/memory.max; exit 3")


def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")


def hybrid_controllers() -> list[str]:
    """The controllers cgroup2 holds on a hybrid host ([] when not hybrid)."""
    try:
        with open(os.path.join(UNIFIED, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


@pytest.fixture(scope="module")
def engine(busybox_tar):
    e = Engine()
    try:
        e.start()
        res = e.cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        assert res.returncode == 0, err(res)
        yield e
    finally:
        e.cleanup()
        # Engine.cleanup removes the cgroups once; a --rm container still
        # being removed at that moment can hold one a little longer
        left = e._remove_cgroups()
        assert not left, f"cgroups left behind: {left}"


@pytest.fixture(scope="module")
def crun_usable():
    """Make crun usable on this host for the module's crun tests (see above)."""
    if not shutil.which("crun"):
        pytest.skip("crun is not installed")
    controllers = hybrid_controllers()
    if not controllers:
        yield
        return
    mnt = f"/tmp/trioctr-test-crun-{os.getpid()}"
    os.makedirs(mnt, exist_ok=True)
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t cgroup -o {','.join(controllers)} trioctr-test-crun {mnt} "
         "&& echo bound && exec cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if holder.stdout.readline().strip() != b"bound" or hybrid_controllers():
            pytest.skip(f"crun refuses this hybrid host (cgroup2 holds {controllers}) and "
                        f"they cannot be moved to v1 now: {holder.stderr.read1().decode()}")
        yield
    finally:
        holder.stdin.close()  # cat exits, the namespace and its mount go
        holder.wait(timeout=10)
        os.rmdir(mnt)
        deadline = time.monotonic() + 10
        while sorted(hybrid_controllers()) != sorted(controllers) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(hybrid_controllers()) == sorted(controllers), \
            "the controllers did not return to cgroup2"


def need(request, runtime: str) -> None:
    if runtime == "crun":
        request.getfixturevalue("crun_usable")
    elif runtime == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")


def settled(engine: Engine, timeout: float = 20) -> None:
    """Every container gone (--rm removes in the background), and with it
    every runtime state dir and container cgroup."""
    deadline = time.monotonic() + timeout
    while True:
        _, listed = engine.request("GET", "/containers/json?all=1")
        # (@seccomp: our runtime's compiled seccomp programs, kept across containers)
        runtime_dirs = [d for d in os.listdir(os.path.join(engine.exec_root, "runtime"))
                        if d != "@seccomp"]
        cgroups = [d for d in os.listdir(f"/sys/fs/cgroup/memory/{engine.cgroup_parent}")
                   if os.path.isdir(f"/sys/fs/cgroup/memory/{engine.cgroup_parent}/{d}")] \
            if os.path.isdir(f"/sys/fs/cgroup/memory/{engine.cgroup_parent}") else []
        if not listed and not runtime_dirs and not cgroups:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: containers {[c['Id'][:12] for c in listed]}, "
                                 f"runtime state {runtime_dirs}, cgroups {cgroups}")
        time.sleep(0.05)


def test_info_lists_the_runtimes(engine):
    status, info = engine.request("GET", "/info")
    assert status == 200
    runtimes = info["Runtimes"]
    assert info["DefaultRuntime"] == "trioctr"
    assert "trioctr" in runtimes
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            assert runtimes[name] == {"path": path}
        else:
            assert name not in runtimes
    res = engine.cli("info")
    assert res.returncode == 0, err(res)
    line = [x for x in out(res).splitlines() if x.strip().startswith("Runtimes:")]
    assert line and line[0].split()[1:] == sorted(runtimes)
    assert " Default Runtime: trioctr" in out(res)


def test_an_unknown_runtime_is_refused(engine):
    res = engine.cli("run", "--rm", "--runtime", "nope", "busybox", "true")
    assert res.returncode == 125
    assert "unknown or invalid runtime name: nope" in err(res)
    settled(engine)


@pytest.mark.skipif(not shutil.which("crun") or not hybrid_controllers(),
                    reason="crun is not installed, or this host is not a hybrid one whose "
                           "cgroup2 holds controllers")
def test_crun_refusing_this_host_reaches_the_user(engine):
    # before crun_usable moves the controllers: crun's own error, intact
    res = engine.cli("run", "--rm", "--runtime", "crun", "busybox", "true")
    assert res.returncode == 125
    assert "cgroups in hybrid mode not supported" in err(res)
    settled(engine)


@pytest.mark.parametrize("runtime", ["default", *RUNTIMES])
def test_run_with_each_runtime(engine, request, runtime):
    need(request, runtime)
    flags = [] if runtime == "default" else ["--runtime", runtime]
    res = engine.cli("run", "--rm", *flags, "--memory", "64m", "--hostname", "boxy",
                     "busybox", "sh", "-c", PROBE)
    assert res.returncode == 3, err(res)
    assert err(res) == "err\n"
    assert out(res).splitlines() == ["out", "pid=1", "boxy", "net: lo", str(64 << 20)]
    settled(engine)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_lifecycle_with_each_runtime(engine, request, runtime):
    need(request, runtime)
    name = f"bg-{runtime}"
    res = engine.cli("run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh", "-c",
                     "echo up; trap 'echo bye; exit 7' TERM; while :; do sleep 0.1; done")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    try:
        deadline = time.monotonic() + 10
        while "up" not in out(engine.cli("logs", name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        info = json.loads(out(engine.cli("inspect", name)))[0]
        assert info["HostConfig"]["Runtime"] == runtime
        assert info["State"]["Running"] is True
        pid = info["State"]["Pid"]
        with open(f"/proc/{pid}/status") as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert nspid == [str(pid), "1"]
        assert os.path.isdir(os.path.join(engine.exec_root, "runtime", cid))  # its state
        res = engine.cli("stop", "-t", "5", name)
        assert res.returncode == 0, err(res)
        info = json.loads(out(engine.cli("inspect", name)))[0]
        assert info["State"]["ExitCode"] == 7
        assert out(engine.cli("logs", name)) == "up\nbye\n"
    finally:
        engine.cli("rm", "-f", name)
    settled(engine)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_unrunnable_command_with_each_runtime(engine, request, runtime):
    need(request, runtime)
    res = engine.cli("run", "--rm", "--runtime", runtime, "busybox", "nosuch")
    # Docker's CLI maps the runtime's words to an exit code: runc's and ours
    # say "executable file not found" (127); crun's words are its own
    assert res.returncode == (125 if runtime == "crun" else 127), err(res)
    assert "nosuch" in err(res)
    settled(engine)
