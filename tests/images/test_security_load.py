"""docker load of crafted archives: nothing outside the archive is read, no
path leaves the store, and a header cannot make the daemon hold gigabytes."""

from __future__ import annotations

import io
import json
import os
import resource
import tarfile

import pytest

from oci import tarexport
from oci.errors import InvalidArgument


def _emit(_msg):
    pass


def _tar(path, entries):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                ti.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)


@pytest.mark.parametrize("config", ["../../../../etc/passwd", "/etc/passwd", "link.json", "hard.json"])
def test_manifest_paths_never_leave_the_archive(store, tmp_path, config):
    path = str(tmp_path / "x.tar")
    _tar(path, [("manifest.json", "f", json.dumps([{"Config": config, "Layers": []}]).encode()),
                ("link.json", "l", "/etc/passwd"), ("hard.json", "h", "../../etc/passwd")])
    with pytest.raises(InvalidArgument):
        tarexport.load(store, path, _emit)
    assert store.list_images() == [] if hasattr(store, "list_images") else True


def test_layer_symlink_out_of_the_archive_is_refused(store, tmp_path):
    cfg = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    path = str(tmp_path / "x.tar")
    _tar(path, [("manifest.json", "f", json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode()),
                ("c.json", "f", cfg), ("l/layer.tar", "l", "../../../../etc/shadow")])
    with pytest.raises(InvalidArgument):
        tarexport.load(store, path, _emit)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE])
def test_a_huge_extended_header_is_not_read_into_memory(store, tmp_path, kind):
    """A GNU long-name or PAX header claiming 768 MiB (zeros: a sparse file
    here, a few hundred kilobytes gzipped) must not be read into memory."""
    size = 768 << 20
    path = str(tmp_path / "bomb.tar")
    ti = tarfile.TarInfo("././@LongLink")
    ti.type, ti.size = kind, size
    with open(path, "wb") as f:
        f.write(ti.tobuf(tarfile.GNU_FORMAT))
        f.truncate(512 + size + 1024)
    pid = os.fork()
    if pid == 0:  # a process of its own: its peak RSS is this load's
        code = 3
        try:
            before = _peak_rss()
            try:
                tarexport.load(store, path, _emit)
                code = 2
            except InvalidArgument:
                code = 0 if _peak_rss() - before < (256 << 20) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the header was read into memory (1) or loaded (2)"


def _layer(entries) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                ti.type = {"l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE, "d": tarfile.DIRTYPE}[kind]
                if kind in "lh":
                    ti.linkname = data
                t.addfile(ti)
    return b.getvalue()


def _save_archive(path, layer: bytes):
    import hashlib

    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"os": "linux", "architecture": "amd64",
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    _tar(path, [("manifest.json", "f", json.dumps([{"Config": "c.json", "Layers": ["l.tar"],
                                                     "RepoTags": ["evil:latest"]}]).encode()),
                ("c.json", "f", cfg), ("l.tar", "f", layer)])


@pytest.mark.parametrize("entries", [
    [("a", "l", "/"), ("a/{m}", "f", b"x")],
    [("a", "l", "../../../../../../.."), ("a/tmp/{m}", "f", b"x")],
    [("../../../../../../tmp/{m}", "f", b"x")],
    [("/tmp/{m}", "f", b"x")],
    [("d", "d", None), ("d/h", "h", "/etc/passwd"), ("tmp/{m}", "f", b"x")],
    [("h", "h", "../../../../../../etc/passwd")],
    [("a", "l", "/tmp"), ("a", "d", None), ("a/{m}", "f", b"x")],
], ids=["abs-symlink-dir", "dotdot-symlink-dir", "dotdot-name", "abs-name", "hardlink-abs",
        "hardlink-dotdot", "symlink-then-dir"])
def test_loaded_layers_never_write_outside_the_store(store, tmp_path, entries):
    import uuid

    m = f"trioctr-load-escape-{uuid.uuid4().hex[:8]}"
    entries = [(n.replace("{m}", m), k, d) for n, k, d in entries]
    path = str(tmp_path / "evil.tar")
    _save_archive(path, _layer(entries))
    try:
        tarexport.load(store, path, _emit)
    except Exception:  # noqa: BLE001 - refusing is fine
        pass
    for d in ("/", "/tmp", "/etc", str(tmp_path), os.path.dirname(str(tmp_path))):
        assert not os.path.lexists(os.path.join(d, m)), f"escaped to {d}"
    with open("/etc/passwd", "rb") as f:
        assert f.read(4) != b"x"
    host = os.stat("/etc/passwd")
    for dirpath, dirnames, filenames in os.walk(str(tmp_path)):
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            assert (st.st_dev, st.st_ino) != (host.st_dev, host.st_ino), "a host file was linked in"


def test_a_layer_with_a_huge_extended_header_is_not_read_into_memory(store, tmp_path):
    import hashlib

    size = 320 << 20
    ti = tarfile.TarInfo("x")
    ti.type, ti.size = tarfile.XHDTYPE, size
    hdr = ti.tobuf(tarfile.GNU_FORMAT)
    body = (size + 1024)
    h = hashlib.sha256(hdr)
    zeros = b"\0" * (1 << 20)
    for _ in range(body >> 20):
        h.update(zeros)
    layer_len = len(hdr) + (body >> 20 << 20)
    cfg = json.dumps({"os": "linux", "architecture": "amd64",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}).encode()
    path = str(tmp_path / "a.tar")
    with open(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
            for n, data in (("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode()),
                            ("c.json", cfg)):
                i = tarfile.TarInfo(n)
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
            i = tarfile.TarInfo("l.tar")
            i.size = layer_len
            f.write(i.tobuf(tarfile.PAX_FORMAT))
            f.write(hdr)
            f.seek(layer_len - len(hdr), 1)
            if layer_len % 512:
                f.write(b"\0" * (512 - layer_len % 512))
            f.write(b"\0" * 1024)
        f.truncate()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            before = _peak_rss()
            try:
                tarexport.load(store, path, _emit)
                code = 2
            except InvalidArgument:
                code = 0 if _peak_rss() - before < (200 << 20) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the layer's header was read into memory"
