"""``docker save`` / ``docker load``: image archives in and out of the image store.

Save writes what dockerd 25+ writes, an archive that is at once a legacy
docker-save archive and an OCI image layout::

    blobs/sha256/<config hex>     the image config (its digest is the image id)
    blobs/sha256/<diff_id hex>    each layer, an uncompressed tar (digest = diff_id)
    blobs/sha256/<manifest hex>   an OCI image manifest per image
    index.json                    OCI index: one descriptor per tag, annotated with
                                  io.containerd.image.name / org.opencontainers.image.ref.name
    oci-layout                    {"imageLayoutVersion": "1.0.0"}
    manifest.json                 [{"Config": "blobs/sha256/..", "RepoTags": [..],
                                    "Layers": ["blobs/sha256/..", ..]}]
    repositories                  {"busybox": {"latest": "<top layer hex>"}} (tagged only)

Old ``docker load`` follows ``manifest.json``'s paths, new tools read the OCI
layout.  Load accepts either of those, the pre-25 layout (``<id>.json``,
``<v1 id>/layer.tar``, symlinked duplicate layers) and a plain OCI layout
without ``manifest.json`` (``skopeo copy oci-archive:``, ``umoci``), with
gzip/bzip2/xz/zstd layers and a (compressed) outer archive.

Load reads the archive in place (nothing is extracted to disk), validates every
manifest, config and path first, then ingests the blobs (verified against their
digests) and unpacks the layers (verified against the config's diff_ids) under
a store lease, and only then registers the images: a bad archive is refused
with a clear error and what it wrote is collected again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from typing import Any, BinaryIO, Callable, Iterable

from .digest import chain_id, hex_of, is_digest
from .errors import (DigestMismatch, ImageNotFound, InvalidArgument, InvalidReference, NotFound)
from .reference import parse_any, parse_normalized
from .store import ImageStore, host_platform
from .unpack import GuardedTarInfo, decompress, detect_compression

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

CHUNK = 1 << 20


class LoadError(InvalidArgument):
    """The archive is not a loadable image archive (HTTP 400 / 500 in dockerd)."""


# --------------------------------------------------------------------------- compression


def _magic_kind(head: bytes) -> str:
    return detect_compression(head)


def _decompressed(f: BinaryIO) -> BinaryIO:
    """A reader of ``f`` decompressed by its magic bytes (gzip, bzip2, xz, zstd)."""
    return decompress(f)[0]


# --------------------------------------------------------------------------- save


def resolve_save_names(store: ImageStore, names: Iterable[str]) -> dict[str, list[str]]:
    """dockerd's ``parseNames``: image id -> the tags to save with it (in order).
    A bare name saves every tag of that repository; an id, a digest reference
    or an id prefix saves the image without a tag.  ``ImageNotFound`` /
    ``InvalidReference`` for a name that resolves to nothing."""
    out: dict[str, list[str]] = {}

    def add(image_id: str, tag: str | None) -> None:
        tags = out.setdefault(image_id, [])
        if tag is not None and tag not in tags:
            tags.append(tag)

    for name in names:
        parsed = parse_any(name)
        if isinstance(parsed, str):  # a full image id
            store.get(parsed)
            add(parsed, None)
            continue
        if parsed.tag is None and parsed.digest is None:
            with store._lock:
                refs = store._repos.get(parsed.familiar_name, {})
                found = [(r, i) for r, i in sorted(refs.items()) if "@" not in r]
            if found:
                for r, i in found:
                    add(i, parse_normalized(r).string())
                continue
            add(store.resolve(name), None)
            continue
        image_id = store.resolve(name)
        if parsed.digest is None:
            add(image_id, parsed.with_default_tag().string())
        else:
            add(image_id, None)
    return out


def check_exportable(store: ImageStore, image_ids: Iterable[str]) -> None:
    """Raise (``NotFound``) unless every layer of these images has a stored
    archive ``save`` can write (checked before a response is started)."""
    for image_id in image_ids:
        for layer in store.image_record(image_id)["layers"]:
            blob = layer.get("blob")
            if not blob or not store.has_blob(blob):
                raise NotFound(f"layer {layer['diff_id']} of {image_id} has no stored archive "
                               "to export (imported from a bzip2/xz tar or without keeping "
                               "layer blobs)")


def _tarinfo(name: str, size: int = 0, *, directory: bool = False, mtime: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if directory:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
    else:
        ti.size = size
        ti.mode = 0o644
    return ti


@contextlib.contextmanager
def open_layer_tar(store: ImageStore, chain: str, diff_id: str, tmpdir: str):
    """Yield ``(fileobj, size)``: the layer's uncompressed tar, checked against
    ``diff_id``.  From the stored blob (decompressed to a temp file if needed)."""
    meta = store.layer_meta(chain)
    blob = meta.get("blob")
    if not blob or not store.has_blob(blob):
        raise NotFound(f"layer {diff_id} has no stored archive to export "
                       "(imported from a bzip2/xz tar or without keeping layer blobs)")
    if blob == diff_id:
        with store.open_blob(blob) as f:
            yield f, store.blob_size(blob)
        return
    fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix=".tmp-layer-")
    try:
        h = hashlib.sha256()
        size = 0
        with store.open_blob(blob) as raw, os.fdopen(fd, "w+b") as out:
            src = _decompressed(raw)
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                h.update(b)
                out.write(b)
                size += len(b)
            if "sha256:" + h.hexdigest() != diff_id:
                raise DigestMismatch(f"layer {diff_id}: stored archive decompresses to "
                                     f"sha256:{h.hexdigest()}")
            out.seek(0)
            yield out, size
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save(store: ImageStore, names: Iterable[str], out: BinaryIO) -> list[str]:
    """Write a docker-save / OCI-layout archive of ``names`` to ``out``.  Returns
    the saved image ids (for the ``save`` events)."""
    images = resolve_save_names(store, names)
    tmpdir = store.root
    with store.lease(), tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_tarinfo("blobs", directory=True))
        tf.addfile(_tarinfo("blobs/sha256", directory=True))
        written: set[str] = set()
        manifest_json: list[dict] = []
        index: list[dict] = []
        repositories: dict[str, dict[str, str]] = {}

        def blob(data: bytes) -> str:
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            if d not in written:
                written.add(d)
                tf.addfile(_tarinfo(f"blobs/sha256/{hex_of(d)}", len(data)), io.BytesIO(data))
            return d

        for image_id, tags in images.items():
            rec = store.image_record(image_id)
            config = store.read_blob(image_id)
            cfg = json.loads(config)
            diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
            if not diff_ids:
                raise InvalidArgument("empty export - not implemented")
            blob(config)
            layer_descs = []
            for layer, diff_id in zip(rec["layers"], diff_ids):
                with open_layer_tar(store, layer["chain_id"], diff_id, tmpdir) as (f, size):
                    if diff_id not in written:
                        written.add(diff_id)
                        tf.addfile(_tarinfo(f"blobs/sha256/{hex_of(diff_id)}", size), f)
                layer_descs.append({"mediaType": MEDIA_OCI_LAYER, "digest": diff_id, "size": size})
            plat = {"architecture": cfg.get("architecture", ""), "os": cfg.get("os", "")}
            if cfg.get("variant"):
                plat["variant"] = cfg["variant"]
            manifest = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": image_id,
                                   "size": len(config)},
                        "layers": layer_descs}
            mbytes = json.dumps(manifest, separators=(",", ":")).encode()
            mdigest = blob(mbytes)
            desc = {"mediaType": MEDIA_OCI_MANIFEST, "digest": mdigest, "size": len(mbytes),
                    "platform": plat}
            repo_tags = []
            for tag in tags:
                ref = parse_normalized(tag)
                repo_tags.append(ref.familiar_string())
                repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = \
                    hex_of(diff_ids[-1])
                index.append(dict(desc, annotations={ANNOTATION_IMAGE_NAME: ref.string(),
                                                     ANNOTATION_REF_NAME: ref.tag or "latest"}))
            if not tags:
                index.append(desc)
            manifest_json.append({"Config": f"blobs/sha256/{hex_of(image_id)}",
                                  "RepoTags": repo_tags or None,
                                  "Layers": [f"blobs/sha256/{hex_of(d)}" for d in diff_ids]})

        def small(name: str, data: bytes) -> None:
            tf.addfile(_tarinfo(name, len(data)), io.BytesIO(data))

        small("index.json", json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                                        "manifests": index}, separators=(",", ":")).encode())
        small("manifest.json", (json.dumps(manifest_json, separators=(",", ":")) + "\n").encode())
        small("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            small("repositories", (json.dumps(repositories, separators=(",", ":")) + "\n").encode())
    return list(images)


# --------------------------------------------------------------------------- load: reading


class _Archive:
    """Random access to the members of a (possibly compressed) tar file."""

    def __init__(self, path: str):
        self._f = open(path, "rb")
        self._tmp: str | None = None
        try:
            head = self._f.read(6)
            self._f.seek(0)
            if not head:
                raise LoadError("invalid archive: the tar is empty (nothing to load)")
            kind = _magic_kind(head)
            if kind != "none":
                # random access wants a plain tar: decompress to a temp file next to it
                fd, self._tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-load-")
                with os.fdopen(fd, "wb") as out:
                    try:
                        shutil.copyfileobj(_decompressed(self._f), out, CHUNK)
                    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                        raise LoadError(f"invalid archive: {exc}") from None
                self._f.close()
                self._f = open(self._tmp, "rb")
            try:
                self._tf = tarfile.open(fileobj=self._f, mode="r:", tarinfo=GuardedTarInfo)
                members = self._tf.getmembers()
            except (tarfile.TarError, EOFError) as exc:
                raise LoadError(f"invalid tar archive: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            n = self._norm(m.name)
            if n:
                self.members[n] = m

    @staticmethod
    def _norm(name: str) -> str:
        n = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
        return "" if n == "." else n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular file at ``name``, following symlinks and hard links inside
        the archive (never out of it).  ``LoadError`` if there is none."""
        n = self._norm(name)
        for _ in range(40):
            m = self.members.get(n)
            if m is None:
                raise LoadError(f"invalid archive: {name} not found in the archive")
            if m.isfile():
                return m
            if m.issym():
                target = m.linkname if m.linkname.startswith("/") else \
                    posixpath.join(posixpath.dirname(n), m.linkname)
                n = self._norm(target)
            elif m.islnk():
                n = self._norm(m.linkname)
            else:
                raise LoadError(f"invalid archive: {name} is not a regular file")
        raise LoadError(f"invalid archive: too many levels of symbolic links at {name}")

    def has(self, name: str) -> bool:
        return self._norm(name) in self.members

    def open(self, name: str) -> tuple[BinaryIO, int]:
        m = self.resolve(name)
        f = self._tf.extractfile(m)
        assert f is not None
        return f, m.size  # type: ignore[return-value]

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        f, size = self.open(name)
        if size > limit:
            raise LoadError(f"invalid archive: {name} is too large ({size} bytes)")
        return f.read()


