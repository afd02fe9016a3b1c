"""Pull from a real registry (docker-registry on 127.0.0.1), images pushed by skopeo."""

from __future__ import annotations

import json
import os
import stat

import pytest

from actors import images_pull
from oci import manifest as mf
from tests.images import registry_env as env

FAST = {"retry_delay": 0.01, "timeout": 20}


async def collect(agen) -> list[dict]:
    out = []
    async for m in agen:
        out.append(m)
    return out


def statuses(msgs, id_=None):
    return [m.get("status") for m in msgs if id_ is None or m.get("id") == id_]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def push_layout(layout, registry, repo, tag="latest", *args):
    env.skopeo_copy(f"oci:{layout.path}:{tag}", f"docker://{registry.host}/{repo}:{tag}", *args)


async def test_pull_single_image_messages_and_store(registry, store, layout, repo_name,
                                                    busybox_layer):
    desc, cfg, info = layout.image([busybox_layer], cmd=["sh"])
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    ref = f"{registry.host}/{repo_name}"

    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    layer_id = info["layers"][0]["digest"][7:19]
    assert msgs[0] == {"status": f"Pulling from {repo_name}", "id": "latest"}
    seq = statuses(msgs, layer_id)
    assert seq[0] == "Pulling fs layer"
    assert "Downloading" in seq and "Verifying Checksum" in seq and "Download complete" in seq
    assert seq[-1] == "Pull complete"
    assert seq.index("Download complete") < seq.index("Extracting") < seq.index("Pull complete")
    dl = [m for m in msgs if m.get("status") == "Downloading"]
    assert dl[-1]["progressDetail"] == {"current": info["layers"][0]["size"],
                                        "total": info["layers"][0]["size"]}
    assert dl[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    man_digest = registry.get(f"/v2/{repo_name}/manifests/latest",
                              {"Accept": mf.ACCEPT})[1]["Docker-Content-Digest"]
    assert msgs[-2] == {"status": f"Digest: {man_digest}"}
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {ref}:latest"}

    img = store.get(f"{ref}:latest")
    assert img.id == info["config_digest"]
    assert img.repo_tags == [f"{ref}:latest"]
    assert img.repo_digests == [f"{ref}@{man_digest}"]
    assert img.config["config"]["Cmd"] == ["sh"]
    assert img.diff_ids == info["diff_ids"]
    assert os.path.isfile(os.path.join(img.layer_dirs[0], "bin", "busybox"))
    # the manifest and the config are kept in the content store
    assert store.has_blob(man_digest) and store.has_blob(img.id)

    # again: nothing downloaded, "Image is up to date"
    again = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(again)
    assert "Downloading" not in statuses(again)
    assert again[-1] == {"status": f"Status: Image is up to date for {ref}:latest"}


async def test_pull_by_digest_and_schema2(registry, store, layout, repo_name, busybox_layer):
    desc, cfg, info = layout.image([busybox_layer])
    layout.tag("v1", desc)
    # skopeo converts to Docker schema2 on the way
    push_layout(layout, registry, repo_name, "v1", "--format", "v2s2")
    status, headers, body = registry.get(f"/v2/{repo_name}/manifests/v1", {"Accept": mf.ACCEPT})
    assert json.loads(body)["mediaType"] == mf.DOCKER_MANIFEST
    d = headers["Docker-Content-Digest"]
    ref = f"{registry.host}/{repo_name}@{d}"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    assert msgs[0] == {"status": f"Pulling from {repo_name}", "id": d}
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {ref}"}
    img = store.get(ref)
    assert img.repo_tags == []
    assert img.repo_digests == [ref]
    assert img.id == info["config_digest"]
    rec = store.image_record(img.id)
    assert rec["layers"][0]["media_type"] == mf.DOCKER_LAYER_GZIP


async def test_pull_multi_layer_with_whiteouts(registry, store, layout, repo_name,
                                               busybox_layer):
    desc, cfg, info = layout.image([busybox_layer, env.whiteout_layer(),
                                    env.small_layer("etc/three", b"3\n")])
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    ref = f"{registry.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    img = store.get(ref)
    assert len(img.layers) == 3
    top = img.layer_dirs[1]
    with open(os.path.join(top, "etc", "motd"), "rb") as f:
        assert f.read() == b"layer two\n"
    meta = store.layer_meta(img.layers[1])
    if store.privileged:
        st = os.lstat(os.path.join(top, "etc", "hostname"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlayfs whiteout
        assert os.getxattr(os.path.join(top, "var", "tmp"), "trusted.overlay.opaque") == b"y"
    else:
        assert meta["pending_whiteouts"] and meta["pending_opaques"]
    # the layers come in order: Pull complete of layer 1 before layer 2's
    ids = [d["digest"][7:19] for d in info["layers"]]
    done = [m["id"] for m in msgs if m.get("status") == "Pull complete"]
    assert done == ids

    # a second image sharing the base layer: "Already exists" for it
    desc2, _, info2 = layout.image([busybox_layer, env.small_layer("x", b"x")])
    layout.tag("two", desc2)
    push_layout(layout, registry, repo_name, "two")
    msgs2 = await collect(images_pull.pull(store, f"{registry.host}/{repo_name}:two",
                                           client_options=FAST))
    assert not errors(msgs2), msgs2
    assert statuses(msgs2, ids[0]) == ["Already exists"]
    assert statuses(msgs2, info2["layers"][1]["digest"][7:19])[-1] == "Pull complete"


async def test_pull_index_selects_platform(registry, store, store2, layout, repo_name):
    amd, _, amd_info = layout.image([env.small_layer("arch", b"amd64\n")], arch="amd64")
    arm, _, arm_info = layout.image([env.small_layer("arch", b"arm64\n")], arch="arm64",
                                    variant="v8")
    idx = layout.multi("latest", [(amd, amd_info["platform"]), (arm, arm_info["platform"])])
    push_layout(layout, registry, repo_name, "latest", "--all")
    ref = f"{registry.host}/{repo_name}:latest"
    index_digest = idx["digest"]

    host = mf.host_platform()
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    if host["architecture"] in ("amd64", "arm64"):
        assert not errors(msgs), msgs
        want = amd_info if host["architecture"] == "amd64" else arm_info
        img = store.get(ref)
        assert img.id == want["config_digest"]
        assert msgs[-2] == {"status": f"Digest: {index_digest}"}
        # RepoDigest is the index digest, as Docker records it
        assert img.repo_digests == [f"{registry.host}/{repo_name}@{index_digest}"]
        with open(os.path.join(img.layer_dirs[0], "arch")) as f:
            assert f.read().strip() == host["architecture"]

    msgs = await collect(images_pull.pull(store2, ref, platform="linux/arm64",
                                          client_options=FAST))
    assert not errors(msgs), msgs
    img = store2.get(ref)
    assert img.id == arm_info["config_digest"]
    assert img.config["architecture"] == "arm64"
    # the platform manifest is kept too (push can reuse it verbatim)
    assert store2.has_blob(arm["digest"]) and store2.has_blob(index_digest)

    msgs = await collect(images_pull.pull(store2, ref, platform="linux/s390x",
                                          client_options=FAST))
    assert errors(msgs)[0]["error"] == (
        "no matching manifest for linux/s390x in the manifest list entries")


async def test_pull_single_image_wrong_platform(registry, store, layout, repo_name):
    desc, _, info = layout.image([env.small_layer("a", b"a")], arch="amd64")
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    ref = f"{registry.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, platform="linux/arm64",
                                          client_options=FAST))
    err = errors(msgs)
    assert err and err[0]["error"] == (
        f"image with reference {ref} was found but does not match the specified platform: "
        "wanted linux/arm64, actual: linux/amd64")
    assert store.list() == []


async def test_pull_unknown_manifest_and_repo(registry, store, repo_name):
    msgs = await collect(images_pull.pull(store, f"{registry.host}/{repo_name}:nope",
                                          client_options=FAST))
    assert len(msgs) == 1
    e = msgs[0]
    assert isinstance(e, images_pull.ErrorMessage)
    assert e["error"] == (f"manifest for {registry.host}/{repo_name}:nope not found: "
                          "manifest unknown: manifest unknown")
    assert e["errorDetail"] == {"message": e["error"]}
    assert e.http_status == 404
    # start(): an error before the first message is raised for a plain HTTP error
    with pytest.raises(Exception) as ei:
        await images_pull.start(images_pull.pull(store, f"{registry.host}/{repo_name}:nope",
                                                 client_options=FAST))
    assert getattr(ei.value, "http_status", None) == 404
    assert "manifest unknown" in str(ei.value)


async def test_start_streams_json_lines(registry, store, layout, repo_name):
    desc, _, _ = layout.image([env.small_layer("a", b"a")])
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    seen = []
    chunks = await images_pull.start(images_pull.pull(
        store, f"{registry.host}/{repo_name}", client_options=FAST), seen.append)
    lines = [c async for c in chunks]
    assert [json.loads(c) for c in lines] == seen
    assert all(c.endswith(b"\r\n") for c in lines)
    parsed = [json.loads(c) for c in lines]
    assert parsed[0]["status"].startswith("Pulling from")
    assert parsed[-1]["status"].startswith("Status: Downloaded newer image for")


async def test_pull_through_mirror(registry, store, layout, busybox_layer):
    """docker.io images come from the first mirror that answers (no internet)."""
    name = f"mirror{os.getpid()}"
    desc, _, info = layout.image([env.small_layer("m", b"mirror\n")])
    layout.tag("latest", desc)
    push_layout(layout, registry, f"library/{name}")
    dead = f"http://127.0.0.1:{env.free_port()}"
    msgs = await collect(images_pull.pull(
        store, name, mirrors=[dead, f"http://{registry.host}"],
        client_options={"retry_delay": 0.01, "timeout": 5, "retries": 0}))
    assert not errors(msgs), msgs
    assert msgs[0] == {"status": f"Pulling from library/{name}", "id": "latest"}
    img = store.get(name)
    assert img.repo_tags == [f"{name}:latest"]
    assert img.repo_digests[0].startswith(f"{name}@sha256:")
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {name}:latest"}


async def test_pull_concurrent_layers_waiting(registry, store, layout, repo_name):
    layers = [env.small_layer(f"f{i}", os.urandom(200_000)) for i in range(5)]
    desc, _, info = layout.image(layers)
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    msgs = await collect(images_pull.pull(store, f"{registry.host}/{repo_name}",
                                          client_options=FAST, max_concurrent=2))
    assert not errors(msgs), msgs
    waiting = [m["id"] for m in msgs if m.get("status") == "Waiting"]
    assert waiting == [d["digest"][7:19] for d in info["layers"][2:]]
    img = store.get(f"{registry.host}/{repo_name}")
    assert len(img.layers) == 5


async def test_abandoned_pull_leaves_nothing(registry, store, layout, repo_name, busybox_layer):
    import threading
    desc, _, _ = layout.image([busybox_layer, env.small_layer("b", os.urandom(300_000))])
    layout.tag("latest", desc)
    push_layout(layout, registry, repo_name)
    agen = images_pull.pull(store, f"{registry.host}/{repo_name}", client_options=FAST)
    first = await agen.__anext__()
    assert first["status"].startswith("Pulling from")
    await agen.aclose()
    assert [t.name for t in threading.enumerate() if t.name.startswith("trioctr-")] == []
    assert store.list() == []
    assert [n for n in os.listdir(store.blobs_dir)] == []
    assert [n for n in os.listdir(store.layers_dir) if not n.startswith(".del-")] == []
