"""Faults between us and a real registry: a proxy that cuts, corrupts, redirects
and rewrites on purpose.  A broken download is resumed; bad content is refused
and leaves the store as it was."""

from __future__ import annotations

import os

import pytest

from actors import images_pull
from tests.images import registry_env as env

FAST = {"retry_delay": 0.01, "timeout": 20}


async def collect(agen) -> list[dict]:
    return [m async for m in agen]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def assert_store_clean(store):
    assert store.list() == []
    assert os.listdir(store.blobs_dir) == []  # no blob, no temp file
    assert [n for n in os.listdir(store.layers_dir) if not n.startswith(".del-")] == []
    assert os.listdir(store.imagedb_dir) == []


@pytest.fixture
def big_image(registry, layout, repo_name, busybox_layer):
    """busybox + a 1 MB random layer, pushed by skopeo; returns its info."""
    desc, _, info = layout.image([busybox_layer, env.small_layer("rand", os.urandom(1 << 20))])
    layout.tag("latest", desc)
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{registry.host}/{repo_name}:latest")
    return info


async def test_dropped_connection_is_resumed_with_range(fault_proxy, store, big_image,
                                                        repo_name):
    digests = [d["digest"] for d in big_image["layers"]]
    fault_proxy.drop_once.update(digests)
    ref = f"{fault_proxy.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    assert store.get(ref).id == big_image["config_digest"]
    for d in digests:
        gets = [(p, rng) for (m, p, rng) in fault_proxy.requests
                if m == "GET" and p.endswith(d)]
        assert len(gets) == 2, gets
        assert gets[0][1] is None
        assert gets[1][1] is not None and gets[1][1].startswith("bytes=")
        assert int(gets[1][1][6:].rstrip("-")) > 0


async def test_blob_redirects_are_followed(fault_proxy, store, big_image, repo_name):
    fault_proxy.redirect_blobs = True
    ref = f"{fault_proxy.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert not errors(msgs), msgs
    assert any(p.startswith("/_redirect/") for _, p, _ in fault_proxy.requests)
    assert store.get(ref).id == big_image["config_digest"]


async def test_digest_mismatch_refused_store_clean(fault_proxy, store, big_image, repo_name):
    bad = big_image["layers"][1]["digest"]
    fault_proxy.corrupt.add(bad)
    ref = f"{fault_proxy.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    err = errors(msgs)
    assert err == [msgs[-1]]
    assert err[0]["error"] == f"filesystem layer verification failed for digest {bad}"
    assert_store_clean(store)


async def test_retries_exhausted_store_clean(fault_proxy, store, big_image, repo_name):
    bad = big_image["layers"][0]["digest"]
    fault_proxy.drop_always.add(bad)
    ref = f"{fault_proxy.host}/{repo_name}:latest"
    msgs = await collect(images_pull.pull(store, ref, client_options=dict(FAST, retries=2)))
    err = errors(msgs)
    assert err and bad in err[0]["error"], msgs
    assert "unexpected EOF" in err[0]["error"] or "connection reset" in err[0]["error"]
    gets = [rng for (m, p, rng) in fault_proxy.requests if m == "GET" and p.endswith(bad)]
    assert len(gets) == 3
    assert_store_clean(store)


async def test_schema1_refused(fault_proxy, store, big_image, repo_name):
    fault_proxy.schema1 = True
    msgs = await collect(images_pull.pull(store, f"{fault_proxy.host}/{repo_name}",
                                          client_options=FAST))
    assert len(msgs) == 1
    assert msgs[0]["error"].startswith(
        "unsupported manifest media type application/vnd.docker.distribution.manifest.v1"
        "+prettyjws")
    assert msgs[0].http_status == 400
    assert_store_clean(store)


async def test_manifest_digest_mismatch(fault_proxy, registry, store, big_image, repo_name):
    from oci import manifest as mf
    d = registry.get(f"/v2/{repo_name}/manifests/latest",
                     {"Accept": mf.ACCEPT})[1]["Docker-Content-Digest"]
    fault_proxy.tamper_manifests = True
    msgs = await collect(images_pull.pull(store, f"{fault_proxy.host}/{repo_name}@{d}",
                                          client_options=FAST))
    assert msgs[0]["error"] == f"manifest verification failed for digest {d}"
    assert_store_clean(store)


async def test_connection_refused(store):
    port = env.free_port()
    msgs = await collect(images_pull.pull(store, f"127.0.0.1:{port}/a/b",
                                          client_options=FAST))
    assert msgs[0]["error"] == (
        f'Get "http://127.0.0.1:{port}/v2/": connect: connection refused')
    assert_store_clean(store)


async def test_cancelled_pull_stops_at_once_store_clean(fault_proxy, store, big_image,
                                                        repo_name):
    """A cancelled pull (the API client went away) stops even while the client
    is waiting to retry, and leaves nothing: no thread, no content."""
    import threading
    import time

    import trio

    bad = big_image["layers"][1]["digest"]
    fault_proxy.drop_always.add(bad)
    seen = []
    t0 = time.monotonic()
    with trio.move_on_after(1.0) as scope:
        async for m in images_pull.pull(store, f"{fault_proxy.host}/{repo_name}",
                                        client_options={"retry_delay": 30, "retries": 5}):
            seen.append(m)
    assert scope.cancelled_caught
    assert time.monotonic() - t0 < 5
    assert seen and seen[0]["status"].startswith("Pulling from")
    assert not errors(seen)
    assert [t.name for t in threading.enumerate() if t.name.startswith("trioctr-")] == []
    assert_store_clean(store)
