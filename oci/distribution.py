"""Pull and push: the registry client and the image store together (synchronous).

``pull(store, ref, client=..., emit=...)`` and ``push(store, ref, client=...,
emit=...)`` do the whole job and report it as Docker's JSON progress messages,
passed one by one to ``emit`` (from several threads: layers move concurrently,
``max_concurrent`` at once, Docker's default 3).  ``actors.images_pull`` runs
them from trio and streams the messages.

Pull, as dockerd's v2 puller:

1. resolve the tag (or digest) on the first endpoint that has it (mirrors
   first for docker.io); an index picks the platform's manifest;
2. ``Pulling from <path>``; the config is fetched and checked (platform, layer
   count); an image already in the store is not fetched again;
3. layers already unpacked say ``Already exists``; the others are downloaded
   (``Pulling fs layer``, ``Waiting``, ``Downloading``, ``Verifying Checksum``,
   ``Download complete``), then unpacked bottom first as soon as they are there
   (``Extracting``, ``Pull complete``);
4. the image is registered with its tag and its RepoDigest (``name@<digest of
   what the tag named>``: the index digest for a multi-platform image), then
   ``Digest: ...`` and ``Status: Downloaded newer image for ...`` (or ``Image is
   up to date``).

Everything is written under the store's lease; on failure what this pull wrote
and no image uses is removed again, so a failed pull leaves the store as it was.

Push: ``The push refers to repository [...]``, per layer ``Preparing``, then
``Layer already exists`` (HEAD), ``Mounted from <repo>`` (cross-repository
mount from another repository of the same registry the store knows the layer
from) or ``Pushing`` / ``Pushed`` (one PUT for a small blob, PATCH chunks for
a big one: ``RegistryClient.chunk_threshold``), then the config and the
manifest (the stored one when the image was pulled and can be pushed verbatim,
else a new Docker schema2 manifest with gzip layers, or OCI when a layer is
zstd), ``<tag>: digest: ...
size: N`` and the ``aux`` message.  The pushed digest becomes a RepoDigest.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gzip
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Any, BinaryIO, Callable, Iterable

from . import manifest as mf
from .digest import chain_ids, short_id
from .errors import ImageConflict, ImageNotFound, InvalidArgument, InvalidReference, OCIError
from .reference import Reference, parse_normalized
from .registry import (Aborted, RegistryClient, RegistryError, Repository, TransportError,
                       VerificationError, sha256_stream)
from .units import human_size
from .unpack import detect_compression

Emit = Callable[[dict], None]
DEFAULT_CONCURRENCY = 3
PROGRESS_INTERVAL = 0.1


class PullError(RegistryError):
    pass


# --------------------------------------------------------------------------- messages


def progress_bar(current: int, total: int) -> str:
    """``JSONProgress.String()`` as the daemon renders it:
    ``[=====>      ]  1.049MB/2.099MB``."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = max(0, min(int(current * 100 / total) // 2, 50))
    return f"[{'=' * pct}>{' ' * (50 - pct)}] {human_size(current):>8}/{human_size(total)}"


def _layer_msg(status: str, id_: str, current: int | None = None,
               total: int | None = None) -> dict:
    msg: dict[str, Any] = {"status": status, "progressDetail": {}, "id": id_}
    if current is not None:
        detail = {"current": current}
        if total:
            detail["total"] = total
        msg["progressDetail"] = detail
        msg["progress"] = progress_bar(current, total or 0)
    return msg


def _retrying(id_: str, seconds: int) -> dict:
    """Docker's countdown before a layer's transfer is tried again."""
    return _layer_msg(f"Retrying in {seconds} second{'s' if seconds != 1 else ''}", id_)


