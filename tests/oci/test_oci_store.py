import gzip
import io
import json
import os
import threading

import pytest

from oci.digest import chain_ids, sha256_bytes, short_id
from oci.errors import (BlobNotFound, DigestMismatch, ImageConflict, ImageNotFound,
                        InvalidArgument, InvalidReference)
from oci.store import ContainerUse, ImageStore, parse_rfc3339_ns, rfc3339_nano
from tests.helpers.images import make_tar, tar_entry as E

CREATED = "2024-01-02T03:04:05.123456789Z"


def listing(root):
    out = []
    for r, dirs, files in os.walk(root):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(r, n), root))
    return sorted(out)


def no_tmp_left(store):
    return not [p for p in listing(store.root) if os.path.basename(p).startswith((".tmp-", ".del-"))]


def imp(store, data, ref=None, created=CREATED, **kw):
    return store.import_tar(io.BytesIO(data), ref, created=created, **kw)


# ----------------------------------------------------------------- blobs


def test_put_blob_bytes_and_stream(store):
    d, n = store.put_blob(b"hello")
    assert (d, n) == (sha256_bytes(b"hello"), 5)
    assert store.has_blob(d)
    with store.open_blob(d) as f:
        assert f.read() == b"hello"
    big = os.urandom(3 << 20)
    d2, n2 = store.put_blob(io.BytesIO(big), expected_digest=sha256_bytes(big))
    assert n2 == len(big) and store.read_blob(d2) == big
    assert os.path.basename(store.blob_path(d2)) == d2[7:]
    assert store.put_blob(b"hello") == (d, 5)  # idempotent
    assert store.delete_blob(d) and not store.has_blob(d) and not store.delete_blob(d)
    with pytest.raises(BlobNotFound):
        store.open_blob(d)
    assert no_tmp_left(store)


def test_put_blob_mismatch_leaves_nothing(store):
    before = listing(store.root)
    wrong = sha256_bytes(b"other")
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        store.put_blob(b"hello", expected_digest=wrong)
    with pytest.raises(DigestMismatch):
        store.put_blob(io.BytesIO(b"x" * 5_000_000), expected_digest=wrong)
    assert listing(store.root) == before
    assert not store.has_blob(wrong) and not store.has_blob(sha256_bytes(b"hello"))
    with pytest.raises(InvalidArgument):
        store.put_blob(b"x", expected_digest="sha256:nothex")


def test_put_blob_stream_error_leaves_nothing(store):
    class Boom:
        def __init__(self):
            self.n = 0

        def read(self, n=-1):
            self.n += 1
            if self.n > 3:
                raise IOError("network down")
            return b"x" * 1000

    before = listing(store.root)
    with pytest.raises(IOError):
        store.put_blob(Boom())
    assert listing(store.root) == before


# ----------------------------------------------------------------- import


def test_import_tar_and_targz_same_stable_id(tmp_path, busybox_tar, busybox_tar_gz):
    ids = []
    for i, path in enumerate([busybox_tar, busybox_tar_gz, busybox_tar]):
        s = ImageStore(str(tmp_path / f"s{i}"), durable=False)
        with open(path, "rb") as f:
            ids.append(s.import_tar(f, "busybox", created=CREATED).id)
    assert ids[0] == ids[1] == ids[2]


