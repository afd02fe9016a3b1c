"""The h11 server shell, driven through in-memory streams (no sockets)."""

import json

import pytest
import trio
import trio.testing

from actors import http as H


def make_router():
    r = H.Router(api_version="1.41", min_api_version="1.24")

    async def hello(req):
        return H.json_response({"path": req.path, "id": req.params.get("id"), "q": req.q("x")})

    async def echo(req):
        return H.json_response(await req.json())

    async def boom(req):
        raise RuntimeError("kaboom")

    async def stream(req):
        async def gen():
            for i in range(3):
                yield f"{i}\n".encode()
        return H.StreamResponse(gen())

    async def hijack(req):
        async def run(conn, leftover):
            data = leftover
            while len(data) < 4:
                data += await conn.receive_some(100)
            await conn.send_all(data.upper())
            await conn.aclose()
        return H.Hijack(run)

    r.add("GET", "/things/{id}/json", hello)
    r.add("POST", "/echo", echo)
    r.add("GET", "/boom", boom)
    r.add("GET", "/stream", stream)
    r.add("POST", "/hijack", hijack)
    return r


async def roundtrip(raw: bytes) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as n:
        n.start_soon(H.handle_connection, server, make_router())
        await client.send_all(raw)
        out = b""
        with trio.move_on_after(5):
            while True:
                chunk = await client.receive_some(65536)
                if not chunk:
                    break
                out += chunk
                if raw.startswith(b"GET /things") and out.endswith(b"}\n"):
                    break
        await client.aclose()
    return out


def body_of(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    return head, body


async def test_routes_versions_and_params():
    resp = await roundtrip(b"GET /v1.41/things/abc/json?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = body_of(resp)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Api-Version: 1.41" in head
    assert json.loads(body) == {"path": "/things/abc/json", "id": "abc", "q": "1"}


async def test_too_new_version_and_unknown_paths():
    resp = await roundtrip(b"GET /v9.99/things/a/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400")
    assert b"client version 9.99 is too new" in resp
    resp = await roundtrip(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 404")
    assert json.loads(body_of(resp)[1]) == {"message": "page not found"}


async def test_bad_json_and_handler_crash_are_json_errors():
    resp = await roundtrip(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n{bad")
    assert resp.startswith(b"HTTP/1.1 400") and b"invalid JSON" in resp
    resp = await roundtrip(b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 500") and b"kaboom" in resp


async def test_garbage_gets_400_and_close():
    resp = await roundtrip(b"\x16\x03\x01 not http at all\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400")


async def test_oversized_body_is_refused(monkeypatch):
    monkeypatch.setattr(H, "MAX_BODY", 1000)
    big = b"x" * 5000
    resp = await roundtrip(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n" + big)
    assert resp.startswith(b"HTTP/1.1 413")


async def test_streamed_response_is_chunked():
    resp = await roundtrip(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = body_of(resp)
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"2\r\n0\n\r\n2\r\n1\n\r\n2\r\n2\n\r\n0\r\n\r\n"


async def test_hijack_upgrades_and_keeps_leftover_bytes():
    resp = await roundtrip(b"POST /hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                           b"Content-Length: 0\r\n\r\nabcd")
    assert resp.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert resp.endswith(b"\r\n\r\nABCD")


async def test_slow_client_is_dropped(autojump_clock):
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as n:
        n.start_soon(H.handle_connection, server, make_router())
        await client.send_all(b"GET /things/a/json HTTP/1.1\r\n")  # never finishes the head
        await trio.sleep(H.HEAD_TIMEOUT + 1)
        assert await client.receive_some(100) == b""  # server closed


def test_image_names_span_segments_as_in_dockers_router():
    r = H.Router(api_version="1.41", min_api_version="1.24")
    r.add("GET", "/images/json", "list")
    r.add("GET", "/images/get", "save-many")
    r.add("GET", "/images/{name:.*}/json", "inspect")
    r.add("DELETE", "/images/{name:.*}", "delete")
    r.add("GET", "/containers/{id}/json", "container")

    class Req:
        def __init__(self, method, path):
            self.method, self.raw_path = method, path

    def resolve(method, path):
        req = Req(method, path)
        return r.resolve(req), req.params

    assert resolve("GET", "/images/json") == ("list", {})
    assert resolve("GET", "/images/get") == ("save-many", {})
    assert resolve("GET", "/v1.41/images/localhost:5000/team/app:1/json") == (
        "inspect", {"name": "localhost:5000/team/app:1"})
    assert resolve("GET", "/images/a/json/json") == ("inspect", {"name": "a/json"})
    assert resolve("DELETE", "/images/x/y@sha256:ab") == ("delete", {"name": "x/y@sha256:ab"})
    # one segment stays one segment
    with pytest.raises(H.HTTPError) as exc:
        resolve("GET", "/containers/a/b/json")
    assert exc.value.status == 404
