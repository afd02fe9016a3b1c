"""Fixtures for the OCI runtime tests.

Integration tests drive ``python -m actors.runtime`` as a subprocess, with
``--root`` in tmp_path, a busybox rootfs built once per session, and every
container's cgroup under one session parent ``/trioctr-test-<random>``,
removed at the end in every controller.  Lifecycle tests use harness.py as
the child subreaper (the shim's role); ``run`` needs none.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.support import ENV, HARNESS, REPO

CGROUP_ROOT = "/sys/fs/cgroup"
# every cgroup these tests make lives under /trioctr-test-rt-<random>: a name
# of the suite-wide trioctr-test- family (tests/helpers/leaks.py watches it),
# with its own sub-prefix so that the check below is about the runtime tests
# even while other suites run their containers on the same host
TEST_PREFIX = "trioctr-test-rt-"


def cgroup_hierarchy_dirs() -> list[str]:
    """Every hierarchy root: each v1 controller dir, the unified dir, or the v2 root."""
    out = [CGROUP_ROOT]
    try:
        for name in sorted(os.listdir(CGROUP_ROOT)):
            path = os.path.join(CGROUP_ROOT, name)
            if os.path.isdir(path) and not os.path.islink(path) and \
                    os.path.exists(os.path.join(path, "cgroup.procs")):
                out.append(path)
    except OSError:
        pass
    return out


def leftover_test_cgroups() -> list[str]:
    found = []
    for d in cgroup_hierarchy_dirs():
        try:
            found += [os.path.join(d, n) for n in os.listdir(d) if n.startswith(TEST_PREFIX)]
        except OSError:
            continue
    return found


def _rmtree_cgroup(path: str) -> None:
    """rmdir a cgroup and its children, depth first (kill what is inside)."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        sub = os.path.join(path, name)
        if os.path.isdir(sub):
            _rmtree_cgroup(sub)
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            for pid in f.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    except OSError:
        pass
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture(scope="session", autouse=True)
def no_test_cgroups_left_behind():
    """Session check: no cgroup named trioctr-test-rt-* may survive the runtime tests."""
    yield
    left = leftover_test_cgroups()
    assert not left, f"test cgroups left behind: {left}"


@pytest.fixture(scope="module")
def cgroup_parent():
    # module scope: removed when its module ends, before the suite's final
    # leak check runs (session fixtures are torn down after every test)
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"{TEST_PREFIX}{secrets.token_hex(4)}"
    yield "/" + name
    for d in cgroup_hierarchy_dirs():
        _rmtree_cgroup(os.path.join(d, name))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    from tests.helpers.rootfs import make_busybox_rootfs

    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


def mountpoints() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