def test_import_image_config(store, bb, busybox_tar):
    cfg = bb.config
    assert cfg["os"] == "linux" and cfg["architecture"] in ("amd64", "arm64", "arm", "386",
                                                           "ppc64le", "s390x", "riscv64")
    assert cfg["created"] == CREATED == bb.created
    assert cfg["comment"] == "Imported from -"
    assert cfg["history"] == [{"created": CREATED, "comment": "Imported from -"}]
    import hashlib
    with open(busybox_tar, "rb") as f:
        diff = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [diff]}
    assert cfg["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert cfg["config"]["Cmd"] == ["sh"]
    assert bb.id == sha256_bytes(store.read_blob(bb.id))  # id = digest of the config
    assert bb.layers == [diff]  # single layer: chain id == diff id
    assert bb.repo_tags == ["busybox:latest"] and bb.repo_digests == []
    assert bb.size > 1_000_000
    assert os.path.isfile(os.path.join(bb.layer_dirs[0], "bin", "busybox"))
    meta = store.layer_meta(diff)
    assert meta["diff_id"] == diff and meta["parent"] is None and meta["size"] == bb.size
    assert store.has_blob(meta["blob"])  # the layer tar is kept for save/push
    assert no_tmp_left(store)


def test_import_message_platform_and_changes(store):
    data = make_tar([E("a", data=b"1")])
    img = imp(store, data, "x/y:1", message="hello", platform="linux/arm64/v8", changes=[
        "ENTRYPOINT [\"/bin/echo\"]", "CMD echo hi there", "ENV A=1 B=\"two words\"",
        "ENV C $A-x", "WORKDIR /app", "WORKDIR sub", "USER app:app", "LABEL k=v \"a b\"=c",
        "EXPOSE 80 53/udp", "VOLUME [\"/data\"]", "STOPSIGNAL SIGINT"])
    c = img.config["config"]
    assert img.config["comment"] == "hello"
    assert (img.config["architecture"], img.config["variant"]) == ("arm64", "v8")
    assert c["Entrypoint"] == ["/bin/echo"]
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi there"]
    assert c["Env"][1:] == ["A=1", "B=two words", "C=1-x"]
    assert c["WorkingDir"] == "/app/sub" and c["User"] == "app:app"
    assert c["Labels"] == {"k": "v", "a b": "c"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}} and c["StopSignal"] == "SIGINT"
    assert img.repo_tags == ["x/y:1"]


def test_import_bad_change_or_ref_stores_nothing(store):
    data = make_tar([E("a", data=b"1")])
    before = listing(store.root)
    with pytest.raises(InvalidArgument, match="^run is not a valid change command$"):
        imp(store, data, "x", changes=["RUN echo"])
    with pytest.raises(InvalidReference, match="cannot import digest reference"):
        imp(store, data, "x@sha256:" + "a" * 64)
    with pytest.raises(InvalidReference, match="must be lowercase"):
        imp(store, data, "Upper")
    with pytest.raises(InvalidArgument):
        imp(store, b"not a tar" * 1000, "x")
    assert listing(store.root) == before


def test_import_without_ref_is_dangling(store):
    img = imp(store, make_tar([E("a", data=b"1")]))
    assert img.repo_tags == [] and img.to_docker_summary()["RepoTags"] == ["<none>:<none>"]
    assert img.to_docker_summary()["RepoDigests"] == ["<none>@<none>"]
    assert store.get(img.id).id == img.id


def test_import_default_created_is_now(store):
    import time
    img = store.import_tar(io.BytesIO(make_tar([E("a", data=b"1")])))
    assert abs(parse_rfc3339_ns(img.created) / 1e9 - time.time()) < 60


# ----------------------------------------------------------------- get / list


def test_get_lookups(store, bb):
    h = bb.id[7:]
    for key in (bb.id, h, "sha256:" + h[:5], h[:12], h[:1], "busybox", "busybox:latest",
                "docker.io/library/busybox:latest", "library/busybox"):
        assert store.get(key).id == bb.id, key
    assert store.resolve("busybox") == bb.id
    assert store.exists("busybox") and not store.exists("nope") and not store.exists("UPPER")


def test_get_not_found_messages(store, bb):
    cases = {"busybox:2": "No such image: busybox:2",
             "nope": "No such image: nope:latest",
             "localhost:5000/a/b": "No such image: localhost:5000/a/b:latest",
             "sha256:" + "f" * 64: "No such image: sha256:" + "f" * 64,
             "f" * 64: "No such image: sha256:" + "f" * 64,
             "busybox@sha256:" + "f" * 64: "No such image: busybox@sha256:" + "f" * 64}
    for key, msg in cases.items():
        with pytest.raises(ImageNotFound) as ei:
            store.get(key)
        assert str(ei.value) == msg
        assert ei.value.http_status == 404
    with pytest.raises(InvalidReference):
        store.get("Busy")


