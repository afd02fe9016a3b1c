"""Push transfer path against a real registry (docker-registry on 127.0.0.1),
seen through a recording proxy: big blobs go up in PATCH chunks with
``Content-Range`` then an empty ``PUT ?digest=``, small ones in one PUT; a
chunk cut by the network is resumed where the registry stands (or the upload
starts over when the registry forgot it); ``HEAD`` first, cross-repository
mount when another repository of the registry has the blob.

``Proxy`` (also used by test_images_killpull) forwards to the registry,
streaming, logs every request, can cut the n-th PATCH (before or after the
registry got it) and can throttle blob downloads."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import io
import os
import socket
import threading
import time

from actors import images_pull
from oci import manifest as mf
from oci.registry import RegistryClient
from tests.images import registry_env as env
from tests.helpers.images import make_tar, tar_entry

FAST = {"retry_delay": 0.01, "timeout": 20}
CREATED = "2024-01-02T03:04:05Z"


class Proxy(env.LoopbackServer):
    """A streaming reverse proxy in front of the registry.

    ``log``: ``(method, path, Content-Range, Content-Length)`` per request.
    ``cut_patch``: ``{n: "before" | "after"}``: the n-th PATCH (1-based) is cut,
    before forwarding it (the registry never sees it) or after (the registry
    took the chunk, the client never hears so).  ``rate``: bytes per second
    for blob GETs (0: unthrottled); ``sent``: blob bytes sent so far."""

    def __init__(self, upstream_port: int, rate: int = 0):
        self.upstream_port = upstream_port
        self.rate = rate
        self.cut_patch: dict[int, str] = {}
        self.refuse_patch = False  # answer PATCH 405 UNSUPPORTED (no chunked uploads)
        self.log: list[tuple[str, str, str | None, str | None]] = []
        self.sent = 0
        self.lock = threading.Lock()

        class Handler(env.ForwardingHandler):
            owner = self

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except OSError:  # the client went away (a killed daemon)
                    self.close_connection = True

        self._listen(Handler)

    def patches(self) -> list[tuple[str, str, str | None, str | None]]:
        with self.lock:
            return [e for e in self.log if e[0] == "PATCH"]

    def _handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else None
        with self.lock:
            self.log.append((method, h.path, h.headers.get("Content-Range"),
                             h.headers.get("Content-Length")))
            npatch = sum(1 for e in self.log if e[0] == "PATCH")
        cut = self.cut_patch.get(npatch) if method == "PATCH" else None
        if method == "PATCH" and self.refuse_patch:
            data = b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'
            h.send_response(405)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        if cut == "before":
            self._cut(h)
            return
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            up.request(method, h.path, body=body, headers=headers)
            r = up.getresponse()
            if cut == "after":
                r.read()
                self._cut(h)
                return
            h.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                    h.send_header(k, v)
            if r.getheader("Content-Length") is None:
                h.send_header("Content-Length", "0")
            h.end_headers()
            if method == "HEAD":
                return
            blob = method == "GET" and "/blobs/sha256:" in h.path
            t0 = time.monotonic()
            sent = 0
            while True:
                b = r.read(1 << 16)
                if not b:
                    break
                h.wfile.write(b)
                sent += len(b)
                if blob:
                    with self.lock:
                        self.sent += len(b)
                    if self.rate:
                        ahead = sent / self.rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        finally:
            up.close()

    @staticmethod
    def _cut(h: http.server.BaseHTTPRequestHandler) -> None:
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)
        h.close_connection = True


def random_layer(name: str, size: int, seed: bytes) -> bytes:
    """A tar with one file of ``size`` incompressible bytes (deterministic)."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += hashlib.shake_256(block).digest(1 << 16)
    return make_tar([tar_entry(name, data=bytes(out[:size]))])


async def collect(agen) -> list[dict]:
    return [m async for m in agen]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def _import(store, size: int, seed: bytes, ref: str):
    layer = random_layer("data.bin", size, seed)
    img = store.import_tar(io.BytesIO(layer), ref, changes=['CMD ["sh"]'], created=CREATED)
    return img, layer


