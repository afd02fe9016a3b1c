"""Small helpers shared by the compatibility tests."""

from __future__ import annotations

from tests.helpers.wait import poll  # noqa: F401  (the compat tests take it from here)



def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")
