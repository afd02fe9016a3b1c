"""The trio Link over in-memory streams: hello, request/reply, events, and
what a bad peer can and cannot do.  No sockets; every timeout runs on
``autojump_clock`` so nothing waits for real."""

from __future__ import annotations

import random
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing

from messages import (
    MAX_FRAME, PROTOCOL_VERSION, ErrorCode, FrameDecoder, Hello, Kind, ProtocolError,
    RemoteError, encode, pack, unpack,
)
from messages.base import ErrorReply
from messages.errors import NotFound
from messages.link import READ_SIZE, Link, LinkClosed
from messages.supervisor import ListTasks, ShimLost, StartTask, TaskExit, TaskStarted

Respond = Callable[[Link, Any], Awaitable[Any]]


async def started(link: Link, msg: Any) -> Any:
    """The default handler: StartTask(id) -> TaskStarted(id, pid=len(id))."""
    assert isinstance(msg, StartTask)
    return TaskStarted(container_id=msg.container_id, pid=len(msg.container_id))


class Recorder:
    """A Handler: requests go to ``respond``; events are recorded in order."""

    def __init__(self, respond: Respond = started):
        self.respond = respond
        self.requests: list[Any] = []
        self.events: list[Any] = []
        self.event_seen = trio.Event()
        self.fail_events = False

    async def handle_request(self, link: Link, msg: Any) -> Any:
        self.requests.append(msg)
        return await self.respond(link, msg)

    async def handle_event(self, link: Link, msg: Any) -> None:
        self.events.append(msg)
        self.event_seen.set()
        if self.fail_events:
            raise RuntimeError("event handler broke")

    async def wait_events(self, n: int) -> list[Any]:
        while len(self.events) < n:
            self.event_seen = trio.Event()
            await self.event_seen.wait()
        return self.events


@attrs.define
class Pair:
    client: Link
    server: Link
    client_handler: Recorder
    server_handler: Recorder
    ended: dict[str, str]  # link name -> what serve returned


async def _serve(link: Link, handler: Recorder, ended: dict[str, str],
                 task_status=trio.TASK_STATUS_IGNORED) -> None:
    ended[link.name] = await link.serve(handler, task_status=task_status)


@asynccontextmanager
async def linked(server_handler: Recorder | None = None,
                 client_handler: Recorder | None = None, tag: str = ""):
    """Two Links on a memory stream pair, hello done, both serving."""
    a, b = trio.testing.memory_stream_pair()
    pair = Pair(
        client=Link(a, role="daemon", name=f"supervisor{tag}"),
        server=Link(b, role="supervisor", name=f"daemon{tag}"),
        client_handler=client_handler or Recorder(),
        server_handler=server_handler or Recorder(),
        ended={},
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pair.server.handshake)
        await pair.client.handshake()
    async with trio.open_nursery() as nursery:
        await nursery.start(_serve, pair.server, pair.server_handler, pair.ended)
        await nursery.start(_serve, pair.client, pair.client_handler, pair.ended)
        yield pair
        nursery.cancel_scope.cancel()


class RawPeer:
    """The other end of a Link, speaking bytes: to send what no Link would."""

    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.decoder = FrameDecoder()
        self.inbox: list[Any] = []

    async def send(self, frame: dict | bytes) -> None:
        await self.stream.send_all(frame if isinstance(frame, bytes) else encode(frame))

    async def receive(self) -> Any | None:
        while not self.inbox:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            self.inbox.extend(self.decoder.feed(data))
        return self.inbox.pop(0)

    async def hello(self, version: int = PROTOCOL_VERSION) -> Hello:
        # read first: on a lockstep stream two senders would wait for each other
        env = unpack(await self.receive())
        assert env.kind is Kind.HELLO
        await self.send(pack(Kind.HELLO, 0, Hello(role="raw", version=version, pid=1)))
        return env.msg