async def test_big_blob_is_pushed_in_chunks_small_one_whole(registry, store, store2, repo_name):
    proxy = Proxy(registry.port).start()
    try:
        ref = f"{proxy.host}/{repo_name}:v1"
        img, layer = _import(store, 600_000, b"chunked", ref)
        opts = dict(FAST, chunk_threshold=256 << 10, chunk_size=100_000)
        msgs = await collect(images_pull.push(store, ref, client_options=opts))
        assert not errors(msgs), msgs
        # our push gzips the uncompressed layer (level 6, as Docker)
        man = registry.get(f"/v2/{repo_name}/manifests/v1", {"Accept": mf.ACCEPT})[2]
        blob_size = mf.parse(man).layers[0].size
        patches = proxy.patches()
        want = (blob_size + 99_999) // 100_000
        assert len(patches) == want, proxy.log
        # consecutive Content-Range windows covering the whole blob, then one PUT
        ranges = [tuple(map(int, p[2].split("-"))) for p in patches]
        assert ranges[0][0] == 0 and ranges[-1][1] == blob_size - 1
        assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))
        assert all(int(p[3]) == e - s + 1 for p, (s, e) in zip(patches, ranges))
        puts = [e for e in proxy.log if e[0] == "PUT" and "/blobs/uploads/" in e[1]]
        assert len(puts) == 2  # the layer's final PUT (empty) and the config's (whole)
        assert {p[3] for p in puts} == {"0", str(store.blob_size(img.id))}
        # every upload was preceded by an existence check
        heads = [e[1] for e in proxy.log if e[0] == "HEAD"]
        assert any(img.id in h for h in heads)
        # the registry has the image: pull it back elsewhere
        pulled = await collect(images_pull.pull(store2, f"{registry.host}/{repo_name}:v1",
                                                client_options=FAST))
        assert not errors(pulled), pulled
        with open(os.path.join(store2.get(f"{registry.host}/{repo_name}:v1").layer_dirs[0],
                               "data.bin"), "rb") as f:
            assert len(f.read()) == 600_000
    finally:
        proxy.stop()


async def test_cut_chunk_resumes_where_the_registry_stands(registry, store, store2, repo_name):
    proxy = Proxy(registry.port).start()
    try:
        ref = f"{proxy.host}/{repo_name}:v1"
        img, layer = _import(store, 500_000, b"resume", ref)
        # the 2nd PATCH never reaches the registry, nor its replay on a fresh
        # connection (what a client does when a kept-alive one was closed): the
        # client asks where the upload stands (GET) and sends the chunk again
        proxy.cut_patch = {2: "before", 3: "before"}
        opts = dict(FAST, chunk_threshold=10_000, chunk_size=200_000)
        msgs = await collect(images_pull.push(store, ref, client_options=opts))
        assert not errors(msgs), msgs
        ranges = [p[2] for p in proxy.patches()]
        assert ranges[:4] == ["0-199999"] + ["200000-399999"] * 3
        man = registry.get(f"/v2/{repo_name}/manifests/v1", {"Accept": mf.ACCEPT})[2]
        assert ranges[-1].endswith(f"-{mf.parse(man).layers[0].size - 1}")
        status = [e for e in proxy.log if e[0] == "GET" and "/blobs/uploads/" in e[1]]
        assert len(status) == 1
        pulled = await collect(images_pull.pull(store2, f"{registry.host}/{repo_name}:v1",
                                                client_options=FAST))
        assert not errors(pulled), pulled
    finally:
        proxy.stop()


async def test_cut_after_registry_took_chunk_starts_over_or_resumes(registry, store, store2,
                                                                   repo_name):
    proxy = Proxy(registry.port).start()
    try:
        ref = f"{proxy.host}/{repo_name}:v1"
        img, layer = _import(store, 500_000, b"after", ref)
        # the registry took the 2nd chunk but the answer is lost: the client's
        # upload location is stale; whatever the registry then says (resume or
        # unknown upload), the push completes with the right content
        proxy.cut_patch = {2: "after"}
        opts = dict(FAST, chunk_threshold=10_000, chunk_size=200_000)
        msgs = await collect(images_pull.push(store, ref, client_options=opts))
        assert not errors(msgs), msgs
        pulled = await collect(images_pull.pull(store2, f"{registry.host}/{repo_name}:v1",
                                                client_options=FAST))
        assert not errors(pulled), pulled
        assert store2.get(f"{registry.host}/{repo_name}:v1").id == img.id
    finally:
        proxy.stop()


async def test_mount_and_head_through_proxy(registry, store, repo_name):
    proxy = Proxy(registry.port).start()
    try:
        a = f"{proxy.host}/{repo_name}-a:latest"
        b = f"{proxy.host}/{repo_name}-b:latest"
        img, _ = _import(store, 300_000, b"mount", a)
        opts = dict(FAST, chunk_threshold=100_000, chunk_size=100_000)
        assert not errors(await collect(images_pull.push(store, a, client_options=opts)))
        n = len(proxy.log)
        store.tag(img.id, b)
        msgs = await collect(images_pull.push(store, b, client_options=opts))
        assert not errors(msgs), msgs
        assert [m["status"] for m in msgs if m.get("id") == img.diff_ids[0][7:19]] == \
            ["Preparing", f"Mounted from {repo_name}-a"]
        second = proxy.log[n:]
        posts = [e[1] for e in second if e[0] == "POST"]
        assert any("mount=" in p and f"from={repo_name}-a".replace("/", "%2F") in p
                   for p in posts), second
        # HEAD before the mount; no byte of the layer uploaded again
        kinds = [e[0] for e in second]
        assert kinds.index("HEAD") < kinds.index("POST")
        assert not [e for e in second if e[0] == "PATCH"]
        # the manifest is the same as in -a (verbatim re-push)
        da = registry.get(f"/v2/{repo_name}-a/manifests/latest", {"Accept": mf.ACCEPT})
        db = registry.get(f"/v2/{repo_name}-b/manifests/latest", {"Accept": mf.ACCEPT})
        assert da[1]["Docker-Content-Digest"] == db[1]["Docker-Content-Digest"]
    finally:
        proxy.stop()