class _Item:
    """One image to load: its config, where each layer is, and its tags."""

    def __init__(self, config: bytes, layers: list[tuple[str, str | None]], tags: list[str]):
        self.config = config
        self.cfg = json.loads(config)
        self.diff_ids: list[str] = list(self.cfg["rootfs"]["diff_ids"])
        self.layers = layers  # (archive path, expected blob digest or None)
        self.tags = tags


def _parse_config(data: bytes, where: str) -> dict:
    try:
        cfg = json.loads(data)
        diff_ids = cfg["rootfs"]["diff_ids"]
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d)
                                                     for d in diff_ids):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise LoadError(f"invalid image config {where}: no valid rootfs.diff_ids") from None
    os_ = cfg.get("os") or "linux"
    if os_ != "linux":
        raise LoadError(f"cannot load {os_} image on linux")
    return cfg


def _tagged(ref: str) -> str:
    try:
        r = parse_normalized(ref)
    except (InvalidReference, ValueError):
        raise LoadError(f"invalid reference format: {ref}") from None
    if r.tag is None or r.digest is not None:
        raise LoadError(f"invalid tag {json.dumps(ref)}")
    return r.familiar_string()


def _docker_items(ar: _Archive) -> list[_Item]:
    try:
        manifest = json.loads(ar.read("manifest.json"))
    except ValueError as exc:
        raise LoadError(f"invalid manifest.json: {exc}") from None
    if manifest is None:
        raise LoadError("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list):
        raise LoadError("invalid manifest.json: not a list")
    items = []
    for m in manifest:
        if not isinstance(m, dict) or not isinstance(m.get("Config"), str):
            raise LoadError("invalid manifest.json: an entry has no Config")
        config = ar.read(m["Config"])
        cfg = _parse_config(config, m["Config"])
        layers = m.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise LoadError("invalid manifest.json: Layers must be a list of paths")
        n = len(cfg["rootfs"]["diff_ids"])
        if len(layers) != n:
            raise LoadError(f"invalid manifest, layers length mismatch: expected {len(layers)}, got {n}")
        for p in layers:
            ar.resolve(p)
        tags = [_tagged(t) for t in (m.get("RepoTags") or [])]
        items.append(_Item(config, [(p, None) for p in layers], tags))
    return items


def _blob_path(desc: Any) -> tuple[str, str]:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str) \
            or not is_digest(desc["digest"]):
        raise LoadError("invalid OCI layout: a descriptor has no valid digest")
    d = desc["digest"]
    return f"blobs/sha256/{hex_of(d)}", d


