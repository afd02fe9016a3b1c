"""SIGKILL of trioctrd in the middle of a pull, then a restart on the same roots.

The image: busybox plus three 20 MB layers of random (incompressible) bytes,
pushed to a real registry (docker-registry on 127.0.0.1) by skopeo and served
through a throttling proxy, so the daemon is reliably caught with layers half
downloaded (and the base layer already unpacked but not registered).  After
the restart the store must be consistent: no temporary file left, every blob
named by its true digest, every layer complete, no image registered; then a
second pull completes (reusing what was complete) and the image runs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.engine import Engine, ROOT, env as engine_env
from tests.images import registry_env as env
from tests.images.test_images_chunked import Proxy, random_layer
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root

LAYER_SIZE = 20 << 20
RATE = 4 << 20  # bytes per second per blob download through the proxy



def temp_entries(store_root: str) -> list[str]:
    out = []
    for d in ("", "blobs/sha256", "layers", "imagedb"):
        p = os.path.join(store_root, d)
        if os.path.isdir(p):
            out += [os.path.join(d, n) for n in os.listdir(p)
                    if n.startswith(".tmp-") or n.startswith(".del-")]
    return out


def complete_layers(store_root: str) -> list[str]:
    return [n for n in os.listdir(os.path.join(store_root, "layers")) if not n.startswith(".")]


def check_consistent(store_root: str) -> tuple[set[str], set[str]]:
    """No temp files; every blob is what its name says; every layer is whole.
    Returns (blob digests, layer chain ids) present."""
    assert temp_entries(store_root) == []
    blobs_dir = os.path.join(store_root, "blobs", "sha256")
    blobs = set()
    for n in os.listdir(blobs_dir):
        h = hashlib.sha256()
        with open(os.path.join(blobs_dir, n), "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        assert h.hexdigest() == n, f"blob {n} is not what its name says"
        blobs.add("sha256:" + n)
    layers = set()
    layers_dir = os.path.join(store_root, "layers")
    for n in os.listdir(layers_dir):
        with open(os.path.join(layers_dir, n, "meta.json")) as f:
            meta = json.load(f)
        assert meta["chain_id"] == "sha256:" + n
        assert os.path.isdir(os.path.join(layers_dir, n, "fs"))
        layers.add(meta["chain_id"])
    return blobs, layers


@pytest.fixture(scope="module")
def big_image(registry, tmp_path_factory, busybox_layer):
    """busybox + 3 x 20 MB random layers in ``registry`` (gzip, as a registry
    usually serves them): (repo, diff_ids)."""
    layout = env.Layout(str(tmp_path_factory.mktemp("killpull-layout")))
    layers = [busybox_layer] + [random_layer(f"data{i}.bin", LAYER_SIZE, b"kill%d" % i)
                                for i in range(3)]
    desc, _, info = layout.image(layers, cmd=["sh", "-c", "wc -c /data0.bin /data2.bin"],
                                 gzip=False)
    layout.tag("latest", desc)
    repo = "killpull/big"
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{registry.host}/{repo}:latest")
    return repo, info["diff_ids"]


def test_sigkill_mid_pull_then_restart_is_consistent_and_pull_completes(registry, big_image):
    repo, diff_ids = big_image
    proxy = Proxy(registry.port, rate=RATE).start()
    e = Engine()
    cli = None
    try:
        e.start()
        store_root = os.path.join(e.root, "image")
        ref = f"{proxy.host}/{repo}:latest"
        cli = subprocess.Popen([sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "pull",
                                ref], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=engine_env(), cwd=ROOT)
        # caught downloading: the base layer unpacked (not registered), the big
        # layers partly through, their partial blobs being written
        wait_for(lambda: complete_layers(store_root), 60, "the base layer to be unpacked", 0.01)
        wait_for(lambda: proxy.sent > LAYER_SIZE // 2, 60, "some of the big layers", 0.01)
        partial = [t for t in temp_entries(store_root) if t.startswith("blobs/")]
        assert partial, "no partial download to interrupt"
        e.kill_daemon(signal.SIGKILL)
        out, err = cli.communicate(timeout=30)
        assert b"Downloaded newer image" not in out, out
        # the client saw its answer cut short: an error, not a success
        assert cli.returncode == 1 and err.endswith(b"unexpected EOF\n"), (cli.returncode, err)
        assert temp_entries(store_root)  # the dead daemon left its temp files

        e.start()  # same roots
        blobs, layers = check_consistent(store_root)
        status, images = e.request("GET", "/images/json")
        assert status == 200 and images == [], images
        assert len(layers) >= 1  # the base layer survived, complete, unregistered

        proxy.rate = 0
        res = e.cli("pull", ref, timeout=120)
        assert res.returncode == 0, res.stderr
        text = res.stdout.decode()
        assert "Already exists" in text  # the complete base layer was reused
        assert f"Status: Downloaded newer image for {ref}" in text
        check_consistent(store_root)
        res = e.cli("run", "--rm", ref, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode().split() == [str(LAYER_SIZE), "/data0.bin",
                                               str(LAYER_SIZE), "/data2.bin",
                                               str(2 * LAYER_SIZE), "total"]
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
        e.cleanup()
        proxy.stop()


def test_sigkill_while_a_layer_is_unpacking(registry, big_image):
    """Killed with a big layer half unpacked (``layers/.tmp-*``): after the
    restart no trace of it, and the pull completes."""
    repo, diff_ids = big_image
    proxy = Proxy(registry.port, rate=RATE).start()
    e = Engine()
    cli = None
    try:
        e.start()
        store_root = os.path.join(e.root, "image")
        layers_dir = os.path.join(store_root, "layers")
        ref = f"{proxy.host}/{repo}:latest"
        cli = subprocess.Popen([sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "pull",
                                ref], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=engine_env(), cwd=ROOT)
        base = wait_for(lambda: complete_layers(store_root), 60, "the base layer to be unpacked", 0.01)
        # the next .tmp- directory is a big layer being unpacked
        deadline = time.monotonic() + 60
        caught = False
        while time.monotonic() < deadline and cli.poll() is None:
            if any(n.startswith(".tmp-") for n in os.listdir(layers_dir)):
                e.kill_daemon(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.002)
        assert caught, "never saw a layer being unpacked"
        cli.wait(30)
        assert any(n.startswith(".tmp-") for n in os.listdir(layers_dir))
        e.start()
        blobs, layers = check_consistent(store_root)
        assert set(complete_layers(store_root)) >= set(base)
        status, images = e.request("GET", "/images/json")
        assert status == 200 and images == [], images
        proxy.rate = 0
        res = e.cli("pull", ref, timeout=120)
        assert res.returncode == 0, res.stderr
        assert f"Status: Downloaded newer image for {ref}" in res.stdout.decode()
        check_consistent(store_root)
        res = e.cli("run", "--rm", ref, timeout=60)
        assert res.returncode == 0, res.stderr
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
        e.cleanup()
        proxy.stop()


def test_recover_store_after_a_crash(tmp_path, busybox_layer):
    """What a process killed at any point can leave, and ``recover_store``
    (run once at startup, before serving) cleaning it up; complete content
    stays for the next pull."""
    import io
    from oci.store import ImageStore, recover_store

    root = str(tmp_path / "image")
    s = ImageStore(root, durable=False)
    img = s.import_tar(io.BytesIO(busybox_layer), "bb:latest", created="2024-01-01T00:00:00Z")
    # a complete blob and layer of a pull that never registered its image
    orphan_blob, _ = s.put_blob(b"complete but unregistered")
    # a download cut short, a layer being unpacked, a layer being deleted,
    # a push's spool
    open(os.path.join(s.blobs_dir, ".tmp-partial"), "wb").write(b"x" * 1000)
    os.makedirs(os.path.join(s.layers_dir, ".tmp-unpacking", "fs", "etc"))
    os.makedirs(os.path.join(s.layers_dir, ".del-0123456789ab-cafe", "fs"))
    os.makedirs(os.path.join(root, ".tmp-push-xyz"))
    # a layer directory that is not a whole layer (no meta.json), another whose
    # meta names another chain, one whose parent is missing, one above that
    half = "1" * 64
    os.makedirs(os.path.join(s.layers_dir, half, "fs"))
    wrong = "2" * 64
    os.makedirs(os.path.join(s.layers_dir, wrong, "fs"))
    with open(os.path.join(s.layers_dir, wrong, "meta.json"), "w") as f:
        json.dump({"chain_id": "sha256:" + "9" * 64}, f)
    orphan, above = "3" * 64, "4" * 64
    for chain, parent in ((orphan, "sha256:" + "8" * 64), (above, "sha256:" + orphan)):
        os.makedirs(os.path.join(s.layers_dir, chain, "fs"))
        with open(os.path.join(s.layers_dir, chain, "meta.json"), "w") as f:
            json.dump({"chain_id": "sha256:" + chain, "parent": parent}, f)
    # a blob whose content is not what its name says (only with verify_blobs)
    bad = "5" * 64
    open(os.path.join(s.blobs_dir, bad), "wb").write(b"not that")

    removed = recover_store(s, verify_blobs=True)
    assert len(removed["temp"]) == 4
    assert sorted(removed["layers"]) == ["sha256:" + c for c in (half, wrong, orphan, above)]
    assert removed["blobs"] == ["sha256:" + bad]
    blobs, layers = check_consistent(root)
    assert orphan_blob in blobs and img.id in blobs
    assert layers == set(img.layers)
    # the store still works, and a fresh open agrees
    assert ImageStore(root, durable=False).get("bb:latest").id == img.id
    assert recover_store(s) == {"temp": [], "layers": [], "blobs": []}
