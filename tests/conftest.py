"""Shared fixtures: isolated daemons on the real kernel, and the leak snapshot."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.helpers import leaks  # noqa: E402

BASELINE: dict = {}


def pytest_configure(config):
    BASELINE.update(leaks.snapshot())


def pytest_collection_modifyitems(config, items):
    # root tests need root; say so instead of failing obscurely
    skip = pytest.mark.skip(reason="needs root (real namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip)
    # the leak check runs last, whatever the order of collection
    items.sort(key=lambda it: 1 if it.nodeid.endswith("test_suite_left_nothing_behind") else 0)