def _read_verified(ar: _Archive, desc: dict) -> bytes:
    path, digest = _blob_path(desc)
    data = ar.read(path)
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest:
        raise LoadError(f"invalid OCI layout: blob {digest} has digest {got}")
    return data


def _platform_ok(p: dict | None, want: dict) -> bool:
    if not p:
        return False
    if p.get("os") != want["os"] or p.get("architecture") != want["architecture"]:
        return False
    return not want.get("variant") or not p.get("variant") or p["variant"] == want["variant"]


def _oci_name(annotations: dict) -> str | None:
    name = annotations.get(ANNOTATION_IMAGE_NAME)
    ref = annotations.get(ANNOTATION_REF_NAME)
    for cand in (name, ref):
        if not cand:
            continue
        try:
            r = parse_normalized(cand)
        except (InvalidReference, ValueError):
            continue
        if r.digest is None and (r.tag is not None or cand == name):
            return r.with_default_tag().familiar_string()
    return None


def _oci_items(ar: _Archive) -> list[_Item]:
    try:
        index = json.loads(ar.read("index.json"))
        manifests = index["manifests"]
        if not isinstance(manifests, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise LoadError("invalid OCI layout: index.json has no manifests list") from None
    want = host_platform()
    by_manifest: dict[str, _Item] = {}
    order: list[str] = []

    def manifest_of(desc: dict, depth: int = 0) -> tuple[str, dict] | None:
        data = _read_verified(ar, desc)
        try:
            doc = json.loads(data)
        except ValueError:
            raise LoadError(f"invalid OCI layout: {desc['digest']} is not JSON") from None
        if not isinstance(doc, dict):
            raise LoadError(f"invalid OCI layout: {desc['digest']} is not a JSON object")
        mt = doc.get("mediaType") or desc.get("mediaType")
        if "manifests" in doc or mt in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST):
            if depth > 4:
                raise LoadError("invalid OCI layout: indexes nested too deep")
            subs = [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
            match = [m for m in subs if _platform_ok(m.get("platform"), want)]
            if not match and len(subs) == 1 and not subs[0].get("platform"):
                match = subs
            if not match:
                return None
            return manifest_of(match[0], depth + 1)
        return desc["digest"], doc

    for desc in manifests:
        if not isinstance(desc, dict):
            continue
        plat = desc.get("platform")
        if plat and desc.get("mediaType") not in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST) \
                and not _platform_ok(plat, want) and len(manifests) > 1:
            continue
        found = manifest_of(desc)
        if found is None:
            continue
        mdigest, doc = found
        name = _oci_name(desc.get("annotations") or {})
        if mdigest in by_manifest:
            if name and name not in by_manifest[mdigest].tags:
                by_manifest[mdigest].tags.append(name)
            continue
        cdesc = doc.get("config")
        ldescs = doc.get("layers")
        if not isinstance(cdesc, dict) or not isinstance(ldescs, list):
            raise LoadError(f"invalid OCI layout: manifest {mdigest} has no config or layers")
        config = _read_verified(ar, cdesc)
        cfg = _parse_config(config, cdesc.get("digest", ""))
        if len(ldescs) != len(cfg["rootfs"]["diff_ids"]):
            raise LoadError(f"invalid manifest, layers length mismatch: expected "
                            f"{len(ldescs)}, got {len(cfg['rootfs']['diff_ids'])}")
        layers = []
        for ld in ldescs:
            path, digest = _blob_path(ld)
            ar.resolve(path)
            layers.append((path, digest))
        by_manifest[mdigest] = _Item(config, layers, [name] if name else [])
        order.append(mdigest)
    if not order:
        raise LoadError("invalid OCI layout: no image for this platform "
                        f"({want['os']}/{want['architecture']}) in index.json")
    return [by_manifest[d] for d in order]


