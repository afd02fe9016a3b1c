"""Image prune and garbage collection: ImageStore.prune/collect semantics,
POST /images/prune, `trioctr image prune` against the docker CLI's output and
prompt, the SDK, and the layers of containers never collected."""

from __future__ import annotations

import json
import os
import time

import pytest

from oci.digest import sha256_bytes
from oci.store import ContainerUse, parse_rfc3339_ns
from tests.helpers.engine import Engine
from tests.helpers.images import busybox_rootfs_tar, make_tar, tar_entry


def _img(store, name, data, ref=None, created="2024-01-02T03:04:05Z", changes=()):
    import io
    tar = make_tar([tar_entry(name, data=data)])
    return store.import_tar(io.BytesIO(tar), ref, changes=list(changes), created=created)


def _layers(store):
    return sorted(n for n in os.listdir(store.layers_dir) if not n.startswith("."))


def _blobs(store):
    return sorted(os.listdir(store.blobs_dir))


def test_prune_dangling_only(store):
    keep = _img(store, "a", b"a", "keep:1")
    gone = _img(store, "b", b"b")  # no reference: dangling
    dig = _img(store, "c", b"c")
    store.add_reference("dig/only@sha256:" + "a" * 64, dig.id)  # digest-only: dangling too
    size_b = store.layer_meta(gone.layers[0])["size"]
    size_c = store.layer_meta(dig.layers[0])["size"]
    rep = store.prune()
    assert sorted(rep.pop("_events")) == sorted([
        ("delete", gone.id, gone.id), ("untag", dig.id, "dig/only@sha256:" + "a" * 64),
        ("delete", dig.id, dig.id)])
    deleted = rep["ImagesDeleted"]
    assert {"Untagged": "dig/only@sha256:" + "a" * 64} in deleted
    assert {"Deleted": gone.id} in deleted and {"Deleted": dig.id} in deleted
    assert {"Deleted": gone.layers[0]} in deleted and {"Deleted": dig.layers[0]} in deleted
    assert rep["SpaceReclaimed"] == size_b + size_c > 0
    assert [i.id for i in store.list()] == [keep.id]
    assert _layers(store) == [keep.layers[0][7:]]
    assert set(_blobs(store)) == {keep.id[7:], store.image_record(keep.id)["layers"][0]["blob"][7:]}
    assert store.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0, "_events": []}


def test_prune_all_skips_images_of_containers_and_filters(store):
    used = _img(store, "a", b"a", "used:1")
    old = _img(store, "b", b"b", "old:1", created="2020-01-01T00:00:00Z")
    new = _img(store, "c", b"c", "new:1", created="2030-01-01T00:00:00Z")
    _img(store, "d", b"d", "lab:1", changes=["LABEL env=prod keep=yes"])
    users = [ContainerUse("c" * 64, used.id, False)]
    # until: only images created before it; label: all must match; label!: excluded
    rep = store.prune(dangling_only=False, until_ns=parse_rfc3339_ns("2021-01-01T00:00:00Z"),
                      in_use=users)
    assert rep["ImagesDeleted"][:2] == [{"Untagged": "old:1"}, {"Deleted": old.id}]
    assert store.exists("new:1") and store.exists("lab:1")
    rep = store.prune(dangling_only=False, labels=["env=prod"], not_labels=["keep=yes"])
    assert rep["ImagesDeleted"] is None
    rep = store.prune(dangling_only=False, labels=["env=prod", "keep"], in_use=users)
    assert {"Untagged": "lab:1"} in rep["ImagesDeleted"]
    rep = store.prune(dangling_only=False, in_use=users)
    assert {"Untagged": "new:1"} in rep["ImagesDeleted"]
    assert [i.id for i in store.list()] == [used.id]  # a container uses it: kept
    assert not store.exists(new.id)


