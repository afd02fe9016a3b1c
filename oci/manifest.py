"""Image manifests and indexes (stdlib only): media types, parsing, platform matching.

Supported, as Docker and containerd do:

- image manifests: OCI (``application/vnd.oci.image.manifest.v1+json``) and Docker
  schema2 (``application/vnd.docker.distribution.manifest.v2+json``);
- indexes: OCI (``application/vnd.oci.image.index.v1+json``) and Docker manifest
  lists (``application/vnd.docker.distribution.manifest.list.v2+json``).

Docker schema1 (``application/vnd.docker.distribution.manifest.v1+json`` and
``+prettyjws``) is refused with ``unsupported manifest media type ...``.

Platforms are ``{"os", "architecture", "variant"?}`` dicts, matched the way
containerd's ``platforms.Only`` does (``linux/arm64`` == ``linux/arm64/v8``, an
``arm/v7`` host also runs ``v6`` and ``v5``).
"""

from __future__ import annotations

import json
import platform as _platform
from typing import Any

import attrs

from .digest import validate_digest
from .errors import InvalidArgument, InvalidDigest, UnsupportedMediaType

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
SCHEMA1_TYPES = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_ND, OCI_LAYER_ND_GZIP,
               OCI_LAYER_ND_ZSTD, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER)

#: The ``Accept`` header of a manifest GET: every type we can use, best first.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

#: Manifests and configs are small; refuse anything bigger (containerd's bound).
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20


class Schema1Refused(UnsupportedMediaType):
    """A Docker schema1 manifest: refused, as Docker 28 does."""

    def __init__(self, message: str, media_type: str):
        super().__init__(message)
        self.media_type = media_type


def unsupported_manifest(media_type: str, ref: str | None = None) -> UnsupportedMediaType:
    """The refusal of a manifest type; for schema1, Docker's words (with the
    reference when known: ``docker.io/library/busybox:latest``)."""
    msg = f"unsupported manifest media type {media_type or '(none)'}"
    if media_type in SCHEMA1_TYPES or media_type == "schema1":
        msg += (": Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
                f"support has been removed. Suggest the author of {ref or 'the image'} to "
                "upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. "
                "More information at https://docs.docker.com/go/deprecated-image-specs/")
        return Schema1Refused(msg, media_type)
    return UnsupportedMediaType(msg)


# --------------------------------------------------------------------------- descriptors


@attrs.define
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict | None = None
    urls: list[str] = attrs.Factory(list)
    annotations: dict = attrs.Factory(dict)

    @classmethod
    def from_json(cls, d: Any, what: str = "descriptor") -> "Descriptor":
        if not isinstance(d, dict):
            raise InvalidArgument(f"invalid {what}: not an object")
        dg = d.get("digest")
        try:
            validate_digest(dg)
        except InvalidDigest as e:
            raise InvalidArgument(f"invalid {what} digest {dg!r}: {e}") from None
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"invalid {what} size {size!r}")
        plat = d.get("platform")
        if plat is not None and not isinstance(plat, dict):
            raise InvalidArgument(f"invalid {what} platform")
        return cls(media_type=str(d.get("mediaType") or ""), digest=dg, size=size,
                   platform=plat, urls=list(d.get("urls") or []),
                   annotations=dict(d.get("annotations") or {}))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size,
                               "digest": self.digest}
        if self.platform:
            out["platform"] = self.platform
        if self.urls:
            out["urls"] = self.urls
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@attrs.define
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    raw: dict


@attrs.define
class Index:
    media_type: str
    manifests: list[Descriptor]
    raw: dict


def detect_media_type(body: bytes, content_type: str | None) -> str:
    """The manifest's media type: the ``mediaType`` field when there is one, else
    the ``Content-Type`` (unless generic), else guessed from the shape."""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        mt = doc.get("mediaType")
        if isinstance(mt, str) and mt:
            return mt
        if doc.get("schemaVersion") == 1:
            return ct if ct in SCHEMA1_TYPES else DOCKER_SCHEMA1
    if ct and ct not in ("application/json", "text/plain", "application/octet-stream"):
        return ct
    if isinstance(doc, dict):
        if "manifests" in doc:
            return OCI_INDEX
        if "config" in doc and "layers" in doc:
            return OCI_MANIFEST
    return ct