@asynccontextmanager
async def raw_linked(handler: Recorder | None = None, *, serve: bool = True,
                     pair=trio.testing.memory_stream_pair):
    """A Link (hello done, serving) whose peer is a RawPeer."""
    a, b = pair()
    link, raw = Link(a, role="supervisor", name="raw"), RawPeer(b)
    handler = handler or Recorder()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw.hello)
        await link.handshake()
    ended: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        if serve:
            await nursery.start(_serve, link, handler, ended)
        yield link, raw, handler, ended
        nursery.cancel_scope.cancel()


def request_frame(corr: int, container_id: str = "c1") -> dict:
    return pack(Kind.REQUEST, corr, StartTask(container_id=container_id))


# -- hello ----------------------------------------------------------------


async def test_hello_both_ways():
    async with linked() as pair:
        assert pair.client.peer is not None and pair.server.peer is not None
        assert pair.client.peer.role == "supervisor"
        assert pair.server.peer.role == "daemon"
        assert pair.client.peer.version == pair.server.peer.version == PROTOCOL_VERSION
        assert pair.client.peer.pid > 0
        assert await pair.client.request(StartTask(container_id="abc")) == \
            TaskStarted(container_id="abc", pid=3)


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 2**40])
async def test_hello_with_another_version_is_refused(version):
    a, b = trio.testing.memory_stream_pair()
    link, raw = Link(a, role="daemon", name="sup"), RawPeer(b)
    await raw.send(pack(Kind.HELLO, 0, Hello(role="supervisor", version=version)))
    with pytest.raises(ProtocolError, match=f"speaks protocol {version}, we speak {PROTOCOL_VERSION}"):
        await link.handshake()
    assert link.peer is None
    # we said our hello first, with our version
    ours = unpack(await raw.receive())
    assert ours.kind is Kind.HELLO and ours.msg.version == PROTOCOL_VERSION


@pytest.mark.parametrize("first", [
    pack(Kind.REQUEST, 1, StartTask(container_id="c")),  # a request before hello
    pack(Kind.EVENT, 0, Hello(role="x", version=PROTOCOL_VERSION)),  # a hello, but not as hello
    {"k": "hello", "i": 0, "t": "hello", "b": {"role": "x", "version": "1"}},  # version as str
    {"k": "hello", "i": 0, "t": "hello", "b": {"role": "x", "version": True}},
    {"k": "hello", "i": 0, "t": "hello", "b": {"role": "x"}},
    b"\xc1",  # not msgpack
])
async def test_bad_hello_is_refused(first):
    a, b = trio.testing.memory_stream_pair()
    link, raw = Link(a, role="daemon"), RawPeer(b)
    await raw.send(first)
    with pytest.raises(ProtocolError):
        await link.handshake()
    assert link.peer is None


async def test_peer_closing_before_hello(autojump_clock):
    a, b = trio.testing.memory_stream_pair()
    link = Link(a, role="daemon")
    await b.aclose()
    with pytest.raises(LinkClosed):
        await link.handshake()


async def test_silent_peer_times_out_the_hello(autojump_clock):
    a, _b = trio.testing.memory_stream_pair()
    link = Link(a, role="daemon")
    t0 = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await link.handshake(timeout=3)
    assert trio.current_time() - t0 == pytest.approx(3)


# -- request / reply ------------------------------------------------------


async def test_many_concurrent_requests_answered_out_of_order():
    n = 100
    gates = {str(i): trio.Event() for i in range(n)}
    arrived = trio.Event()
    answered: list[str] = []

    async def respond(link, msg):
        if len(server.requests) == n:
            arrived.set()
        await gates[msg.container_id].wait()
        answered.append(msg.container_id)
        return TaskStarted(container_id=msg.container_id, pid=int(msg.container_id) * 7)

    server = Recorder(respond)
    results: dict[str, Any] = {}
    async with linked(server) as pair:
        async def call(cid: str) -> None:
            results[cid] = await pair.client.request(StartTask(container_id=cid), timeout=0)

        async with trio.open_nursery() as nursery:
            for cid in gates:
                nursery.start_soon(call, cid)
            await arrived.wait()
            order = list(gates)
            random.Random(1234).shuffle(order)
            for cid in order:
                gates[cid].set()
                await trio.testing.wait_all_tasks_blocked()
    assert answered == order and order != sorted(order, key=int)
    assert results == {cid: TaskStarted(container_id=cid, pid=int(cid) * 7) for cid in gates}
    assert pair.client._pending == {}


