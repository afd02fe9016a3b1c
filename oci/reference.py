"""Docker image references (stdlib only): parsing, normalisation, familiar form.

A port of github.com/distribution/reference (``ParseNormalizedNamed``,
``ParseAnyReference``, ``FamiliarString``, ``TagNameOnly``) with its error
wording::

    >>> parse_normalized("busybox").string()
    'docker.io/library/busybox'
    >>> parse_normalized("busybox").with_default_tag().familiar_string()
    'busybox:latest'
    >>> parse_normalized("localhost:5000/a/b:tag").familiar_string()
    'localhost:5000/a/b:tag'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .digest import is_hex64, parse_digest
from .errors import InvalidDigest, InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_alnum = r"[a-z0-9]+"
_sep = r"(?:[._]|__|[-]+)"
_path_component = _alnum + r"(?:" + _sep + _alnum + r")*"
_domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_ipv6 = r"\[(?:[a-fA-F0-9:]+)\]"
_domain_name = _domain_component + r"(?:\." + _domain_component + r")*"
_host = r"(?:" + _domain_name + r"|" + _ipv6 + r")"
_domain_and_port = _host + r"(?::[0-9]+)?"
_tag = r"[\w][\w.-]{0,127}"
_digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_remote_name = _path_component + r"(?:/" + _path_component + r")*"
_name = r"(?:" + _domain_and_port + r"/)?" + _remote_name

REFERENCE_RE = re.compile(
    r"(" + _name + r")(?::(" + _tag + r"))?(?:@(" + _digest + r"))?", re.ASCII)
ANCHORED_NAME_RE = re.compile(
    r"(?:(" + _domain_and_port + r")/)?(" + _remote_name + r")", re.ASCII)
TAG_RE = re.compile(_tag, re.ASCII)

ERR_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A named reference: ``domain/path[:tag][@digest]``.

    ``tag`` and ``digest`` are ``None`` when absent.  ``string()`` is the full
    normalised form (``docker.io/library/busybox:latest``), ``familiar_string()``
    the short one Docker displays (``busybox:latest``).
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            if path.startswith(OFFICIAL_REPO_PREFIX):
                rest = path[len(OFFICIAL_REPO_PREFIX):]
                if "/" not in rest:
                    path = rest
        return f"{domain}/{path}" if domain else path

    def _suffix(self) -> str:
        s = ""
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def string(self) -> str:
        return self.name + self._suffix()

    def familiar_string(self) -> str:
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        return self.string()

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> "Reference":
        """Docker's ``TagNameOnly``: add ``:latest`` when there is no tag nor digest."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def with_tag(self, tag: str) -> "Reference":
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference("invalid tag format")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> "Reference":
        _parse_digest(digest)
        return replace(self, tag=None, digest=digest)

    def trim(self) -> "Reference":
        """Just the name (``TrimNamed``)."""
        return replace(self, tag=None, digest=None)


def _parse_digest(d: str) -> str:
    try:
        parse_digest(d)
    except InvalidDigest as e:
        raise InvalidReference(str(e)) from None
    return d


def parse(s: str) -> Reference:
    """``reference.Parse``: no normalisation (the domain is whatever is written)."""
    if not isinstance(s, str):
        raise InvalidReference(ERR_FORMAT)
    m = REFERENCE_RE.fullmatch(s)
    if m is None:
        if s == "":
            raise InvalidReference("repository name must have at least one component")
        if REFERENCE_RE.fullmatch(s.lower()) is not None:
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference(ERR_FORMAT)
    name, tag, dig = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    nm = ANCHORED_NAME_RE.fullmatch(name)
    if nm is None:  # pragma: no cover - REFERENCE_RE matched, so this cannot fail
        raise InvalidReference(ERR_FORMAT)
    domain, path = nm.group(1) or "", nm.group(2)
    if dig is not None:
        _parse_digest(dig)
    return Reference(domain, path, tag, dig)


def split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized(s: str) -> Reference:
    """``ParseNormalizedNamed``: ``busybox`` -> ``docker.io/library/busybox``.

    Raises ``InvalidReference`` with Docker's wording, e.g.
    ``invalid reference format: repository name (library/Busy) must be lowercase``.
    """
    if not isinstance(s, str):
        raise InvalidReference(ERR_FORMAT)
    if is_hex64(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = split_docker_domain(s)
    tag_sep = remainder.find(":")
    remote = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote.lower() != remote:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse(domain + "/" + remainder)


def parse_any(s: str) -> Reference | str:
    """``ParseAnyReference``: a 64-hex id or a full digest gives the digest string
    (``sha256:...``), anything else a normalised ``Reference``."""
    if is_hex64(s):
        return "sha256:" + s
    try:
        parse_digest(s)
    except InvalidDigest:
        pass
    else:
        return s
    return parse_normalized(s)


def familiar(s: str) -> str:
    """Familiar string of a reference string (``docker.io/library/x:1`` -> ``x:1``)."""
    return parse_normalized(s).familiar_string()


def normalize_tagged(s: str) -> Reference:
    """Parse for use as a tag target (``docker tag``/``import``): name-only gets
    ``:latest``; a digest is refused as Docker does."""
    ref = parse_normalized(s)
    if ref.digest is not None:
        raise InvalidReference("refusing to create a tag with a digest reference")
    return ref.with_default_tag()
