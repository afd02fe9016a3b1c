"""Push with our client to a real registry; check with skopeo and our pull."""

from __future__ import annotations

import io
import os

import pytest

from actors import images_pull
from oci import manifest as mf
from tests.images import registry_env as env
from tests.helpers.images import make_tar, tar_entry

FAST = {"retry_delay": 0.01, "timeout": 20}
CREATED = "2024-01-02T03:04:05Z"


async def collect(agen) -> list[dict]:
    return [m async for m in agen]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def by_status(msgs, status):
    return [m for m in msgs if m.get("status") == status]


@pytest.fixture
def local_image(store, busybox_layer):
    """busybox imported as an uncompressed layer (our push gzips it)."""
    img = store.import_tar(io.BytesIO(busybox_layer), "local/bb:latest",
                           changes=['CMD ["sh"]'], created=CREATED)
    return img


async def test_push_then_pull_roundtrip(registry, store, store2, local_image, repo_name):
    ref = f"{registry.host}/{repo_name}:v1"
    store.tag(local_image.id, ref)
    msgs = await collect(images_pull.push(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    diff_short = local_image.diff_ids[0][7:19]
    assert msgs[0] == {"status": f"The push refers to repository [{registry.host}/{repo_name}]"}
    assert [m["status"] for m in msgs if m.get("id") == diff_short][0] == "Preparing"
    assert by_status(msgs, "Pushed")[0]["id"] == diff_short
    pushing = by_status(msgs, "Pushing")
    assert pushing and pushing[-1]["progressDetail"]["current"] == \
        pushing[-1]["progressDetail"]["total"]
    aux = msgs[-1]["aux"]
    assert msgs[-2] == {"status": f"v1: digest: {aux['Digest']} size: {aux['Size']}"}
    assert aux["Tag"] == "v1"
    # the pushed digest is a RepoDigest now
    assert f"{registry.host}/{repo_name}@{aux['Digest']}" in store.get(ref).repo_digests

    # the registry has a Docker schema2 manifest with a gzip layer
    info = env.skopeo_inspect(f"docker://{ref}", "--raw")
    assert info["mediaType"] == mf.DOCKER_MANIFEST
    assert info["config"]["digest"] == local_image.id
    assert info["layers"][0]["mediaType"] == mf.DOCKER_LAYER_GZIP
    cfg = env.skopeo_inspect(f"docker://{ref}", "--config")
    assert cfg["rootfs"]["diff_ids"] == local_image.diff_ids

    # and our pull brings the same image back
    pulled = await collect(images_pull.pull(store2, ref, client_options=FAST))
    assert not errors(pulled), pulled
    img2 = store2.get(ref)
    assert img2.id == local_image.id
    assert os.path.isfile(os.path.join(img2.layer_dirs[0], "bin", "busybox"))
    assert by_status(pulled, f"Digest: {aux['Digest']}")

    # pushing again: the layer exists, same digest (deterministic gzip)
    again = await collect(images_pull.push(store, ref, client_options=FAST))
    assert not errors(again), again
    assert [m["id"] for m in by_status(again, "Layer already exists")] == [diff_short]
    assert again[-1]["aux"]["Digest"] == aux["Digest"]


async def test_push_mounts_from_other_repository(registry, store, local_image, repo_name):
    a = f"{registry.host}/{repo_name}-a:latest"
    b = f"{registry.host}/{repo_name}-b:latest"
    store.tag(local_image.id, a)
    assert not errors(await collect(images_pull.push(store, a, client_options=FAST)))
    store.tag(local_image.id, b)
    msgs = await collect(images_pull.push(store, b, client_options=FAST))
    assert not errors(msgs), msgs
    # the store kept the manifest of the first push: it knows where the layer is
    st = [m["status"] for m in msgs if m.get("id") == local_image.diff_ids[0][7:19]]
    assert st == ["Preparing", f"Mounted from {repo_name}-a"]


async def test_push_pulled_image_mounts(registry, store, layout, repo_name, busybox_layer):
    desc, _, info = layout.image([busybox_layer, env.whiteout_layer()])
    layout.tag("latest", desc)
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{registry.host}/{repo_name}:latest")
    src = f"{registry.host}/{repo_name}:latest"
    assert not errors(await collect(images_pull.pull(store, src, client_options=FAST)))
    dst = f"{registry.host}/{repo_name}-copy:v9"
    store.tag(src, dst)
    msgs = await collect(images_pull.push(store, dst, client_options=FAST))
    assert not errors(msgs), msgs
    mounted = by_status(msgs, f"Mounted from {repo_name}")
    assert len(mounted) == 2
    # pushed verbatim: same manifest digest as the source
    src_digest = registry.get(f"/v2/{repo_name}/manifests/latest",
                              {"Accept": mf.ACCEPT})[1]["Docker-Content-Digest"]
    assert msgs[-1]["aux"]["Digest"] == src_digest


async def test_push_all_tags_and_errors(registry, store, local_image, repo_name):
    name = f"{registry.host}/{repo_name}"
    other = store.import_tar(io.BytesIO(make_tar([tar_entry("x", data=b"x")])), None,
                             created=CREATED)
    store.tag(local_image.id, f"{name}:one")
    store.tag(other.id, f"{name}:two")
    msgs = await collect(images_pull.push(store, name, client_options=FAST))
    assert not errors(msgs), msgs
    assert [m["aux"]["Tag"] for m in msgs if "aux" in m] == ["one", "two"]
    tags = env.skopeo_inspect(f"docker://{name}:one")["RepoTags"]
    assert sorted(tags) == ["one", "two"]

    # as dockerd: the first line, then the error in the stream
    msgs = await collect(images_pull.push(store, f"{name}:missing", client_options=FAST))
    assert msgs == [{"status": f"The push refers to repository [{name}]"},
                    {"errorDetail": {"message": f"tag does not exist: {name}:missing"},
                     "error": f"tag does not exist: {name}:missing"}]
    msgs = await collect(images_pull.push(store, f"{name}-none", client_options=FAST))
    err = f"An image does not exist locally with the tag: {name}-none"
    assert msgs[1] == {"errorDetail": {"message": err}, "error": err}
    assert msgs[1].http_status == 404
