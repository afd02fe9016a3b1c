"""Start a real, isolated trioctrd for a test and clean up everything after it.

Each daemon gets its own data root, exec root, socket, and cgroup parent
(``trioctr-test-<random>``): tests never touch /var/lib/trioctr or /run/trioctr.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


class Engine:
    """One daemon under test."""

    def __init__(self, base: str | None = None, extra_args: tuple[str, ...] = ()):
        tag = uuid.uuid4().hex[:8]
        self.base = base or tempfile.mkdtemp(prefix=f"trioctr-test-{tag}-")
        self.root = os.path.join(self.base, "root")
        self.exec_root = os.path.join(self.base, "run")
        self.sock = os.path.join(self.exec_root, "trioctr.sock")
        self.cgroup_parent = f"trioctr-test-{tag}"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.base, "daemon.log")

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = 30) -> "Engine":
        os.makedirs(self.base, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "actors.daemon", "--root", self.root, "--exec-root",
                 self.exec_root, "-H", f"unix://{self.sock}", "--cgroup-parent", self.cgroup_parent,
                 *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env(), cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trioctrd exited with {self.proc.returncode}:\n{self.daemon_log()}")
            try:
                status, _ = self.request("GET", "/_ping", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"trioctrd did not answer in {timeout}s:\n{self.daemon_log()}")

    def daemon_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-8000:]
        except OSError:
            return ""

    def kill_daemon(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill_daemon(signal.SIGTERM)

    def supervisor_pid(self) -> int:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if b"actors.supervisor" in cmd and self.exec_root.encode() in cmd:
                return int(pid)
        return 0

    # -- API and CLI ---------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 60,
                headers: dict | None = None):
        conn = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw.strip() else None
            except ValueError:
                return resp.status, raw
        finally:
            conn.close()

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 120,
            check: bool = False, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        e = env()
        # the CLI's credentials of this engine's tests, never the user's
        e.setdefault("TRIOCTR_CONFIG", os.path.join(self.base, "cli-config"))
        e.update(extra_env or {})
        res = subprocess.run([sys.executable, "-m", "cli", "-H", f"unix://{self.sock}", *args],
                             input=input, capture_output=True, timeout=timeout, env=e, cwd=ROOT)
        if check and res.returncode != 0:
            raise AssertionError(f"trioctr {' '.join(args)} exited {res.returncode}: "
                                 f"{res.stderr.decode(errors='replace')}")
        return res

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        e = env()
        e["DOCKER_HOST"] = f"unix://{self.sock}"
        e.pop("DOCKER_CONTEXT", None)
        e["DOCKER_CONFIG"] = os.path.join(self.base, "docker-config")
        return subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout, env=e)

    # -- cleanup ----------------------------------------------------------------------
    def cleanup(self) -> None:
        """Remove every container, stop the daemon, and make sure nothing made
        by this engine survives: shims, container processes, cgroups, dirs."""
        if self.proc and self.proc.poll() is None:
            try:
                status, lst = self.request("GET", "/containers/json?all=1", timeout=10)
                for c in lst or []:
                    self.request("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
            except OSError:
                pass
        self.stop()
        self._thaw()
        self._kill_leftovers()
        self._remove_cgroups()
        shutil.rmtree(self.base, ignore_errors=True)

    def _thaw(self) -> None:
        """A frozen container (a test that failed mid-pause) would hold even
        SIGKILL: thaw everything under our cgroup parent first."""
        for top in (os.path.join("/sys/fs/cgroup/freezer", self.cgroup_parent),
                    os.path.join("/sys/fs/cgroup", self.cgroup_parent),
                    os.path.join("/sys/fs/cgroup/unified", self.cgroup_parent)):
            for dirpath, _, files in os.walk(top):
                for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                    if name in files:
                        try:
                            with open(os.path.join(dirpath, name), "w") as f:
                                f.write(value)
                        except OSError:
                            pass

    def _kill_leftovers(self) -> None:
        shims = os.path.join(self.exec_root, "shims")
        pids = []
        try:
            names = os.listdir(shims)
        except OSError:
            names = []
        for name in names:
            for f in ("init.pid", "shim.pid"):
                try:
                    with open(os.path.join(shims, name, f)) as fh:
                        pids.append(int(fh.read().strip()))
                except (OSError, ValueError):
                    pass
        # anything else still running from this engine (match the exec root)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            if self.base.encode() in cmd:
                pids.append(int(pid))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
            time.sleep(0.02)

    def _remove_cgroups(self, timeout: float = 10.0) -> list[str]:
        """rmdir our cgroup tree in every hierarchy, deepest first; a cgroup
        whose last process is still exiting is busy for a moment: retry.
        Returns what could not be removed."""
        base = "/sys/fs/cgroup"
        roots = [base] + [os.path.join(base, c) for c in os.listdir(base)]
        deadline = time.monotonic() + timeout
        while True:
            left = []
            for r in roots:
                top = os.path.join(r, self.cgroup_parent)
                if not os.path.isdir(top):
                    continue
                for dirpath, _, _ in sorted(os.walk(top), key=lambda x: -len(x[0])):
                    try:
                        os.rmdir(dirpath)
                    except FileNotFoundError:
                        pass
                    except OSError:
                        left.append(dirpath)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)
