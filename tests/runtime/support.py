"""Paths and environment shared by the runtime tests and their conftest."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parent / "harness.py"
# the runtime runs as `python -m actors.runtime` from the repo
ENV = dict(os.environ, PYTHONPATH=str(REPO))
