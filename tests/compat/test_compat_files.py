"""docker cp into and out of containers (running, created, exited), docker
diff and docker export of a stopped container, through the real docker CLI
and the Docker SDK for Python, unchanged."""

from __future__ import annotations

import io
import os
import tarfile
import uuid

import pytest

from tests.compat.compat_util import err, out

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root

LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def _tar(entries: dict[str, bytes]) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()


def _member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.extractfile(name).read()


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf.getmembers()]


def _no_host_mounts(engine) -> None:
    with open("/proc/self/mountinfo") as f:
        assert engine.base not in f.read()


@pytest.fixture
def stopped(engine):
    """An exited container that changed its filesystem."""
    name = "files-" + uuid.uuid4().hex[:8]
    res = engine.docker("run", "--name", name, "busybox", "sh", "-c",
                        "mkdir -p /data/sub && echo one > /data/one && echo two > /data/sub/two && "
                        "rm /bin/ls && echo more >> /etc/passwd")
    assert res.returncode == 0, err(res)
    yield name
    engine.docker("rm", "-f", name)


def test_docker_cp_into_and_out_of_a_stopped_container(engine, stopped, tmp_path):
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "file.txt").write_text("local\n")
    (src / "inner" / "deep.txt").write_text("deep\n")
    for args in ((str(src / "file.txt"), f"{stopped}:/data/"),
                 (str(src / "file.txt"), f"{stopped}:/data/renamed.txt"),
                 (str(src), f"{stopped}:/newdir"),
                 (str(src), f"{stopped}:/data")):
        res = engine.docker("cp", *args)
        assert res.returncode == 0, (args, err(res))
    res = engine.docker("cp", "-", f"{stopped}:/tmp", input=_tar({"streamed": b"from stdin\n"}))
    assert res.returncode == 0, err(res)
    d = tmp_path / "out"
    d.mkdir()
    for path, local, expect in (("/data/file.txt", "a", "local\n"), ("/data/renamed.txt", "b", "local\n"),
                                ("/newdir/inner/deep.txt", "c", "deep\n"), ("/data/src/file.txt", "d", "local\n"),
                                ("/tmp/streamed", "e", "from stdin\n"), ("/data/sub/two", "f", "two\n")):
        res = engine.docker("cp", f"{stopped}:{path}", str(d / local))
        assert res.returncode == 0, (path, err(res))
        assert (d / local).read_text() == expect
    res = engine.docker("cp", f"{stopped}:/data", str(d / "tree"))
    assert res.returncode == 0 and (d / "tree" / "sub" / "two").read_text() == "two\n", err(res)
    res = engine.docker("cp", f"{stopped}:/data/one", "-")
    assert res.returncode == 0 and _member(res.stdout, "one") == b"one\n"
    # what was copied in is there when the container runs again
    res = engine.docker("start", stopped)
    assert res.returncode == 0, err(res)
    engine.docker("wait", stopped)
    res = engine.docker("cp", f"{stopped}:/newdir/file.txt", "-")
    assert _member(res.stdout, "file.txt") == b"local\n"
    # errors, in Docker's words
    res = engine.docker("cp", str(src / "file.txt"), f"{stopped}:/no/such/dir/")
    assert res.returncode == 1
    res = engine.docker("cp", f"{stopped}:/nope", str(d))
    assert res.returncode == 1
    assert f"Could not find the file /nope in container {stopped}" in err(res), err(res)
    res = engine.docker("cp", "-", f"{stopped}:/data/one", input=_tar({"x": b"x"}))
    assert res.returncode == 1 and "must be a directory" in err(res), err(res)
    _no_host_mounts(engine)


def test_docker_cp_into_a_created_and_a_running_container(engine, tmp_path):
    f = tmp_path / "greeting"
    f.write_text("hi\n")
    created = out(engine.docker("create", "busybox", "cat", "/greeting")).strip()
    try:
        res = engine.docker("cp", str(f), f"{created}:/greeting")
        assert res.returncode == 0, err(res)
        res = engine.docker("start", "-a", created)
        assert res.returncode == 0 and out(res) == "hi\n", err(res)
    finally:
        engine.docker("rm", "-f", created)
    res = engine.docker("run", "-d", "busybox", "sh", "-c", LOOP)
    running = out(res).strip()
    try:
        res = engine.docker("cp", str(f), f"{running}:/root/")
        assert res.returncode == 0, err(res)
        res = engine.docker("cp", f"{running}:/root/greeting", "-")
        assert _member(res.stdout, "greeting") == b"hi\n"
        res = engine.docker("diff", running)
        assert res.returncode == 0 and out(res).splitlines() == ["C /root", "A /root/greeting"], out(res)
    finally:
        engine.docker("rm", "-f", running)
    ro = out(engine.docker("create", "--read-only", "busybox", "true")).strip()
    try:
        res = engine.docker("cp", str(f), f"{ro}:/tmp/")
        assert res.returncode == 1
        assert "container rootfs is marked read-only" in err(res), err(res)
    finally:
        engine.docker("rm", "-f", ro)
    _no_host_mounts(engine)


def test_docker_diff_and_export_of_a_stopped_container(engine, stopped, tmp_path):
    res = engine.docker("diff", stopped)
    assert res.returncode == 0, err(res)
    assert out(res).splitlines() == ["C /bin", "D /bin/ls", "A /data", "A /data/one", "A /data/sub",
                                     "A /data/sub/two", "C /etc/passwd"], out(res)
    # /etc itself: copied up unchanged (same size, mode, mtime), so not a change (as overlay2)
    res = engine.docker("diff", "no-such-thing")
    assert res.returncode == 1 and "No such container: no-such-thing" in err(res)
    res = engine.docker("export", stopped)
    assert res.returncode == 0, err(res)
    names = _names(res.stdout)
    assert "data/sub/two" in names and "bin/sh" in names and "bin/ls" not in names
    assert _member(res.stdout, "etc/passwd").endswith(b"more\n")
    dest = tmp_path / "fs.tar"
    res = engine.docker("export", "-o", str(dest), stopped)
    assert res.returncode == 0 and "data/one" in _names(dest.read_bytes()), err(res)
    _no_host_mounts(engine)


def test_sdk_put_archive_get_archive_and_diff(engine, client, stopped):
    c = client.containers.get(stopped)
    assert c.put_archive("/data", _tar({"sdk.txt": b"via sdk\n", "dir/nested": b"n\n"})) is True
    stream, stat = c.get_archive("/data/sdk.txt")
    assert stat["name"] == "sdk.txt" and stat["size"] == 8
    assert _member(b"".join(stream), "sdk.txt") == b"via sdk\n"
    stream, stat = c.get_archive("/data/dir")
    assert stat["mode"] & (1 << 31)
    assert "dir/nested" in _names(b"".join(stream))
    with pytest.raises(docker.errors.NotFound) as info:
        c.put_archive("/nope", _tar({"x": b"x"}))
    assert info.value.explanation == f"Could not find the file /nope in container {c.id}"
    with pytest.raises(docker.errors.APIError) as info:
        c.put_archive("/data/one", _tar({"x": b"x"}))
    assert info.value.status_code == 400 and info.value.explanation == "extraction point is not a directory"
    changes = c.diff()
    assert {"Path": "/data/sdk.txt", "Kind": 1} in changes and {"Path": "/bin/ls", "Kind": 2} in changes
    fresh = client.containers.create("busybox", "true")
    try:
        assert fresh.diff() is None
        assert "bin/busybox" in _names(b"".join(fresh.export()))
    finally:
        fresh.remove(force=True)
    _no_host_mounts(engine)
