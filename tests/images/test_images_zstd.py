"""zstd layers (``application/vnd.oci.image.layer.v1.tar+zstd``): an image whose
layers are zstd (several frames) is pushed to a real registry by skopeo, pulled
(decompressed streaming, diff_ids verified), pushed back by us, and run by a
real daemon."""

from __future__ import annotations

import json
import os

import pytest

zstandard = pytest.importorskip("zstandard")

from actors import images_pull  # noqa: E402
from oci import manifest as mf  # noqa: E402
from tests.helpers.images import make_tar, tar_entry  # noqa: E402
from tests.images import registry_env as env  # noqa: E402

FAST = {"retry_delay": 0.01, "timeout": 20}
CREATED = "2024-01-02T03:04:05Z"


async def collect(agen) -> list[dict]:
    return [m async for m in agen]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def zstd(data: bytes, frames: int = 3) -> bytes:
    """zstd in several frames (as a parallel or appending compressor writes)."""
    c = zstandard.ZstdCompressor(level=3)
    step = max(1, len(data) // frames)
    return b"".join(c.compress(data[i:i + step]) for i in range(0, len(data), step))


def zstd_image(layout, layers: list[bytes], tag: str = "latest", cmd=None) -> dict:
    """An OCI image with zstd layers in ``layout`` (skopeo copies it as is)."""
    diff_ids = [env.sha256(t) for t in layers]
    descs = []
    for t in layers:
        z = zstd(t)
        descs.append({"mediaType": mf.OCI_LAYER_ZSTD, "digest": layout.blob(z), "size": len(z)})
    config = {"architecture": mf.host_platform()["architecture"], "os": "linux",
              "created": CREATED, "config": {"Cmd": cmd or ["sh"],
                                             "Env": ["PATH=/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cfg = json.dumps(config, sort_keys=True).encode()
    man = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
           "config": {"mediaType": mf.OCI_CONFIG, "digest": layout.blob(cfg), "size": len(cfg)},
           "layers": descs}
    mb = json.dumps(man).encode()
    layout.tag(tag, {"mediaType": mf.OCI_MANIFEST, "digest": layout.blob(mb), "size": len(mb)})
    return {"config_digest": env.sha256(cfg), "diff_ids": diff_ids, "layers": descs,
            "manifest_digest": env.sha256(mb)}


def second_layer() -> bytes:
    return make_tar([tar_entry("etc", "dir"), tar_entry("etc/zstd-was-here",
                                                        data=b"zstd layer\n" * 1000)])


async def test_pull_zstd_image_then_push_it_back(registry, store, store2, layout, repo_name,
                                                 busybox_layer):
    info = zstd_image(layout, [busybox_layer, second_layer()])
    src = f"{registry.host}/{repo_name}:latest"
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{src}")
    raw = env.skopeo_inspect(f"docker://{src}", "--raw")
    assert [d["mediaType"] for d in raw["layers"]] == [mf.OCI_LAYER_ZSTD] * 2

    msgs = await collect(images_pull.pull(store, src, client_options=FAST))
    assert not errors(msgs), msgs
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {src}"}
    img = store.get(src)
    assert img.id == info["config_digest"] and img.diff_ids == info["diff_ids"]
    assert os.path.isfile(os.path.join(img.layer_dirs[0], "bin", "busybox"))
    with open(os.path.join(img.layer_dirs[1], "etc", "zstd-was-here"), "rb") as f:
        assert f.read() == b"zstd layer\n" * 1000
    for chain in img.layers:
        assert store.layer_meta(chain)["media_type"] == mf.OCI_LAYER_ZSTD

    # pushed back verbatim to another repository: mounted, same manifest digest
    dst = f"{registry.host}/{repo_name}-copy:v1"
    store.tag(src, dst)
    out = await collect(images_pull.push(store, dst, client_options=FAST))
    assert not errors(out), out
    assert len([m for m in out if m.get("status") == f"Mounted from {repo_name}"]) == 2
    assert out[-1]["aux"]["Digest"] == info["manifest_digest"]

    # and another store pulls that copy
    again = await collect(images_pull.pull(store2, dst, client_options=FAST))
    assert not errors(again), again
    assert store2.get(dst).id == img.id


async def test_push_builds_an_oci_manifest_for_zstd_layers(registry, store, store2, repo_name):
    """No stored manifest to reuse: schema2 has no zstd type, so the new
    manifest is OCI (zstd layer as is, OCI config type)."""
    layer = second_layer()
    blob, size = store.put_blob(zstd(layer))
    config = {"architecture": mf.host_platform()["architecture"], "os": "linux",
              "created": CREATED, "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [env.sha256(layer)]}}
    ref = f"{registry.host}/{repo_name}:z"
    img = store.add_image(json.dumps(config).encode(), [blob], refs=[ref],
                          media_types=[mf.OCI_LAYER_ZSTD])
    msgs = await collect(images_pull.push(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    raw = env.skopeo_inspect(f"docker://{ref}", "--raw")
    assert raw["mediaType"] == mf.OCI_MANIFEST
    assert raw["config"]["mediaType"] == mf.OCI_CONFIG
    assert raw["layers"] == [{"mediaType": mf.OCI_LAYER_ZSTD, "size": size, "digest": blob}]
    pulled = await collect(images_pull.pull(store2, ref, client_options=FAST))
    assert not errors(pulled), pulled
    assert store2.get(ref).id == img.id


async def test_broken_zstd_layer_refused_store_clean(registry, store, layout, repo_name):
    """A zstd stream cut short (the blob's digest is right: the registry cannot
    tell) is an invalid archive; nothing of the pull stays in the store."""
    layer = make_tar([tar_entry("big", data=os.urandom(300_000))])
    z = zstd(layer, frames=1)
    cut = z[: len(z) // 2]
    diff_id = env.sha256(layer)
    config = json.dumps({"architecture": mf.host_platform()["architecture"], "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    man = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
           "config": {"mediaType": mf.OCI_CONFIG, "digest": layout.blob(config),
                      "size": len(config)},
           "layers": [{"mediaType": mf.OCI_LAYER_ZSTD, "digest": layout.blob(cut),
                       "size": len(cut)}]}
    mb = json.dumps(man).encode()
    layout.tag("latest", {"mediaType": mf.OCI_MANIFEST, "digest": layout.blob(mb),
                          "size": len(mb)})
    ref = f"{registry.host}/{repo_name}:latest"
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{ref}")
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert errors(msgs) and "invalid layer archive" in msgs[-1]["error"], msgs
    assert store.list() == []
    assert [n for n in os.listdir(store.layers_dir)] == []
    assert [n for n in os.listdir(store.blobs_dir)] == []


@pytest.mark.root
def test_daemon_pulls_and_runs_a_zstd_image(registry, tmp_path, busybox_layer):
    from tests.helpers.engine import Engine
    if os.geteuid() != 0:
        pytest.skip("needs root (a real daemon runs the container)")
    layout = env.Layout(str(tmp_path / "layout"))
    zstd_image(layout, [busybox_layer, second_layer()], cmd=["cat", "/etc/zstd-was-here"])
    ref = f"{registry.host}/zstd/run:v1"
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{ref}")
    e = Engine()
    try:
        e.start()
        res = e.cli("pull", ref)
        assert res.returncode == 0, res.stderr
        assert b"Pull complete" in res.stdout and b"Downloaded newer image" in res.stdout
        res = e.cli("run", "--rm", ref)
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"zstd layer\n" * 1000
    finally:
        e.cleanup()


def test_truncated_zstd_is_refused_even_without_a_diff_id(store):
    """``import`` has no diff_id to check against: the frame walk is what
    tells a zstd stream cut at a frame's end from a whole one."""
    import io
    from oci.errors import InvalidArgument
    layer = second_layer()
    whole = zstd(layer, frames=2)
    img = store.import_tar(io.BytesIO(whole), "z:whole", created=CREATED)
    assert img.diff_ids == [env.sha256(layer)]
    for cut in (len(whole) - 1, len(whole) // 2, 6):
        with pytest.raises(InvalidArgument, match="invalid layer archive"):
            store.import_tar(io.BytesIO(whole[:cut]), "z:cut", created=CREATED)
    assert [i.repo_tags for i in store.list()] == [["z:whole"]]
    assert [n for n in os.listdir(store.layers_dir) if n.startswith(".")] == []