class Harness:
    """A child subreaper running a runtime command (`create`, `exec -d`); it
    then reaps the processes reparented to it (the container init)."""

    def __init__(self, rt: "Runtime", name: str, args: list[str], command: str = "create"):
        self.id = name
        base = rt.tmp / f"harness-{name}"
        self.events = Path(f"{base}.events")
        self.out = Path(f"{base}.out")
        self.err = Path(f"{base}.err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HARNESS), str(self.events), "--",
                 *rt.argv(command, *args)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO, env=rt.env)

    def _events(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.events.read_text().splitlines()]
        except FileNotFoundError:
            return []

    def create_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self._events():
                if ev["first"]:
                    return ev["code"]
            time.sleep(0.005)
        raise TimeoutError("create did not finish")

    def exit_code(self, pid: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self._events():
                if ev["pid"] == pid:
                    return ev["code"]
            time.sleep(0.005)
        raise TimeoutError(f"pid {pid} did not exit")

    def output(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def close(self) -> None:
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Runtime:
    """Drives actors.runtime for one test, and cleans up after it."""

    def __init__(self, tmp: Path, cgroup_parent: str, rootfs: str):
        self.tmp = tmp
        self.root = tmp / "state"
        self.log = tmp / "runtime.log"
        self.cgroup_parent = cgroup_parent
        self.rootfs = rootfs
        self.ids: list[str] = []
        self.harnesses: list[Harness] = []
        # the interpreter the runtime runs under (escape tests use a copy)
        self.python = sys.executable
        self.env = ENV

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "actors.runtime", "--root", str(self.root),
                "--log", str(self.log), "--log-format", "json", *args]

    def cmd(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        return subprocess.run(self.argv(*args), text=True, cwd=REPO, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)

    def spec(self, container_id: str, args: list[str], **changes) -> dict:
        from actors.runtime import default_spec

        cfg = copy.deepcopy(default_spec())
        cfg["root"] = {"path": self.rootfs, "readonly": False}
        cfg["process"]["args"] = args
        cfg["linux"]["cgroupsPath"] = f"{self.cgroup_parent}/{container_id}"
        for key, value in changes.items():
            cfg[key] = value
        return cfg

    def bundle(self, container_id: str, cfg: dict) -> Path:
        b = self.tmp / f"bundle-{container_id}"
        b.mkdir(exist_ok=True)
        (b / "config.json").write_text(json.dumps(cfg))
        return b

    def run(self, container_id: str, args: list[str], cfg: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        cfg = cfg or self.spec(container_id, args)
        b = self.bundle(container_id, cfg)
        self.ids.append(container_id)
        return self.cmd("run", "--bundle", str(b), container_id, timeout=timeout)

    def create(self, container_id: str, args: list[str], cfg: dict | None = None,
               extra: tuple[str, ...] = ()) -> Harness:
        cfg = cfg or self.spec(container_id, args)
        b = self.bundle(container_id, cfg)
        self.ids.append(container_id)
        h = Harness(self, container_id, ["--bundle", str(b), "--pid-file",
                                         str(self.tmp / f"{container_id}.pid"), *extra,
                                         container_id])
        self.harnesses.append(h)
        return h

    def started(self, container_id: str, args: list[str], cfg: dict | None = None) -> Harness:
        """create + start, under a harness."""
        h = self.create(container_id, args, cfg=cfg)
        assert h.create_code() == 0, h.stderr()
        res = self.cmd("start", container_id)
        assert res.returncode == 0, res.stderr
        return h

    def exec_detached(self, name: str, container_id: str, args: list[str],
                      flags: tuple[str, ...] = ()) -> Harness:
        """`exec --detach --pid-file` under a harness (it reaps the process)."""
        h = Harness(self, name, ["--detach", "--pid-file", str(self.tmp / f"{name}.pid"),
                                 *flags, container_id, *args], command="exec")
        self.harnesses.append(h)
        return h

    def pid(self, container_id: str) -> int:
        return int((self.tmp / f"{container_id}.pid").read_text())

    def state(self, container_id: str) -> dict:
        res = self.cmd("state", container_id)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def log_lines(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.log.read_text().splitlines()]
        except FileNotFoundError:
            return []

    def cleanup(self) -> None:
        for cid in self.ids:
            self.cmd("delete", "--force", cid)
        for h in self.harnesses:
            h.close()


@pytest.fixture
def rt(tmp_path, cgroup_parent, busybox_rootfs):
    # the container's mounts live in its own mount namespace: none may appear
    # in ours, under its rootfs or anywhere in the test's directory
    # (only those paths: other suites may mount things on this host meanwhile)
    def ours() -> list[str]:
        roots = (str(tmp_path) + "/", os.path.dirname(busybox_rootfs) + "/")
        return [m for m in mountpoints() if m.startswith(roots)]

    assert ours() == []
    runtime = Runtime(tmp_path, cgroup_parent, busybox_rootfs)
    try:
        yield runtime
    finally:
        runtime.cleanup()
    assert ours() == [], "the test left mounts in the host's mount namespace"
    left = os.listdir(runtime.root) if runtime.root.exists() else []
    # (@seccomp: the compiled seccomp programs, a cache kept across containers)
    left = [name for name in left if name != "@seccomp"]
    assert not left, f"containers left in the state dir: {left}"
