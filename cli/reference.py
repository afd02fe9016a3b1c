"""Image references the way distribution/reference normalises them.

``busybox`` -> ``docker.io/library/busybox:latest``; the "familiar" form
drops ``docker.io/`` and ``library/`` again, as the docker CLI prints it.
"""

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"


class InvalidReference(ValueError):
    pass


def split(ref):
    """-> (name, tag or None, digest or None); no normalisation."""
    name, at, digest = ref.partition("@")
    tag = None
    i = name.rfind(":")
    if i > name.rfind("/"):
        name, tag = name[:i], name[i + 1:]
    return name, tag, (digest if at else None)


def _split_domain(name):
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i < 0 or ("." not in first and ":" not in first and first != "localhost"
                 and first.lower() == first):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1:]
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = "library/" + rest
    return domain, rest


def validate(ref):
    import re
    name, tag, digest = split(ref)
    if not name:
        raise InvalidReference("invalid reference format")
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise InvalidReference("invalid reference format: repository name (%s) must be lowercase"
                               % path)
    comp = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
    if not re.fullmatch(r"%s(?:/%s)*" % (comp, comp), path):
        raise InvalidReference("invalid reference format")
    if domain != DEFAULT_DOMAIN and not re.fullmatch(
            r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*"
            r"[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?", domain):
        raise InvalidReference("invalid reference format")
    if tag is not None and not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
        raise InvalidReference("invalid reference format")
    if digest is not None and not re.fullmatch(
            r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", digest):
        raise InvalidReference("invalid reference format")


def normalize_name(name):
    domain, rest = _split_domain(name)
    return domain + "/" + rest


def familiar_name(name):
    """docker.io/library/busybox -> busybox; docker.io/foo/bar -> foo/bar."""
    domain, rest = _split_domain(name)
    if domain == DEFAULT_DOMAIN:
        if rest.startswith("library/") and rest.count("/") == 1:
            return rest[len("library/"):]
        return rest
    return domain + "/" + rest


def _rebuild(ref, name_of, default_tag):
    name, tag, digest = split(ref)
    out = name_of(name)
    if tag is None and digest is None and default_tag:
        tag = "latest"
    if tag is not None:
        out += ":" + tag
    if digest is not None:
        out += "@" + digest
    return out


def normalize(ref, default_tag=True):
    """-> full string, e.g. docker.io/library/busybox:latest (tag added if no tag/digest)."""
    return _rebuild(ref, normalize_name, default_tag)


def familiar(ref, default_tag=False):
    return _rebuild(ref, familiar_name, default_tag)
