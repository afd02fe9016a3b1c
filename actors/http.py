"""A small trio HTTP/1.1 server on h11, for the Docker Engine API.

h11 does the protocol (sans-IO); this module is the trio shell around it:
one task per connection, keep-alive, bounded heads and bodies, timeouts
for slow clients, JSON errors in Docker's shape, streamed (chunked)
responses, and connection hijacking (101 UPGRADED, as dockerd does for
attach and exec).

A handler is ``async def handler(req: Request) -> Response | StreamResponse | Hijack``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import urllib.parse
from typing import Any, AsyncIterator, Awaitable, Callable

import attrs
import h11
import trio

from messages.errors import ErrorCode, RemoteError

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024  # default bound for bodies read whole
HEAD_TIMEOUT = 30.0  # a client has this long to send a complete request head
BODY_TIMEOUT = 60.0  # and this long between two body chunks
SEND_TIMEOUT = 60.0  # a client that reads nothing for this long is dropped
DRAIN_LIMIT = 256 * 1024  # unread body bytes discarded to keep a connection alive (as Go's net/http)
LINGER = 0.5  # after a response with Connection: close, how long unread input is discarded
SERVER = "trioctr"

STATUS_OF_CODE = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.FAILED_PRECONDITION: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNIMPLEMENTED: 501,
    ErrorCode.INTERNAL: 500,
    ErrorCode.PROTOCOL: 500,
    ErrorCode.EXEC_FAILED: 400,
    ErrorCode.DEADLINE: 504,
}


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    def __init__(self, conn: "_Connection", event: h11.Request):
        self._conn = conn
        self.method = event.method.decode("ascii", "replace").upper()
        self.target = event.target.decode("latin-1")
        parsed = urllib.parse.urlsplit(self.target)
        self.raw_path = parsed.path
        self.path = parsed.path  # without /vX.Y; set by the router
        self.api_version: str | None = None
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for name, value in event.headers:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self.params: dict[str, str] = {}
        self._body_done = False

    # -- query helpers ----------------------------------------------------
    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def q_bool(self, name: str, default: bool = False) -> bool:
        v = self.q(name)
        if v is None:
            return default
        v = v.strip().lower()
        if v in ("", "0", "false", "no", "off"):
            return False if v != "" else default
        return True

    def q_int(self, name: str, default: int | None = None) -> int | None:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise HTTPError(400, f"invalid value for {name}: {v!r}") from None

    def q_json(self, name: str, default: Any = None) -> Any:
        v = self.q(name)
        if not v:
            return default
        try:
            return json.loads(v)
        except ValueError:
            raise HTTPError(400, f"invalid JSON in {name} parameter") from None

    # -- body -------------------------------------------------------------
    async def iter_body(self) -> AsyncIterator[bytes]:
        if self._body_done:
            return
        while True:
            with trio.move_on_after(BODY_TIMEOUT) as scope:
                try:
                    ev = await self._conn.next_event()
                except h11.RemoteProtocolError as exc:  # a cut or malformed body
                    self._body_done = True
                    raise HTTPError(400, f"bad request body: {exc}") from None
            if scope.cancelled_caught:
                raise HTTPError(408, "timeout reading the request body")
            if isinstance(ev, h11.Data):
                yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self._body_done = True
                return
            else:
                raise HTTPError(400, "unexpected end of the request body")

    async def body(self, limit: int | None = None) -> bytes:
        limit = MAX_BODY if limit is None else limit
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"request body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.iter_body():
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, limit: int | None = None, *, allow_empty: bool = True) -> Any:
        data = await self.body(limit)
        if not data.strip():
            if allow_empty:
                return None
            raise HTTPError(400, "request body is empty")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from None

    async def drain(self) -> None:
        async for _ in self.iter_body():
            pass


@attrs.define
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = attrs.field(factory=list)


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, (json.dumps(obj) + "\n").encode(), "application/json", headers or [])


def error_response(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


@attrs.define
class StreamResponse:
    """A body of unknown length sent chunked, as it is produced."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = attrs.field(factory=list)


class Final(bytes):
    """A streamed body's last chunk: sent with the body's end, in one write
    (a client such as docker's reads a `wait` answer to its end)."""


@attrs.define
class Hijack:
    """Take over the raw connection after the response head (attach, exec).

    ``run(stream, leftover)`` gets the connection's trio stream and any bytes
    the client already sent after its request head."""

    run: Callable[[trio.abc.Stream, bytes], Awaitable[None]]
    content_type: str = "application/vnd.docker.raw-stream"
    headers: list[tuple[str, str]] = attrs.field(factory=list)


Handler = Callable[[Request], Awaitable[Any]]