def test_ambiguous_prefix_is_not_found(store):
    imgs = [imp(store, make_tar([E("a", data=str(i).encode())])) for i in range(40)]
    ids = [i.id[7:] for i in imgs]
    # find two ids sharing their first hex digit
    firsts = {}
    for i in ids:
        firsts.setdefault(i[0], []).append(i)
    shared = next(v for v in firsts.values() if len(v) > 1)
    with pytest.raises(ImageNotFound):
        store.get(shared[0][0])
    assert store.get(shared[0][:12]).id[7:] == shared[0]


def test_list_and_summary(store, bb):
    other = imp(store, make_tar([E("a", data=b"1")]), "other:1", created="2025-01-01T00:00:00Z")
    imgs = store.list()
    assert [i.id for i in imgs] == [other.id, bb.id]  # newest first
    s = imgs[1].to_docker_summary()
    assert set(s) == {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size",
                      "SharedSize", "VirtualSize", "Labels", "Containers"}
    assert s["RepoTags"] == ["busybox:latest"] and s["RepoDigests"] == []
    assert s["Created"] == 1704164645 and s["Size"] == s["VirtualSize"] == bb.size
    assert s["Containers"] == -1 and s["SharedSize"] == -1 and s["ParentId"] == ""


def test_inspect_shape(store, bb):
    i = store.get("busybox").to_docker_inspect()
    for k in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
              "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os",
              "Size", "VirtualSize", "GraphDriver", "RootFS", "Metadata"):
        assert k in i, k
    assert i["Created"] == CREATED
    assert i["Config"]["Cmd"] == ["sh"] and i["Config"]["Entrypoint"] is None
    assert i["Config"]["Env"][0].startswith("PATH=")
    assert i["RootFS"] == {"Type": "layers", "Layers": bb.diff_ids}
    assert i["GraphDriver"]["Data"]["UpperDir"] == bb.layer_dirs[0]
    assert i["Metadata"]["LastTagTime"].endswith("Z")
    json.dumps(i)


def test_rfc3339():
    assert rfc3339_nano(1704164645123456789) == "2024-01-02T03:04:05.123456789Z"
    assert rfc3339_nano(1704164645000000000) == "2024-01-02T03:04:05Z"
    assert rfc3339_nano(1704164645100000000) == "2024-01-02T03:04:05.1Z"
    assert parse_rfc3339_ns("2024-01-02T03:04:05.123456789Z") == 1704164645123456789
    assert parse_rfc3339_ns("2024-01-02T05:04:05+02:00") == 1704164645 * 10 ** 9
    assert parse_rfc3339_ns("garbage") == 0


# ----------------------------------------------------------------- tag / references


def test_tag_and_repositories_json(store, bb):
    img = store.tag("busybox", "localhost:5000/bb")
    store.tag(bb.id[7:19], "busybox:2")
    assert img.last_tag_time
    assert store.get("busybox").repo_tags == ["busybox:2", "busybox:latest", "localhost:5000/bb:latest"]
    with open(os.path.join(store.root, "repositories.json")) as f:
        data = json.load(f)
    assert data == {"Repositories": {
        "busybox": {"busybox:2": bb.id, "busybox:latest": bb.id},
        "localhost:5000/bb": {"localhost:5000/bb:latest": bb.id}}}
    with pytest.raises(InvalidReference, match="refusing to create a tag with a digest reference"):
        store.tag("busybox", "x@sha256:" + "a" * 64)
    with pytest.raises(ImageNotFound):
        store.tag("nope", "x")
    assert store.untag("busybox:2") and not store.untag("busybox:2")


def test_tag_moves_between_images(store, bb):
    other = imp(store, make_tar([E("a", data=b"1")]), "busybox")
    assert store.get("busybox").id == other.id
    assert store.get(bb.id).repo_tags == []  # the old image is dangling now


def test_digest_references(store, bb):
    dig = "sha256:" + "d" * 64
    store.add_reference(f"busybox@{dig}", bb.id)
    img = store.get(f"busybox@{dig}")
    assert img.repo_digests == [f"busybox@{dig}"]
    other = imp(store, make_tar([E("a", data=b"1")]))
    with pytest.raises(ImageConflict, match="Cannot overwrite digest"):
        store.add_reference(f"busybox@{dig}", other.id)
    # a tag + digest reference resolves by digest
    assert store.get(f"busybox:nosuchtag@{dig}").id == bb.id


