"""Make the repo root importable however pytest is started (``pytest`` or
``python -m pytest``, from the repo or elsewhere)."""

import pathlib
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