async def test_registry_without_chunked_uploads_gets_the_blob_whole(registry, store, store2,
                                                                    repo_name):
    proxy = Proxy(registry.port).start()
    try:
        proxy.refuse_patch = True
        ref = f"{proxy.host}/{repo_name}:v1"
        img, _ = _import(store, 300_000, b"nopatch", ref)
        opts = dict(FAST, chunk_threshold=10_000, chunk_size=100_000)
        msgs = await collect(images_pull.push(store, ref, client_options=opts))
        assert not errors(msgs), msgs
        assert len(proxy.patches()) == 1  # tried once, then one whole PUT
        whole = [e for e in proxy.log if e[0] == "PUT" and "/blobs/uploads/" in e[1]
                 and e[3] not in ("0", str(store.blob_size(img.id)))]
        assert len(whole) == 1
        pulled = await collect(images_pull.pull(store2, f"{registry.host}/{repo_name}:v1",
                                                client_options=FAST))
        assert not errors(pulled), pulled
    finally:
        proxy.stop()


def test_upload_status_of_unknown_upload(registry, repo_name):
    with RegistryClient(**FAST) as c:
        repo = c.repository(registry.host, repo_name, ("pull", "push"))
        loc = repo.start_upload()
        assert repo.upload_status(loc)[0] == 0
        bogus = f"/v2/{repo_name}/blobs/uploads/00000000-0000-0000-0000-000000000000"
        assert repo.upload_status(bogus) is None


async def test_chunked_push_with_bearer_token(token_registry, store, store2):
    """Every PATCH of a chunked upload carries the token of the push scope
    (fetched once, reused), against a registry with token auth."""
    reg, ts = token_registry
    proxy = Proxy(reg.port).start()
    try:
        creds = {"username": env.USER, "password": env.PASSWORD}
        ref = f"{proxy.host}/private/chunky:v1"
        img, _ = _import(store, 400_000, b"token", ref)
        ts.requests.clear()
        opts = dict(FAST, chunk_threshold=10_000, chunk_size=100_000)
        msgs = await collect(images_pull.push(store, ref, creds, client_options=opts))
        assert not errors(msgs), msgs
        assert len(proxy.patches()) >= 4
        assert len(ts.requests) == 1 and ts.requests[0]["ok"]
        pulled = await collect(images_pull.pull(store2, ref, auth=creds, client_options=FAST))
        assert not errors(pulled), pulled
        assert store2.get(ref).id == img.id
    finally:
        proxy.stop()


async def test_retries_say_so_as_docker_does(registry, store, repo_name):
    """A transfer tried again is announced per layer: ``Retrying in N
    second(s)``, counting down, as dockerd does."""
    proxy = Proxy(registry.port).start()
    try:
        ref = f"{proxy.host}/{repo_name}:v1"
        img, _ = _import(store, 300_000, b"retry", ref)
        proxy.cut_patch = {2: "before", 3: "before"}
        opts = dict(FAST, retry_delay=1.5, chunk_threshold=10_000, chunk_size=100_000)
        msgs = await collect(images_pull.push(store, ref, client_options=opts))
        assert not errors(msgs), msgs
        sid = img.diff_ids[0][7:19]
        seq = [m["status"] for m in msgs if m.get("id") == sid and
               m["status"].startswith("Retrying")]
        assert seq == ["Retrying in 2 seconds", "Retrying in 1 second"]
        assert [m for m in msgs if m.get("id") == sid][-1]["status"] == "Pushed"
    finally:
        proxy.stop()


async def test_pull_retry_is_announced(fault_proxy, registry, store, layout, repo_name):
    layer = random_layer("blob.bin", 200_000, b"pull-retry")
    desc, _, info = layout.image([layer], gzip=False)
    layout.tag("latest", desc)
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{registry.host}/{repo_name}:latest")
    man = registry.get(f"/v2/{repo_name}/manifests/latest", {"Accept": mf.ACCEPT})[2]
    blob = mf.parse(man).layers[0].digest
    fault_proxy.drop_once.add(blob)
    msgs = await collect(images_pull.pull(store, f"{fault_proxy.host}/{repo_name}",
                                          client_options=FAST))
    assert not errors(msgs), msgs
    seq = [m["status"] for m in msgs if m.get("id") == blob[7:19]]
    assert "Retrying in 1 second" in seq
    assert seq.index("Retrying in 1 second") < seq.index("Download complete")
