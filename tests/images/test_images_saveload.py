"""docker save / docker load: the store's archive code (oci.tarexport), the API
(GET /images/get, /images/{name}/get, POST /images/load), the trioctr CLI, the
real docker CLI and the Docker SDK, archives written by skopeo and umoci, and
corrupt archives refused with nothing left behind."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from oci import tarexport
from oci.digest import sha256_bytes
from tests.helpers.engine import Engine
from tests.helpers.images import busybox_rootfs_tar, make_tar, tar_entry
from tests.images import registry_env as env

CREATED = "2024-01-02T03:04:05Z"


# --------------------------------------------------------------------------- helpers


def _import(store, tmp_path, ref="busybox:latest", changes=('CMD ["sh"]',)):
    path = str(tmp_path / "bb.tar")
    if not os.path.exists(path):
        busybox_rootfs_tar(path)
    with open(path, "rb") as f:
        return store.import_tar(f, ref, changes=list(changes), created=CREATED)


def _save(store, names, path):
    with open(path, "wb") as f:
        return tarexport.save(store, names, f)


def _load(store, path, **kw):
    msgs: list[dict] = []
    res = tarexport.load(store, path, msgs.append, **kw)
    return res, msgs


def _streams(msgs):
    return "".join(m["stream"] for m in msgs if "stream" in m)


def _members(path):
    with tarfile.open(path) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isfile() else None) for m in tf}


def _content(store):
    """What is on disk in the store (to check that a refused load added nothing)."""
    blobs = sorted(os.listdir(store.blobs_dir))
    layers = sorted(os.listdir(store.layers_dir))
    tmp = [n for n in os.listdir(store.root) if n.startswith(".tmp")]
    return blobs, layers, tmp, sorted(i.id for i in store.list())


def _retar(src, dst, edit):
    """Copy the tar ``src`` to ``dst`` with ``edit(name, data) -> data | None``
    (None drops the member)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin:
            data = tin.extractfile(m).read() if m.isfile() else None
            if m.isfile():
                data = edit(m.name, data)
                if data is None:
                    continue
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)


# --------------------------------------------------------------------------- store level