class Router:
    """Method + path pattern ("/containers/{id}/json") to handler."""

    VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)$")

    def __init__(self, *, api_version: str, min_api_version: str):
        self.api_version = api_version
        self.min_api_version = min_api_version
        self._routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """``{id}`` is one path segment; ``{name:.*}`` (Docker's form for image
        names, which the docker CLI sends with their slashes unescaped) spans
        segments; a trailing ``{path*}`` takes the rest, slash included."""
        tail = ""
        if pattern.endswith("{path*}"):
            pattern, tail = pattern[:-7], "(?P<path>.*)"
        regex = re.sub(r"\{(\w+):\.\*\}", r"(?P<\1>.+)", pattern)
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex) + tail + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn
        return deco

    def resolve(self, req: Request) -> Handler:
        path = req.raw_path
        m = self.VERSION_RE.match(path)
        if m:
            version, path = m.group(1), m.group(2)
            if _vtuple(version) > _vtuple(self.api_version):
                raise HTTPError(400, f"client version {version} is too new. "
                                     f"Maximum supported API version is {self.api_version}")
            if _vtuple(version) < _vtuple(self.min_api_version):
                raise HTTPError(400, f"client version {version} is too old. "
                                     f"Minimum supported API version is {self.min_api_version}, "
                                     "please upgrade your client to a newer version")
            req.api_version = version
        req.path = path
        method = "GET" if req.method == "HEAD" else req.method
        allowed = False
        for m_, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            if m_ != method and not (req.method == "HEAD" and m_ == "HEAD"):
                allowed = True
                continue
            req.params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            return handler
        for m_, regex, handler in self._routes:  # explicit HEAD routes
            if m_ == req.method and regex.match(path):
                req.params = dict(regex.match(path).groupdict())
                return handler
        if allowed:
            raise HTTPError(405, "method not allowed")
        raise HTTPError(404, "page not found")


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class _Connection:
    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def next_event(self) -> Any:
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.conn.receive_data(data)  # b"" means EOF
                continue
            return ev

    async def send(self, *events: Any) -> None:
        """h11 events, in one write."""
        data = b"".join(self.conn.send(event) or b"" for event in events)
        if data:
            with trio.fail_after(SEND_TIMEOUT):
                await self.stream.send_all(data)


def _base_headers(extra: list[tuple[str, str]], api_version: str) -> list[tuple[str, str]]:
    return [("Server", SERVER), ("Api-Version", api_version),
            ("Ostype", "linux"), *extra]


def status_for(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, HTTPError):
        return exc.status, exc.message
    if isinstance(exc, RemoteError):
        return STATUS_OF_CODE.get(exc.code, 500), exc.message
    status = getattr(exc, "http_status", None)  # oci's errors carry Docker's status
    if isinstance(status, int) and 400 <= status < 600:
        return status, str(exc)
    return 500, f"{type(exc).__name__}: {exc}"


async def handle_connection(stream: trio.abc.Stream, router: Router) -> None:
    c = _Connection(stream)
    try:
        while True:
            with trio.move_on_after(HEAD_TIMEOUT) as scope:
                try:
                    ev = await c.next_event()
                except h11.RemoteProtocolError as exc:
                    await _send_protocol_error(c, exc, router.api_version)
                    return
            if scope.cancelled_caught:
                return  # idle or slow client
            if isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
                return
            if not isinstance(ev, h11.Request):
                return
            req = Request(c, ev)
            hijacked = await _serve_one(c, req, router)
            if hijacked:
                return
            if c.conn.our_state is h11.MUST_CLOSE or c.conn.their_state is h11.MUST_CLOSE:
                return
            try:
                c.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
            h11.RemoteProtocolError, h11.LocalProtocolError):
        return
    except Exception:  # noqa: BLE001 - one connection's failure never stops the server
        log.exception("connection handler failed")
        return
    finally:
        with trio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except Exception:
                pass


async def _send_protocol_error(c: _Connection, exc: h11.RemoteProtocolError, api: str) -> None:
    status = exc.error_status_hint or 400
    body = (json.dumps({"message": f"bad request: {exc}"}) + "\n").encode()
    try:
        await c.send(h11.Response(status_code=status, headers=_base_headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
             ("Connection", "close")], api)))
        await c.send(h11.Data(data=body))
        await c.send(h11.EndOfMessage())
    except Exception:
        pass


