"""Digests (stdlib only): ``sha256:<64 hex>``, short ids, chain ids.

Only sha256 is produced.  sha384/sha512 are recognised by ``parse_digest`` (the
OCI spec registers them) so references carrying them parse, but the store only
holds sha256 content.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Iterable

from .errors import InvalidDigest

SHA256 = "sha256"
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX64 = re.compile(r"[a-f0-9]{64}")
_ALGO = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
CHUNK = 1 << 20


def is_hex64(s: str) -> bool:
    """True for exactly 64 lowercase hex digits (a full image id without algorithm)."""
    return isinstance(s, str) and _HEX64.fullmatch(s) is not None


def parse_digest(d: str) -> tuple[str, str]:
    """Split and validate ``algo:hex``; return ``(algo, hex)``.

    Errors use go-digest's wording: ``invalid checksum digest format``,
    ``unsupported digest algorithm``, ``invalid checksum digest length``.
    """
    if not isinstance(d, str):
        raise InvalidDigest("invalid checksum digest format")
    i = d.find(":")
    if i <= 0 or i + 1 == len(d):
        raise InvalidDigest("invalid checksum digest format")
    algo, enc = d[:i], d[i + 1:]
    if not _ALGO.fullmatch(algo) or not _ENCODED.fullmatch(enc):
        raise InvalidDigest("invalid checksum digest format")
    if algo not in _HEX_LEN:
        raise InvalidDigest("unsupported digest algorithm")
    if len(enc) != _HEX_LEN[algo]:
        raise InvalidDigest("invalid checksum digest length")
    if re.fullmatch(r"[a-f0-9]+", enc) is None:
        raise InvalidDigest("invalid checksum digest format")
    return algo, enc


def validate_digest(d: str) -> str:
    """Return ``d`` if it is a valid sha256 digest, else raise ``InvalidDigest``."""
    algo, _ = parse_digest(d)
    if algo != SHA256:
        raise InvalidDigest("unsupported digest algorithm")
    return d


def is_digest(d: str) -> bool:
    try:
        validate_digest(d)
    except InvalidDigest:
        return False
    return True


def hex_of(d: str) -> str:
    """``sha256:abc...`` -> ``abc...`` (validated)."""
    return validate_digest(d).split(":", 1)[1]


def from_hex(h: str) -> str:
    if not is_hex64(h):
        raise InvalidDigest("invalid checksum digest format")
    return f"{SHA256}:{h}"


def short_id(d: str) -> str:
    """The 12-hex short id Docker shows (``stringid.TruncateID``)."""
    if ":" in d:
        d = d.split(":", 1)[1]
    return d[:12]


def sha256_bytes(data: bytes) -> str:
    return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"


def sha256_fileobj(f: BinaryIO) -> tuple[str, int]:
    """Hash a stream to its end; return ``(digest, size)``."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = f.read(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    return f"{SHA256}:{h.hexdigest()}", n


def chain_id(parent: str | None, diff_id: str) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    validate_digest(diff_id)
    if parent is None:
        return diff_id
    validate_digest(parent)
    return sha256_bytes(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """Chain ids for a whole rootfs, bottom layer first."""
    out: list[str] = []
    parent: str | None = None
    for d in diff_ids:
        parent = chain_id(parent, d)
        out.append(parent)
    return out


class HashingReader:
    """A read-only file wrapper hashing (sha256) and counting what passes through."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._h = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n) if n is not None else self._f.read()
        if b:
            self._h.update(b)
            self.count += len(b)
        return b

    def readinto(self, buf) -> int:  # pragma: no cover - used by some readers
        b = self.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def drain(self) -> None:
        """Read (and hash) the rest of the stream."""
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return f"{SHA256}:{self._h.hexdigest()}"