class _Emitter:
    """Serialises ``emit`` across threads and throttles progress per id."""

    def __init__(self, emit: Emit, interval: float = PROGRESS_INTERVAL):
        self._emit = emit
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._interval = interval

    def __call__(self, msg: dict) -> None:
        with self._lock:
            self._emit(msg)

    def progress(self, status: str, id_: str, current: int, total: int) -> None:
        now = time.monotonic()
        last = self._last.get(id_ + status, 0.0)
        if current < total and now - last < self._interval:
            return
        self._last[id_ + status] = now
        self(_layer_msg(status, id_, current, total))


# --------------------------------------------------------------------------- errors


def translate_pull_error(err: RegistryError, ref: Reference) -> RegistryError:
    """Docker's ``TranslatePullError``."""
    code = err.registry_code
    if code == "DENIED":
        return PullError(f"pull access denied for {ref.familiar_name}, repository does not "
                         f"exist or may require 'docker login': {err}", http_status=404,
                         code="NOT_FOUND", status=err.status, registry_code=code,
                         errors=err.errors)
    if code == "MANIFEST_UNKNOWN":
        return PullError(f"manifest for {ref.familiar_string()} not found: {err}",
                         http_status=404, code="NOT_FOUND", status=err.status,
                         registry_code=code, errors=err.errors)
    if code == "NAME_UNKNOWN":
        return PullError(f"repository {ref.familiar_name} not found: {err}", http_status=404,
                         code="NOT_FOUND", status=err.status, registry_code=code,
                         errors=err.errors)
    return err


def _normalize_pull_ref(ref: str) -> Reference:
    r = parse_normalized(ref)
    if r.digest is not None and r.tag is not None:
        r = r.with_digest(r.digest)
    return r.with_default_tag()


# --------------------------------------------------------------------------- pull


class _Resolved:
    def __init__(self, repo: Repository, digest: str, manifest: mf.Manifest,
                 manifest_digest: str, blobs: list[tuple[bytes, str]], from_index: bool):
        self.repo = repo
        self.digest = digest  # what the tag (or digest) names: index or manifest
        self.manifest = manifest
        self.manifest_digest = manifest_digest
        self.blobs = blobs  # (bytes, digest) of the index / manifest bodies
        self.from_index = from_index


def _resolve(client: RegistryClient, ref: Reference, want: dict) -> _Resolved:
    endpoints = client.endpoints(ref.domain)
    last: Exception | None = None
    for ep in endpoints:
        repo = Repository(ep, ref.path, ("pull",))
        try:
            return _resolve_on(repo, ref, want)
        except Aborted:
            raise
        except OCIError as e:
            last = e
            if ep.mirror:
                continue  # Docker: any mirror error falls back to the next endpoint
            raise
    assert last is not None
    raise last


def _resolve_on(repo: Repository, ref: Reference, want: dict) -> _Resolved:
    body, mt, digest = repo.get_manifest(ref.digest or ref.tag or "latest")
    blobs = [(body, digest)]
    top = digest
    from_index = False
    for _ in range(4):  # nested indexes, bounded
        doc = mf.parse(body, mt)
        if isinstance(doc, mf.Manifest):
            return _Resolved(repo, top, doc, digest, blobs, from_index)
        from_index = True
        desc = mf.select_manifest(doc, want)
        body, mt, digest = repo.get_manifest(desc.digest)
        if len(body) != desc.size:
            raise VerificationError(f"manifest verification failed for digest {desc.digest}")
        blobs.append((body, digest))
    raise InvalidArgument("too many nested indexes")


