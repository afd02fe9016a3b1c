"""The store's pieces for pulls: verified blob writers, ensure_layer, discard,
image_record, add_image(manifests=)."""

from __future__ import annotations

import json
import os

import pytest

from oci.digest import chain_id, sha256_bytes
from oci.errors import DigestMismatch, LayerNotFound
from tests.helpers.images import make_tar, tar_entry


def test_blob_writer_commit_and_mismatch(store):
    data = b"hello world" * 100
    d = sha256_bytes(data)
    with store.blob_writer(d, len(data)) as w:
        w.write(data[:10])
        w.reset()  # a refused resume starts over
        assert w.offset == 0
        w.write(data)
        assert w.current_digest() == d
        assert w.commit() == d
    assert store.read_blob(d) == data

    other = b"x" * len(data)
    with pytest.raises(DigestMismatch):
        with store.blob_writer("sha256:" + "1" * 64, len(other)) as w:
            w.write(other)
            w.commit()
    with pytest.raises(DigestMismatch):
        with store.blob_writer(None, 3) as w:
            w.write(b"four")
    with store.blob_writer(None, 10) as w:  # left without commit
        w.write(b"short")
    with pytest.raises(DigestMismatch):
        with store.blob_writer(None, 10) as w:
            w.write(b"short")
            w.commit()
    assert os.listdir(store.blobs_dir) == [d[7:]]  # nothing else, no temp file


def test_ensure_layer_discard_and_record(store):
    t1 = make_tar([tar_entry("a", data=b"a")])
    t2 = make_tar([tar_entry("b", data=b"b")])
    b1, _ = store.put_blob(t1)
    b2, _ = store.put_blob(t2)
    d1, d2 = sha256_bytes(t1), sha256_bytes(t2)
    seen = []
    with store.lease():
        c1 = store.ensure_layer(None, d1, b1, "application/vnd.oci.image.layer.v1.tar",
                                progress=seen.append)
        assert seen and seen[-1] == len(t1)
        with pytest.raises(LayerNotFound):
            store.ensure_layer("sha256:" + "9" * 64, d2, b2)
        with pytest.raises(DigestMismatch):
            store.ensure_layer(c1, sha256_bytes(b"nope"), b2)
        c2 = store.ensure_layer(c1, d2, b2)
        assert c2 == chain_id(c1, d2)
        assert store.ensure_layer(c1, d2, b2) == c2  # exists: no work
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [d1, d2]},
                      "architecture": "amd64", "os": "linux"}).encode()
    man, _ = store.put_blob(b'{"manifest": 1}')
    img = store.add_image(cfg, [None, None], refs=["x/y:1"], manifests=[man])
    rec = store.image_record("x/y:1")
    assert rec["manifests"] == [man]
    assert [(x["chain_id"], x["blob"]) for x in rec["layers"]] == [(c1, b1), (c2, b2)]
    assert rec["layers"][0]["media_type"] == "application/vnd.oci.image.layer.v1.tar"

    # discard keeps what an image uses, deletes the rest
    orphan, _ = store.put_blob(b"orphan")
    t3 = make_tar([tar_entry("c", data=b"c")])
    b3, _ = store.put_blob(t3)
    c3 = store.ensure_layer(c2, sha256_bytes(t3), b3)
    store.discard(blobs=[orphan, b1, b3, man], layers=[c3, c1])
    assert not store.has_blob(orphan) and not store.has_blob(b3)
    assert store.has_blob(b1) and store.has_blob(man)
    assert not store.has_layer(c3) and store.has_layer(c1)
    assert store.get(img.id).layers == [c1, c2]

    # under another lease, discard is deferred to the lease's end
    orphan2, _ = store.put_blob(b"orphan2")
    with store.lease():
        store.discard(blobs=[orphan2])
        assert store.has_blob(orphan2)
    assert not store.has_blob(orphan2)
