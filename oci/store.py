"""The image store: content-addressed blobs, unpacked layers, images, references.

Layout under ``root`` (``<data-root>/image``)::

    blobs/sha256/<hex>          content store: image configs, layer blobs, manifests
    blobs/sha256/.tmp-*         blobs being written (removed at startup)
    layers/<chainid-hex>/fs     one unpacked layer (its diff only), overlayfs lowerdir
    layers/<chainid-hex>/meta.json
                                {"chain_id", "diff_id", "parent", "size", "tar_size",
                                 "blob", "media_type", "whiteouts", "opaque_dirs",
                                 "pending_whiteouts", "pending_opaques"}
    layers/.tmp-* / .del-*      layers being unpacked / deleted (removed at startup)
    imagedb/<id-hex>            the image record, JSON: {"id", "layers": [{"chain_id",
                                "diff_id", "blob", "media_type"}], "parent",
                                "last_tag_time", "manifests"}; the config itself is the
                                blob ``blobs/sha256/<id-hex>`` (image id = config digest)
    repositories.json           references, Docker's format and keys (see below)
    pins.json                   {container id: [chain ids]}: the layers of containers
                                whose image was force-removed (kept until they go)

``repositories.json`` is Docker's file: ``{"Repositories": {"busybox":
{"busybox:latest": "sha256:...", "busybox@sha256:...": "sha256:..."}}}``, keyed
by *familiar* names and familiar reference strings exactly like dockerd's
``refstore``; ``docker.io/library/`` is implied.  Other registries keep their
domain (``localhost:5000/a/b:tag``).

Durability: every metadata file is written atomically (temp file in the same
directory, fsync, rename, fsync of the directory).  A layer is unpacked in
``layers/.tmp-*`` and renamed to its chain id only when complete (after a
``sync`` when ``durable``), so a crash never leaves a half layer under a real
name.  Image records are written after their content and deleted before it.

Refcounts are not stored: an image references its config blob, its layers
(chain ids) and their blobs, and its manifests; the daemon tells the store which
layers containers use (``set_container_layers``, plus ``pins.json``); a layer or
blob nothing references is garbage (``gc()`` / ``collect()``, and ``remove()``
deletes what the removed image alone used).  ``prune()`` is ``docker image
prune``, ``history()`` ``docker history``; ``docker save``/``load`` archives are
``oci.tarexport``.

Thread safety: one ``threading.RLock`` per store guards the in-memory index and
every reference/metadata update.  Long work (hashing, unpacking) runs outside
it under a *lease*; content deletion waits until no lease is held (``remove()``
defers it to the end of the last lease, ``gc()`` waits), so a concurrent import
never loses a blob or layer it is about to register.

Only one process may own a store: the daemon.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import os
import platform as _platform
import re
import shutil
import tempfile
import threading
import time
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

import attrs

from . import changes as _changes
from .digest import (SHA256, HashingReader, chain_id, from_hex, hex_of, is_digest, is_hex64,
                     sha256_bytes, short_id, validate_digest)
from .errors import (BlobNotFound, DigestMismatch, ImageConflict, ImageNotFound,
                     InvalidArgument, InvalidReference, LayerNotFound)
from .reference import Reference, normalize_tagged, parse_any, parse_normalized
from .unpack import UnpackResult, unpack_layer

MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_VARIANT = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8"}

CHUNK = 1 << 20


# --------------------------------------------------------------------------- time


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction trimmed)."""
    secs, frac = divmod(int(ns), 1_000_000_000)
    s = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        s += "." + f"{frac:09d}".rstrip("0")
    return s + "Z"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})")


def parse_rfc3339_ns(s: str) -> int:
    """RFC 3339 (any fraction length) -> nanoseconds since the epoch; 0 if unparsable."""
    m = _RFC3339.fullmatch(s or "")
    if not m:
        return 0
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    tz = m.group(8)
    off = 0
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    try:
        base = _dt.datetime(y, mo, d, h, mi, se, tzinfo=_dt.timezone.utc)
    except ValueError:
        return 0
    return (int(base.timestamp()) - off) * 1_000_000_000 + int(frac)


def _created_str(created: Any) -> str:
    if created is None:
        return rfc3339_nano(time.time_ns())
    if isinstance(created, str):
        if not _RFC3339.fullmatch(created):
            raise InvalidArgument(f"invalid created time {created!r}")
        return created
    if isinstance(created, _dt.datetime):
        if created.tzinfo is None:
            created = created.replace(tzinfo=_dt.timezone.utc)
        return rfc3339_nano(int(created.timestamp()) * 1_000_000_000 + created.microsecond * 1000)
    return rfc3339_nano(int(float(created) * 1_000_000_000))


