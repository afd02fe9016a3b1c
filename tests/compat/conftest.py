"""Fixtures of the compatibility tests: the real docker CLI (28) and the
Docker SDK for Python drive an isolated trioctrd, unchanged."""

from __future__ import annotations

import pytest

from tests.helpers.engine import Engine


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    from tests.helpers.images import busybox_rootfs_tar

    path = str(tmp_path_factory.mktemp("compat-images") / "busybox.tar")
    busybox_rootfs_tar(path)
    return path


@pytest.fixture(scope="module")
def engine(busybox_tar):
    """A daemon shared by the tests of one module, with busybox:latest."""
    e = Engine()
    try:
        e.start()
        res = e.cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        assert res.returncode == 0, res.stderr
        yield e
    finally:
        e.cleanup()


@pytest.fixture(scope="module")
def client(engine):
    """A Docker SDK client on the test daemon."""
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url="unix://" + engine.sock, timeout=60)
    try:
        yield c
    finally:
        c.close()
