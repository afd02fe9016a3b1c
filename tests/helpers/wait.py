"""Polling for a condition, the one way every test does it."""

from __future__ import annotations

import time


def poll(pred, timeout: float = 10.0, interval: float = 0.05):
    """``pred``'s first true value, or its last value once ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    value = pred()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = pred()
    return value


def wait_for(pred, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    """``pred``'s first true value; AssertionError naming ``what`` on timeout."""
    value = poll(pred, timeout, interval)
    if not value:
        raise AssertionError(f"timed out waiting for {what}")
    return value
