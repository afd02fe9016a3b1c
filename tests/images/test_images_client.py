"""The registry client's pure parts: challenges, X-Registry-Auth, insecure
hosts, endpoints, manifests and platforms, error wording."""

from __future__ import annotations

import base64
import http.server
import json
import threading

import pytest

from actors import images_pull
from oci import manifest as mf
from oci.distribution import progress_bar, translate_pull_error
from oci.errors import InvalidArgument, UnsupportedMediaType
from oci.reference import parse_normalized
from oci.registry import (AuthConfig, Registry, RegistryClient, RegistryError, TransportError,
                          decode_registry_auth, encode_registry_auth, error_from_response,
                          is_insecure, parse_challenges)


class Headers:
    def __init__(self, **h):
        self.h = {k.replace("_", "-"): v for k, v in h.items()}

    def get_all(self, name):
        v = self.h.get(name)
        return [v] if v else []


def test_parse_challenges():
    chs = parse_challenges(['Bearer realm="https://auth.example/token",service="reg",'
                            'scope="repository:a/b:pull,push",error="insufficient_scope"'])
    assert len(chs) == 1
    assert chs[0].scheme == "bearer"
    assert chs[0].params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert parse_challenges(['Basic realm="basic-realm"'])[0].params == {"realm": "basic-realm"}
    two = parse_challenges(['Basic realm="x", Bearer realm="y",service=s'])
    assert [(c.scheme, c.params) for c in two] == [("basic", {"realm": "x"}),
                                                   ("bearer", {"realm": "y", "service": "s"})]
    assert parse_challenges(['Bearer realm="a\\"b"'])[0].params["realm"] == 'a"b'
    assert parse_challenges([""]) == []


def test_registry_auth_header():
    d = {"username": "u", "password": "p:w", "serveraddress": "localhost:5000"}
    enc = encode_registry_auth(d)
    assert decode_registry_auth(enc) == d
    assert decode_registry_auth(enc.rstrip("=")) == d  # padding optional
    std = base64.b64encode(json.dumps(d).encode()).decode()
    assert decode_registry_auth(std) == d
    assert decode_registry_auth(None) is None and decode_registry_auth("") is None
    with pytest.raises(InvalidArgument) as e:
        decode_registry_auth("!!!notbase64")
    assert str(e.value).startswith("invalid X-Registry-Auth header")
    assert e.value.http_status == 400
    assert images_pull.registry_auth(encode_registry_auth({"identitytoken": "t"})) == \
        {"identitytoken": "t"}
    a = AuthConfig.from_dict({"auth": base64.b64encode(b"bob:pw:x").decode()})
    assert (a.username, a.password) == ("bob", "pw:x")
    assert AuthConfig.from_dict({"Username": "x", "Password": "y"}).basic_header() == \
        "Basic " + base64.b64encode(b"x:y").decode()
    assert AuthConfig.from_dict({}) is None
    assert AuthConfig.from_dict({"serveraddress": "x"}) is None
    assert AuthConfig.from_dict({"identitytoken": "tok"}).identity_token == "tok"


