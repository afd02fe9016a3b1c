"""Small helpers shared by the compatibility tests."""

from __future__ import annotations

import time


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``pred`` until it returns something true; return that (or the last value)."""
    deadline = time.monotonic() + timeout
    value = pred()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = pred()
    return value


def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")
