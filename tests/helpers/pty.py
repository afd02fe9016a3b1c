"""Run a client with a terminal: argv on a new pty (stdin and stdout, and stderr
unless asked apart), its output read until it exits."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_in_pty(argv: list[str], envv: dict, *, size: tuple[int, int] | None = None,
               separate_stderr: bool = False, timeout: float = 30) -> tuple[int, bytes, bytes]:
    """(exit status, what was written to the terminal, stderr when
    ``separate_stderr``); ``size`` is (rows, cols) of the terminal."""
    master, slave = os.openpty()
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE if separate_stderr else slave,
                            env=envv, cwd=ROOT, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        err = proc.stderr.read() if separate_stderr else b""
        return proc.wait(timeout=10), out, err
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