async def test_both_directions_at_once():
    async with linked(Recorder(), Recorder()) as pair:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(pair.client.request, StartTask(container_id=f"c{i}"))
                nursery.start_soon(pair.server.request, StartTask(container_id=f"s{i}"))
    assert len(pair.server_handler.requests) == len(pair.client_handler.requests) == 20


@pytest.mark.parametrize("code", list(ErrorCode))
async def test_remote_error_crosses_with_its_code_and_message(code):
    exit_code = 127 if code is ErrorCode.EXEC_FAILED else 0
    text = f"{code.name.lower()}: container c1 says no"

    async def respond(link, msg):
        raise RemoteError(code, text, exit_code)

    async with linked(Recorder(respond)) as pair:
        with pytest.raises(RemoteError) as info:
            await pair.client.request(StartTask(container_id="c1"))
        assert info.value.code is code
        assert info.value.message == text
        assert info.value.exit_code == exit_code
        if code is ErrorCode.NOT_FOUND:
            assert isinstance(info.value, NotFound)
        # and the link serves on
        pair.server_handler.respond = started
        assert (await pair.client.request(StartTask(container_id="c2"))).pid == 2
    assert pair.ended == {}


async def test_handler_crash_is_internal_and_the_link_serves_on(caplog):
    async def respond(link, msg):
        if msg.container_id == "bad":
            raise ValueError("boom")
        return await started(link, msg)

    async with linked(Recorder(respond)) as pair:
        for _ in range(3):
            with pytest.raises(RemoteError) as info:
                await pair.client.request(StartTask(container_id="bad"))
            assert info.value.code is ErrorCode.INTERNAL
            assert "ValueError: boom" in info.value.message
            assert await pair.client.request(StartTask(container_id="good")) == \
                TaskStarted(container_id="good", pid=4)
        assert not pair.server.closed and not pair.client.closed
    assert "handler failed" in caplog.text


@pytest.mark.parametrize("reply", [
    None,  # forgot to return
    {"container_id": "c", "pid": 1},  # a dict, not a message
    TaskStarted(container_id="c", pid=2**64),  # an int msgpack cannot carry
    TaskStarted(container_id="x" * (MAX_FRAME + 1), pid=1),  # over the frame bound
], ids=["none", "dict", "int-overflow", "too-big"])
async def test_handler_bad_reply_is_internal_and_the_link_serves_on(reply):
    async def respond(link, msg):
        return reply if msg.container_id == "bad" else await started(link, msg)

    async with linked(Recorder(respond)) as pair:
        with pytest.raises(RemoteError) as info:
            await pair.client.request(StartTask(container_id="bad"))
        assert info.value.code is ErrorCode.INTERNAL
        assert len(info.value.message.splitlines()) == 1
        assert (await pair.client.request(StartTask(container_id="ok"))).pid == 2
    assert pair.ended == {}


async def test_request_too_big_to_send_fails_locally():
    async with linked() as pair:
        with pytest.raises(ProtocolError, match="exceeds"):
            await pair.client.request(StartTask(container_id="x" * MAX_FRAME))
        assert pair.client._pending == {}
        assert (await pair.client.request(StartTask(container_id="ok"))).pid == 2


async def test_request_times_out_with_deadline(autojump_clock):
    async def respond(link, msg):
        await trio.sleep(100)  # answers, but far too late
        return await started(link, msg)

    async with linked(Recorder(respond)) as pair:
        t0 = trio.current_time()
        with pytest.raises(RemoteError) as info:
            await pair.client.request(StartTask(container_id="slow"), timeout=5)
        assert info.value.code is ErrorCode.DEADLINE
        assert "sup.start" in info.value.message
        assert trio.current_time() - t0 == pytest.approx(5)
        assert pair.client._pending == {}
        # the late reply lands on nobody and breaks nothing
        await trio.sleep(200)
        assert not pair.client.closed
        pair.server_handler.respond = started
        assert (await pair.client.request(StartTask(container_id="fast"), timeout=5)).pid == 4
        assert trio.current_time() - t0 == pytest.approx(205)