def pull(store: Any, ref: str, *, client: RegistryClient, emit: Emit,
         platform: str | None = None, max_concurrent: int = DEFAULT_CONCURRENCY,
         progress_interval: float = PROGRESS_INTERVAL) -> Any:
    """Pull ``ref`` into ``store``; report through ``emit``; return the ``Image``.
    Raises ``RegistryError`` (Docker's wording, ``http_status`` set), other
    ``OCIError``s, or ``Aborted``."""
    r = _normalize_pull_ref(ref)
    want = mf.parse_platform(platform)
    out = _Emitter(emit, progress_interval)
    try:
        res = _resolve(client, r, want)
    except RegistryError as e:
        raise translate_pull_error(e, r) from None
    except mf.Schema1Refused as e:
        raise mf.unsupported_manifest(e.media_type, r.string()) from None
    tag_or_digest = r.digest or r.tag or "latest"
    out({"status": f"Pulling from {r.path}", "id": tag_or_digest})

    man = res.manifest
    mf.check_config_type(man.config)
    for d in man.layers:
        mf.check_layer_type(d)
    if man.config.size > mf.MAX_CONFIG_SIZE:
        raise InvalidArgument(f"image config too large: {man.config.size} bytes")

    try:
        old_id = store.resolve(r.string())
    except OCIError:
        old_id = None

    new_blobs: list[str] = []
    new_layers: list[str] = []
    ok = False
    try:
        with store.lease():
            for body, d in res.blobs:
                if not store.has_blob(d):
                    store.put_blob(body, d)
                    new_blobs.append(d)
            cfg_digest = man.config.digest
            if not store.has_blob(cfg_digest):
                with store.blob_writer(cfg_digest, man.config.size) as w:
                    res.repo.fetch_blob(man.config, w)
                new_blobs.append(cfg_digest)
            config_bytes = store.read_blob(cfg_digest)
            try:
                config = json.loads(config_bytes)
                diff_ids = list(config["rootfs"]["diff_ids"])
            except (ValueError, KeyError, TypeError):
                raise InvalidArgument("invalid image config: no rootfs.diff_ids") from None
            if len(diff_ids) != len(man.layers):
                raise InvalidArgument("layers from manifest don't match image configuration")
            have = mf.config_platform(config)
            if have.get("os") and have["os"] != "linux":
                raise InvalidArgument(
                    f"image operating system \"{have['os']}\" cannot be used on this platform")
            if platform and not res.from_index and not mf.platform_matches(want, have):
                raise InvalidArgument(
                    f"image with reference {r.familiar_string()} was found but does not match "
                    f"the specified platform: wanted {mf.format_platform(want)}, actual: "
                    f"{mf.format_platform(have)}")
            image = _pull_layers(store, res, r, config_bytes, diff_ids, out, client,
                                 max_concurrent, new_blobs, new_layers)
            ok = True
    finally:
        if not ok:
            client.abort()
            with contextlib.suppress(OSError, OCIError):
                store.discard(blobs=new_blobs, layers=new_layers)

    # RepoDigest: name@<what the tag named> (Docker keeps the old one on a conflict)
    with contextlib.suppress(ImageConflict, InvalidReference):
        store.add_reference(r.trim().with_digest(res.digest).string(), image.id)
    out({"status": f"Digest: {res.digest}"})
    shown = r.familiar_string()
    if old_id == image.id:
        out({"status": f"Status: Image is up to date for {shown}"})
    else:
        out({"status": f"Status: Downloaded newer image for {shown}"})
    return store.get(image.id)