# --------------------------------------------------------------------------- files


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` at ``path`` atomically: temp file, fsync, rename, fsync dir."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(d)


def _rmtree(path: str) -> None:
    def onerror(func, p, exc_info):  # unprivileged: make read-only dirs writable
        if isinstance(exc_info[1], FileNotFoundError):
            return
        try:
            parent = os.path.dirname(p)
            os.chmod(parent, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)
        except FileNotFoundError:
            pass
    shutil.rmtree(path, onerror=onerror)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def host_platform() -> dict[str, str]:
    m = _platform.machine()
    out = {"os": "linux", "architecture": _ARCH.get(m, m)}
    if m in _VARIANT and out["architecture"] == "arm":
        out["variant"] = _VARIANT[m]
    return out


def _parse_platform(p: str | None) -> dict[str, str]:
    if not p:
        return host_platform()
    parts = p.split("/")
    if len(parts) not in (1, 2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {p!r}")
    if len(parts) == 1:
        out = {"os": parts[0], "architecture": host_platform()["architecture"]}
    else:
        out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class _Tee:
    """Reader that copies what it reads into a file and hashes it."""

    def __init__(self, src: BinaryIO, fd: int):
        self._src = src
        self._fd = fd
        self._hr = HashingReader(src)

    def read(self, n: int = -1) -> bytes:
        b = self._hr.read(n)
        view = memoryview(b)
        while view:
            k = os.write(self._fd, view)
            view = view[k:]
        return b

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def count(self) -> int:
        return self._hr.count

    def digest(self) -> str:
        return self._hr.digest()


class _CountingReader:
    """Reader that reports the bytes read so far to ``progress(n)``."""

    def __init__(self, src: BinaryIO, progress: Callable[[int], None]):
        self._src = src
        self._progress = progress
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        b = self._src.read(n)
        if b:
            self.count += len(b)
            self._progress(self.count)
        return b


class BlobWriter:
    """A blob being written into the content store (``ImageStore.blob_writer``).

    Bytes go to a temp file in ``blobs/sha256`` and are hashed on the way;
    ``commit()`` checks the size and digest announced (if any), fsyncs and renames
    into place.  Anything else (``abort()``, leaving the ``with`` block without
    ``commit()``, a mismatch) removes the temp file: nothing is left behind.
    ``reset()`` starts over (a download whose resume was refused); ``offset`` is
    what has been written (where a ``Range`` resume starts)."""

    def __init__(self, store: "ImageStore", expected_digest: str | None,
                 expected_size: int | None):
        if expected_digest is not None:
            validate_digest(expected_digest)
        self._store = store
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        fd, self._tmp = tempfile.mkstemp(dir=store.blobs_dir, prefix=".tmp-")
        self._f = os.fdopen(fd, "wb")
        self._h = hashlib.sha256()
        self.offset = 0
        self.digest: str | None = None
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("blob writer is closed")
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            raise DigestMismatch(f"size mismatch: expected {self.expected_size} bytes, "
                                 f"got more than that")
        self._f.write(data)
        self._h.update(data)
        self.offset += len(data)

    def current_digest(self) -> str:
        """The digest of what has been written so far."""
        return f"{SHA256}:{self._h.hexdigest()}"

    def reset(self) -> None:
        self._f.seek(0)
        self._f.truncate()
        self._h = hashlib.sha256()
        self.offset = 0

    def commit(self) -> str:
        """Verify and store; return the digest.  ``DigestMismatch`` on a wrong
        size or digest (and the temp file is gone)."""
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            digest = f"{SHA256}:{self._h.hexdigest()}"
            if self.expected_size is not None and self.offset != self.expected_size:
                raise DigestMismatch(f"size mismatch: expected {self.expected_size} bytes, "
                                     f"got {self.offset}")
            if self.expected_digest is not None and digest != self.expected_digest:
                raise DigestMismatch(
                    f"digest mismatch: expected {self.expected_digest}, got {digest}")
            self._store._commit_blob(self._tmp, digest)
            self.digest = digest
            self._done = True
            return digest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()


# --------------------------------------------------------------------------- model


@attrs.define
class LayerInfo:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    path: str
    """The layer's ``fs`` directory."""


@attrs.define
class ContainerUse:
    """A container's use of an image, for ``remove``'s conflict checks."""
    id: str
    image_id: str
    running: bool = False


@attrs.define
class Image:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    created: str
    """RFC 3339 from the config ("" when the config has none)."""
    size: int
    config: dict
    """The image config JSON (OCI / Docker)."""
    parent: str = ""
    layers: list[str] = attrs.Factory(list)
    """Chain ids, bottom layer first."""
    layer_dirs: list[str] = attrs.Factory(list)
    """Unpacked layer dirs, bottom layer first (same order as ``layers``)."""
    last_tag_time: str | None = None

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def container_config(self) -> dict:
        """``config["config"]`` (Env, Cmd, Entrypoint, ...) or {}."""
        return self.config.get("config") or {}

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def created_unix(self) -> int:
        return parse_rfc3339_ns(self.created) // 1_000_000_000

    def to_docker_summary(self, containers: int = -1, legacy_none: bool = True) -> dict:
        """``ImageSummary`` for GET /images/json (API v1.41).  Untagged images show
        ``<none>:<none>`` / ``<none>@<none>`` as API < 1.43 does (``legacy_none``)."""
        tags, digests = list(self.repo_tags), list(self.repo_digests)
        if legacy_none and not tags and not digests:
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        return {
            "Containers": containers,
            "Created": self.created_unix,
            "Id": self.id,
            "Labels": dict(self.container_config.get("Labels") or {}),
            "ParentId": self.parent,
            "RepoDigests": digests,
            "RepoTags": tags,
            "SharedSize": -1,
            "Size": self.size,
            "VirtualSize": self.size,
        }

    def to_docker_inspect(self) -> dict:
        """``ImageInspect`` for GET /images/{name}/json (API v1.41)."""
        cfg = self.config
        ccfg = _changes.empty_container_config()
        ccfg.update(self.container_config)
        graph: dict[str, str] = {}
        if self.layer_dirs:
            graph["UpperDir"] = self.layer_dirs[-1]
            if len(self.layer_dirs) > 1:
                graph["LowerDir"] = ":".join(reversed(self.layer_dirs[:-1]))
        out = {
            "Id": self.id,
            "RepoTags": list(self.repo_tags),
            "RepoDigests": list(self.repo_digests),
            "Parent": self.parent,
            "Comment": cfg.get("comment", ""),
            "Created": self.created,
            "Container": cfg.get("container", ""),
            "ContainerConfig": _changes.empty_container_config() | dict(
                cfg.get("container_config") or {}),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": ccfg,
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": {"Name": "overlay2", "Data": graph},
            "RootFS": {"Type": (cfg.get("rootfs") or {}).get("type", "layers"),
                       "Layers": self.diff_ids},
            "Metadata": {"LastTagTime": self.last_tag_time or "0001-01-01T00:00:00Z"},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        return out


@attrs.define
class _Record:
    id: str
    layers: list[dict]  # {"chain_id", "diff_id", "blob", "media_type"}
    parent: str = ""
    last_tag_time: str | None = None
    manifests: list[str] = attrs.Factory(list)

    def to_json(self) -> dict:
        return {"id": self.id, "layers": self.layers, "parent": self.parent,
                "last_tag_time": self.last_tag_time, "manifests": self.manifests}

    @classmethod
    def from_json(cls, d: dict) -> "_Record":
        return cls(id=d["id"], layers=list(d.get("layers") or []),
                   parent=d.get("parent") or "", last_tag_time=d.get("last_tag_time"),
                   manifests=list(d.get("manifests") or []))


# --------------------------------------------------------------------------- store


class ImageStore:
    """Images, layers and blobs under ``root``.  All methods are synchronous and
    thread-safe; call them from trio with ``trio.to_thread.run_sync``."""

    def __init__(self, root: str, *, privileged: bool | None = None, durable: bool = True,
                 keep_layer_blobs: bool = True):
        self.root = os.path.abspath(root)
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self.durable = durable
        self.keep_layer_blobs = keep_layer_blobs
        self.blobs_dir = os.path.join(self.root, "blobs", SHA256)
        self.layers_dir = os.path.join(self.root, "layers")
        self.imagedb_dir = os.path.join(self.root, "imagedb")
        self.repos_path = os.path.join(self.root, "repositories.json")
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._leases = 0
        self._gc_pending = False
        self._records: dict[str, _Record] = {}
        self._configs: dict[str, dict] = {}
        self._repos: dict[str, dict[str, str]] = {}
        self._keep_layers: set[str] = set()
        """Chain ids used by containers (``set_container_layers``): never collected."""
        self._pins: dict[str, list[str]] = {}
        """container id -> the chain ids of its image, for containers whose image
        was force-removed (``pins.json``): never collected while they exist."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        for d in (self.blobs_dir, self.layers_dir, self.imagedb_dir):
            os.makedirs(d, mode=0o755, exist_ok=True)
        self._recover()
        self._load()
        self._load_pins()

    # ------------------------------------------------------------------ startup

    def _recover(self) -> None:
        for d in (self.blobs_dir, self.imagedb_dir, self.root):
            for n in os.listdir(d):
                if n.startswith(".tmp-"):
                    p = os.path.join(d, n)
                    if os.path.isdir(p) and not os.path.islink(p):
                        _rmtree(p)
                    else:
                        os.unlink(p)
        for n in os.listdir(self.layers_dir):
            if n.startswith(".tmp-") or n.startswith(".del-"):
                _rmtree(os.path.join(self.layers_dir, n))

    def _load(self) -> None:
        for n in os.listdir(self.imagedb_dir):
            if not is_hex64(n):
                continue
            try:
                with open(os.path.join(self.imagedb_dir, n), "rb") as f:
                    rec = _Record.from_json(json.load(f))
                cfg = self._read_config(rec.id)
            except (OSError, ValueError, KeyError):
                continue  # unreadable or incomplete record: ignore (gc removes content)
            if any(not os.path.isdir(self._layer_path(layer["chain_id"]))
                   for layer in rec.layers):
                continue
            self._records[rec.id] = rec
            self._configs[rec.id] = cfg
        try:
            with open(self.repos_path, "rb") as f:
                data = json.load(f)
            repos = data.get("Repositories") or {}
        except FileNotFoundError:
            repos = {}
        except ValueError:
            repos = {}
        dirty = False
        for repo, refs in repos.items():
            for refstr, img in (refs or {}).items():
                if img in self._records:
                    self._repos.setdefault(repo, {})[refstr] = img
                else:
                    dirty = True
        if dirty:
            self._save_repos()

    def _read_config(self, image_id: str) -> dict:
        with open(self.blob_path(image_id), "rb") as f:
            return json.load(f)

    # ------------------------------------------------------------------ leases

    @contextlib.contextmanager
    def _lease(self) -> Iterator[None]:
        with self._lock:
            self._leases += 1
        try:
            yield
        finally:
            trash: list[str] = []
            with self._lock:
                self._leases -= 1
                if self._leases == 0:
                    self._idle.notify_all()
                    if self._gc_pending:
                        self._gc_pending = False
                        _, trash = self._collect_locked()
            self._empty_trash(trash)

    def lease(self) -> contextlib.AbstractContextManager[None]:
        """Hold while a multi-step import (a pull) is in flight: blobs and layers
        written under it are not garbage-collected before they are registered
        (``gc()`` waits, ``remove()`` defers its deletions to the lease's end)."""
        return self._lease()

    @staticmethod
    def _empty_trash(trash: list[str]) -> None:
        """Remove layer trees already renamed out of the way (outside the lock)."""
        for t in trash:
            _rmtree(t)

    # ------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, hex_of(digest))

    def has_blob(self, digest: str) -> bool:
        return is_digest(digest) and os.path.isfile(self.blob_path(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None

    def blob_size(self, digest: str) -> int:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def put_blob(self, src: bytes | BinaryIO, expected_digest: str | None = None
                 ) -> tuple[str, int]:
        """Store content; return ``(digest, size)``.  Streamed to a temp file in
        ``blobs/sha256``, hashed while written, fsynced, renamed into place.  A
        digest mismatch raises ``DigestMismatch`` and leaves nothing behind."""
        if expected_digest is not None:
            validate_digest(expected_digest)
        with self._lease():
            return self._put_blob(src, expected_digest)

    @contextlib.contextmanager
    def blob_writer(self, expected_digest: str | None = None,
                    expected_size: int | None = None) -> Iterator[BlobWriter]:
        """``with store.blob_writer(digest, size) as w: w.write(...); w.commit()``:
        a streamed, verified write (see ``BlobWriter``), under a lease."""
        with self._lease():
            w = BlobWriter(self, expected_digest, expected_size)
            try:
                yield w
            finally:
                w.abort()

    def _put_blob(self, src: bytes | BinaryIO, expected: str | None) -> tuple[str, int]:
        fd, tmp = tempfile.mkstemp(dir=self.blobs_dir, prefix=".tmp-")
        try:
            if isinstance(src, (bytes, bytearray, memoryview)):
                data = bytes(src)
                digest, size = sha256_bytes(data), len(data)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                try:
                    tee = _Tee(src, fd)
                    tee.drain()
                    os.fsync(fd)
                finally:
                    os.close(fd)
                digest, size = tee.digest(), tee.count
            if expected is not None and digest != expected:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
            return self._commit_blob(tmp, digest), size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _commit_blob(self, tmp: str, digest: str) -> str:
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.blob_path(digest))
        _fsync_dir(self.blobs_dir)
        return digest

    def delete_blob(self, digest: str) -> bool:
        """Delete a blob (even if referenced: use ``gc()`` for safe collection)."""
        with self._lock:
            try:
                os.unlink(self.blob_path(digest))
                return True
            except FileNotFoundError:
                return False

    # ------------------------------------------------------------------ layers

    def _layer_path(self, chain: str) -> str:
        return os.path.join(self.layers_dir, hex_of(chain))

    def has_layer(self, chain: str) -> bool:
        return is_digest(chain) and os.path.isfile(
            os.path.join(self._layer_path(chain), "meta.json"))

    def layer_meta(self, chain: str) -> dict:
        try:
            with open(os.path.join(self._layer_path(chain), "meta.json"), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            raise LayerNotFound(f"layer {chain} not found") from None

    def layer_dir(self, chain: str) -> str:
        """The ``fs`` directory of a layer."""
        return os.path.join(self._layer_path(chain), "fs")

    def ensure_layer(self, parent: str | None, diff_id: str, blob: str,
                     media_type: str | None = None,
                     progress: Callable[[int], None] | None = None) -> str:
        """Unpack the stored ``blob`` as the layer ``diff_id`` on top of the layer
        ``parent`` (a chain id, None for a base layer) unless that layer exists;
        return its chain id.  The diff_id is verified.  ``progress(n)`` gets the
        blob bytes consumed so far.  Hold ``lease()`` until the image using it is
        registered (``add_image``), or a ``gc()`` may take it back."""
        validate_digest(diff_id)
        chain = chain_id(parent, diff_id)
        with self._lease():
            if self.has_layer(chain):
                return chain
            if parent is not None and not self.has_layer(parent):
                raise LayerNotFound(f"layer {parent} not found")
            with self.open_blob(blob) as f:
                src: Any = _CountingReader(f, progress) if progress else f
                self._create_layer(src, parent, diff_id, (blob, media_type))
        return chain

    def discard(self, blobs: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        """Delete these blobs and layers if no image references them (what a
        failed pull wrote).  While another import holds a lease, this is left to
        the end of the last lease (a collection of all unreferenced content)."""
        trash: list[str] = []
        with self._lock:
            if self._leases:
                self._gc_pending = True
                return
            used_layers, used_blobs = self._referenced_locked()
            for chain in reversed(list(layers)):
                if chain not in used_layers:
                    t = self._delete_layer_locked(chain)
                    if t:
                        trash.append(t)
            for b in blobs:
                if is_digest(b) and b not in used_blobs:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.blob_path(b))
        self._empty_trash(trash)

    def _create_layer(self, src: BinaryIO, parent: str | None,
                      expected_diff_id: str | None, blob: tuple[str, str | None] | None
                      ) -> tuple[LayerInfo, UnpackResult]:
        tmp = tempfile.mkdtemp(dir=self.layers_dir, prefix=".tmp-")
        try:
            fs = os.path.join(tmp, "fs")
            os.mkdir(fs, 0o755)
            res = unpack_layer(src, fs, privileged=self.privileged)
            if expected_diff_id is not None and res.diff_id != expected_diff_id:
                raise DigestMismatch(
                    f"layer diff_id mismatch: expected {expected_diff_id}, got {res.diff_id}")
            chain = chain_id(parent, res.diff_id)
            meta = {
                "chain_id": chain, "diff_id": res.diff_id, "parent": parent,
                "size": res.size, "tar_size": res.tar_size,
                "blob": blob[0] if blob else None,
                "media_type": blob[1] if blob else None,
                "whiteouts": res.whiteouts, "opaque_dirs": res.opaque_dirs,
                "pending_whiteouts": res.pending_whiteouts,
                "pending_opaques": res.pending_opaques,
            }
            atomic_write(os.path.join(tmp, "meta.json"), _json_bytes(meta))
            if self.durable:
                os.sync()
            final = self._layer_path(chain)
            with self._lock:
                if os.path.isdir(final):
                    placed = False
                else:
                    os.rename(tmp, final)
                    _fsync_dir(self.layers_dir)
                    placed = True
            if not placed:
                _rmtree(tmp)
            return LayerInfo(chain, res.diff_id, parent, res.size, os.path.join(final, "fs")), res
        except BaseException:
            if os.path.isdir(tmp):
                _rmtree(tmp)
            raise

    def _delete_layer_locked(self, chain: str) -> str | None:
        """Rename a layer out of the way (``.del-*``: never mistaken for a layer,
        removed at startup if a crash interrupts); return the trash path to
        remove once the lock is released."""
        path = self._layer_path(chain)
        if not os.path.isdir(path):
            return None
        trash = os.path.join(self.layers_dir, f".del-{hex_of(chain)[:12]}-{os.urandom(4).hex()}")
        os.rename(path, trash)
        return trash

    # ------------------------------------------------------------------ references

    def _save_repos(self) -> None:
        data = {"Repositories": {k: dict(sorted(v.items()))
                                 for k, v in sorted(self._repos.items()) if v}}
        atomic_write(self.repos_path, json.dumps(data, indent=None, separators=(",", ":")).encode())

    def _refs_of(self, image_id: str) -> list[Reference]:
        refs = [parse_normalized(r) for repo in self._repos.values()
                for r, i in repo.items() if i == image_id]
        refs.sort(key=lambda r: r.familiar_string())
        return refs

    def _lookup_ref(self, ref: Reference) -> str | None:
        if ref.digest is not None and ref.tag is not None:
            ref = ref.with_digest(ref.digest)  # digest takes precedence
        ref = ref.with_default_tag()
        return self._repos.get(ref.familiar_name, {}).get(ref.familiar_string())

    def _add_ref_locked(self, ref: Reference, image_id: str) -> None:
        ref = ref.with_default_tag()
        repo = self._repos.setdefault(ref.familiar_name, {})
        key = ref.familiar_string()
        old = repo.get(key)
        if ref.digest is not None and old is not None and old != image_id:
            raise ImageConflict(f"Cannot overwrite digest {ref.digest}")
        repo[key] = image_id

    def _remove_ref_locked(self, ref: Reference) -> bool:
        ref = ref.with_default_tag()
        repo = self._repos.get(ref.familiar_name)
        if not repo or repo.pop(ref.familiar_string(), None) is None:
            return False
        if not repo:
            del self._repos[ref.familiar_name]
        return True

    def references(self, image_id: str) -> list[str]:
        """Familiar reference strings pointing at an image, sorted."""
        with self._lock:
            return [r.familiar_string() for r in self._refs_of(image_id)]

    # ------------------------------------------------------------------ images

    def _image_locked(self, image_id: str) -> Image:
        rec = self._records[image_id]
        cfg = self._configs[image_id]
        refs = self._refs_of(image_id)
        size = 0
        for layer in rec.layers:
            try:
                size += int(self.layer_meta(layer["chain_id"]).get("size", 0))
            except LayerNotFound:
                pass
        chains = [layer["chain_id"] for layer in rec.layers]
        return Image(
            id=image_id,
            repo_tags=[r.familiar_string() for r in refs if r.digest is None],
            repo_digests=[r.familiar_string() for r in refs if r.digest is not None],
            created=cfg.get("created", "") or "",
            size=size,
            config=copy.deepcopy(cfg),  # callers may mutate their copy
            parent=rec.parent,
            layers=chains,
            layer_dirs=[self.layer_dir(c) for c in chains],
            last_tag_time=rec.last_tag_time,
        )

    def _resolve_locked(self, ref_or_id: str) -> str:
        """Docker's ``GetImage`` lookup order: full id / digest, then reference,
        then unique id prefix."""
        if not isinstance(ref_or_id, str) or ref_or_id == "":
            raise ImageNotFound(f"No such image: {ref_or_id}")
        parsed = parse_any(ref_or_id)  # InvalidReference propagates (HTTP 400)
        if isinstance(parsed, str):
            if parsed in self._records:
                return parsed
            raise ImageNotFound(f"No such image: {parsed}")
        found = self._lookup_ref(parsed)
        if found is not None and found in self._records:
            return found
        found = self._search_prefix_locked(ref_or_id)
        if found is not None:
            return found
        raise ImageNotFound(f"No such image: {parsed.with_default_tag().familiar_string()}")

    def _search_prefix_locked(self, s: str) -> str | None:
        h = s[len("sha256:"):] if s.startswith("sha256:") else s
        if not h or re.fullmatch(r"[0-9a-f]+", h) is None:
            return None
        matches = [i for i in self._records if i[len("sha256:"):].startswith(h)]
        return matches[0] if len(matches) == 1 else None

    def resolve(self, ref_or_id: str) -> str:
        """The image id for a reference, id or unique id prefix."""
        with self._lock:
            return self._resolve_locked(ref_or_id)

    def get(self, ref_or_id: str) -> Image:
        """Look up by full id, ``sha256:`` digest, name, name:tag, name@digest or
        unique id prefix.  ``ImageNotFound``: ``No such image: busybox:latest``."""
        with self._lock:
            return self._image_locked(self._resolve_locked(ref_or_id))

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve(ref_or_id)
        except (ImageNotFound, InvalidReference):
            return False
        return True

    def list(self) -> list[Image]:
        """All images, newest first (Docker's order)."""
        with self._lock:
            imgs = [self._image_locked(i) for i in self._records]
        imgs.sort(key=lambda im: (parse_rfc3339_ns(im.created), im.id), reverse=True)
        return imgs

    def image_record(self, ref_or_id: str) -> dict:
        """The stored record of an image (a copy): ``{"id", "layers": [{"chain_id",
        "diff_id", "blob", "media_type"}], "parent", "last_tag_time", "manifests"}``.
        A layer whose record has no blob gets the one of the unpacked layer, if any
        (for push)."""
        with self._lock:
            rec = self._records[self._resolve_locked(ref_or_id)]
            out = copy.deepcopy(rec.to_json())
        for layer in out["layers"]:
            if not layer.get("blob"):
                with contextlib.suppress(LayerNotFound):
                    meta = self.layer_meta(layer["chain_id"])
                    layer["blob"], layer["media_type"] = meta.get("blob"), meta.get("media_type")
        return out

    def layer_dirs(self, image: Image | str) -> list[str]:
        """The image's unpacked layer ``fs`` dirs, **bottom (base) layer first**.
        overlayfs wants the reverse: ``lowerdir=":".join(reversed(dirs))``
        (see ``lowerdir()``)."""
        if isinstance(image, Image):
            return list(image.layer_dirs)
        return list(self.get(image).layer_dirs)

    def has_pins(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._pins

    def pinned_layer_dirs(self, container_id: str) -> list[str] | None:
        """The layer ``fs`` dirs (base first) kept for a container whose image
        was force-removed (``rmi -f``), or None: it can still start, as with
        dockerd, whose layers outlive the image that brought them."""
        with self._lock:
            chains = self._pins.get(container_id)
        if not chains or not all(self.has_layer(c) for c in chains):
            return None
        return [self.layer_dir(c) for c in chains]

    def lowerdir(self, image: Image | str) -> str:
        """The overlayfs ``lowerdir=`` value: top layer first, ``:``-separated."""
        return ":".join(reversed(self.layer_dirs(image)))

    def _save_record_locked(self, rec: _Record) -> None:
        atomic_write(os.path.join(self.imagedb_dir, hex_of(rec.id)), _json_bytes(rec.to_json()))

    def tag(self, src: str, ref: str) -> Image:
        """``docker tag``: point ``ref`` (name-only -> ``:latest``) at ``src``."""
        newref = normalize_tagged(ref)
        with self._lock:
            image_id = self._resolve_locked(src)
            self._add_ref_locked(newref, image_id)
            self._save_repos()
            rec = self._records[image_id]
            rec.last_tag_time = rfc3339_nano(time.time_ns())
            self._save_record_locked(rec)
            return self._image_locked(image_id)

    def untag(self, ref: str) -> bool:
        """Remove one reference (no image deletion).  Returns whether it existed."""
        r = parse_normalized(ref)
        with self._lock:
            ok = self._remove_ref_locked(r)
            if ok:
                self._save_repos()
            return ok

    def add_reference(self, ref: str, image_id: str) -> None:
        """Point a tag or digest reference (``name@sha256:...``, a RepoDigest) at
        an image, e.g. after a pull.  Refuses to move a digest reference."""
        r = parse_normalized(ref)
        with self._lock:
            if image_id not in self._records:
                raise ImageNotFound(f"No such image: {image_id}")
            self._add_ref_locked(r, image_id)
            self._save_repos()

    # ------------------------------------------------------------------ import / add

    def _register_locked(self, config_bytes: bytes, layers: list[dict], refs: Sequence[Reference],
                         parent: str = "", manifests: Sequence[str] = ()) -> str:
        image_id, _ = self._put_blob(config_bytes, None)
        cfg = json.loads(config_bytes)
        rec = self._records.get(image_id)
        if rec is None:
            rec = _Record(id=image_id, layers=layers, parent=parent, manifests=list(manifests))
        else:
            for m in manifests:
                if m not in rec.manifests:
                    rec.manifests.append(m)
            for old, new in zip(rec.layers, layers):
                if not old.get("blob") and new.get("blob"):
                    old["blob"], old["media_type"] = new["blob"], new.get("media_type")
        if refs:
            rec.last_tag_time = rfc3339_nano(time.time_ns())
        self._save_record_locked(rec)
        self._records[image_id] = rec
        self._configs[image_id] = cfg
        if refs:
            for r in refs:
                self._add_ref_locked(r, image_id)
            self._save_repos()
        return image_id

    def import_tar(self, fileobj: BinaryIO, ref: str | None = None,
                   changes: Iterable[str] = (), message: str = "", *,
                   source: str = "-", created: Any = None, platform: str | None = None
                   ) -> Image:
        """``docker import``: one layer from a rootfs tar (plain, gzip, bzip2, xz
        by magic bytes), an image config with the host's os/architecture (or
        ``platform`` "os/arch[/variant]"), ``created`` (now, or the given
        RFC 3339 string / datetime / unix time: pass one for a stable id),
        ``comment`` = ``message`` or ``Imported from <source>``, and a container
        config from ``changes`` (Dockerfile syntax) over a default
        ``Env=[PATH=...]``.  ``ref`` (name-only -> ``:latest``) is tagged."""
        newref = None
        if ref:
            newref = parse_normalized(ref)
            if newref.digest is not None:
                raise InvalidReference("cannot import digest reference")
            newref = newref.with_default_tag()
        if isinstance(changes, str):
            changes = [changes]
        base = _changes.empty_container_config()
        base["Env"] = [f"PATH={_changes.DEFAULT_PATH}"]
        ccfg = _changes.apply_changes(base, list(changes or ()))
        plat = _parse_platform(platform)
        created_s = _created_str(created)
        comment = message or f"Imported from {source}"

        with self._lease():
            fd, blob_tmp = tempfile.mkstemp(dir=self.blobs_dir, prefix=".tmp-")
            blob_info = None
            try:
                try:
                    tee = _Tee(fileobj, fd)
                    info, res = self._create_layer(tee, None, None, None)  # type: ignore[arg-type]
                    tee.drain()
                    os.fsync(fd)
                finally:
                    os.close(fd)
                media = {"none": MEDIA_LAYER_TAR, "gzip": MEDIA_LAYER_GZIP,
                         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}.get(res.compression)
                if self.keep_layer_blobs and media is not None:
                    blob_info = (self._commit_blob(blob_tmp, tee.digest()), media)
                else:
                    os.unlink(blob_tmp)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(blob_tmp)
                raise
            if blob_info is not None:
                self._set_layer_blob(info.chain_id, blob_info)

            config = {
                "architecture": plat["architecture"],
                "comment": comment,
                "config": ccfg,
                "created": created_s,
                "history": [{"created": created_s, "comment": comment}],
                "os": plat["os"],
                "rootfs": {"type": "layers", "diff_ids": [info.diff_id]},
            }
            if "variant" in plat:
                config["variant"] = plat["variant"]
            layers = [{"chain_id": info.chain_id, "diff_id": info.diff_id,
                       "blob": blob_info[0] if blob_info else None,
                       "media_type": blob_info[1] if blob_info else None}]
            with self._lock:
                if not os.path.isdir(self._layer_path(info.chain_id)):
                    raise LayerNotFound(f"layer {info.chain_id} vanished")  # pragma: no cover
                image_id = self._register_locked(_json_bytes(config), layers,
                                                 [newref] if newref else [])
                return self._image_locked(image_id)

    def _set_layer_blob(self, chain: str, blob: tuple[str, str]) -> None:
        with self._lock:
            try:
                meta = self.layer_meta(chain)
            except LayerNotFound:
                return
            if meta.get("blob"):
                return
            meta["blob"], meta["media_type"] = blob
            atomic_write(os.path.join(self._layer_path(chain), "meta.json"), _json_bytes(meta))

    def add_image(self, config: bytes, layer_blobs: Sequence[str | None], *,
                  refs: Iterable[str] = (), manifest: str | None = None,
                  media_types: Sequence[str | None] | None = None,
                  manifests: Sequence[str] = ()) -> Image:
        """Register an image whose config and layer blobs are already in the
        content store (``put_blob``), e.g. from ``docker load`` or a pull.

        ``layer_blobs[i]`` is the blob of ``rootfs.diff_ids[i]`` (any supported
        compression); a layer already unpacked (same chain id) is reused and its
        blob may then be None.  Each unpacked layer's diff_id is verified against
        the config.  ``manifest``, if given, is the digest of a stored manifest
        blob; with a named ``ref`` it also gives a ``name@digest`` RepoDigest.
        ``manifests``: more stored manifest (or index) blobs the image keeps (not
        RepoDigests), e.g. the platform manifest of a pull by index."""
        try:
            cfg = json.loads(config)
            diff_ids = list(cfg["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument("invalid image config: no rootfs.diff_ids") from None
        if len(diff_ids) != len(layer_blobs):
            raise InvalidArgument(
                f"image config has {len(diff_ids)} layers, {len(layer_blobs)} blobs given")
        named = [normalize_tagged(r) for r in refs]
        keep = [manifest] if manifest is not None else []
        for m in manifests:
            if m not in keep:
                keep.append(m)
        for m in keep:
            validate_digest(m)
        with self._lease():
            layers = []
            parent = None
            for i, (diff_id, blob) in enumerate(zip(diff_ids, layer_blobs)):
                validate_digest(diff_id)
                chain = chain_id(parent, diff_id)
                mt = media_types[i] if media_types else None
                if not self.has_layer(chain):
                    if blob is None:
                        raise BlobNotFound(f"no blob for layer {diff_id}")
                    with self.open_blob(blob) as f:
                        self._create_layer(f, parent, diff_id, (blob, mt))
                layers.append({"chain_id": chain, "diff_id": diff_id, "blob": blob,
                               "media_type": mt})
                parent = chain
            allrefs = list(named)
            if manifest is not None:
                allrefs += [r.trim().with_digest(manifest) for r in named]
            with self._lock:
                for layer in layers:
                    if not os.path.isdir(self._layer_path(layer["chain_id"])):
                        raise LayerNotFound(f"layer {layer['chain_id']} vanished")
                image_id = self._register_locked(config, layers, allrefs, manifests=keep)
                return self._image_locked(image_id)

    # ------------------------------------------------------------------ removal

    @staticmethod
    def _uses(in_use: Iterable[Any]) -> list[ContainerUse]:
        out = []
        for u in in_use or ():
            if isinstance(u, ContainerUse):
                out.append(u)
            elif isinstance(u, str):
                out.append(ContainerUse(id="", image_id=u, running=False))
            elif isinstance(u, (tuple, list)):
                out.append(ContainerUse(u[0], u[1], bool(u[2]) if len(u) > 2 else False))
            else:
                out.append(ContainerUse(getattr(u, "id"), getattr(u, "image_id"),
                                        bool(getattr(u, "running", False))))
        return out

    @staticmethod
    def _is_single_reference(refs: list[Reference]) -> bool:
        if len(refs) <= 1:
            return len(refs) == 1
        single = None
        canonical: set[str] = set()
        for r in refs:
            if r.digest is not None:
                canonical.add(r.name)
            elif single is None:
                single = r
            else:
                return False
        if single is None:
            single = refs[0]
        return len(canonical) == 1 and single.name in canonical

    def _conflict_locked(self, image_id: str, uses: list[ContainerUse], *, hard: bool,
                         active_ref: bool, stopped: bool) -> tuple[str, bool] | None:
        """Docker's ``checkImageDeleteConflict``: (message, used) or None."""
        sid = short_id(image_id)
        if hard:
            if any(r.parent == image_id for r in self._records.values()):
                return (f"conflict: unable to delete {sid} (cannot be forced) - "
                        "image has dependent child images", False)
            for u in uses:
                if u.image_id == image_id and u.running:
                    return (f"conflict: unable to delete {sid} (cannot be forced) - "
                            f"image is being used by running container {short_id(u.id)}", True)
        if active_ref and self._refs_of(image_id):
            return (f"conflict: unable to delete {sid} (must be forced) - "
                    "image is referenced in multiple repositories", False)
        if stopped:
            for u in uses:
                if u.image_id == image_id and not u.running:
                    return (f"conflict: unable to delete {sid} (must be forced) - "
                            f"image is being used by stopped container {short_id(u.id)}", True)
        return None

    def remove(self, ref_or_id: str, force: bool = False, in_use: Iterable[Any] = ()
               ) -> list[dict[str, str]]:
        """``docker rmi`` (DELETE /images/{name}) with Docker's semantics and its
        response: a list of ``{"Untagged": ref}`` and ``{"Deleted": id}`` (then
        ``{"Deleted": chain id}`` for each layer removed).

        ``in_use``: the containers using images, as ``ContainerUse`` objects,
        ``(container_id, image_id, running)`` tuples, or bare image ids.
        Conflicts raise ``ImageConflict`` with Docker's messages."""
        uses = self._uses(in_use)
        trash: list[str] = []
        try:
            with self._lock:
                return self._remove_locked(ref_or_id, force, uses, trash)
        finally:
            self._empty_trash(trash)

    def _remove_locked(self, ref_or_id: str, force: bool, uses: list[ContainerUse],
                       trash: list[str]) -> list[dict[str, str]]:
        records: list[dict[str, str]] = []
        image_id = self._resolve_locked(ref_or_id)
        refs = self._refs_of(image_id)
        is_id = image_id.startswith(ref_or_id) or image_id.startswith("sha256:" + ref_or_id)
        removed_repo_ref = False
        if not is_id:
            if not force and self._is_single_reference(refs):
                for u in uses:
                    if u.image_id == image_id:
                        raise ImageConflict(
                            f"conflict: unable to remove repository reference "
                            f"{_go_quote(ref_or_id)} (must force) - container "
                            f"{short_id(u.id) or '<unknown>'} is using its referenced "
                            f"image {short_id(image_id)}")
            parsed = parse_normalized(ref_or_id).with_default_tag()
            if parsed.digest is not None and parsed.tag is not None:
                parsed = parsed.with_digest(parsed.digest)
            self._remove_ref_locked(parsed)
            records.append({"Untagged": parsed.familiar_string()})
            refs = self._refs_of(image_id)
            if parsed.digest is None:
                if not any(r.digest is None and r.name == parsed.name for r in refs):
                    remaining = []
                    for r in refs:
                        if r.digest is not None and r.name == parsed.name:
                            self._remove_ref_locked(r)
                            records.append({"Untagged": r.familiar_string()})
                        else:
                            remaining.append(r)
                    refs = remaining
            self._save_repos()
            if refs:
                return records
            removed_repo_ref = True
        else:
            if self._is_single_reference(refs):
                c = self._conflict_locked(image_id, uses, hard=True, active_ref=False,
                                          stopped=not force)
                if c is not None:
                    raise ImageConflict(c[0])
                for r in refs:
                    self._remove_ref_locked(r)
                    records.append({"Untagged": r.with_default_tag().familiar_string()})
                self._save_repos()
        # imageDeleteHelper
        c = self._conflict_locked(image_id, uses, hard=True, active_ref=not force,
                                  stopped=not force)
        if c is not None:
            msg, used = c
            if removed_repo_ref and (used or not self._is_dangling(image_id)):
                return records  # the untag was all that could be done
            raise ImageConflict(msg)
        for r in self._refs_of(image_id):
            self._remove_ref_locked(r)
            records.append({"Untagged": r.familiar_string()})
        self._save_repos()
        rec = self._records.pop(image_id)
        self._pin_locked(image_id, [layer["chain_id"] for layer in rec.layers], uses)
        self._configs.pop(image_id, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.imagedb_dir, hex_of(image_id)))
        _fsync_dir(self.imagedb_dir)
        records.append({"Deleted": image_id})
        layers, blobs = self._unreferenced_locked(
            [layer["chain_id"] for layer in rec.layers],
            [image_id] + [layer.get("blob") for layer in rec.layers if layer.get("blob")]
            + list(rec.manifests))
        for chain in reversed(layers):
            records.append({"Deleted": chain})
        if self._leases:
            self._gc_pending = True
        else:
            for chain in layers:
                t = self._delete_layer_locked(chain)
                if t:
                    trash.append(t)
            for b in blobs:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.blob_path(b))
        return records

    def _is_dangling(self, image_id: str) -> bool:
        return not self._refs_of(image_id) and not any(
            r.parent == image_id for r in self._records.values())

    def _referenced_locked(self) -> tuple[set[str], set[str]]:
        layers: set[str] = set()
        blobs: set[str] = set()
        for rec in self._records.values():
            blobs.add(rec.id)
            blobs.update(rec.manifests)
            for layer in rec.layers:
                layers.add(layer["chain_id"])
                if layer.get("blob"):
                    blobs.add(layer["blob"])
        layers.update(self._container_chains_locked())
        for chain in layers:
            try:
                b = self.layer_meta(chain).get("blob")
            except LayerNotFound:
                continue
            if b:
                blobs.add(b)
        return layers, blobs

    def _unreferenced_locked(self, layers: list[str], blobs: list[str]
                             ) -> tuple[list[str], list[str]]:
        used_layers, used_blobs = self._referenced_locked()
        lost_layers = [c for c in layers if c not in used_layers and self.has_layer(c)]
        extra = []
        for c in lost_layers:
            with contextlib.suppress(LayerNotFound):
                b = self.layer_meta(c).get("blob")
                if b:
                    extra.append(b)
        lost_blobs = sorted({b for b in blobs + extra if b not in used_blobs})
        return lost_layers, lost_blobs

    def _collect_locked(self) -> tuple[dict[str, list[str]], list[str]]:
        used_layers, used_blobs = self._referenced_locked()
        gone_layers, gone_blobs, trash = [], [], []
        for n in sorted(os.listdir(self.layers_dir)):
            if is_hex64(n) and from_hex(n) not in used_layers:
                t = self._delete_layer_locked(from_hex(n))
                if t:
                    trash.append(t)
                    gone_layers.append(from_hex(n))
        for n in sorted(os.listdir(self.blobs_dir)):
            if is_hex64(n) and from_hex(n) not in used_blobs:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.blobs_dir, n))
                    gone_blobs.append(from_hex(n))
        for n in os.listdir(self.imagedb_dir):
            if is_hex64(n) and from_hex(n) not in self._records:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.imagedb_dir, n))
        return {"layers": gone_layers, "blobs": gone_blobs}, trash

    def gc(self, timeout: float | None = None) -> dict[str, list[str]]:
        """Delete every blob and layer no image references.  Waits (up to
        ``timeout``) for in-flight imports to finish.  Returns what was deleted:
        ``{"layers": [chain ids], "blobs": [digests]}``."""
        with self._lock:
            if not self._idle.wait_for(lambda: self._leases == 0, timeout):
                raise TimeoutError("image store busy")
            self._gc_pending = False
            res, trash = self._collect_locked()
        self._empty_trash(trash)
        return res

    def disk_usage(self) -> int:
        """Bytes used by layers (sum of layer sizes)."""
        with self._lock:
            used, _ = self._referenced_locked()
        total = 0
        for c in used:
            with contextlib.suppress(LayerNotFound):
                total += int(self.layer_meta(c).get("size", 0))
        return total

    # ------------------------------------------------------------------ containers' layers, GC

    def _container_chains_locked(self) -> set[str]:
        out = set(self._keep_layers)
        for chains in self._pins.values():
            out.update(chains)
        return out

    @property
    def _pins_path(self) -> str:
        return os.path.join(self.root, "pins.json")

    def _load_pins(self) -> None:
        try:
            with open(self._pins_path, "rb") as f:
                pins = json.load(f)
            self._pins = {str(k): [str(c) for c in v] for k, v in pins.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            self._pins = {}

    def _pin_locked(self, image_id: str, chains: list[str], uses: list[ContainerUse]) -> None:
        """An image some containers use is being deleted: keep its layers for them."""
        ids = [u.id for u in uses if u.image_id == image_id and u.id]
        if not ids:
            return
        for cid in ids:
            self._pins[cid] = list(chains)
        atomic_write(self._pins_path, _json_bytes(self._pins))

    def set_container_layers(self, layers: Iterable[str],
                             containers: Iterable[str] | None = None) -> None:
        """The layers containers use (chain ids, or layer ``fs`` paths under this
        store), so that no removal or collection ever deletes them, even once the
        image that brought them is gone (``rmi -f`` of a stopped container's image:
        those are remembered, see ``_pin_locked``).  ``containers``: the ids of
        every container that exists (forgets the pins of the others)."""
        if containers is not None:
            live = set(containers)
            with self._lock:
                if any(cid not in live for cid in self._pins):
                    self._pins = {k: v for k, v in self._pins.items() if k in live}
                    atomic_write(self._pins_path, _json_bytes(self._pins))
        chains = set()
        for x in layers:
            if not x:
                continue
            if x.startswith(self.layers_dir + os.sep):
                h = x[len(self.layers_dir) + 1:].split(os.sep, 1)[0]
                if is_hex64(h):
                    chains.add(from_hex(h))
            elif is_digest(x):
                chains.add(x)
        with self._lock:
            self._keep_layers = chains

    def image_layers(self, ref_or_id: str) -> list[str]:
        """An image's chain ids, bottom first ([] if there is no such image)."""
        with self._lock:
            try:
                rec = self._records[self._resolve_locked(ref_or_id)]
            except (ImageNotFound, InvalidReference):
                return []
            return [layer["chain_id"] for layer in rec.layers]

    def collect(self) -> dict[str, list[str]]:
        """``gc()`` that never waits: while an import holds a lease, the collection
        is left to the end of the last lease (returns nothing collected)."""
        with self._lock:
            if self._leases:
                self._gc_pending = True
                return {"layers": [], "blobs": []}
            self._gc_pending = False
            res, trash = self._collect_locked()
        self._empty_trash(trash)
        return res

    # ------------------------------------------------------------------ history

    def history(self, ref_or_id: str) -> list[dict]:
        """GET /images/{name}/history: ``[{Id, Created, CreatedBy, Tags, Size,
        Comment}]``, newest first; the top entry carries the image id and its
        tags, the entries of each parent image theirs, the others ``<missing>``
        (dockerd's ``ImageHistory``)."""
        with self._lock:
            image_id = self._resolve_locked(ref_or_id)
            rows = self._history_rows(self._records[image_id], self._configs[image_id])
            img_id = image_id
            for row in rows:
                row["Id"] = img_id
                tags = [r.familiar_string() for r in self._refs_of(img_id) if r.digest is None]
                row["Tags"] = tags or None
                img_id = self._records[img_id].parent
                if not img_id or img_id not in self._records:
                    break
            return rows

    def _history_rows(self, rec: _Record, cfg: dict) -> list[dict]:
        rows = []
        k = 0
        for h in cfg.get("history") or []:
            if not isinstance(h, dict):
                continue
            size = 0
            if not h.get("empty_layer"):
                if k >= len(rec.layers):
                    raise InvalidArgument("too many non-empty layers in History section")
                with contextlib.suppress(LayerNotFound):
                    size = int(self.layer_meta(rec.layers[k]["chain_id"]).get("size", 0))
                k += 1
            created = h.get("created") or ""
            ns = parse_rfc3339_ns(created) if created else 0
            rows.append({"Comment": h.get("comment", "") or "",
                         "Created": ns // 1_000_000_000 if created else -62135596800,
                         "CreatedBy": h.get("created_by", "") or "",
                         "Id": "<missing>", "Size": size, "Tags": None})
        rows.reverse()
        return rows

    # ------------------------------------------------------------------ prune

    def prune(self, *, dangling_only: bool = True, until_ns: int | None = None,
              labels: Sequence[str] = (), not_labels: Sequence[str] = (),
              in_use: Iterable[Any] = ()) -> dict:
        """POST /images/prune (dockerd's ``ImagePrune``): remove dangling images
        (``dangling_only``) or every image no container uses, keeping those
        created after ``until_ns`` or not matching the label filters (all of
        ``labels`` must match, not all of ``not_labels``).  Conflicts are skipped.
        Then collects unreferenced blobs and layers.  Returns
        ``{"ImagesDeleted": [...] or None, "SpaceReclaimed": bytes, "_events":
        [(action, image id, name)]}`` (the last for the daemon's untag/delete
        events, not for the API)."""
        uses = self._uses(in_use)
        used_ids = {u.image_id for u in uses}
        deleted: list[dict[str, str]] = []
        events: list[tuple[str, str, str]] = []
        trash: list[str] = []
        try:
            with self._lock:
                sizes: dict[str, int] = {}
                for n in os.listdir(self.layers_dir):
                    if is_hex64(n):
                        with contextlib.suppress(LayerNotFound, ValueError):
                            sizes[from_hex(n)] = int(self.layer_meta(from_hex(n)).get("size", 0))
                parents = {r.parent for r in self._records.values() if r.parent}
                candidates = []
                for image_id in self._records:
                    refs = self._refs_of(image_id)
                    if image_id in parents and (dangling_only or not refs):
                        continue
                    cfg = self._configs[image_id]
                    if until_ns is not None:
                        created = parse_rfc3339_ns(cfg.get("created") or "")
                        if not created or created > until_ns:
                            continue
                    lbls = (cfg.get("config") or {}).get("Labels") or {}
                    if not _labels_match(lbls, labels):
                        continue
                    if not_labels and _labels_match(lbls, not_labels):
                        continue
                    candidates.append((parse_rfc3339_ns(cfg.get("created") or ""), image_id))
                for _, image_id in sorted(candidates):
                    if image_id not in self._records or image_id in used_ids:
                        continue
                    refs = self._refs_of(image_id)
                    targets: list[str] = []
                    if refs:
                        if not dangling_only or not any(r.digest is None for r in refs):
                            targets = [r.string() for r in refs]
                    else:
                        targets = [hex_of(image_id)]
                    for t in targets:
                        try:
                            out = self._remove_locked(t, False, uses, trash)
                        except (ImageConflict, ImageNotFound, InvalidReference):
                            continue
                        deleted += out
                        events += [("untag", image_id, d["Untagged"]) for d in out
                                   if "Untagged" in d]
                    if image_id not in self._records:
                        events.append(("delete", image_id, image_id))
        finally:
            self._empty_trash(trash)
        self.collect()
        reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed,
                "_events": events}


def _labels_match(labels: dict, wanted: Sequence[str]) -> bool:
    """Docker's ``filters.MatchKVList``: every ``key`` / ``key=value`` matches."""
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


# --------------------------------------------------------------------------- recovery


def recover_store(store: ImageStore, *, verify_blobs: bool = False) -> dict[str, list[str]]:
    """Startup recovery after a crash (e.g. the daemon killed mid-pull): make
    what is on disk match the store's invariants before anything is served.
    Call it once, right after opening the store and before any pull, push or
    import starts: it removes every temporary file, which at that point can only
    be left over from a dead process.

    - temporary files and directories (``.tmp-*`` in ``blobs/sha256``,
      ``layers``, ``imagedb`` and the store root: a blob being downloaded, a
      layer being unpacked, a push's gzip spool; ``.del-*`` layers being
      deleted) are removed: a partial download is never visible as a blob;
    - a layer directory is only a layer when it is complete: ``meta.json``
      readable and naming this chain id, its ``fs`` directory present, and its
      parent layer present; anything else no image uses is removed (a layer is
      renamed into place only when complete, so this is belt and braces);
    - with ``verify_blobs``, blobs no image references (what an interrupted
      pull downloaded) are hashed and removed if their content does not match
      their name; complete, verified content is otherwise kept, so the next pull
      of the same image does not download it again (``gc()`` collects it if
      nothing claims it).

    Returns what was removed: ``{"temp": [paths], "layers": [chain ids],
    "blobs": [digests]}``."""
    removed: dict[str, list[str]] = {"temp": [], "layers": [], "blobs": []}
    with store._lock:
        for d in (store.blobs_dir, store.layers_dir, store.imagedb_dir, store.root):
            for n in os.listdir(d):
                if not (n.startswith(".tmp-") or (d == store.layers_dir and n.startswith(".del-"))):
                    continue
                p = os.path.join(d, n)
                if os.path.isdir(p) and not os.path.islink(p):
                    _rmtree(p)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
                removed["temp"].append(p)
        used_layers, used_blobs = store._referenced_locked()
        present = {from_hex(n) for n in os.listdir(store.layers_dir) if is_hex64(n)}
        broken: set[str] = set()
        for chain in sorted(present):
            path = store._layer_path(chain)
            try:
                with open(os.path.join(path, "meta.json"), "rb") as f:
                    meta = json.load(f)
                ok = (isinstance(meta, dict) and meta.get("chain_id") == chain
                      and os.path.isdir(os.path.join(path, "fs")))
                parent = meta.get("parent") if ok else None
            except (OSError, ValueError):
                ok, parent = False, None
            if ok and parent and parent not in present:
                ok = False
            if not ok:
                broken.add(chain)
        # a layer above a broken one is unusable too
        changed = True
        while changed:
            changed = False
            for chain in present - broken:
                with contextlib.suppress(LayerNotFound, OSError, ValueError):
                    if store.layer_meta(chain).get("parent") in broken:
                        broken.add(chain)
                        changed = True
        trash = []
        for chain in sorted(broken - used_layers):
            t = store._delete_layer_locked(chain)
            if t:
                trash.append(t)
                removed["layers"].append(chain)
        if verify_blobs:
            for n in sorted(os.listdir(store.blobs_dir)):
                if not is_hex64(n) or from_hex(n) in used_blobs:
                    continue
                h = hashlib.sha256()
                with contextlib.suppress(FileNotFoundError), \
                        open(os.path.join(store.blobs_dir, n), "rb") as f:
                    while True:
                        b = f.read(CHUNK)
                        if not b:
                            break
                        h.update(b)
                    if h.hexdigest() != n:
                        os.unlink(os.path.join(store.blobs_dir, n))
                        removed["blobs"].append(from_hex(n))
    store._empty_trash(trash)
    return removed