def test_persistence(tmp_path, busybox_tar):
    s = ImageStore(str(tmp_path / "image"), durable=False)
    with open(busybox_tar, "rb") as f:
        img = s.import_tar(f, "busybox:1", created=CREATED)
    s.tag("busybox:1", "bb")
    s2 = ImageStore(str(tmp_path / "image"), durable=False)
    got = s2.get("bb")
    assert got.id == img.id and got.repo_tags == ["bb:latest", "busybox:1"]
    assert got.config == img.config and got.size == img.size
    assert s2.layer_dirs(got) == img.layer_dirs


def test_recovery_removes_leftovers(tmp_path, busybox_tar):
    root = tmp_path / "image"
    s = ImageStore(str(root), durable=False)
    with open(busybox_tar, "rb") as f:
        img = s.import_tar(f, "busybox", created=CREATED)
    # simulate a crash mid-import / mid-write / mid-delete
    os.makedirs(root / "layers" / ".tmp-abc" / "fs" / "half")
    os.makedirs(root / "layers" / ".del-abc" / "fs")
    (root / "blobs" / "sha256" / ".tmp-xyz").write_bytes(b"partial")
    (root / ".tmp-repos").write_bytes(b"{")
    (root / "imagedb" / ".tmp-1").write_bytes(b"{")
    # a record whose config blob is gone is ignored; a stale ref to it is dropped
    ghost = "e" * 64
    (root / "imagedb" / ghost).write_text(json.dumps({"id": "sha256:" + ghost, "layers": []}))
    data = json.loads((root / "repositories.json").read_text())
    data["Repositories"]["ghost"] = {"ghost:latest": "sha256:" + ghost}
    (root / "repositories.json").write_text(json.dumps(data))
    s2 = ImageStore(str(root), durable=False)
    assert no_tmp_left(s2)
    assert [i.id for i in s2.list()] == [img.id]
    assert "ghost" not in json.loads((root / "repositories.json").read_text())["Repositories"]


# ----------------------------------------------------------------- rmi


def test_rmi_single_tag_deletes_everything(store, bb):
    layer = bb.layers[0]
    blob = store.layer_meta(layer)["blob"]
    res = store.remove("busybox")
    assert res == [{"Untagged": "busybox:latest"}, {"Deleted": bb.id}, {"Deleted": layer}]
    assert not store.has_blob(bb.id) and not store.has_blob(blob)
    assert not store.has_layer(layer) and not os.path.exists(bb.layer_dirs[0])
    assert store.list() == []
    assert os.listdir(os.path.join(store.root, "imagedb")) == []
    assert no_tmp_left(store)
    with pytest.raises(ImageNotFound, match="^No such image: busybox:latest$"):
        store.remove("busybox")


def test_rmi_one_of_two_tags_only_untags(store, bb):
    store.tag("busybox", "busybox:2")
    assert store.remove("busybox:2") == [{"Untagged": "busybox:2"}]
    assert store.get("busybox").repo_tags == ["busybox:latest"]


def test_rmi_by_name_used_by_container(store, bb):
    cid = "abc123def4567890" * 4
    with pytest.raises(ImageConflict) as ei:
        store.remove("busybox", in_use=[(cid, bb.id, False)])
    assert str(ei.value) == (
        f'conflict: unable to remove repository reference "busybox" (must force) - '
        f"container {cid[:12]} is using its referenced image {bb.id[7:19]}")
    assert ei.value.http_status == 409
    # bare image ids are accepted too
    with pytest.raises(ImageConflict):
        store.remove("busybox", in_use={bb.id})
    # with another tag, untagging one is fine
    store.tag("busybox", "busybox:2")
    assert store.remove("busybox:2", in_use=[ContainerUse(cid, bb.id)]) == [{"Untagged": "busybox:2"}]


