"""A trio link between two actors: hello, request/reply correlation, events.

One ``Link`` wraps one trio stream (socketpair or Unix socket).  ``serve``
owns the read loop; requests from the peer run as tasks in the link's own
nursery and their handler's return value (or RemoteError) is the reply.

Bad input from the peer never crashes the actor: a frame that is valid
msgpack but not a valid message gets an error reply (or is dropped if it
has no usable id); bytes that are not msgpack close this link only.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from typing import Any, Awaitable, Callable, Protocol

import trio

from .base import ErrorReply, Hello, Kind, error_reply, pack, unpack
from .errors import ErrorCode, ProtocolError, RemoteError, remote_error
from .wire import PROTOCOL_VERSION, FrameDecoder, encode

log = logging.getLogger(__name__)

READ_SIZE = 65536


class Handler(Protocol):
    async def handle_request(self, link: "Link", msg: Any) -> Any: ...
    async def handle_event(self, link: "Link", msg: Any) -> None: ...


class LinkClosed(RemoteError):
    def __init__(self, why: str = "link closed"):
        super().__init__(ErrorCode.UNAVAILABLE, why)


class Link:
    def __init__(self, stream: trio.abc.HalfCloseableStream | trio.abc.Stream, *,
                 role: str, name: str = ""):
        self.stream = stream
        self.role = role
        self.name = name or role
        self.peer: Hello | None = None
        self._decoder = FrameDecoder()
        self._inbox: list[Any] = []
        self._send_lock = trio.StrictFIFOLock()
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}  # id -> [trio.Event, reply or exc]
        self._closed = False

    # -- sending ----------------------------------------------------------
    async def _send_frame(self, frame: dict) -> None:
        data = encode(frame)
        async with self._send_lock:
            if self._closed:
                raise LinkClosed()
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._close(f"send failed: {exc}")
                raise LinkClosed(f"link to {self.name} broke") from None

    async def send_event(self, msg: Any) -> None:
        await self._send_frame(pack(Kind.EVENT, 0, msg))

    async def request(self, msg: Any, timeout: float = 30.0) -> Any:
        corr = next(self._ids)
        slot: list = [trio.Event(), None]
        self._pending[corr] = slot
        try:
            await self._send_frame(pack(Kind.REQUEST, corr, msg))
            with trio.move_on_after(timeout if timeout else math.inf) as scope:
                await slot[0].wait()
            if scope.cancelled_caught:
                raise RemoteError(ErrorCode.DEADLINE,
                                  f"{self.name}: no reply to {type(msg).TYPE} in {timeout:g}s")
        finally:
            self._pending.pop(corr, None)
        result = slot[1]
        if isinstance(result, BaseException):
            raise result
        return result

    # -- receiving --------------------------------------------------------
    async def _receive_frame(self) -> Any | None:
        """Next decoded msgpack object, or None at EOF.  ProtocolError on garbage."""
        while not self._inbox:
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            self._inbox.extend(self._decoder.feed(data))
        return self._inbox.pop(0)

    async def handshake(self, timeout: float = 10.0) -> Hello:
        """Say hello and read the peer's.  The peer must speak our version."""
        await self._send_frame(pack(Kind.HELLO, 0, Hello(
            role=self.role, version=PROTOCOL_VERSION, pid=os.getpid())))
        with trio.fail_after(timeout):
            frame = await self._receive_frame()
        if frame is None:
            raise LinkClosed(f"{self.name} closed before hello")
        env = unpack(frame)
        if env.kind is not Kind.HELLO or not isinstance(env.msg, Hello):
            raise ProtocolError(f"expected hello, got {type(env.msg).TYPE}")
        if env.msg.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"{self.name} speaks protocol {env.msg.version}, we speak {PROTOCOL_VERSION}")
        self.peer = env.msg
        return env.msg

    async def serve(self, handler: Handler, *,
                    task_status=trio.TASK_STATUS_IGNORED) -> str:
        """Read until EOF or garbage.  Returns why the link ended."""
        why = "closed by peer"
        async with trio.open_nursery() as nursery:
            task_status.started()
            try:
                while True:
                    try:
                        frame = await self._receive_frame()
                    except ProtocolError as exc:
                        why = f"dropped: {exc}"
                        log.warning("%s: %s", self.name, why)
                        break
                    if frame is None:
                        break
                    await self._dispatch(frame, handler, nursery)
            finally:
                await self._close(why)
                nursery.cancel_scope.cancel()
        return why

    async def _dispatch(self, frame: Any, handler: Handler, nursery: trio.Nursery) -> None:
        try:
            env = unpack(frame)
        except ProtocolError as exc:
            corr = frame.get("i") if isinstance(frame, dict) else None
            kind = frame.get("k") if isinstance(frame, dict) else None
            log.warning("%s: bad frame: %s", self.name, exc)
            if isinstance(corr, int) and not isinstance(corr, bool) and 0 <= corr < 2**63:
                if kind == Kind.REQUEST.value:
                    await self._reply_error(corr, ErrorCode.PROTOCOL, str(exc))
                elif kind in (Kind.REPLY.value, Kind.ERROR.value) and corr in self._pending:
                    self._resolve(corr, RemoteError(ErrorCode.PROTOCOL, str(exc)))
            return
        if env.kind is Kind.REQUEST:
            nursery.start_soon(self._answer, env.id, env.msg, handler)
        elif env.kind is Kind.REPLY:
            self._resolve(env.id, env.msg)
        elif env.kind is Kind.ERROR:
            m = env.msg
            if isinstance(m, ErrorReply):
                self._resolve(env.id, remote_error(m.code, m.message, m.exit_code))
            else:
                self._resolve(env.id, RemoteError(ErrorCode.PROTOCOL, "error frame without ErrorReply"))
        elif env.kind is Kind.EVENT:
            try:
                await handler.handle_event(self, env.msg)
            except Exception:
                log.exception("%s: event handler failed on %s", self.name, type(env.msg).TYPE)
        # a second hello is ignored

    def _resolve(self, corr: int, result: Any) -> None:
        slot = self._pending.get(corr)
        if slot is None or slot[0].is_set():
            return  # late or unknown reply: nobody waits for it
        slot[1] = result
        slot[0].set()

    async def _answer(self, corr: int, msg: Any, handler: Handler) -> None:
        try:
            reply = await handler.handle_request(self, msg)
        except RemoteError as exc:
            await self._reply_error(corr, exc.code, exc.message, exc.exit_code)
            return
        except Exception as exc:
            log.exception("%s: handler failed on %s", self.name, type(msg).TYPE)
            await self._reply_error(corr, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        try:
            await self._send_frame(pack(Kind.REPLY, corr, reply))
        except LinkClosed:
            pass
        except Exception as exc:  # not a message, or too big to encode
            log.exception("%s: bad reply to %s", self.name, type(msg).TYPE)
            await self._reply_error(corr, ErrorCode.INTERNAL,
                                    f"bad reply to {type(msg).TYPE}: {type(exc).__name__}: {exc}")

    async def _reply_error(self, corr: int, code: ErrorCode, text: str, exit_code: int = 0) -> None:
        try:
            await self._send_frame(pack(Kind.ERROR, corr, error_reply(code, text, exit_code)))
        except LinkClosed:
            pass

    async def _close(self, why: str) -> None:
        if self._closed:
            return
        self._closed = True
        for slot in list(self._pending.values()):
            if not slot[0].is_set():
                slot[1] = LinkClosed(f"link to {self.name} {why}")
                slot[0].set()
        with trio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except Exception:
                pass

    async def aclose(self) -> None:
        await self._close("closed")

    @property
    def closed(self) -> bool:
        return self._closed


async def connect_unix(path: str) -> trio.SocketStream:
    """Connect to a Unix socket whatever the length of its path: a path longer
    than sun_path (108 bytes) is reached through /proc/self/fd/<dir>/<name>."""
    if len(os.fsencode(path)) < 100:
        return await trio.open_unix_socket(path)
    dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await trio.open_unix_socket(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
    finally:
        os.close(dirfd)


async def open_unix_link(path: str, *, role: str, name: str = "",
                         timeout: float = 5.0) -> Link:
    with trio.fail_after(timeout):
        stream = await connect_unix(path)
        link = Link(stream, role=role, name=name or path)
        try:
            await link.handshake(timeout)
        except BaseException:
            await stream.aclose()
            raise
    return link


HandlerFn = Callable[[Link, Any], Awaitable[Any]]