def parse(body: bytes, content_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or an index; refuse schema1 and unknown types."""
    mt = detect_media_type(body, content_type)
    if mt in SCHEMA1_TYPES:
        raise unsupported_manifest(mt)
    if mt not in MANIFEST_TYPES and mt not in INDEX_TYPES:
        raise unsupported_manifest(mt)
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise InvalidArgument(f"invalid manifest: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid manifest: not an object")
    if doc.get("schemaVersion") != 2:
        raise unsupported_manifest(mt if doc.get("schemaVersion") != 1 else "schema1")
    if mt in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument("invalid index: no manifests")
        return Index(mt, [Descriptor.from_json(m, "index entry") for m in items], doc)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("invalid manifest: no layers")
    return Manifest(mt, Descriptor.from_json(doc.get("config"), "config descriptor"),
                    [Descriptor.from_json(x, "layer descriptor") for x in layers], doc)


def check_layer_type(d: Descriptor) -> None:
    mt = d.media_type
    if mt in LAYER_TYPES:
        return
    if "encrypted" in mt:
        raise UnsupportedMediaType(f"encrypted layers are not supported ({mt})")
    raise UnsupportedMediaType(f"unsupported layer media type {mt or '(none)'}")


def check_config_type(d: Descriptor) -> None:
    if d.media_type not in CONFIG_TYPES:
        raise UnsupportedMediaType(
            f"unsupported media type {d.media_type or '(none)'} for an image config: "
            "this is not a container image")


# --------------------------------------------------------------------------- platforms

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}


def normalize_platform(p: dict) -> dict:
    """containerd's ``platforms.Normalize``."""
    os_ = (p.get("os") or "").lower()
    arch = (p.get("architecture") or "").lower()
    variant = (p.get("variant") or "").lower()
    if arch in ("armhf",):
        variant = variant or "v7"
    elif arch == "armel":
        variant = variant or "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = ""
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    out = {"os": os_ or "linux", "architecture": arch}
    if variant:
        out["variant"] = variant
    return out


def host_platform() -> dict:
    m = _platform.machine().lower()
    p = {"os": "linux", "architecture": m}
    if m.startswith("armv7"):
        p = {"os": "linux", "architecture": "arm", "variant": "v7"}
    elif m.startswith("armv6"):
        p = {"os": "linux", "architecture": "arm", "variant": "v6"}
    return normalize_platform(p)


def parse_platform(s: str | None) -> dict:
    """``os[/arch[/variant]]`` (Docker's ``--platform``), normalised; None -> host."""
    if not s:
        return host_platform()
    parts = s.strip().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"\"{s}\": unknown operating system or architecture: "
                              "invalid argument")
    if len(parts) == 1:
        if parts[0].lower() in ("linux", "windows", "darwin", "freebsd"):
            p = {"os": parts[0], "architecture": host_platform()["architecture"]}
        else:
            p = {"os": "linux", "architecture": parts[0]}
    else:
        p = {"os": parts[0], "architecture": parts[1]}
        if len(parts) == 3:
            p["variant"] = parts[2]
    return normalize_platform(p)


def format_platform(p: dict) -> str:
    s = f"{p.get('os', '')}/{p.get('architecture', '')}"
    if p.get("variant"):
        s += "/" + p["variant"]
    return s


def _compatible(want: dict) -> list[dict]:
    """The platforms ``want`` can run, best first (``platforms.Only``)."""
    out = [want]
    if want["architecture"] == "arm":
        order = ["v8", "v7", "v6", "v5"]
        v = want.get("variant", "v7")
        if v in order:
            out = [{"os": want["os"], "architecture": "arm", "variant": x}
                   for x in order[order.index(v):]]
    elif want["architecture"] == "arm64":  # arm64 hosts also run 32-bit arm
        out = [want] + [{"os": want["os"], "architecture": "arm", "variant": x}
                        for x in ("v8", "v7", "v6", "v5")]
    return out


def platform_matches(want: dict, have: dict | None) -> bool:
    if not have:
        return False
    h = normalize_platform(have)
    w = normalize_platform(want)
    for c in _compatible(w):
        if h["os"] == c["os"] and h["architecture"] == c["architecture"] and \
                h.get("variant", "") == c.get("variant", ""):
            return True
    # an index entry without a variant serves any variant of its architecture
    return (h["os"] == w["os"] and h["architecture"] == w["architecture"]
            and not h.get("variant"))


def select_manifest(index: Index, want: dict) -> Descriptor:
    """The best entry of ``index`` for platform ``want`` (Docker's error wording
    when there is none)."""
    w = normalize_platform(want)
    best: tuple[int, int] | None = None
    chosen: Descriptor | None = None
    prefs = _compatible(w)
    for i, d in enumerate(index.manifests):
        if d.media_type and d.media_type not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        if not d.platform or d.platform.get("os") == "unknown":
            continue  # attestations and other non-images
        h = normalize_platform(d.platform)
        rank = None
        for r, c in enumerate(prefs):
            if (h["os"], h["architecture"], h.get("variant", "")) == \
                    (c["os"], c["architecture"], c.get("variant", "")):
                rank = r
                break
        if rank is None and platform_matches(w, d.platform):
            rank = len(prefs)
        if rank is None:
            continue
        key = (rank, i)
        if best is None or key < best:
            best, chosen = key, d
    if chosen is None:
        raise NotMatched(f"no matching manifest for {format_platform(w)} "
                         "in the manifest list entries")
    return chosen


class NotMatched(InvalidArgument):
    """No index entry for the wanted platform (dockerd answers 404: not found)."""
    http_status = 404
    code = "NOT_FOUND"


def config_platform(config: dict) -> dict:
    p = {"os": config.get("os") or "", "architecture": config.get("architecture") or ""}
    if config.get("variant"):
        p["variant"] = config["variant"]
    return normalize_platform(p)


# --------------------------------------------------------------------------- building


def build_manifest(config: Descriptor, layers: list[Descriptor],
                   media_type: str = DOCKER_MANIFEST) -> bytes:
    """A schema2 (or OCI) manifest, formatted as Docker does (3-space indent)."""
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config.to_json(),
           "layers": [d.to_json() for d in layers]}
    return json.dumps(doc, indent=3).encode()