def test_collect_removes_orphans_but_not_container_layers(store):
    a = _img(store, "a", b"a", "a:1")
    orphan, _ = store.put_blob(b"nobody refers to me")
    t = make_tar([tar_entry("x", data=b"x")])
    b, _ = store.put_blob(t)
    lone = store.ensure_layer(None, sha256_bytes(t), b)  # a layer no image uses
    store.set_container_layers(a.layers)  # a container runs on a's layers
    # rmi -f while a (stopped) container uses the image: the image goes, its layer stays
    out = store.remove("a:1", force=True, in_use=[ContainerUse("c" * 64, a.id, False)])
    assert out == [{"Untagged": "a:1"}, {"Deleted": a.id}]
    res = store.collect()
    assert lone in res["layers"] and orphan in res["blobs"] and b in res["blobs"]
    assert os.path.isdir(a.layer_dirs[0]) and store.has_layer(a.layers[0])
    store.set_container_layers([a.layer_dirs[0]])  # paths of LowerDir work too
    assert store.collect() == {"layers": [], "blobs": []}
    store.set_container_layers([])  # its image is gone, yet the container's layers stay pinned
    assert store.collect() == {"layers": [], "blobs": []}
    with open(os.path.join(store.root, "pins.json")) as f:
        assert json.load(f) == {"c" * 64: a.layers}
    store.set_container_layers([], containers=[])  # the container is gone
    res = store.collect()
    assert res["layers"] == [a.layers[0]] and not _layers(store) and not _blobs(store)


def test_collect_defers_while_an_import_is_in_flight(store):
    orphan, _ = store.put_blob(b"pending")
    with store.lease():
        assert store.collect() == {"layers": [], "blobs": []}
        assert store.has_blob(orphan)
    assert not store.has_blob(orphan)  # collected at the end of the last lease


# --------------------------------------------------------------------------- daemon


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune")
    bb = str(d / "busybox.tar")
    busybox_rootfs_tar(bb)
    e = Engine()
    try:
        e.start()
        e.cli("import", "-c", 'CMD ["sh"]', bb, "busybox:latest", check=True)
        e.tars = d  # type: ignore[attr-defined]
        yield e
    finally:
        e.cleanup()


def _dangling_tar(engine, name: str) -> str:
    """A saved archive of an untagged image with one small layer (loading it
    again always gives the same image id)."""
    path = str(engine.tars / f"{name}.tar")
    if not os.path.exists(path):
        layer = str(engine.tars / f"{name}-layer.tar")
        with open(layer, "wb") as f:
            f.write(make_tar([tar_entry(name, data=name.encode() * 1000)]))
        res = engine.cli("import", "-m", name, layer, check=True)
        iid = res.stdout.decode().strip()
        assert engine.cli("save", "-o", path, iid).returncode == 0
    return path


def _load(engine, path):
    res = engine.cli("load", "-i", path)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode().split("Loaded image ID: ")[-1].strip()


def test_cli_prune_prompt_and_output_match_docker(engine):
    path = _dangling_tar(engine, "dangle")
    iid = _load(engine, path)
    res = engine.cli("image", "prune", input=b"n\n")
    assert res.returncode == 0 and res.stdout == (
        b"WARNING! This will remove all dangling images.\n"
        b"Are you sure you want to continue? [y/N] ")
    assert engine.request("GET", f"/images/{iid}/json")[0] == 200
    dres = engine.docker("image", "prune", input=b"n\n")
    assert (dres.returncode, dres.stdout) == (res.returncode, res.stdout)
    res = engine.cli("image", "prune", "-a", input=b"N\n")
    dres = engine.docker("image", "prune", "-a", input=b"N\n")
    assert res.stdout == dres.stdout == (
        b"WARNING! This will remove all images without at least one container associated "
        b"to them.\nAre you sure you want to continue? [y/N] ")
    res = engine.cli("image", "prune", input=b"y\n")
    assert res.returncode == 0, res.stderr
    ours = res.stdout.decode()
    assert ours.startswith("WARNING! This will remove all dangling images.\n"
                           "Are you sure you want to continue? [y/N] Deleted Images:\n"
                           f"deleted: {iid}\ndeleted: sha256:")
    assert ours.endswith("\n\nTotal reclaimed space: 6kB\n"), ours
    assert _load(engine, path) == iid
    dres = engine.docker("image", "prune", "-f")
    assert dres.returncode == 0 and dres.stdout.decode() == ours.split("[y/N] ")[1]
    res = engine.cli("image", "prune", "-f")
    assert res.stdout == b"Total reclaimed space: 0B\n"
    res = engine.cli("image", "prune", "-f", "--filter", "dangling=maybe")
    assert res.returncode == 1
    assert res.stderr == b"Error response from daemon: invalid filter 'dangling=[maybe true]'\n"
    res = engine.cli("image", "prune", "-f", "--filter", "colour=red")
    assert res.stderr == b"Error response from daemon: invalid filter 'colour'\n"