async def _serve_one(c: _Connection, req: Request, router: Router) -> bool:
    """Answer one request.  True if the connection was hijacked."""
    try:
        handler = router.resolve(req)
        result = await handler(req)
    except trio.Cancelled:
        raise
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise
    except Exception as exc:
        status, message = status_for(exc)
        if status >= 500 and not isinstance(exc, (HTTPError, RemoteError)):
            log.exception("handler for %s %s failed", req.method, req.target)
        result = error_response(status, message)
    # a handler that did not read the body: discard a little of it to keep the
    # connection, or answer and close (as Go's net/http does)
    close = False
    if not req._body_done and not isinstance(result, Hijack):
        try:
            size = 0
            async for chunk in req.iter_body():
                size += len(chunk)
                if size > DRAIN_LIMIT:
                    close = True
                    break
        except HTTPError as exc:
            if not isinstance(result, Response) or result.status < 400:
                result = error_response(exc.status, exc.message)
            close = True
    head_only = req.method == "HEAD"
    if isinstance(result, Hijack):
        try:
            await _hijack(c, req, result, router.api_version)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        except Exception:  # noqa: BLE001 - the connection ends, the server goes on
            log.exception("hijacked %s %s failed", req.method, req.target)
        return True
    extra = [("Connection", "close")] if close else []
    if isinstance(result, StreamResponse):
        try:
            await c.send(h11.Response(status_code=result.status, headers=_base_headers(
                [("Content-Type", result.content_type), *extra, *result.headers], router.api_version)))
            if head_only:
                await c.send(h11.EndOfMessage())
            elif await _send_stream(c, req, result.chunks):
                return True  # the client left, or the producer failed: drop the connection
        finally:
            await _aclose(result.chunks)
        if close:
            await _linger(c)
        return False
    if not isinstance(result, Response):
        result = json_response(result)
    headers = [("Content-Length", str(len(result.body))), *result.headers, *extra]
    if result.content_type:
        headers.insert(0, ("Content-Type", result.content_type))
    await c.send(h11.Response(status_code=result.status,
                              headers=_base_headers(headers, router.api_version)))
    if not head_only and result.body:
        await c.send(h11.Data(data=result.body))
    await c.send(h11.EndOfMessage())
    if close:
        await _linger(c)
    return False


async def _aclose(chunks: Any) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    with trio.CancelScope(shield=True):
        try:
            await aclose()
        except Exception:  # noqa: BLE001
            log.exception("closing a streamed response failed")


async def _send_stream(c: _Connection, req: Request, chunks: AsyncIterator[bytes]) -> bool:
    """Send a streamed body as it is produced, while watching the client: a
    client that goes away (EOF or error on its side of the socket) ends the
    stream at once, even one that is idle (events, logs -f, wait, stats), so
    no task, subscription or descriptor outlives its client.

    True when the connection must be dropped (client gone, or the producer
    failed half-way: the body is left unterminated, so the client sees an
    error rather than a short answer)."""
    drop = False
    async with trio.open_nursery() as nursery:
        async def watch_client() -> None:
            nonlocal drop
            kept = 0
            try:
                while True:
                    data = await c.stream.receive_some(65536)
                    if not data:
                        break
                    kept += len(data)  # a pipelined next request: keep it, bounded
                    if kept > MAX_HEAD:
                        break
                    c.conn.receive_data(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            drop = True
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_client)
        try:
            ended = False
            async for chunk in chunks:
                if isinstance(chunk, Final):
                    await c.send(h11.Data(data=chunk), h11.EndOfMessage())
                    ended = True
                    break
                if chunk:
                    await c.send(h11.Data(data=chunk))
            if not ended:
                # the end at once (not after the watcher is cancelled: that
                # waits for this loop's next round, behind whatever else it runs)
                await c.send(h11.EndOfMessage())
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            drop = True
        except Exception:  # noqa: BLE001 - the producer failed: log it, drop the connection
            log.exception("streamed response of %s %s failed", req.method, req.target)
            drop = True
        nursery.cancel_scope.cancel()
    return drop


async def _linger(c: _Connection) -> None:
    """Before closing a connection whose request body was not read: say we are
    done, and discard input for a moment, so the client reads our answer
    instead of a reset."""
    try:
        send_eof = getattr(c.stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()
        with trio.move_on_after(LINGER):
            while await c.stream.receive_some(65536):
                pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _hijack(c: _Connection, req: Request, hj: Hijack, api: str) -> None:
    upgrade = req.headers.get("upgrade", "").lower() == "tcp"
    if not req._body_done:
        # attach/exec start carry a (small) JSON body or none at all; anything
        # the client sends after it is raw stream data
        if req.method == "POST" and req.headers.get("content-length", "0") != "0":
            await req.body(1024 * 1024)
        else:
            req._body_done = True
    leftover, _closed = c.conn.trailing_data
    if upgrade:
        head = "HTTP/1.1 101 UPGRADED\r\n"
        extra = [("Connection", "Upgrade"), ("Upgrade", "tcp")]
    else:
        head = "HTTP/1.1 200 OK\r\n"
        extra = []
    lines = [head] + [f"{k}: {v}\r\n" for k, v in _base_headers(
        [("Content-Type", hj.content_type), *extra, *hj.headers], api)] + ["\r\n"]
    with trio.fail_after(SEND_TIMEOUT):
        await c.stream.send_all("".join(lines).encode("latin-1"))
    await hj.run(c.stream, bytes(leftover))


async def serve_unix(path: str, router: Router, *, mode: int = 0o660,
                     task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Bind the API socket (replacing a stale one), then serve forever."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, mode)
    sock.listen(128)
    listener = trio.SocketListener(sock)
    async with trio.open_nursery() as nursery:
        task_status.started(path)
        try:
            await trio.serve_listeners(
                lambda s: handle_connection(s, router), [listener],
                handler_nursery=nursery)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
