"""The daemon against a real registry (Debian's docker-registry on 127.0.0.1):
push, then `run` of an image that is not local pulls it first."""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest

from tests.images import registry_env as renv

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if not (os.access(renv.REGISTRY_BIN, os.X_OK)):
        pytest.skip("needs /usr/bin/docker-registry (scripts/install.sh --test)")
    r = renv.Registry(str(tmp_path_factory.mktemp("registry"))).start()
    try:
        yield r
    finally:
        r.stop()


def test_push_then_run_pulls_the_missing_image(engine, registry):
    ref = f"127.0.0.1:{registry.port}/trioctr/bb:v1"
    status, _ = engine.request("POST", "/images/busybox:latest/tag?" + urllib.parse.urlencode(
        {"repo": ref.rsplit(":", 1)[0], "tag": "v1"}))
    assert status == 201
    res = engine.cli("push", ref)
    assert res.returncode == 0, res.stderr
    assert b"v1: digest: sha256:" in res.stdout, res.stdout
    # no tag: docker pushes :latest, which this repository does not have
    res = engine.cli("push", ref.rsplit(":", 1)[0])
    assert res.returncode == 1 and b"Traceback" not in res.stderr, res.stderr
    assert res.stdout.startswith(b"Using default tag: latest\n")
    res = engine.cli("rmi", ref)
    assert res.returncode == 0, res.stderr
    # not local any more: run pulls it, as docker does
    res = engine.cli("run", "--rm", ref, "echo", "pulled and ran")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"pulled and ran\n"
    assert f"Unable to find image '{ref}' locally" in res.stderr.decode()
    images = engine.cli("images").stdout.decode()
    assert f"127.0.0.1:{registry.port}/trioctr/bb" in images
    info = json.loads(engine.cli("inspect", "--type", "image", ref).stdout)[0]
    assert any(d.startswith(f"127.0.0.1:{registry.port}/trioctr/bb@sha256:") for d in info["RepoDigests"])
    # a second pull finds it up to date
    res = engine.cli("pull", ref)
    assert res.returncode == 0 and b"Image is up to date" in res.stdout, res.stdout + res.stderr


def test_pull_errors_are_dockers(engine, registry):
    res = engine.cli("pull", f"127.0.0.1:{registry.port}/trioctr/nosuch:v1")
    assert res.returncode == 1
    assert "manifest unknown" in res.stderr.decode() or "not found" in res.stderr.decode()
    res = engine.cli("run", "--rm", f"127.0.0.1:{registry.port}/trioctr/nosuch:v1", "true")
    assert res.returncode == 125
    before = engine.cli("images", "-q").stdout
    assert engine.cli("images", "-q").stdout == before


def test_login_push_pull_logout_with_basic_auth(engine, tmp_path):
    line = renv.htpasswd_line(renv.USER, renv.PASSWORD)
    if line is None:
        pytest.skip("no bcrypt to write the registry's htpasswd")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(line + "\n")
    reg = renv.Registry(str(tmp_path / "reg"), auth={"htpasswd": {"realm": "basic-realm",
                                                                   "path": str(htpasswd)}}).start()
    try:
        ref = f"{reg.host}/secure/bb:v1"
        assert engine.cli("tag", "busybox:latest", ref).returncode == 0
        res = engine.cli("push", ref)
        assert res.returncode == 1 and "unauthorized" in res.stderr.decode(), res.stderr
        res = engine.cli("login", "-u", renv.USER, "--password-stdin", reg.host, input=b"wrong\n")
        assert res.returncode == 1 and "unauthorized" in res.stderr.decode(), res.stderr
        res = engine.cli("login", "-u", renv.USER, "--password-stdin", reg.host,
                         input=renv.PASSWORD.encode() + b"\n")
        assert res.returncode == 0 and res.stdout == b"Login Succeeded\n", res.stderr
        cfg_path = os.path.join(engine.base, "cli-config", "config.json")
        assert os.stat(cfg_path).st_mode & 0o777 == 0o600
        with open(cfg_path) as f:
            assert set(json.load(f)["auths"]) == {reg.host}  # docker's format
        res = engine.cli("push", ref)
        assert res.returncode == 0, res.stderr
        assert engine.cli("rmi", ref).returncode == 0
        res = engine.cli("pull", ref)
        assert res.returncode == 0, res.stderr
        res = engine.cli("logout", reg.host)
        assert res.stdout == f"Removing login credentials for {reg.host}\n".encode()
        assert engine.cli("rmi", ref).returncode == 0
        res = engine.cli("pull", ref)
        err = res.stderr.decode()
        assert res.returncode == 1 and ("denied" in err or "unauthorized" in err), err
    finally:
        reg.stop()
