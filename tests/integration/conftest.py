from __future__ import annotations

import os

import pytest

from tests.helpers.engine import Engine


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    from tests.helpers.images import busybox_rootfs_tar

    path = str(tmp_path_factory.mktemp("images") / "busybox.tar")
    busybox_rootfs_tar(path)
    return path


def _import_busybox(engine: Engine, tar: str) -> None:
    res = engine.cli("import", "-c", 'CMD ["sh"]', tar, "busybox:latest")
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def engine(busybox_tar):
    """A daemon shared by the tests of one module, with busybox imported."""
    e = Engine()
    try:
        e.start()
        _import_busybox(e, busybox_tar)
        yield e
    finally:
        e.cleanup()


@pytest.fixture
def fresh_engine(busybox_tar):
    """A daemon of this test's own (chaos tests kill parts of it)."""
    e = Engine()
    try:
        e.start()
        _import_busybox(e, busybox_tar)
        yield e
    finally:
        e.cleanup()