def test_prune_all_keeps_what_containers_use(engine):
    engine.cli("tag", "busybox", "spare/one:1", check=True)
    cid = engine.cli("create", "busybox", "true", check=True).stdout.decode().strip()
    path = _dangling_tar(engine, "other")
    _load(engine, path)
    res = engine.cli("image", "prune", "-a", "-f", "--filter", "until=2000-01-01T00:00:00Z")
    assert res.stdout == b"Total reclaimed space: 0B\n"  # everything is newer
    res = engine.cli("image", "prune", "-a", "-f")
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode()
    assert "untagged: spare/one:1\n" not in out  # busybox's image is used by the container
    assert "deleted: " in out
    assert engine.request("GET", "/images/busybox:latest/json")[0] == 200
    assert engine.request("GET", "/images/spare/one:1/json")[0] == 200
    engine.cli("rm", cid, check=True)
    engine.cli("rmi", "spare/one:1", check=True)


def test_rmi_force_keeps_a_stopped_containers_layers(engine):
    path = _dangling_tar(engine, "layered")
    iid = _load(engine, path)
    engine.cli("tag", iid, "lay/ered:1", check=True)
    status, inspect = engine.request("GET", f"/images/{iid}/json")
    layer_dir = inspect["GraphDriver"]["Data"]["UpperDir"]
    cid = engine.cli("create", "lay/ered:1", "true", check=True).stdout.decode().strip()
    res = engine.cli("rmi", "lay/ered:1")
    assert res.returncode == 1 and b"container " + cid[:12].encode() in res.stderr
    res = engine.cli("rmi", "-f", "lay/ered:1")
    assert res.returncode == 0 and res.stdout.decode() == f"Untagged: lay/ered:1\nDeleted: {iid}\n"
    assert os.path.isdir(layer_dir)  # the container still needs it
    engine.cli("image", "prune", "-a", "-f", check=True)
    assert os.path.isdir(layer_dir)
    engine.cli("rm", cid, check=True)
    assert not os.path.exists(layer_dir)  # collected as its last container goes


def test_a_container_whose_image_was_force_removed_still_starts(engine):
    # an image with a layer of its own (busybox plus one file), so that only the
    # container keeps that layer once the image is gone, as with dockerd
    from tests.helpers.images import busybox_rootfs_entries, write_tar

    tar = str(engine.tars / "own-layer.tar")
    write_tar(tar, sorted(busybox_rootfs_entries() + [tar_entry("marker", data=b"kept\n")],
                          key=lambda e: e[0].name))
    engine.cli("import", tar, "own/layer:1", check=True)
    cid = engine.cli("create", "own/layer:1", "cat", "/marker", check=True).stdout.decode().strip()
    try:
        assert engine.cli("rmi", "-f", "own/layer:1").returncode == 0
        engine.cli("image", "prune", "-a", "-f", check=True)
        res = engine.cli("start", "-a", cid)
        assert (res.returncode, res.stdout) == (0, b"kept\n"), res.stderr
    finally:
        engine.cli("rm", "-f", cid)


def test_sdk_prune(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url="unix://" + engine.sock, timeout=60)
    try:
        iid = _load(engine, _dangling_tar(engine, "sdk"))
        rep = client.images.prune()
        assert {"Deleted": iid} in rep["ImagesDeleted"] and rep["SpaceReclaimed"] > 0
        assert client.images.prune(filters={"dangling": False, "label": ["nope"]}) == {
            "ImagesDeleted": None, "SpaceReclaimed": 0}
        # (--until as a time a second ahead: "1s" would be a second ago, before
        # the prune on a fast host)
        res = engine.cli("events", "--since", "0", "--until", str(int(time.time()) + 1),
                         "--filter", "type=image",
                         "--filter", "event=prune", "--format", "{{.Action}} {{.Actor.Attributes}}")
        assert "prune map[reclaimed:" in res.stdout.decode()
    finally:
        client.close()