def _pull_layers(store: Any, res: _Resolved, r: Reference, config_bytes: bytes,
                 diff_ids: list[str], out: _Emitter, client: RegistryClient,
                 max_concurrent: int, new_blobs: list[str], new_layers: list[str]) -> Any:
    man = res.manifest
    chains = chain_ids(diff_ids)
    refs = [r.string()] if r.digest is None else []
    keep = [d for _, d in res.blobs]
    if store.exists(man.config.digest) or all(store.has_layer(c) for c in chains):
        if not store.exists(man.config.digest):
            for d in man.layers:
                out(_layer_msg("Already exists", short_id(d.digest)))
        return store.add_image(config_bytes, [None] * len(chains), refs=refs,
                               media_types=[d.media_type for d in man.layers], manifests=keep)

    # which layers to fetch (one download per distinct blob)
    first_missing = next(i for i, c in enumerate(chains) if not store.has_layer(c))
    todo: dict[str, mf.Descriptor] = {}
    for i, d in enumerate(man.layers):
        if i < first_missing:
            out(_layer_msg("Already exists", short_id(d.digest)))
        elif d.digest not in todo:
            todo[d.digest] = d
            out(_layer_msg("Pulling fs layer", short_id(d.digest)))
    for n, d in enumerate(todo.values()):
        if n >= max_concurrent:
            out(_layer_msg("Waiting", short_id(d.digest)))

    def download(d: mf.Descriptor) -> str:
        sid = short_id(d.digest)
        if store.has_blob(d.digest) and store.blob_size(d.digest) == d.size:
            out(_layer_msg("Download complete", sid))
            return d.digest
        with store.blob_writer(d.digest, d.size) as w:
            res.repo.fetch_blob(d, w, progress=lambda c, t: out.progress(
                "Downloading", sid, c, t), on_retry=lambda n: out(_retrying(sid, n)))
            out(_layer_msg("Verifying Checksum", sid))
        new_blobs.append(d.digest)
        out(_layer_msg("Download complete", sid))
        return d.digest

    pool = cf.ThreadPoolExecutor(max_workers=max(1, max_concurrent),
                                 thread_name_prefix="trioctr-pull")
    futures: dict[str, cf.Future] = {}
    try:
        for dg, d in todo.items():
            futures[dg] = pool.submit(download, d)
        parent = chains[first_missing - 1] if first_missing else None
        for i in range(first_missing, len(chains)):
            d = man.layers[i]
            sid = short_id(d.digest)
            futures[d.digest].result()
            if not store.has_layer(chains[i]):
                size = d.size
                chain = store.ensure_layer(parent, diff_ids[i], d.digest, d.media_type,
                                           progress=lambda n, s=sid, t=size: out.progress(
                                               "Extracting", s, n, t))
                new_layers.append(chain)
            out(_layer_msg("Pull complete", sid))
            parent = chains[i]
    except BaseException:
        client.abort()
        for f in futures.values():
            f.cancel()
        pool.shutdown(wait=True)
        # report the first real error, not the aborts it caused
        for f in futures.values():
            if f.done() and not f.cancelled():
                e = f.exception()
                if e is not None and not isinstance(e, Aborted):
                    raise e from None
        raise
    pool.shutdown(wait=True)
    return store.add_image(config_bytes, [d.digest for d in man.layers], refs=refs,
                           media_types=[d.media_type for d in man.layers], manifests=keep)


# --------------------------------------------------------------------------- push


_GZIP_TYPES = (mf.OCI_LAYER_GZIP, mf.DOCKER_LAYER_GZIP, mf.OCI_LAYER_ND_GZIP)
_ZSTD_TYPES = (mf.OCI_LAYER_ZSTD, mf.OCI_LAYER_ND_ZSTD)
_TAR_TYPES = (mf.OCI_LAYER, mf.DOCKER_LAYER, mf.OCI_LAYER_ND)


class _PushLayer:
    def __init__(self, diff_id: str, desc: mf.Descriptor, opener: Callable[[], BinaryIO]):
        self.diff_id = diff_id
        self.desc = desc
        self.opener = opener


def _tags_to_push(store: Any, r: Reference) -> list[Reference]:
    """Docker's: every tag of the repository when none is given."""
    if r.digest is not None:
        raise InvalidReference("cannot push a digest reference")
    tags = []
    for img in store.list():
        for t in img.repo_tags:
            p = parse_normalized(t)
            if p.name == r.name and p.tag:
                tags.append(p)
    if not tags:
        raise ImageNotFound(f"An image does not exist locally with the tag: {r.familiar_name}")
    if r.tag is not None:
        if not any(t.tag == r.tag for t in tags):
            raise ImageNotFound(f"tag does not exist: {r.familiar_string()}")
        return [r]
    return sorted(tags, key=lambda x: x.tag or "")