# --------------------------------------------------------------------------- load


def load(store: ImageStore, path: str, emit: Callable[[dict], None], *,
         quiet: bool = False, progress_interval: float = 0.1) -> list[dict]:
    """``docker load`` of the archive at ``path``.  ``emit(msg)`` gets dockerd's
    JSON messages: ``Loading layer`` progress (unless ``quiet``) and the
    ``{"stream": "Loaded image: busybox:latest\\n"}`` lines.  Returns
    ``[{"id", "tags"}]`` for the events.  ``LoadError`` (an ``InvalidArgument``)
    or ``DigestMismatch`` on a bad archive, and then no image was added."""
    from .distribution import progress_bar

    with _Archive(path) as ar:
        if ar.has("manifest.json"):
            items = _docker_items(ar)
        elif ar.has("index.json"):
            items = _oci_items(ar)
        else:
            raise LoadError("invalid archive: neither manifest.json (docker save) nor "
                            "index.json (OCI image layout) found")
        blobs_written: list[str] = []
        layers_written: list[str] = []
        done = False
        with store.lease():
            try:
                plans = []
                for item in items:
                    parent = None
                    blobs: list[str | None] = []
                    for i, (diff_id, (p, expect)) in enumerate(zip(item.diff_ids, item.layers)):
                        chain = chain_id(parent, diff_id)
                        if store.has_layer(chain):
                            blobs.append(None)
                            parent = chain
                            continue
                        f, size = ar.open(p)
                        sid = hex_of(diff_id)[:12]
                        last = [0.0]

                        def report(n: int, size: int = size, sid: str = sid,
                                   last: list = last) -> None:
                            now = time.monotonic()
                            if n < size and now - last[0] < progress_interval:
                                return
                            last[0] = now
                            emit({"status": "Loading layer",
                                  "progressDetail": {"current": n, "total": size},
                                  "progress": progress_bar(n, size), "id": sid})

                        src: Any = _Progress(f, report) if not quiet else f
                        try:
                            digest, _ = store.put_blob(src, expect)
                        except DigestMismatch as exc:
                            raise LoadError(f"invalid archive: {p}: {exc}") from None
                        except (tarfile.TarError, EOFError, OSError) as exc:
                            raise LoadError(f"invalid archive: {p}: {exc}") from None
                        blobs_written.append(digest)
                        with store.open_blob(digest) as bf:
                            mt = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
                                  "none": MEDIA_OCI_LAYER}.get(_magic_kind(bf.read(6)))
                        try:
                            store.ensure_layer(parent, diff_id, digest, mt)
                        except DigestMismatch as exc:
                            raise LoadError(f"invalid diffID for layer {i}: {exc}") from None
                        layers_written.append(chain)
                        blobs.append(digest)
                        parent = chain
                    plans.append((item, blobs))
                results = []
                for item, blobs in plans:
                    renamed = []
                    for tag in item.tags:
                        with contextlib.suppress(ImageNotFound, InvalidReference):
                            prev = store.resolve(tag)
                            renamed.append((tag, prev))
                    img = store.add_image(item.config, blobs, refs=item.tags)
                    results.append({"id": img.id, "tags": list(item.tags)})
                    prevs = dict(renamed)
                    for tag in item.tags:
                        if prevs.get(tag, img.id) != img.id:
                            emit({"stream": f"The image {tag} already exists, renaming the old "
                                            f"one with ID {prevs[tag]} to empty string\n"})
                        emit({"stream": f"Loaded image: {tag}\n"})
                done = True
            finally:
                if not done:
                    store.discard(blobs=blobs_written, layers=layers_written)
    if results and not results[-1]["tags"]:  # dockerd prints the ids only then
        emit({"stream": "".join(f"Loaded image ID: {r['id']}\n" for r in results)})
    return results


class _Progress:
    def __init__(self, f: BinaryIO, report: Callable[[int], None]):
        self._f = f
        self._report = report
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self.n += len(b)
        self._report(self.n)
        return b