async def test_unknown_and_duplicate_replies_are_ignored(autojump_clock):
    async with raw_linked(serve=True) as (link, raw, _handler, ended):
        async with trio.open_nursery() as nursery:
            results = []

            async def call():
                results.append(await link.request(StartTask(container_id="c"), timeout=10))

            nursery.start_soon(call)
            req = unpack(await raw.receive())
            await raw.send(pack(Kind.REPLY, req.id + 1000, TaskStarted(container_id="x", pid=9)))
            await raw.send(pack(Kind.REPLY, req.id, TaskStarted(container_id="c", pid=1)))
            await raw.send(pack(Kind.REPLY, req.id, TaskStarted(container_id="c", pid=2)))
        assert results == [TaskStarted(container_id="c", pid=1)]
        assert ended == {}


@pytest.mark.parametrize("bad_reply, code", [
    ({"k": "rep", "t": "sup.started", "b": {"container_id": 1, "pid": 1}}, ErrorCode.PROTOCOL),
    ({"k": "err", "t": "sup.started", "b": {"container_id": "c", "pid": 1}}, ErrorCode.PROTOCOL),
    ({"k": "err", "t": "error", "b": {"code": "7", "message": "x"}}, ErrorCode.PROTOCOL),
    ({"k": "err", "t": "error", "b": {"code": 99, "message": "from the future"}}, ErrorCode.INTERNAL),
    ({"k": "rep", "t": "sup.nope", "b": {}}, ErrorCode.PROTOCOL),
])
async def test_bad_reply_fails_that_request_only(bad_reply, code, autojump_clock):
    async with raw_linked() as (link, raw, _handler, ended):
        async with trio.open_nursery() as nursery:
            async def call_bad():
                with pytest.raises(RemoteError) as info:
                    await link.request(StartTask(container_id="c"), timeout=10)
                assert info.value.code is code

            nursery.start_soon(call_bad)
            req = unpack(await raw.receive())
            await raw.send(bad_reply | {"i": req.id})
        # the link still works
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.request, StartTask(container_id="d"))
            req = unpack(await raw.receive())
            await raw.send(pack(Kind.REPLY, req.id, TaskStarted(container_id="d", pid=1)))
        assert ended == {}


# -- events ---------------------------------------------------------------


async def test_events_both_ways_in_order():
    exits = [TaskExit(container_id=f"c{i}", pid=100 + i, exit_status=i, exited_at=i * 10**9)
             for i in range(10)]
    async with linked(Recorder(), Recorder()) as pair:
        for e in exits:
            await pair.client.send_event(e)
        await pair.server.send_event(ShimLost(container_id="c0", reason="shim died"))
        assert await pair.server_handler.wait_events(10) == exits
        assert await pair.client_handler.wait_events(1) == [
            ShimLost(container_id="c0", reason="shim died")]
        assert pair.server_handler.requests == []


async def test_failing_event_handler_does_not_stop_the_link(caplog):
    server = Recorder()
    server.fail_events = True
    async with linked(server) as pair:
        await pair.client.send_event(ShimLost(container_id="c", reason="x"))
        await pair.client.send_event(ShimLost(container_id="d", reason="y"))
        await server.wait_events(2)
        assert (await pair.client.request(StartTask(container_id="ok"))).pid == 2
    assert "event handler failed" in caplog.text


# -- the peer goes away ---------------------------------------------------


@pytest.mark.parametrize("how", ["link.aclose", "stream.aclose"])
async def test_peer_closing_fails_pending_requests_promptly(how, autojump_clock):
    arrived = trio.Event()

    async def respond(link, msg):
        if len(server.requests) == 5:
            arrived.set()
        await trio.sleep_forever()

    server = Recorder(respond)
    async with linked(server) as pair:
        failures: list[BaseException] = []

        async def call(i):
            try:
                await pair.client.request(StartTask(container_id=str(i)), timeout=60)
            except RemoteError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(call, i)
            await arrived.wait()
            t0 = trio.current_time()
            if how == "link.aclose":
                await pair.server.aclose()
            else:
                await pair.server.stream.aclose()
        assert trio.current_time() - t0 < 1, "pending requests waited for their timeout"
        assert len(failures) == 5
        for exc in failures:
            assert isinstance(exc, LinkClosed) and exc.code is ErrorCode.UNAVAILABLE
        await trio.testing.wait_all_tasks_blocked()
        assert pair.client.closed
        assert pair.ended["supervisor"] == "closed by peer"
        # a new request on a closed link fails at once
        with pytest.raises(LinkClosed):
            await pair.client.request(ListTasks(), timeout=60)
        assert trio.current_time() - t0 < 1


