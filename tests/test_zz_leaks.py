"""After the whole suite, the host holds nothing the suite made."""

import os

import pytest

from tests.conftest import BASELINE
from tests.helpers import leaks


@pytest.mark.skipif(os.geteuid() != 0, reason="the integration suite runs as root")
def test_suite_left_nothing_behind():
    left = leaks.leaks(BASELINE)
    assert not left, f"the test suite left these behind: {left}"
