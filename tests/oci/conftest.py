import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.helpers.images import busybox_rootfs_tar  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted.* xattrs, lchown)")
CREATED = "2024-01-02T03:04:05.123456789Z"


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    return busybox_rootfs_tar(str(tmp_path_factory.mktemp("bb") / "busybox.tar"))


@pytest.fixture(scope="session")
def busybox_tar_gz(tmp_path_factory):
    return busybox_rootfs_tar(str(tmp_path_factory.mktemp("bbgz") / "busybox.tar.gz"), gzip=True)


@pytest.fixture
def store(tmp_path):
    from oci.store import ImageStore
    return ImageStore(str(tmp_path / "image"), durable=False)


@pytest.fixture
def bb(store, busybox_tar):
    """A store with busybox:latest imported (fixed created time)."""
    with open(busybox_tar, "rb") as f:
        img = store.import_tar(f, "busybox", changes=['CMD ["sh"]'], created=CREATED)
    return img