async def test_closing_our_own_link_fails_our_pending_requests(autojump_clock):
    async with linked(Recorder(lambda link, msg: trio.sleep_forever())) as pair:
        async with trio.open_nursery() as nursery:
            async def call():
                with pytest.raises(LinkClosed):
                    await pair.client.request(ListTasks(), timeout=60)

            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            await pair.client.aclose()


# -- garbage and bad frames from the peer ---------------------------------


GARBAGE = {
    "never-used byte": b"\xc1",
    "bad utf-8": b"\xa2\xff\xfe",
    "too deep": b"\x91" * 5000,
    "unhashable key": b"\x81\x91\x01\x02",
    "random": bytes(random.Random(7).getrandbits(8) for _ in range(64)) + b"\xc1",
}


@pytest.mark.parametrize("junk", sorted(GARBAGE))
async def test_garbage_drops_that_link_only(junk, autojump_clock):
    async with linked(tag="-healthy") as healthy:
        assert (await healthy.client.request(StartTask(container_id="a"))).pid == 1
        async with raw_linked() as (link, raw, handler, ended):
            async with trio.open_nursery() as nursery:
                async def pending():
                    with pytest.raises(LinkClosed):
                        await link.request(ListTasks(), timeout=60)

                nursery.start_soon(pending)
                assert unpack(await raw.receive()).msg == ListTasks()
                t0 = trio.current_time()
                await raw.send(GARBAGE[junk])
            assert trio.current_time() - t0 < 1
            await trio.testing.wait_all_tasks_blocked()
            assert ended["raw"].startswith("dropped: ")
            assert link.closed
            assert await raw.receive() is None  # we hung up on it
            # the healthy link never noticed
            assert (await healthy.client.request(StartTask(container_id="bb"))).pid == 2
            assert (await healthy.server.request(StartTask(container_id="ccc"))).pid == 3
        assert healthy.ended == {}


def _deep_frame(key: bytes, corr: bytes = b"\x07") -> bytes:
    raw = {b"k": b"\xa3req", b"i": corr, b"t": b"\xa9sup.start",
           b"b": b"\x81\xaccontainer_id\xa1c"}
    raw[key] = b"\x91" * 1000 + b"\xc0"
    return b"\x84" + b"".join(b"\xa1" + k + v for k, v in raw.items())


START = {"k": "req", "i": 7, "t": "sup.start"}
CREATE_BODY = {"container_id": "c", "spec": {},
               "rootfs": [{"type": "overlay", "source": "overlay", "options": ["ro"]}]}

BAD_REQUESTS = {
    "int for str": START | {"b": {"container_id": 5}},
    "bool for int": {"k": "req", "i": 7, "t": "sup.kill",
                     "b": {"container_id": "c", "signal": True}},
    "missing field": START | {"b": {}},
    "extra field": START | {"b": {"container_id": "c", "x": 1}},
    "extra int key": START | {"b": {"container_id": "c", 1: 1}},
    "unknown tag": START | {"t": "sup.frobnicate", "b": {}},
    "body not a map": START | {"b": ["c"]},
    "str for list[str]": {"k": "req", "i": 7, "t": "sup.create", "b": CREATE_BODY | {
        "rootfs": [{"type": "overlay", "source": "overlay", "options": "ro"}]}},
    "deep tag": _deep_frame(b"t"),
    "deep body": _deep_frame(b"b"),
}


