"""Authenticated registries: htpasswd basic auth, and bearer tokens from a
token server of the test's own (JWTs the registry verifies)."""

from __future__ import annotations

import base64
import io

from actors import images_pull
from oci.registry import encode_registry_auth
from tests.images import registry_env as env

FAST = {"retry_delay": 0.01, "timeout": 20}
CREDS = {"username": env.USER, "password": env.PASSWORD}


async def collect(agen) -> list[dict]:
    return [m async for m in agen]


def errors(msgs):
    return [m for m in msgs if "error" in m]


def seed(layout, registry, repo, *, creds=True, tag="latest"):
    desc, _, info = layout.image([env.small_layer("who", repo.encode())])
    layout.tag(tag, desc)
    args = ["--dest-creds", f"{env.USER}:{env.PASSWORD}"] if creds else []
    env.skopeo_copy(f"oci:{layout.path}:{tag}", f"docker://{registry.host}/{repo}:{tag}",
                    *args)
    return info


# --------------------------------------------------------------------------- basic


async def test_basic_auth_pull(basic_registry, store, layout):
    info = seed(layout, basic_registry, "private/basic")
    ref = f"{basic_registry.host}/private/basic"

    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert msgs == [{"errorDetail": {"message": "unauthorized: authentication required"},
                     "error": "unauthorized: authentication required"}]
    assert msgs[0].http_status == 401

    bad = dict(CREDS, password="nope")
    msgs = await collect(images_pull.pull(store, ref, auth=bad, client_options=FAST))
    assert errors(msgs)[0]["error"] == "unauthorized: authentication required"

    msgs = await collect(images_pull.pull(store, ref, auth=dict(
        CREDS, serveraddress=basic_registry.host), client_options=FAST))
    assert not errors(msgs), msgs
    assert store.get(ref).id == info["config_digest"]

    # the docker CLI's "auth" field (base64 user:password) works too, as does the
    # header round trip
    header = encode_registry_auth({"auth": base64.b64encode(
        f"{env.USER}:{env.PASSWORD}".encode()).decode()})
    auth = images_pull.registry_auth(header)
    store.untag(f"{ref}:latest")
    msgs = await collect(images_pull.pull(store, ref, auth=auth, client_options=FAST))
    assert not errors(msgs), msgs


async def test_basic_auth_push(basic_registry, store, busybox_layer):
    img = store.import_tar(io.BytesIO(busybox_layer), f"{basic_registry.host}/private/pushed",
                           created="2024-01-02T03:04:05Z")
    ref = f"{basic_registry.host}/private/pushed:latest"
    msgs = await collect(images_pull.push(store, ref, client_options=FAST))
    assert errors(msgs)[0]["error"] == "unauthorized: authentication required"
    msgs = await collect(images_pull.push(store, ref, CREDS, client_options=FAST))
    assert not errors(msgs), msgs
    got = env.skopeo_inspect(f"docker://{ref}", "--config", "--creds",
                             f"{env.USER}:{env.PASSWORD}")
    assert got["rootfs"]["diff_ids"] == img.diff_ids


# --------------------------------------------------------------------------- tokens


async def test_token_auth_anonymous(token_registry, store, layout):
    reg, ts = token_registry
    seed(layout, reg, "public/open")
    seed(layout, reg, "private/closed")
    msgs = await collect(images_pull.pull(store, f"{reg.host}/public/open", client_options=FAST))
    assert not errors(msgs), msgs

    ref = f"{reg.host}/private/closed"
    msgs = await collect(images_pull.pull(store, ref, client_options=FAST))
    assert errors(msgs) == msgs
    assert msgs[0]["error"] == (
        f"pull access denied for {ref}, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied")
    assert msgs[0].http_status == 404


async def test_token_auth_password_and_token_reuse(token_registry, store, layout):
    reg, ts = token_registry
    seed(layout, reg, "private/tok")
    ts.requests.clear()
    msgs = await collect(images_pull.pull(store, f"{reg.host}/private/tok", auth=CREDS,
                                          client_options=FAST))
    assert not errors(msgs), msgs
    # one token for the manifest, the config and the layers
    assert ts.requests == [{"method": "GET", "user": env.USER,
                            "scopes": ["repository:private/tok:pull"], "ok": True}]

    ts.requests.clear()
    msgs = await collect(images_pull.pull(store, f"{reg.host}/private/tok",
                                          auth=dict(CREDS, password="wrong"),
                                          client_options=FAST))
    assert errors(msgs)[0]["error"] == "unauthorized: incorrect username or password"
    assert errors(msgs)[0].http_status == 401


async def test_token_auth_identity_token(token_registry, store, layout):
    reg, ts = token_registry
    seed(layout, reg, "private/oauth")
    ts.requests.clear()
    msgs = await collect(images_pull.pull(store, f"{reg.host}/private/oauth",
                                          auth={"identitytoken": env.REFRESH_TOKEN},
                                          client_options=FAST))
    assert not errors(msgs), msgs
    assert [r["method"] for r in ts.requests] == ["POST"]


async def test_token_auth_push_and_mount(token_registry, store, busybox_layer):
    reg, ts = token_registry
    img = store.import_tar(io.BytesIO(busybox_layer), f"{reg.host}/private/src:latest",
                           created="2024-01-02T03:04:05Z")
    msgs = await collect(images_pull.push(store, f"{reg.host}/private/src:latest",
                                          client_options=FAST))
    assert errors(msgs)[0]["error"] == "denied: requested access to the resource is denied"

    msgs = await collect(images_pull.push(store, f"{reg.host}/private/src:latest", CREDS,
                                          client_options=FAST))
    assert not errors(msgs), msgs
    store.tag(img.id, f"{reg.host}/private/dst:latest")
    ts.requests.clear()
    msgs = await collect(images_pull.push(store, f"{reg.host}/private/dst:latest", CREDS,
                                          client_options=FAST))
    assert not errors(msgs), msgs
    assert [m["status"] for m in msgs if m.get("id") == img.diff_ids[0][7:19]] == [
        "Preparing", "Mounted from private/src"]
    scopes = [tuple(r["scopes"]) for r in ts.requests]
    assert ("repository:private/dst:pull,push", "repository:private/src:pull") in \
        [tuple(sorted(s)) for s in scopes]


# --------------------------------------------------------------------------- login


async def test_login_basic_and_token(basic_registry, token_registry):
    from oci.registry import RegistryError
    reg, ts = token_registry
    for r in (basic_registry, reg):
        ok = await images_pull.login(dict(CREDS, serveraddress=f"http://{r.host}/"),
                                     client_options=FAST)
        assert ok == {"Status": "Login Succeeded", "IdentityToken": ""}
        try:
            await images_pull.login({"username": env.USER, "password": "bad",
                                     "serveraddress": r.host}, client_options=FAST)
        except RegistryError as e:
            assert str(e) == "unauthorized: incorrect username or password"
            assert e.http_status == 401
        else:
            raise AssertionError("a wrong password logged in")