def test_insecure_hosts():
    for h in ("localhost", "localhost:5000", "127.0.0.1:5000", "127.9.8.7", "[::1]:5000"):
        assert is_insecure(h), h
    for h in ("example.com", "example.com:5000", "10.0.0.1:5000", "registry-1.docker.io"):
        assert not is_insecure(h), h
    assert is_insecure("example.com:5000", ["example.com:5000"])
    assert is_insecure("example.com:5000", ["example.com"])
    assert not is_insecure("example.com:5000", ["example.org"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("11.1.2.3:5000", ["10.0.0.0/8"])
    assert is_insecure("example.com", ["http://example.com/"])


def test_endpoints_and_mirrors():
    c = RegistryClient(mirrors=["http://127.0.0.1:5001/", "https://mirror.example"])
    eps = c.endpoints("docker.io")
    assert [(e.netloc, e.mirror, e._fixed_scheme) for e in eps] == [
        ("127.0.0.1:5001", True, "http"), ("mirror.example", True, "https"),
        ("registry-1.docker.io", False, None)]
    assert not eps[2].insecure and eps[0].insecure
    other = c.endpoints("quay.example:8443")
    assert [(e.netloc, e.mirror) for e in other] == [("quay.example:8443", False)]
    assert c.endpoints("docker.io")[2] is eps[2]  # shared: tokens are reused


def test_secure_registry_never_speaks_plain_http():
    """A registry that is not insecure gets TLS only, never a plain request."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    t.start()
    try:
        c = RegistryClient(timeout=5)
        r = Registry(c, f"127.0.0.1:{srv.server_address[1]}", insecure=False)
        with pytest.raises(TransportError) as e:
            r.ping()
        assert "https://" in str(e.value) and "tls" in str(e.value)
        assert seen == []
        r2 = Registry(c, f"127.0.0.1:{srv.server_address[1]}", insecure=True)
        r2.ping()
        assert r2.scheme == "http" and seen == ["/v2/"]
        c.close()
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def test_manifest_parsing_and_refusals():
    oci_m = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                        "config": {"mediaType": mf.OCI_CONFIG, "digest": "sha256:" + "a" * 64,
                                   "size": 10},
                        "layers": [{"mediaType": mf.OCI_LAYER_GZIP,
                                    "digest": "sha256:" + "b" * 64, "size": 5}]}).encode()
    m = mf.parse(oci_m)
    assert isinstance(m, mf.Manifest) and m.layers[0].size == 5
    # no mediaType field: the Content-Type says, or the shape does
    bare = json.loads(oci_m)
    del bare["mediaType"]
    assert mf.parse(json.dumps(bare).encode(), mf.DOCKER_MANIFEST).media_type == mf.DOCKER_MANIFEST
    assert mf.parse(json.dumps(bare).encode(), "application/json").media_type == mf.OCI_MANIFEST

    s1 = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(UnsupportedMediaType) as e:
        mf.parse(s1, mf.DOCKER_SCHEMA1_SIGNED)
    assert str(e.value).startswith(f"unsupported manifest media type {mf.DOCKER_SCHEMA1_SIGNED}")
    with pytest.raises(UnsupportedMediaType) as e:
        mf.parse(s1, "application/json")
    assert mf.DOCKER_SCHEMA1 in str(e.value)
    with pytest.raises(UnsupportedMediaType) as e:
        mf.parse(b'{"schemaVersion": 2, "mediaType": "application/vnd.x+json"}')
    assert str(e.value) == "unsupported manifest media type application/vnd.x+json"
    with pytest.raises(UnsupportedMediaType):
        mf.check_layer_type(mf.Descriptor("application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                                          "sha256:" + "a" * 64, 1))
    with pytest.raises(UnsupportedMediaType) as e:
        mf.check_config_type(mf.Descriptor("application/vnd.cncf.helm.config.v1+json",
                                           "sha256:" + "a" * 64, 1))
    assert "helm" in str(e.value)
    with pytest.raises(InvalidArgument):
        mf.parse(json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                             "config": {"digest": "sha256:zz", "size": 1},
                             "layers": []}).encode())


def _index(*plats):
    return mf.Index(mf.OCI_INDEX, [mf.Descriptor(mf.OCI_MANIFEST, "sha256:%064x" % i, 1,
                                                 platform=p) for i, p in enumerate(plats)], {})


def test_platform_selection():
    idx = _index({"os": "unknown", "architecture": "unknown"},
                 {"os": "linux", "architecture": "arm", "variant": "v6"},
                 {"os": "linux", "architecture": "amd64"},
                 {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 {"os": "windows", "architecture": "amd64"})
    pick = lambda s: mf.select_manifest(idx, mf.parse_platform(s)).digest  # noqa: E731
    assert pick("linux/amd64") == "sha256:%064x" % 2
    assert pick("linux/arm64") == "sha256:%064x" % 3
    assert pick("linux/arm64/v8") == "sha256:%064x" % 3
    assert pick("linux/arm/v7") == "sha256:%064x" % 1  # v7 runs v6
    assert pick("windows/amd64") == "sha256:%064x" % 4
    with pytest.raises(mf.NotMatched) as e:
        pick("linux/s390x")
    assert str(e.value) == "no matching manifest for linux/s390x in the manifest list entries"
    with pytest.raises(mf.NotMatched):
        pick("linux/arm/v5")
    # exact variant preferred over a compatible one
    idx2 = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
                  {"os": "linux", "architecture": "arm", "variant": "v7"})
    assert mf.select_manifest(idx2, mf.parse_platform("linux/arm/v7")).digest == \
        "sha256:%064x" % 1
    assert mf.parse_platform("linux/aarch64") == {"os": "linux", "architecture": "arm64"}
    assert mf.parse_platform("linux/x86_64") == {"os": "linux", "architecture": "amd64"}
    assert mf.parse_platform("linux/arm") == {"os": "linux", "architecture": "arm",
                                              "variant": "v7"}
    assert mf.parse_platform(None) == mf.host_platform()
    with pytest.raises(InvalidArgument):
        mf.parse_platform("linux//x")
    assert mf.format_platform({"os": "linux", "architecture": "arm", "variant": "v7"}) == \
        "linux/arm/v7"


def test_error_wording():
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                   "detail": {"Tag": "x"}}]}).encode()
    e = error_from_response(404, "Not Found", Headers(), body)
    assert str(e) == "manifest unknown: manifest unknown"
    assert (e.http_status, e.registry_code) == (404, "MANIFEST_UNKNOWN")
    ref = parse_normalized("localhost:5000/a/b:nope")
    assert str(translate_pull_error(e, ref)) == \
        "manifest for localhost:5000/a/b:nope not found: manifest unknown: manifest unknown"

    denied = error_from_response(401, "Unauthorized", Headers(
        WWW_Authenticate='Bearer realm="r",service="s",error="insufficient_scope"'),
        json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                "message": "authentication required"}]}).encode())
    assert str(denied) == "denied: requested access to the resource is denied"
    assert str(translate_pull_error(denied, parse_normalized("busybox2"))) == (
        "pull access denied for busybox2, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied")
    name_unknown = error_from_response(404, "", Headers(), json.dumps(
        {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
    ).encode())
    assert str(translate_pull_error(name_unknown, parse_normalized("x/y"))) == \
        "repository x/y not found: name unknown: repository name not known to registry"

    e = error_from_response(401, "Unauthorized", Headers(), b"")
    assert str(e) == "unauthorized: authentication required" and e.http_status == 401
    e = error_from_response(500, "Internal Server Error", Headers(), b"oops")
    assert str(e) == "received unexpected HTTP status: 500 Internal Server Error"
    assert isinstance(e, RegistryError) and e.http_status == 500


def test_progress_bar_and_references():
    assert progress_bar(0, 100) == "[>" + " " * 50 + "]       0B/100B"
    assert progress_bar(50, 100).startswith("[" + "=" * 25 + ">" + " " * 25 + "]")
    assert progress_bar(100, 100) == "[" + "=" * 50 + ">]     100B/100B"
    assert images_pull.pull_reference("busybox") == "docker.io/library/busybox:latest"
    assert images_pull.pull_reference("busybox", "1.36") == "docker.io/library/busybox:1.36"
    d = "sha256:" + "c" * 64
    assert images_pull.pull_reference("localhost:5000/a", d) == f"localhost:5000/a@{d}"
    assert images_pull.pull_reference(f"busybox@{d}") == f"docker.io/library/busybox@{d}"