@pytest.mark.parametrize("bad", sorted(BAD_REQUESTS))
async def test_bad_request_gets_protocol_error_and_the_link_serves_on(bad, autojump_clock):
    async with raw_linked() as (link, raw, handler, ended):
        await raw.send(BAD_REQUESTS[bad])
        reply = unpack(await raw.receive())
        assert reply.kind is Kind.ERROR and reply.id == 7
        assert isinstance(reply.msg, ErrorReply)
        assert reply.msg.code == ErrorCode.PROTOCOL
        assert len(reply.msg.message.splitlines()) == 1 and len(reply.msg.message) < 500
        assert handler.requests == []
        await raw.send(request_frame(8, "good"))
        assert unpack(await raw.receive()) == unpack(
            pack(Kind.REPLY, 8, TaskStarted(container_id="good", pid=4)))
        assert ended == {} and not link.closed


UNANSWERABLE = {
    "not a map": [1, 2, 3],
    "no id": {"k": "req", "t": "sup.start", "b": {"container_id": "c"}},
    "str id": START | {"i": "7", "b": {"container_id": 5}},
    "bool id": START | {"i": True, "b": {"container_id": 5}},
    "negative id": START | {"i": -7, "b": {"container_id": 5}},
    "unknown kind": START | {"k": "ask", "b": {"container_id": "c"}},
    "deep kind": _deep_frame(b"k"),
    "deep id": _deep_frame(b"i"),
    "reply to nothing": {"k": "rep", "i": 12345, "t": "sup.nope", "b": {}},
    "event with bad body": {"k": "evt", "i": 0, "t": "evt.exit", "b": {"pid": "1"}},
    "second hello": pack(Kind.HELLO, 0, Hello(role="again", version=PROTOCOL_VERSION)),
}


@pytest.mark.parametrize("bad", sorted(UNANSWERABLE))
async def test_bad_frame_without_usable_id_is_dropped_and_the_link_serves_on(bad, autojump_clock):
    async with raw_linked() as (link, raw, handler, ended):
        await raw.send(UNANSWERABLE[bad])
        await raw.send(request_frame(8, "good"))
        # the first thing back is the answer to the good request
        assert unpack(await raw.receive()) == unpack(
            pack(Kind.REPLY, 8, TaskStarted(container_id="good", pid=4)))
        assert handler.events == [] and [r.container_id for r in handler.requests] == ["good"]
        assert ended == {} and not link.closed


# -- the frame bound on a live link ---------------------------------------


class CountingStream(trio.abc.HalfCloseableStream):
    """Counts what the Link actually took in from its peer."""

    def __init__(self, inner: trio.abc.HalfCloseableStream):
        self.inner = inner
        self.received = 0

    async def send_all(self, data) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes=None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


def _twenty_mib(shape: str) -> bytes:
    if shape == "one bin":
        n = 20 << 20
        return b"\xc6" + n.to_bytes(4, "big") + bytes(n)
    # twenty 1 MiB items: msgpack parses each as it arrives, the frame grows
    item = b"\xc6" + (1 << 20).to_bytes(4, "big") + bytes(1 << 20)
    return b"\xdc" + (20).to_bytes(2, "big") + item * 20


@pytest.mark.parametrize("shape", ["one bin", "twenty items"])
async def test_twenty_mib_frame_is_refused_within_the_bound(shape, autojump_clock):
    a, b = trio.testing.lockstep_stream_pair()
    counting = CountingStream(a)
    link, raw = Link(counting, role="supervisor", name="big"), RawPeer(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw.hello)
        await link.handshake()
    hello_bytes = counting.received
    big = _twenty_mib(shape)
    assert len(big) > 20 << 20
    sent = 0

    async def flood():
        nonlocal sent
        try:
            for off in range(0, len(big), READ_SIZE):
                await b.send_all(big[off:off + READ_SIZE])
                sent += READ_SIZE
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await b.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        why = await link.serve(Recorder())
    assert why.startswith("dropped: ") and "larger than" in why
    taken = counting.received - hello_bytes
    assert taken <= MAX_FRAME + READ_SIZE, f"took {taken} bytes of a {len(big)} byte frame"
    assert sent < len(big)
    assert link.closed
