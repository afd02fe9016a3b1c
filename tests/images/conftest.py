"""Fixtures for the registry side: a real docker-registry on 127.0.0.1, images
pushed with skopeo, a fault proxy, basic and token auth."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.images import registry_env as env

@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A plain (no auth) registry shared by the session; use unique repo names."""
    if not (os.access(env.REGISTRY_BIN, os.X_OK) and os.access(env.SKOPEO, os.X_OK)):
        pytest.skip("needs /usr/bin/docker-registry and skopeo (scripts/install.sh --test)")
    r = env.Registry(str(tmp_path_factory.mktemp("registry"))).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def store(tmp_path):
    from oci.store import ImageStore
    return ImageStore(str(tmp_path / "image"), durable=False)


@pytest.fixture
def store2(tmp_path):
    from oci.store import ImageStore
    return ImageStore(str(tmp_path / "image2"), durable=False)


@pytest.fixture
def layout(tmp_path):
    return env.Layout(str(tmp_path / "layout"))


@pytest.fixture(scope="session")
def busybox_layer():
    return env.busybox_layer()


@pytest.fixture
def repo_name():
    return f"t{uuid.uuid4().hex[:10]}/img"


@pytest.fixture
def fault_proxy(registry):
    p = env.FaultProxy(registry.port).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    """A registry with htpasswd (bcrypt) basic auth: alice / s3cret-pw."""
    if not os.access(env.REGISTRY_BIN, os.X_OK):
        pytest.skip("needs /usr/bin/docker-registry")
    line = env.htpasswd_line(env.USER, env.PASSWORD)
    if line is None:
        pytest.skip("no bcrypt: neither the bcrypt module nor crypt's blowfish is available "
                    "to write the registry's htpasswd")
    d = str(tmp_path_factory.mktemp("basic-registry"))
    path = os.path.join(d, "htpasswd")
    with open(path, "w") as f:
        f.write(line + "\n")
    r = env.Registry(d, auth={"htpasswd": {"realm": "basic-realm", "path": path}}).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    """A registry with bearer token auth, and its token server: (registry, server)."""
    if not os.access(env.REGISTRY_BIN, os.X_OK):
        pytest.skip("needs /usr/bin/docker-registry")
    try:
        __import__("cryptography")
    except ImportError:
        pytest.skip("needs python3-cryptography to sign the test token server's JWTs")
    d = str(tmp_path_factory.mktemp("token-registry"))
    ts = env.TokenServer(d).start()
    try:
        r = env.Registry(d, auth={"token": {"realm": ts.realm, "service": env.SERVICE,
                                            "issuer": env.ISSUER,
                                            "rootcertbundle": ts.cert_path}}).start()
        try:
            yield r, ts
        finally:
            r.stop()
    finally:
        ts.stop()