def test_save_writes_docker25_layout_and_loads_back(store, store2, tmp_path):
    img = _import(store, tmp_path)
    store.tag("busybox:latest", "example.com/team/bb:v1")
    path = str(tmp_path / "save.tar")
    assert _save(store, ["busybox", "example.com/team/bb:v1"], path) == [img.id]
    m = _members(path)
    hexid = img.id[7:]
    diff = img.diff_ids[0]
    # legacy manifest.json pointing into the OCI blobs, plus OCI layout files
    manifest = json.loads(m["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{hexid}",
                         "RepoTags": ["busybox:latest", "example.com/team/bb:v1"],
                         "Layers": [f"blobs/sha256/{diff[7:]}"]}]
    assert json.loads(m["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(m["repositories"]) == {"busybox": {"latest": diff[7:]},
                                              "example.com/team/bb": {"v1": diff[7:]}}
    assert sha256_bytes(m[f"blobs/sha256/{diff[7:]}"]) == diff  # uncompressed, = diff_id
    assert sha256_bytes(m[f"blobs/sha256/{hexid}"]) == img.id
    index = json.loads(m["index.json"])
    names = [d["annotations"]["io.containerd.image.name"] for d in index["manifests"]]
    assert names == ["docker.io/library/busybox:latest", "example.com/team/bb:v1"]
    assert [d["annotations"]["org.opencontainers.image.ref.name"]
            for d in index["manifests"]] == ["latest", "v1"]
    oci_manifest = json.loads(m["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    assert oci_manifest["config"]["digest"] == img.id
    assert oci_manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": diff, "size": len(m[f"blobs/sha256/{diff[7:]}"])}]
    # deterministic: the same save twice is the same archive
    path2 = str(tmp_path / "save2.tar")
    _save(store, ["busybox", "example.com/team/bb:v1"], path2)
    assert open(path, "rb").read() == open(path2, "rb").read()

    res, msgs = _load(store2, path)
    assert res == [{"id": img.id, "tags": ["busybox:latest", "example.com/team/bb:v1"]}]
    assert _streams(msgs) == "Loaded image: busybox:latest\nLoaded image: example.com/team/bb:v1\n"
    progress = [x for x in msgs if x.get("status") == "Loading layer"]
    assert progress and progress[-1]["id"] == diff[7:19]
    assert progress[-1]["progressDetail"]["current"] == progress[-1]["progressDetail"]["total"]
    loaded = store2.get("example.com/team/bb:v1")
    assert loaded.id == img.id and loaded.config == img.config
    assert os.path.exists(os.path.join(loaded.layer_dirs[0], "bin", "busybox"))
    # a second load changes nothing and says so the same way; quiet: no progress
    res, msgs = _load(store2, path, quiet=True)
    assert not [x for x in msgs if "progressDetail" in x]
    assert _streams(msgs) == "Loaded image: busybox:latest\nLoaded image: example.com/team/bb:v1\n"


def test_save_by_id_and_name_only(store, store2, tmp_path):
    img = _import(store, tmp_path, "busybox:1")
    store.tag("busybox:1", "busybox:2")
    path = str(tmp_path / "a.tar")
    _save(store, [img.id[7:19]], path)  # an id prefix: no tags
    m = _members(path)
    assert json.loads(m["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in m
    res, msgs = _load(store2, path)
    assert _streams(msgs) == f"Loaded image ID: {img.id}\n"
    assert store2.get(img.id).repo_tags == []
    _save(store, ["busybox"], path)  # a bare name: every tag of the repository
    assert json.loads(_members(path)["manifest.json"])[0]["RepoTags"] == ["busybox:1", "busybox:2"]
    from oci.errors import ImageNotFound
    with pytest.raises(ImageNotFound):
        _save(store, ["nope:latest"], path)


def test_load_renames_a_moved_tag(store, store2, tmp_path):
    a = _import(store, tmp_path, "app:latest")
    path = str(tmp_path / "a.tar")
    _save(store, ["app:latest"], path)
    b = _import(store2, tmp_path, "app:latest", changes=('CMD ["echo", "other"]',))
    assert a.id != b.id
    res, msgs = _load(store2, path)
    assert _streams(msgs) == (f"The image app:latest already exists, renaming the old one with ID "
                              f"{b.id} to empty string\nLoaded image: app:latest\n")
    assert store2.get("app:latest").id == a.id and store2.get(b.id).repo_tags == []


def test_load_oci_layout_gzip_layers_and_platform_index(store, tmp_path, layout):
    from oci.store import host_platform
    plat = host_platform()
    l1 = make_tar([tar_entry("etc", "dir"), tar_entry("etc/one", data=b"1\n")])
    l2 = make_tar([tar_entry("etc", "dir"), tar_entry("etc/two", data=b"2\n")])
    mine, cfg, info = layout.image([l1, l2], arch=plat["architecture"])
    other, _, _ = layout.image([l1], arch="s390x" if plat["architecture"] != "s390x" else "amd64")
    layout.multi("multi/app:3", [(mine, info["platform"]),
                                 (other, {"os": "linux", "architecture": "s390x"
                                          if plat["architecture"] != "s390x" else "amd64"})])
    layout.tag("plain", mine)  # a ref.name that is only a tag: loaded without a name
    path = str(tmp_path / "oci.tar")
    with tarfile.open(path, "w") as tf:
        tf.add(layout.path, arcname=".")
    res, msgs = _load(store, path)
    img = store.get(info["config_digest"])
    assert res == [{"id": img.id, "tags": ["multi/app:3"]}]
    assert _streams(msgs) == "Loaded image: multi/app:3\n"
    assert store.get("multi/app:3").diff_ids == info["diff_ids"]
    assert os.path.exists(os.path.join(img.layer_dirs[1], "etc", "two"))


def test_load_skopeo_archives(store, store2, tmp_path):
    if not os.access(env.SKOPEO, os.X_OK):
        pytest.skip("needs skopeo")
    img = _import(store, tmp_path)
    src = str(tmp_path / "src.tar")
    _save(store, ["busybox:latest"], src)
    # docker-archive: the pre-25 layout (<id>.json, <hex>.tar, symlinked <v1>/layer.tar)
    dock = str(tmp_path / "docker-archive.tar")
    env.skopeo_copy(f"docker-archive:{src}:busybox:latest", f"docker-archive:{dock}:sk/bb:1")
    assert any(m.endswith("/layer.tar") for m in _members(dock))
    res, msgs = _load(store2, dock)
    assert res == [{"id": img.id, "tags": ["sk/bb:1"]}]
    # oci-archive: a plain OCI layout, gzip layers, ref.name "sk/bb:2", no manifest.json
    oci = str(tmp_path / "oci-archive.tar")
    env.skopeo_copy(f"docker-archive:{src}:busybox:latest", f"oci-archive:{oci}:sk/bb:2")
    assert "manifest.json" not in _members(oci)
    res, msgs = _load(store2, oci)
    assert res[0]["tags"] == ["sk/bb:2"]
    assert store2.get("sk/bb:2").diff_ids == img.diff_ids


def test_load_umoci_layout(store, tmp_path):
    umoci = shutil.which("umoci")
    if not umoci:
        pytest.skip("needs umoci")
    lay = str(tmp_path / "umoci")
    subprocess.run([umoci, "init", "--layout", lay], check=True)
    subprocess.run([umoci, "new", "--image", f"{lay}:latest"], check=True)
    bundle = str(tmp_path / "bundle")
    subprocess.run([umoci, "unpack", "--rootless", "--image", f"{lay}:latest", bundle],
                   check=True, capture_output=True)
    os.makedirs(os.path.join(bundle, "rootfs", "etc"), exist_ok=True)
    with open(os.path.join(bundle, "rootfs", "etc", "hello"), "w") as f:
        f.write("from umoci\n")
    # (umoci 0.4.7's `insert` writes a layer tar without its end padding: repack is sound)
    subprocess.run([umoci, "repack", "--image", f"{lay}:latest", bundle], check=True)
    subprocess.run([umoci, "config", "--image", f"{lay}:latest", "--config.cmd", "cat"],
                   check=True)
    path = str(tmp_path / "umoci.tar")
    with tarfile.open(path, "w") as tf:
        tf.add(lay, arcname=".")
    res, msgs = _load(store, path)
    assert len(res) == 1 and res[0]["tags"] == []
    assert _streams(msgs) == f"Loaded image ID: {res[0]['id']}\n"
    img = store.get(res[0]["id"])
    assert img.container_config["Cmd"] == ["cat"]
    assert any(os.path.exists(os.path.join(d, "etc", "hello")) for d in img.layer_dirs)


def test_load_gzipped_archive(store, store2, tmp_path):
    img = _import(store, tmp_path)
    path = str(tmp_path / "a.tar")
    _save(store, ["busybox"], path)
    gzpath = path + ".gz"
    with open(path, "rb") as f:
        open(gzpath, "wb").write(env.gz(f.read()))
    res, _ = _load(store2, gzpath)
    assert res[0]["id"] == img.id


@pytest.mark.parametrize("corruption, message", [
    ("empty", "the tar is empty"),
    ("garbage", "invalid tar archive"),
    ("truncated", "invalid"),
    ("layer-flipped", "invalid diffID for layer 0"),
    ("layer-missing", "not found in the archive"),
    ("config-missing", "not found in the archive"),
    ("manifest-null", "manifest cannot be null"),
    ("layers-mismatch", "layers length mismatch"),
    ("bad-tag", "invalid tag"),
    ("windows", "cannot load windows image on linux"),
    ("no-manifest", "neither manifest.json"),
    ("oci-blob-tampered", "has digest"),
])
def test_corrupt_archives_are_refused_and_leave_nothing(store, store2, tmp_path, corruption,
                                                        message):
    img = _import(store, tmp_path)
    good = str(tmp_path / "good.tar")
    _save(store, ["busybox"], good)
    bad = str(tmp_path / "bad.tar")
    hexid, diff = img.id[7:], img.diff_ids[0][7:]
    data = open(good, "rb").read()

    def manifest_edit(fn):
        def edit(name, b):
            if name == "manifest.json":
                return json.dumps(fn(json.loads(b))).encode()
            return b
        return edit

    if corruption == "empty":
        open(bad, "wb").close()
    elif corruption == "garbage":
        open(bad, "wb").write(b"this is not a tar archive at all\n" * 40)
    elif corruption == "truncated":
        open(bad, "wb").write(data[:len(data) // 2])
    elif corruption == "layer-flipped":
        def edit(name, b):
            if name == f"blobs/sha256/{diff}":
                i = b.index(b"root:x:0:0")  # inside /etc/passwd's data
                return b[:i] + b"ROOT" + b[i + 4:]
            return b
        _retar(good, bad, edit)
    elif corruption == "layer-missing":
        _retar(good, bad, lambda n, b: None if n == f"blobs/sha256/{diff}" else b)
    elif corruption == "config-missing":
        _retar(good, bad, lambda n, b: None if n == f"blobs/sha256/{hexid}" else b)
    elif corruption == "manifest-null":
        _retar(good, bad, manifest_edit(lambda m: None))
    elif corruption == "layers-mismatch":
        _retar(good, bad, manifest_edit(lambda m: [dict(m[0], Layers=m[0]["Layers"] * 2)]))
    elif corruption == "bad-tag":
        _retar(good, bad, manifest_edit(lambda m: [dict(m[0], RepoTags=["busybox@sha256:" + diff])]))
    elif corruption == "windows":
        def edit(name, b):
            if name == "manifest.json":
                return json.dumps([dict(json.loads(b)[0], Config="win.json")]).encode()
            return b
        _retar(good, bad, edit)
        with tarfile.open(bad, "a") as tf:
            cfg = dict(img.config, os="windows")
            raw = json.dumps(cfg).encode()
            ti = tarfile.TarInfo("win.json")
            ti.size = len(raw)
            tf.addfile(ti, io.BytesIO(raw))
    elif corruption == "no-manifest":
        _retar(good, bad, lambda n, b: None if n in ("manifest.json", "index.json") else b)
    elif corruption == "oci-blob-tampered":
        def edit(name, b):
            if name == "manifest.json":
                return None
            if name == f"blobs/sha256/{hexid}":
                return b.replace(b'"sh"', b'"ls"')
            return b
        _retar(good, bad, edit)
    before = _content(store2)
    with pytest.raises(ValueError) as exc:
        _load(store2, bad)
    assert message in str(exc.value)
    assert _content(store2) == before  # nothing half-written: no blob, no layer, no temp file


# --------------------------------------------------------------------------- daemon, CLIs, SDK


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("saveload") / "busybox.tar")
    busybox_rootfs_tar(path)
    return path


@pytest.fixture(scope="module")
def engine(busybox_tar):
    e = Engine()
    try:
        e.start()
        e.cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        yield e
    finally:
        e.cleanup()


def _image_id(engine, ref):
    status, body = engine.request("GET", f"/images/{ref}/json")
    assert status == 200, body
    return body["Id"]


def test_api_save_and_load(engine, tmp_path):
    iid = _image_id(engine, "busybox:latest")
    status, raw = engine.request("GET", "/images/busybox/get")
    assert status == 200 and isinstance(raw, bytes)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert json.loads(tf.extractfile("manifest.json").read())[0]["RepoTags"] == ["busybox:latest"]
    status, raw2 = engine.request("GET", "/images/get?names=busybox:latest&names=" + iid)
    assert status == 200 and raw2 == raw  # the same image, the tag given once
    status, body = engine.request("GET", "/images/get?names=nope:1")
    assert status == 404 and body["message"] == "No such image: nope:1"
    status, body = engine.request("POST", "/images/load?quiet=1", body=raw,
                                  headers={"Content-Type": "application/x-tar"})
    assert status == 200
    assert b'{"stream": "Loaded image: busybox:latest\\n"}' in body if isinstance(body, bytes) \
        else body == {"stream": "Loaded image: busybox:latest\n"}
    status, body = engine.request("POST", "/images/load", body=b"garbage" * 100,
                                  headers={"Content-Type": "application/x-tar"})
    assert status == 200 and isinstance(body, dict) and "invalid tar archive" in body["error"]


def test_cli_save_load_roundtrip(engine, tmp_path):
    iid = _image_id(engine, "busybox:latest")
    engine.cli("tag", "busybox", "rt/app:1", check=True)
    out = str(tmp_path / "sub" / "x.tar")
    res = engine.cli("save", "-o", out, "rt/app:1")
    assert res.returncode == 1
    assert res.stderr.decode() == ("failed to save image: invalid output path: stat "
                                   f"{tmp_path}/sub: no such file or directory\n")
    out = str(tmp_path / "x.tar")
    engine.cli("save", "-o", out, "rt/app:1", check=True)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".docker_temp_")]
    res = engine.cli("save", "rt/app:1")  # to stdout (a pipe here)
    assert res.returncode == 0 and res.stdout == open(out, "rb").read()
    engine.cli("rmi", "rt/app:1", check=True)
    res = engine.cli("load", "-i", out)
    assert res.returncode == 0 and res.stdout == b"Loaded image: rt/app:1\n" and res.stderr == b""
    assert _image_id(engine, "rt/app:1") == iid
    res = engine.cli("load", input=open(out, "rb").read())
    assert res.stdout == b"Loaded image: rt/app:1\n"
    res = engine.cli("load", "-q", "-i", out)
    assert res.stdout == b"Loaded image: rt/app:1\n"
    res = engine.cli("load", "-i", str(tmp_path / "missing.tar"))
    assert res.returncode == 1
    assert res.stderr.decode() == f"open {tmp_path}/missing.tar: no such file or directory\n"
    res = engine.cli("load", input=b"not a tar" * 200)
    assert res.returncode == 1 and b"invalid tar archive" in res.stderr
    res = engine.cli("save", "nope:1")
    assert res.returncode == 1 and res.stderr == b"Error response from daemon: No such image: nope:1\n"
    engine.cli("rmi", "rt/app:1", check=True)


def _run_in_pty(engine, *args):
    """Run the CLI with stdin and stdout on a pty; (exit status, output, stderr)."""
    import sys

    from tests.helpers.engine import env as engine_env
    from tests.helpers.pty import run_in_pty

    e = engine_env()
    e["TRIOCTR_CONFIG"] = os.path.join(engine.base, "cli-config")
    return run_in_pty([sys.executable, "-m", "cli", "-H", f"unix://{engine.sock}", *args], e,
                      separate_stderr=True, timeout=60)


def test_cli_refuses_terminals(engine):
    rc, out, err = _run_in_pty(engine, "save", "busybox")
    assert rc == 1 and out == b""
    assert err == b"cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    rc, out, err = _run_in_pty(engine, "load")
    assert rc == 1 and err == b"requested load from stdin, but stdin is empty\n"


def test_docker_cli_save_pipe_load(engine, tmp_path):
    iid = _image_id(engine, "busybox:latest")
    engine.cli("tag", "busybox", "dk/app:7", check=True)
    res = engine.docker("save", "dk/app:7")
    assert res.returncode == 0, res.stderr
    engine.docker("rmi", "dk/app:7")
    res = engine.docker("load", input=res.stdout)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"Loaded image: dk/app:7\n"
    assert _image_id(engine, "dk/app:7") == iid
    out = str(tmp_path / "d.tar")
    res = engine.docker("save", "-o", out, "dk/app:7", "busybox")
    assert res.returncode == 0, res.stderr
    tags = json.loads(_members(out)["manifest.json"])[0]["RepoTags"]
    assert sorted(tags) == ["busybox:latest", "dk/app:7"]
    res = engine.docker("load", "-i", out)
    assert res.returncode == 0 and sorted(res.stdout.decode().splitlines()) == [
        "Loaded image: busybox:latest", "Loaded image: dk/app:7"]
    res = engine.docker("load", input=b"\x00" * 10)
    assert res.returncode == 1 and b"Error response from daemon" not in res.stdout
    assert b"invalid" in res.stderr
    engine.docker("rmi", "dk/app:7")


def test_docker_cli_loads_skopeo_archives(engine, tmp_path):
    if not os.access(env.SKOPEO, os.X_OK):
        pytest.skip("needs skopeo")
    src = str(tmp_path / "src.tar")
    assert engine.docker("save", "-o", src, "busybox").returncode == 0
    for kind, ref in (("docker-archive", "skd/bb:1"), ("oci-archive", "sko/bb:1")):
        dst = str(tmp_path / f"{kind}.tar")
        env.skopeo_copy(f"docker-archive:{src}:busybox:latest", f"{kind}:{dst}:{ref}")
        res = engine.docker("load", "-i", dst)
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode() == f"Loaded image: {ref}\n"
        res = engine.cli("run", "--rm", ref, "cat", "/etc/hostname", "/etc/group")
        assert res.returncode == 0 and b"app:x:1000:" in res.stdout, res.stderr
        engine.cli("rmi", ref, check=True)


def test_sdk_save_and_load(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url="unix://" + engine.sock, timeout=60)
    try:
        img = client.images.get("busybox:latest")
        data = b"".join(img.save(named=True))
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            assert json.loads(tf.extractfile("manifest.json").read())[0]["RepoTags"] == [
                "busybox:latest"]
        engine.cli("tag", "busybox", "sdk/bb:1", check=True)
        data = b"".join(client.images.get("sdk/bb:1").save(named="sdk/bb:1"))
        client.images.remove("sdk/bb:1")
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [img.id]
        assert "sdk/bb:1" in client.images.get(img.id).tags
        with pytest.raises(docker.errors.ImageLoadError):
            client.images.load(b"junk" * 300)
        client.images.remove("sdk/bb:1")
    finally:
        client.close()


def test_api_save_streams_and_survives_a_client_that_leaves(engine, tmp_path):
    import socket
    import time
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(engine.sock)
        s.sendall(b"GET /v1.41/images/busybox/get HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200") and b"application/x-tar" in head
        s.close()  # gone after the first bytes
    status, raw = engine.request("GET", "/images/busybox/get")
    assert status == 200 and tarfile.open(fileobj=io.BytesIO(raw)).getmember("manifest.json")
    root = os.path.join(engine.root, "image")
    deadline = time.monotonic() + 10
    while [n for n in os.listdir(root) if n.startswith(".tmp")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [n for n in os.listdir(root) if n.startswith(".tmp")]


def test_api_save_refuses_layers_it_cannot_export(engine, tmp_path):
    import bz2
    bz = str(tmp_path / "layer.tar.bz2")
    with open(bz, "wb") as f:
        f.write(bz2.compress(make_tar([tar_entry("f", data=b"bz")])))
    engine.cli("import", bz, "bz/img:1", check=True)  # no layer blob is kept for bzip2
    status, body = engine.request("GET", "/images/bz/img:1/get")
    assert status == 404 and "has no stored archive to export" in body["message"]
    res = engine.docker("save", "bz/img:1")
    assert res.returncode == 1 and b"has no stored archive to export" in res.stderr
    engine.cli("rmi", "bz/img:1", check=True)


def test_api_load_reports_a_bad_layer_after_its_progress(engine, tmp_path):
    good = str(tmp_path / "g.tar")
    engine.cli("save", "-o", good, "busybox", check=True)
    bad = str(tmp_path / "b.tar")
    iid = _image_id(engine, "busybox")
    status, img = engine.request("GET", "/images/busybox/json")
    diff = img["RootFS"]["Layers"][0][7:]

    def edit(name, b):
        if name == f"blobs/sha256/{diff}":
            i = b.index(b"root:x:0:0")
            return b[:i] + b"ROOT" + b[i + 4:]
        return b
    _retar(good, bad, edit)
    engine.cli("rmi", "busybox", check=True)
    try:
        status, body = engine.request("POST", "/images/load", body=open(bad, "rb").read(),
                                      headers={"Content-Type": "application/x-tar"})
        assert status == 200 and isinstance(body, bytes)
        msgs = [json.loads(x) for x in body.decode().splitlines()]
        assert msgs[0]["status"] == "Loading layer" and msgs[0]["id"] == diff[:12]
        assert "invalid diffID for layer 0" in msgs[-1]["error"]
        assert engine.request("GET", "/images/busybox/json")[0] == 404
        res = engine.docker("load", "-i", bad)
        assert res.returncode == 1 and b"invalid diffID for layer 0" in res.stderr
    finally:
        res = engine.cli("load", "-i", good)
        assert res.returncode == 0 and _image_id(engine, "busybox") == iid
