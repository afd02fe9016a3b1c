"""process.terminal with --console-socket on the real kernel: the pty master
arrives over SCM_RIGHTS, exactly as runc sends it.

Needs root.  A tiny console-socket server (a thread) accepts one connection,
receives the fd and its payload, and reads the container's output from the
master until the slave side is gone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

pytestmark = pytest.mark.root

RUNC = any(os.path.exists(p) for p in ("/usr/sbin/runc", "/usr/bin/runc"))

PROBE = ("tty; stty size; stat -c '%t:%T %F' /dev/console; echo sid=$(cut -d' ' -f6 "
         "/proc/self/stat) pgrp=$(cut -d' ' -f5 /proc/self/stat); "
         "stat -c 'owner=%u' $(tty); test -t 0 && test -t 1 && test -t 2 && echo stdio=tty; "
         "echo done")


class ConsoleServer:
    """Listens on a Unix socket; the first connection's fd is the pty master."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.payload = b""
        self.target = ""
        self.output = b""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
            self.payload = msg
            assert len(fds) == 1, fds
            master = fds[0]
            self.target = os.readlink(f"/proc/self/fd/{master}")
            try:
                while True:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: no slave left open
                        break
                    if not data:
                        break
                    self.output += data
            finally:
                os.close(master)
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc

    def wait(self, timeout: float = 30) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the console server got no pty"
        if self.error:
            raise self.error
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def console(tmp_path):
    servers = []

    def make(name: str = "console.sock") -> ConsoleServer:
        s = ConsoleServer(str(tmp_path / name))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def terminal_spec(rt, cid, args, **process):
    cfg = rt.spec(cid, args)
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 30, "width": 100}
    cfg["process"].update(process)
    return cfg


def test_create_with_a_console_socket(rt, console):
    server = console()
    cfg = terminal_spec(rt, "tty", ["sh", "-c", PROBE])
    h = rt.create("tty", [], cfg=cfg, extra=("--console-socket", server.path))
    assert h.create_code() == 0, h.stderr()
    init = rt.pid("tty")
    assert rt.cmd("start", "tty").returncode == 0
    out = server.wait()
    assert h.exit_code(init) == 0
    assert server.payload == b"/dev/ptmx"  # what runc sends with the fd
    assert server.target == "/dev/pts/ptmx"  # the container's own devpts instance
    assert out.splitlines() == ["/dev/pts/0", "30 100", "88:0 character special file",
                                "sid=1 pgrp=1", "owner=0", "stdio=tty", "done"]
    assert h.output() == ""  # nothing went to the runtime's own stdio
    assert rt.cmd("delete", "tty").returncode == 0


def test_the_terminal_belongs_to_the_user(rt, console):
    server = console()
    cfg = terminal_spec(rt, "usertty", ["sh", "-c", "id -u; stat -c %u $(tty)"],
                        user={"uid": 1000, "gid": 1000})
    h = rt.create("usertty", [], cfg=cfg, extra=("--console-socket", server.path))
    assert h.create_code() == 0, h.stderr()
    assert rt.cmd("start", "usertty").returncode == 0
    assert server.wait().split() == ["1000", "1000"]
    assert h.exit_code(rt.pid("usertty")) == 0
    assert rt.cmd("delete", "usertty").returncode == 0


def test_exec_with_a_terminal(rt, console):
    rt.started("execttty", ["sleep", "1000"])
    server = console()
    res = rt.cmd("exec", "--tty", "--console-socket", server.path, "execttty", "sh", "-c",
                 "tty; echo sid=$(cut -d' ' -f6 /proc/self/stat); test -t 1 && echo tty; exit 4")
    assert res.returncode == 4, res.stderr
    assert res.stdout == ""
    assert server.wait().splitlines() == ["/dev/pts/0", "sid=2", "tty"]
    assert server.payload == b"/dev/ptmx"
    assert rt.cmd("delete", "--force", "execttty").returncode == 0


def test_terminal_and_console_socket_go_together(rt, console):
    cfg = terminal_spec(rt, "notty", ["true"])
    res = rt.run("notty", [], cfg=cfg)
    assert res.returncode == 1
    assert "a --console-socket is needed" in res.stderr
    server = console()
    cfg = rt.spec("nosock", ["true"])
    b = rt.bundle("nosock", cfg)
    rt.ids.append("nosock")
    res = rt.cmd("create", "--bundle", str(b), "--console-socket", server.path, "nosock")
    assert res.returncode == 1
    assert "--console-socket is only for process.terminal: true" in res.stderr
    assert not (rt.root / "nosock").exists()
    b = rt.bundle("nowhere", terminal_spec(rt, "nowhere", ["true"]))
    res = rt.cmd("create", "--bundle", str(b), "--console-socket", "/nonexistent/sock",
                 "nowhere")
    assert res.returncode == 1
    assert "connect to the console socket /nonexistent/sock" in res.stderr
    assert not (rt.root / "nowhere").exists()


@pytest.mark.skipif(not RUNC, reason="runc is not installed")
def test_same_console_as_runc(rt, console):
    """The same bundle under runc and under ours: the same payload, the same
    kind of fd, the same view from inside."""
    results = {}
    for name in ("ours", "runc"):
        server = console(f"{name}.sock")
        cid = f"console-{name}"
        cfg = terminal_spec(rt, cid, ["sh", "-c", PROBE])
        b = rt.bundle(cid, cfg)
        if name == "ours":
            rt.ids.append(cid)
            argv = rt.argv("run", "--detach", "--bundle", str(b), "--console-socket",
                           server.path, cid)
            delete = rt.argv("delete", "--force", cid)
        else:
            root = str(rt.tmp / "runc-state")
            argv = ["runc", "--root", root, "run", "--detach", "--bundle", str(b),
                    "--console-socket", server.path, cid]
            delete = ["runc", "--root", root, "delete", "--force", cid]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
            results[name] = (server.payload, server.target, server.wait())
        finally:
            subprocess.run(delete, capture_output=True, timeout=60)
    assert results["ours"] == results["runc"]