def test_rmi_force_by_name(store, bb):
    # running container: the tag goes, the image stays (dangling)
    res = store.remove("busybox", force=True, in_use=[("c1" * 32, bb.id, True)])
    assert res == [{"Untagged": "busybox:latest"}]
    assert store.get(bb.id).repo_tags == []
    # stopped container: force deletes the image
    store.tag(bb.id, "busybox")
    res = store.remove("busybox", force=True, in_use=[("c1" * 32, bb.id, False)])
    assert res[0] == {"Untagged": "busybox:latest"} and {"Deleted": bb.id} in res


def test_rmi_by_id_conflicts(store, bb):
    sid = bb.id[7:19]
    store.tag("busybox", "other")
    with pytest.raises(ImageConflict) as ei:
        store.remove(sid)
    assert str(ei.value) == (f"conflict: unable to delete {sid} (must be forced) - "
                             "image is referenced in multiple repositories")
    store.untag("other")
    with pytest.raises(ImageConflict) as ei:
        store.remove(sid, in_use=[("feed" * 16, bb.id, False)])
    assert str(ei.value) == (f"conflict: unable to delete {sid} (must be forced) - "
                             f"image is being used by stopped container feedfeedfeed")
    with pytest.raises(ImageConflict) as ei:
        store.remove(sid, force=True, in_use=[("beef" * 16, bb.id, True)])
    assert str(ei.value) == (f"conflict: unable to delete {sid} (cannot be forced) - "
                             f"image is being used by running container beefbeefbeef")
    assert store.get("busybox").id == bb.id  # nothing changed


def test_rmi_by_id_single_tag(store, bb):
    res = store.remove(bb.id[7:15])
    assert res[:2] == [{"Untagged": "busybox:latest"}, {"Deleted": bb.id}]


def test_rmi_by_id_force_with_many_tags(store, bb):
    store.tag("busybox", "other:1")
    store.tag("busybox", "busybox:2")
    res = store.remove(bb.id, force=True)
    assert res[:4] == [{"Untagged": "busybox:2"}, {"Untagged": "busybox:latest"},
                       {"Untagged": "other:1"}, {"Deleted": bb.id}]


def test_rmi_digest_refs_cleaned_with_last_tag(store, bb):
    dig = "sha256:" + "d" * 64
    store.add_reference(f"busybox@{dig}", bb.id)
    res = store.remove("busybox")
    assert res[:3] == [{"Untagged": "busybox:latest"}, {"Untagged": f"busybox@{dig}"},
                       {"Deleted": bb.id}]


def test_shared_layers_survive_until_last_image(store, busybox_tar):
    with open(busybox_tar, "rb") as f:
        a = store.import_tar(f, "a", created="2024-01-01T00:00:00Z")
    with open(busybox_tar, "rb") as f:
        b = store.import_tar(f, "b", created="2024-01-01T00:00:01Z")
    assert a.id != b.id and a.layers == b.layers
    assert store.remove("a") == [{"Untagged": "a:latest"}, {"Deleted": a.id}]
    assert store.has_layer(a.layers[0]) and os.path.isdir(b.layer_dirs[0])
    assert store.remove("b")[-1] == {"Deleted": b.layers[0]}
    assert not store.has_layer(a.layers[0])


# ----------------------------------------------------------------- add_image, layers order, gc