def _compression(store: Any, blob: str) -> str:
    """The stored blob's compression, by its magic bytes."""
    with store.open_blob(blob) as f:
        return detect_compression(f.read(6))


def _plan(store: Any, image_id: str, tmpdir: str) -> tuple[bytes, str, list[_PushLayer]]:
    """(manifest bytes, media type, layers) for one image; a stored
    manifest is reused verbatim when every blob it names is in the store.
    Otherwise a new manifest: Docker schema2 with gzip layers (an uncompressed
    layer is gzipped as Docker does), or OCI when a layer is zstd (schema2 has
    no zstd media type)."""
    rec = store.image_record(image_id)
    diff_ids = [layer["diff_id"] for layer in rec["layers"]]
    for m in rec.get("manifests") or []:
        if not store.has_blob(m):
            continue
        try:
            doc = mf.parse(store.read_blob(m))
        except OCIError:
            continue
        if not isinstance(doc, mf.Manifest) or doc.config.digest != image_id:
            continue
        if len(doc.layers) != len(diff_ids) or not all(
                store.has_blob(d.digest) and store.blob_size(d.digest) == d.size
                for d in doc.layers):
            continue
        layers = [_PushLayer(diff_ids[i], d, (lambda dg=d.digest: store.open_blob(dg)))
                  for i, d in enumerate(doc.layers)]
        return store.read_blob(m), doc.media_type, layers
    layers = []
    for layer in rec["layers"]:
        blob = layer.get("blob")
        if not blob or not store.has_blob(blob):
            raise InvalidArgument(f"cannot push: the content of layer {layer['diff_id']} is "
                                  "not in the store (imported without keeping its blob)")
        mt = layer.get("media_type") or ""
        known = mt in _GZIP_TYPES or mt in _ZSTD_TYPES or mt in _TAR_TYPES
        kind = "" if known else _compression(store, blob)
        if mt in _GZIP_TYPES or kind == "gzip":
            desc = mf.Descriptor(mf.DOCKER_LAYER_GZIP, blob, store.blob_size(blob))
            layers.append(_PushLayer(layer["diff_id"], desc,
                                     (lambda dg=blob: store.open_blob(dg))))
            continue
        if mt in _ZSTD_TYPES or kind == "zstd":
            desc = mf.Descriptor(mf.OCI_LAYER_ZSTD, blob, store.blob_size(blob))
            layers.append(_PushLayer(layer["diff_id"], desc,
                                     (lambda dg=blob: store.open_blob(dg))))
            continue
        if mt and mt not in _TAR_TYPES:
            raise InvalidArgument(f"cannot push a layer of media type {mt}")
        # uncompressed in the store: gzip it (deterministically) as Docker does
        path = os.path.join(tmpdir, blob.split(":", 1)[1] + ".gz")
        if not os.path.exists(path):
            with store.open_blob(blob) as src, open(path, "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=6) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
        with open(path, "rb") as f:
            dg, size = sha256_stream(f)
        layers.append(_PushLayer(layer["diff_id"], mf.Descriptor(mf.DOCKER_LAYER_GZIP, dg, size),
                                 (lambda p=path: open(p, "rb"))))
    if any(p.desc.media_type == mf.OCI_LAYER_ZSTD for p in layers):
        for p in layers:
            if p.desc.media_type == mf.DOCKER_LAYER_GZIP:
                p.desc.media_type = mf.OCI_LAYER_GZIP
        cfg = mf.Descriptor(mf.OCI_CONFIG, image_id, store.blob_size(image_id))
        body = mf.build_manifest(cfg, [p.desc for p in layers], mf.OCI_MANIFEST)
        return body, mf.OCI_MANIFEST, layers
    cfg = mf.Descriptor(mf.DOCKER_CONFIG, image_id, store.blob_size(image_id))
    body = mf.build_manifest(cfg, [p.desc for p in layers])
    return body, mf.DOCKER_MANIFEST, layers


def _mount_sources(store: Any, blob: str, domain: str, path: str) -> list[str]:
    """Repositories of the same registry that the store knows ``blob`` from."""
    out: list[str] = []
    for img in store.list():
        try:
            rec = store.image_record(img.id)
        except OCIError:
            continue
        blobs = {layer.get("blob") for layer in rec["layers"]}
        for m in rec.get("manifests") or []:
            with contextlib.suppress(OCIError, OSError):
                doc = mf.parse(store.read_blob(m))
                if isinstance(doc, mf.Manifest):
                    blobs.update(d.digest for d in doc.layers)
        if blob not in blobs:
            continue
        for ref in img.repo_tags + img.repo_digests:
            with contextlib.suppress(OCIError):
                p = parse_normalized(ref)
                if p.domain == domain and p.path != path and p.path not in out:
                    out.append(p.path)
    return out


def push(store: Any, ref: str, *, client: RegistryClient, emit: Emit,
         max_concurrent: int = DEFAULT_CONCURRENCY,
         progress_interval: float = PROGRESS_INTERVAL) -> list[dict]:
    """Push ``ref`` (``name:tag``, or every tag of ``name``) from ``store``;
    report through ``emit``; return ``[{"Tag", "Digest", "Size"}]``."""
    r = parse_normalized(ref)
    out = _Emitter(emit, progress_interval)
    out({"status": f"The push refers to repository [{r.name}]"})
    tags = _tags_to_push(store, r)
    registry = client.endpoints(r.domain)[-1]
    repo = Repository(registry, r.path, ("pull", "push"))
    results = []
    tmpdir = tempfile.mkdtemp(prefix=".tmp-push-", dir=store.root)
    try:
        with store.lease():  # an image removed meanwhile keeps its content until the end
            results = _push_tags(store, r, tags, repo, tmpdir, out, client, max_concurrent)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return results


def _push_tags(store: Any, r: Reference, tags: list[Reference], repo: Repository, tmpdir: str,
               out: "_Emitter", client: RegistryClient, max_concurrent: int) -> list[dict]:
    results = []
    for t in tags:
        image = store.get(t.string())
        body, mt, layers = _plan(store, image.id, tmpdir)
        _push_layers(store, repo, r, layers, out, max_concurrent, client)
        cfg_size = store.blob_size(image.id)
        if repo.blob_exists(image.id) is None:
            repo.upload_blob(image.id, cfg_size, lambda: store.open_blob(image.id))
        digest = repo.put_manifest(t.tag or "latest", body, mt)
        out({"status": f"{t.tag}: digest: {digest} size: {len(body)}"})
        out({"progressDetail": {}, "aux": {"Tag": t.tag, "Digest": digest,
                                           "Size": len(body)}})
        with contextlib.suppress(OCIError):
            store.add_reference(r.trim().with_digest(digest).string(), image.id)
        # keep the manifest: a later push finds where its layers already are
        # (cross-repository mounts) and can push it again verbatim
        with contextlib.suppress(OCIError, OSError):
            if not store.has_blob(digest):
                store.put_blob(body, digest)
            store.add_image(store.read_blob(image.id), [None] * len(layers),
                            manifests=[digest])
        results.append({"Tag": t.tag, "Digest": digest, "Size": len(body)})
    return results


def _push_layers(store: Any, repo: Repository, r: Reference, layers: list[_PushLayer],
                 out: _Emitter, max_concurrent: int, client: RegistryClient) -> None:
    order = list(reversed(layers))  # Docker lists the top layer first
    seen: set[str] = set()
    uniq = []
    for p in order:
        if p.desc.digest not in seen:
            seen.add(p.desc.digest)
            uniq.append(p)
    for p in uniq:
        out(_layer_msg("Preparing", short_id(p.diff_id)))
    for n, p in enumerate(uniq):
        if n >= max_concurrent:
            out(_layer_msg("Waiting", short_id(p.diff_id)))

    def one(p: _PushLayer) -> None:
        sid = short_id(p.diff_id)
        d = p.desc
        if repo.blob_exists(d.digest) is not None:
            out(_layer_msg("Layer already exists", sid))
            return
        location = None
        for src in _mount_sources(store, d.digest, r.domain, r.path)[:3]:
            try:
                mounted, location = repo.mount_blob(d.digest, src)
            except (RegistryError, TransportError):
                continue
            if mounted:
                out(_layer_msg(f"Mounted from {src}", sid))
                return
            if location:
                break
        repo.upload_blob(d.digest, d.size, p.opener,
                         progress=lambda c, t: out.progress("Pushing", sid, c, t),
                         location=location, on_retry=lambda n: out(_retrying(sid, n)))
        out(_layer_msg("Pushed", sid))

    pool = cf.ThreadPoolExecutor(max_workers=max(1, max_concurrent),
                                 thread_name_prefix="trioctr-push")
    futures = [pool.submit(one, p) for p in uniq]
    try:
        for f in futures:
            f.result()
    except BaseException:
        client.abort()
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
        for f in futures:
            if f.done() and not f.cancelled():
                e = f.exception()
                if e is not None and not isinstance(e, Aborted):
                    raise e from None
        raise
    pool.shutdown(wait=True)


def login(auth: dict | None, *, insecure: Iterable[str] = (), **client_kw: Any) -> dict:
    """``docker login`` (POST /auth): check the credentials against the registry
    of ``serveraddress`` (default Docker Hub).  Returns Docker's answer
    ``{"Status": "Login Succeeded", "IdentityToken": ""}``; wrong credentials
    raise ``RegistryError`` (HTTP 401) ``unauthorized: incorrect username or
    password`` (or the token server's own words)."""
    from .registry import AuthConfig
    cfg = AuthConfig.from_dict(auth)
    if cfg is None:
        raise InvalidArgument("no credentials given")
    server = cfg.server_address or "docker.io"
    for pre in ("https://", "http://"):
        if server.startswith(pre):
            server = server[len(pre):]
    server = server.split("/", 1)[0]
    if server in ("docker.io", "index.docker.io"):
        server = "registry-1.docker.io"
    with RegistryClient(auth=cfg, insecure=insecure, **client_kw) as c:
        reg = c.registry(server)
        resp = reg.request("GET", "/v2/")
        with resp:
            resp.read_limited(1 << 16)
        if resp.status == 401:
            raise RegistryError("unauthorized: incorrect username or password",
                                http_status=401, code="FAILED_PRECONDITION", status=401,
                                registry_code="UNAUTHORIZED")
        if resp.status != 200:
            raise RegistryError(f"login attempt to {reg.url('/v2/')} failed with status: "
                                f"{resp.status} {resp.reason}", status=resp.status)
    return {"Status": "Login Succeeded", "IdentityToken": ""}


def pull_sync(store: Any, ref: str, *, platform: str | None = None,
              auth: dict | None = None, insecure: Iterable[str] = (),
              mirrors: Iterable[str] = (), emit: Emit | None = None, **client_kw: Any) -> Any:
    """Convenience: a pull with its own client (messages to ``emit`` or dropped)."""
    with RegistryClient(auth=auth, insecure=insecure, mirrors=mirrors, **client_kw) as c:
        return pull(store, ref, client=c, emit=emit or (lambda m: None), platform=platform)


def push_sync(store: Any, ref: str, *, auth: dict | None = None,
              insecure: Iterable[str] = (), emit: Emit | None = None,
              **client_kw: Any) -> list[dict]:
    with RegistryClient(auth=auth, insecure=insecure, **client_kw) as c:
        return push(store, ref, client=c, emit=emit or (lambda m: None))
