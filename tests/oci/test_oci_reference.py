import pytest
from hypothesis import given, settings, strategies as st

from oci.errors import InvalidReference
from oci.reference import Reference, familiar, normalize_tagged, parse, parse_any, parse_normalized

H = "0123456789abcdef" * 4


@pytest.mark.parametrize("s,full,fam", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("docker.io/library/busybox", "docker.io/library/busybox", "busybox"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", "busybox"),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
    ("user/app", "docker.io/user/app", "user/app"),
    ("a/b/c:1", "docker.io/a/b/c:1", "a/b/c:1"),
    ("localhost/app", "localhost/app", "localhost/app"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("registry.example.com/x", "registry.example.com/x", "registry.example.com/x"),
    ("127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1"),
    ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
    (f"busybox@sha256:{H}", f"docker.io/library/busybox@sha256:{H}", f"busybox@sha256:{H}"),
    (f"busybox:1@sha256:{H}", f"docker.io/library/busybox:1@sha256:{H}", f"busybox:1@sha256:{H}"),
    ("a-b_c.d__e---f", "docker.io/library/a-b_c.d__e---f", "a-b_c.d__e---f"),
    ("docker.io/library/a/b", "docker.io/library/a/b", "library/a/b"),
])
def test_normalize(s, full, fam):
    r = parse_normalized(s)
    assert r.string() == full == str(r)
    assert r.familiar_string() == fam
    assert familiar(s) == fam


def test_parts_and_default_tag():
    r = parse_normalized("localhost:5000/a/b")
    assert (r.domain, r.path, r.tag, r.digest) == ("localhost:5000", "a/b", None, None)
    assert r.name == "localhost:5000/a/b" and r.familiar_name == "localhost:5000/a/b"
    assert r.with_default_tag().tag == "latest"
    assert parse_normalized("busybox").with_default_tag().familiar_string() == "busybox:latest"
    d = parse_normalized(f"busybox@sha256:{H}")
    assert d.with_default_tag() == d  # a digest reference gets no tag
    assert d.trim().familiar_string() == "busybox"
    assert parse_normalized("x:1").with_tag("2").familiar_string() == "x:2"


@pytest.mark.parametrize("s,msg", [
    ("Busy", "invalid reference format: repository name (library/Busy) must be lowercase"),
    ("library/Busy:1", "invalid reference format: repository name (library/Busy) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("a:b:c", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("-abc", "invalid reference format"),
    ("abc-", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    (f"busybox@md5:{H}", "unsupported digest algorithm"),
    ("x:" + "t" * 129, "invalid reference format"),
    (H, f"invalid repository name ({H}), cannot specify 64-byte hexadecimal strings"),
])
def test_invalid(s, msg):
    with pytest.raises(InvalidReference) as ei:
        parse_normalized(s)
    assert str(ei.value) == msg


def test_name_too_long():
    with pytest.raises(InvalidReference, match="must not be more than 255 characters"):
        parse_normalized("a/" * 130 + "b")


def test_parse_without_normalisation():
    r = parse("busybox:1")
    assert (r.domain, r.path, r.tag) == ("", "busybox", "1")
    with pytest.raises(InvalidReference, match="^repository name must be lowercase$"):
        parse("Example.com/UPPER")


def test_parse_any():
    assert parse_any(H) == "sha256:" + H
    assert parse_any("sha256:" + H) == "sha256:" + H
    assert isinstance(parse_any("busybox:latest"), Reference)
    assert isinstance(parse_any("sha256:abc"), Reference)  # a name "sha256" with tag "abc"


def test_normalize_tagged():
    assert normalize_tagged("x").familiar_string() == "x:latest"
    with pytest.raises(InvalidReference, match="refusing to create a tag with a digest reference"):
        normalize_tagged(f"x@sha256:{H}")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_parsing_never_crashes(s):
    try:
        r = parse_normalized(s)
    except InvalidReference:
        return
    # what parses, round-trips
    assert parse_normalized(r.string()) == r
    assert parse_normalized(r.familiar_string()) == r


_comp = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(_comp, min_size=1, max_size=3), st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)))
def test_valid_names_roundtrip(parts, tag):
    s = "/".join(parts) + (f":{tag}" if tag else "")
    r = parse_normalized(s)
    assert r.tag == tag
    assert parse_normalized(r.familiar_string()) == r
    assert r.string().startswith(r.domain + "/")