def _two_layer_image(store, tmp_path=None):
    l0 = make_tar([E("etc", "dir"), E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
                   E("etc/motd", data=b"hi"), E("keep", data=b"k")])
    l1 = gzip.compress(make_tar([E("etc", "dir"), E("etc/.wh.motd", data=b""),
                                 E("new", data=b"n")]))
    d0, _ = store.put_blob(l0)
    d1, _ = store.put_blob(l1)
    diff0 = sha256_bytes(l0)
    diff1 = sha256_bytes(gzip.decompress(l1))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": CREATED,
                      "config": {"Cmd": ["sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [diff0, diff1]}}).encode()
    return cfg, [d0, d1], [diff0, diff1]


def test_add_image_from_blobs_and_layer_order(store):
    cfg, blobs, diffs = _two_layer_image(store)
    img = store.add_image(cfg, blobs, refs=["two"], manifest="sha256:" + "c" * 64,
                          media_types=["application/vnd.oci.image.layer.v1.tar",
                                       "application/vnd.oci.image.layer.v1.tar+gzip"])
    assert img.id == sha256_bytes(cfg)
    assert img.layers == chain_ids(diffs)
    dirs = store.layer_dirs(img)
    assert dirs == [store.layer_dir(c) for c in chain_ids(diffs)]  # bottom first
    assert os.path.isfile(os.path.join(dirs[0], "keep"))
    assert os.path.isfile(os.path.join(dirs[1], "new"))
    assert store.lowerdir(img) == f"{dirs[1]}:{dirs[0]}"  # overlayfs order: top first
    assert img.repo_tags == ["two:latest"]
    assert img.repo_digests == ["two@sha256:" + "c" * 64]
    assert store.layer_meta(img.layers[1])["parent"] == img.layers[0]
    # adding it again reuses the layers
    assert store.add_image(cfg, [None, None]).id == img.id


def test_add_image_diff_id_mismatch(store):
    cfg, blobs, diffs = _two_layer_image(store)
    bad = json.loads(cfg)
    bad["rootfs"]["diff_ids"][1] = sha256_bytes(b"something else")
    with pytest.raises(DigestMismatch, match="diff_id mismatch"):
        store.add_image(json.dumps(bad).encode(), blobs)
    assert no_tmp_left(store)
    assert not store.has_layer(chain_ids(bad["rootfs"]["diff_ids"])[1])
    with pytest.raises(InvalidArgument):
        store.add_image(b"{}", [])
    with pytest.raises(InvalidArgument):
        store.add_image(cfg, blobs[:1])


def test_gc(store, bb):
    orphan, _ = store.put_blob(b"orphan")
    fake_layer = "sha256:" + "9" * 64
    os.makedirs(os.path.join(store.layers_dir, "9" * 64, "fs"))
    res = store.gc()
    assert res == {"layers": [fake_layer], "blobs": [orphan]}
    assert store.has_blob(bb.id) and store.has_layer(bb.layers[0])
    assert store.has_blob(store.layer_meta(bb.layers[0])["blob"])
    assert store.gc() == {"layers": [], "blobs": []}


def test_concurrent_imports_and_gc(store):
    errors = []
    images = {}

    def worker(i):
        try:
            data = make_tar([E("f", data=str(i % 3).encode())])
            img = store.import_tar(io.BytesIO(data), f"img{i}", created=CREATED)
            images[i] = img
            if i % 4 == 0:
                store.gc()
            if i % 5 == 0:
                store.remove(f"img{i}")
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.gc()
    for i, img in images.items():
        if i % 5 == 0:
            continue
        got = store.get(f"img{i}")
        assert got.id == img.id
        for d in got.layer_dirs:
            assert os.path.isfile(os.path.join(d, "f"))
    assert no_tmp_left(store)
    json.load(open(os.path.join(store.root, "repositories.json")))


def test_short_id_property(bb):
    assert bb.short_id == short_id(bb.id) == bb.id[7:19]


class _Blocking:
    """A reader that stops mid-stream until released."""

    def __init__(self, data, after=1024):
        self.b = io.BytesIO(data)
        self.after = after
        self.reached = threading.Event()
        self.release = threading.Event()

    def read(self, n=-1):
        if self.b.tell() >= self.after and not self.release.is_set():
            self.reached.set()
            assert self.release.wait(10)
        return self.b.read(n if n and n > 0 else -1)


def test_content_deletion_waits_for_inflight_imports(store, bb):
    data = make_tar([E("f", data=os.urandom(200_000))])
    r = _Blocking(data)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("img", store.import_tar(r, "new")))
    t.start()
    assert r.reached.wait(10)
    # rmi while an import holds a lease: the answer is immediate, deletion deferred
    res = store.remove("busybox")
    assert res[-1] == {"Deleted": bb.layers[0]}
    assert os.path.isdir(bb.layer_dirs[0])
    with pytest.raises(TimeoutError):
        store.gc(timeout=0.1)
    r.release.set()
    t.join(10)
    assert not os.path.exists(bb.layer_dirs[0]) and not store.has_blob(bb.id)
    img = result["img"]
    assert store.get("new").id == img.id and os.path.isdir(img.layer_dirs[0])
    assert store.gc() == {"layers": [], "blobs": []}
    assert no_tmp_left(store)
