"""Property tests of the wire: message classes, envelope, framing.

Everything here is sans-IO and synchronous.  Strategies are derived from the
attrs fields and their type hints, so a new message class is covered the day
it is registered (and a field type the generator does not know fails loudly).
"""

from __future__ import annotations

import functools
import typing
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import (
    MAX_FRAME, REGISTRY, Envelope, FrameDecoder, Kind, ProtocolError, converter, encode,
    pack, unpack,
)
import messages
from messages.base import message
from messages.supervisor import CreateTask, Mount

PROPS = settings(
    derandomize=True, database=None, deadline=None, max_examples=20,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# garbage must never hang: give each example a generous but finite deadline
GARBAGE = settings(PROPS, max_examples=150, deadline=5000)

TAGS = sorted(REGISTRY)

# -- strategies -----------------------------------------------------------

# what msgpack can carry: ints in [-2**63, 2**64)
WIRE_INT = st.integers(-(2**63), 2**64 - 1)
CORR_ID = st.integers(0, 2**63 - 1)
TEXT = st.text(max_size=12)
JSON_SCALAR = st.none() | st.booleans() | WIRE_INT | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    JSON_SCALAR,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=10,
)

# anything a FrameDecoder can hand to unpack (map keys must be hashable)
ANY_KEY = st.none() | st.booleans() | WIRE_INT | st.floats() | st.text(max_size=8) | st.binary(max_size=4)
ANY_WIRE = st.recursive(
    ANY_KEY | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(ANY_KEY, kids, max_size=3),
    max_leaves=8,
)


def _alias(f: attrs.Attribute) -> str:
    return getattr(f, "alias", None) or f.name.lstrip("_")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.lru_cache(maxsize=None)
def strategy_for(tp: Any) -> st.SearchStrategy:
    """A strategy for values of a message field's type."""
    if tp is Any:
        return JSON
    if tp is str:
        return TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return WIRE_INT
    if tp is float:
        return st.floats(allow_nan=False)
    if tp is bytes:
        return st.binary(max_size=12)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=3)
    if attrs.has(tp):
        return message_strategy(tp)
    raise NotImplementedError(f"no strategy for field type {tp!r}: teach strategy_for")


@functools.lru_cache(maxsize=None)
def message_strategy(cls: type) -> st.SearchStrategy:
    """st.builds from the attrs fields and their type hints (nested attrs too)."""
    hints = _hints(cls)
    return st.builds(cls, **{_alias(f): strategy_for(hints[f.name]) for f in attrs.fields(cls)})


ANY_MESSAGE = st.sampled_from(TAGS).flatmap(lambda tag: message_strategy(REGISTRY[tag]))
ENVELOPE = st.tuples(st.sampled_from(list(Kind)), CORR_ID, ANY_MESSAGE)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """data cut at the given offsets (duplicates give empty pieces)."""
    cuts = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def cut_points(draw_data: st.DataObject, length: int) -> list[int]:
    return draw_data.draw(st.lists(st.integers(0, length), max_size=16), label="cuts")


def decode_all(decoder: FrameDecoder, pieces: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text, "empty error message"
    assert len(text.splitlines()) == 1, f"not one line: {text!r}"


# -- the registry ---------------------------------------------------------


def test_registry_is_consistent():
    # every class with a TYPE tag in the message modules is registered under it
    for module in (messages.base, messages.supervisor, messages.shim, messages.runtime,
                   messages.events):
        for obj in vars(module).values():
            if isinstance(obj, type) and "TYPE" in vars(obj):
                assert REGISTRY.get(obj.TYPE) is obj, f"{obj.__name__} is not registered"
    for tag, cls in REGISTRY.items():
        assert cls.TYPE == tag
        assert attrs.has(cls)
        assert "TYPE" not in {f.name for f in attrs.fields(cls)}
        for f in attrs.fields(cls):
            assert f.kw_only, f"{cls.__name__}.{f.name} must be keyword-only"


def test_message_decorator_refuses_duplicates_and_missing_tags():
    before = dict(REGISTRY)
    try:
        with pytest.raises(TypeError, match="duplicate"):
            @message
            @attrs.frozen(kw_only=True)
            class Impostor:
                TYPE: typing.ClassVar[str] = "hello"

        with pytest.raises(TypeError, match="TYPE"):
            @message
            @attrs.frozen(kw_only=True)
            class Untagged:
                x: int
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


# -- round trips ----------------------------------------------------------


@pytest.mark.parametrize("tag", TAGS)
@PROPS
@given(data=st.data())
def test_every_message_round_trips(tag, data):
    cls = REGISTRY[tag]
    msg = data.draw(message_strategy(cls), label="msg")
    kind = data.draw(st.sampled_from(list(Kind)), label="kind")
    corr = data.draw(CORR_ID, label="corr")
    wire = encode(pack(kind, corr, msg))
    frames = FrameDecoder().feed(wire)
    assert len(frames) == 1
    env = unpack(frames[0])
    assert env == Envelope(kind, corr, msg)
    assert type(env.msg) is cls
    # the bytes are stable too: decode and re-encode gives the same frame
    assert encode(pack(env.kind, env.id, env.msg)) == wire
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(env.msg, "x", 1)


@pytest.mark.parametrize("tag", TAGS)
@settings(PROPS, max_examples=8)
@given(data=st.data())
def test_defaulted_fields_may_be_left_out(tag, data):
    cls = REGISTRY[tag]
    msg = data.draw(message_strategy(cls), label="msg")
    required = {_alias(f) for f in attrs.fields(cls) if f.default is attrs.NOTHING}
    body = {k: v for k, v in converter.unstructure(msg).items() if k in required}
    env = unpack({"k": "evt", "i": 0, "t": tag, "b": body})
    assert env.msg == cls(**{k: getattr(msg, k) for k in required})


# -- framing --------------------------------------------------------------


@PROPS
@given(data=st.data())
def test_stream_cut_at_any_byte_boundaries(data):
    envelopes = data.draw(st.lists(ENVELOPE, min_size=1, max_size=6), label="envelopes")
    frames = [encode(pack(*e)) for e in envelopes]
    wire = b"".join(frames)
    pieces = split(wire, cut_points(data, len(wire)))
    expected = [Envelope(*e) for e in envelopes]
    assert [unpack(f) for f in decode_all(FrameDecoder(), pieces)] == expected
    # a frame exactly as big as the bound is still fine, wherever it is cut
    tight = FrameDecoder(max_frame=max(len(f) for f in frames))
    assert [unpack(f) for f in decode_all(tight, pieces)] == expected


def test_stream_fed_one_byte_at_a_time():
    msgs = [
        pack(Kind.REQUEST, 1, CreateTask(
            container_id="c1", spec={"ociVersion": "1.0.2", "process": {"args": ["sh"]}},
            rootfs=[Mount(type="overlay", source="overlay", options=["lowerdir=/a"])],
        )),
        pack(Kind.REPLY, 1, REGISTRY["sup.created"](container_id="c1", pid=4242)),
        pack(Kind.EVENT, 0, REGISTRY["evt.exit"](container_id="c1", pid=4242, exit_status=137,
                                                 exited_at=2**62, oom_killed=True)),
    ]
    wire = b"".join(encode(m) for m in msgs)
    decoder = FrameDecoder()
    got = [obj for i in range(len(wire)) for obj in decoder.feed(wire[i:i + 1])]
    assert got == msgs


def test_encode_refuses_frames_over_the_bound():
    with pytest.raises(ProtocolError, match="exceeds"):
        encode({"b": b"x" * MAX_FRAME})


# -- garbage --------------------------------------------------------------

# headers that promise a lot: huge str/bin/array/map/ext, deep nesting
NASTY_PREFIXES = [
    b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff", b"\xc9\x7f\xff\xff\xff\x01", b"\xdd\x00\xff\xff\xff",
    b"\x91" * 2000, b"\x81\x91" * 600, b"\xc1", b"\xd4\xff", b"\xd6\xff\x00",
]


@st.composite
def garbage(draw) -> bytes:
    how = draw(st.sampled_from(["random", "nasty", "mutated"]))
    if how == "random":
        return draw(st.binary(max_size=600))
    if how == "nasty":
        return draw(st.sampled_from(NASTY_PREFIXES)) + draw(st.binary(max_size=64))
    # valid frames with a few bytes flipped, dropped or inserted
    wire = bytearray(b"".join(encode(pack(*e)) for e in draw(st.lists(ENVELOPE, min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(wire)))
        op = draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "insert" or pos == len(wire):
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=5))
        elif op == "flip":
            wire[pos] = draw(st.integers(0, 255))
        else:
            del wire[pos:pos + draw(st.integers(1, 8))]
    return bytes(wire)


@GARBAGE
@given(data=st.data(), junk=garbage(), max_frame=st.sampled_from([8, 100, 4096, MAX_FRAME]))
def test_garbage_gives_objects_or_protocol_error(data, junk, max_frame):
    decoder = FrameDecoder(max_frame=max_frame)
    try:
        for piece in split(junk, cut_points(data, len(junk))):
            for obj in decoder.feed(piece):
                # whatever came out is either an envelope or refused cleanly
                try:
                    unpack(obj)
                except ProtocolError as exc:
                    assert_one_line(exc)
    except ProtocolError as exc:
        assert_one_line(exc)
        assert decoder.broken is not None
        # the decoder stays broken: the link must be dropped
        with pytest.raises(ProtocolError):
            decoder.feed(encode(pack(Kind.EVENT, 0, REGISTRY["ok"]())))
    else:
        assert decoder.broken is None


# -- the bound ------------------------------------------------------------


def _bin(n: int) -> bytes:
    return b"\xc6" + n.to_bytes(4, "big") + b"x" * n


def _str(n: int) -> bytes:
    return b"\xdb" + n.to_bytes(4, "big") + b"a" * n


def _nils(n: int) -> bytes:  # one small item per byte: msgpack parses it as it comes
    return b"\xdd" + n.to_bytes(4, "big") + b"\xc0" * n


def _small_bins(n: int) -> bytes:  # [b"xxxxxxxx", ...]: 10 bytes per item
    k = max(1, n // 10)
    return b"\xdd" + k.to_bytes(4, "big") + (b"\xc4\x08" + b"x" * 8) * k


def _envelope(n: int) -> bytes:  # a well-formed request whose spec is too big
    return encode(pack(Kind.REQUEST, 1, CreateTask(
        container_id="c", spec={"env": ["A=1"] * n})))


SHAPES = {"bin": _bin, "str": _str, "nils": _nils, "small_bins": _small_bins, "envelope": _envelope}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@settings(PROPS, max_examples=40)
@given(data=st.data())
def test_oversized_frame_refused_before_more_than_the_bound_is_fed(shape, data):
    big = SHAPES[shape](data.draw(st.integers(30, 400), label="size"))
    lead = encode(pack(Kind.EVENT, 0, REGISTRY["ok"]()))
    over = data.draw(st.integers(1, min(64, len(big) - len(lead))), label="over")
    max_frame = len(big) - over  # the small frames around it still fit
    wire = lead + big + lead
    decoder = FrameDecoder(max_frame=max_frame)
    got: list[Any] = []
    fed = 0
    with pytest.raises(ProtocolError) as info:
        for piece in split(wire, cut_points(data, len(wire))):
            fed += len(piece)
            got.extend(decoder.feed(piece))
            # once more than the bound of the big frame is in, it must be refused
            assert fed - len(lead) <= max_frame, "frame over the bound was buffered"
    assert_one_line(info.value)
    assert got in ([], [msgpack.unpackb(lead)])
    assert decoder.broken is not None


@pytest.mark.parametrize("shape", sorted(SHAPES))
@settings(PROPS, max_examples=25)
@given(data=st.data())
def test_frame_exactly_at_the_bound_is_accepted(shape, data):
    # bigger than the small frames around it (>= 30 bytes)
    big = SHAPES[shape](data.draw(st.integers(30, 400), label="size"))
    lead = encode(pack(Kind.EVENT, 0, REGISTRY["ok"]()))
    assert len(lead) <= len(big)
    wire = lead + big + lead + big
    decoder = FrameDecoder(max_frame=len(big))
    got = decode_all(decoder, split(wire, cut_points(data, len(wire))))
    assert len(got) == 4
    assert got[1] == got[3] == msgpack.unpackb(big)


@pytest.mark.parametrize("shape", ["bin", "str", "small_bins"])
def test_twenty_mib_frame_refused_at_the_default_bound(shape):
    big = SHAPES[shape](20 << 20)
    decoder = FrameDecoder()
    fed = 0
    with pytest.raises(ProtocolError, match="larger than|garbage"):
        for off in range(0, len(big), 65536):
            fed += len(big[off:off + 65536])
            decoder.feed(big[off:off + 65536])
            assert fed <= MAX_FRAME, "more than MAX_FRAME of one frame was taken in"
    assert fed <= MAX_FRAME + 65536


# -- valid msgpack, invalid envelope --------------------------------------


def _deep(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value


def _frame(body: Any = None, **over: Any) -> dict:
    frame = {"k": "req", "i": 7, "t": "sup.start", "b": {"container_id": "abc"} if body is None else body}
    frame.update(over)
    return {k: v for k, v in frame.items() if v is not _MISSING}


_MISSING = object()
MOUNT = {"type": "overlay", "source": "overlay", "options": ["ro"]}
TASK = {"container_id": "c", "pid": 1, "status": "running"}
CREATE = {"container_id": "c", "spec": {}, "rootfs": [MOUNT]}

BAD_FRAMES = {
    # not an envelope at all
    "list frame": ["req", 7, "sup.start", {}],
    "int frame": 5,
    "str frame": "hello",
    "nil frame": None,
    "bin frame": b"\x81\xa1k",
    # kind
    "missing kind": _frame(k=_MISSING),
    "unknown kind": _frame(k="request"),
    "empty kind": _frame(k=""),
    "int kind": _frame(k=1),
    "bin kind": _frame(k=b"req"),
    "list kind": _frame(k=["req"]),
    # correlation id
    "missing id": _frame(i=_MISSING),
    "negative id": _frame(i=-1),
    "id too big": _frame(i=2**63),
    "id max wire int": _frame(i=2**64 - 1),
    "str id": _frame(i="7"),
    "bool id": _frame(i=True),
    "false id": _frame(i=False),
    "float id": _frame(i=7.0),
    "nil id": _frame(i=None),
    # type tag
    "missing tag": _frame(t=_MISSING),
    "unknown tag": _frame(t="sup.nope"),
    "empty tag": _frame(t=""),
    "int tag": _frame(t=1),
    "bin tag": _frame(t=b"sup.start"),
    "nil tag": _frame(t=None),
    # body shape
    "missing body": _frame(b=_MISSING),
    "list body": _frame(b=[["container_id", "abc"]]),
    "str body": _frame(b="abc"),
    "nil body": _frame(b=None),
    "int body": _frame(b=0),
    # fields
    "missing field": _frame({}),
    "extra field": _frame({"container_id": "abc", "force": True}),
    "extra int key": _frame({"container_id": "abc", 1: 2}),
    "extra nil key": _frame({"container_id": "abc", None: 2}),
    "extra bin key": _frame({"container_id": "abc", b"x": 2}),
    "extra key with CR": _frame({"container_id": "abc", "a\rb": 1}),
    "extra key with LS": _frame({"container_id": "abc", "a\u2028b": 1}),
    "int for str": _frame({"container_id": 5}),
    "bin for str": _frame({"container_id": b"abc"}),
    "nil for str": _frame({"container_id": None}),
    "list for str": _frame({"container_id": ["abc"]}),
    "str for int": _frame({"container_id": "c", "pid": "5"}, t="sup.created"),
    "bool for int": _frame({"container_id": "c", "pid": True}, t="sup.created"),
    "float for int": _frame({"container_id": "c", "pid": 5.0}, t="sup.created"),
    "nil for int": _frame({"container_id": "c", "pid": None}, t="sup.created"),
    "int for bool": _frame({"container_id": "c", "signal": 9, "all": 1}, t="sup.kill"),
    "str for bool": _frame({"container_id": "c", "signal": 9, "all": "true"}, t="sup.kill"),
    "hello version as str": _frame({"role": "daemon", "version": "1"}, t="hello", k="hello", i=0),
    "fields for a field-less message": _frame({"x": 1}, t="ok"),
    # containers
    "str for list": _frame(CREATE | {"rootfs": "overlay"}, t="sup.create"),
    "map for list": _frame(CREATE | {"rootfs": {}}, t="sup.create"),
    "str for list[str]": _frame(CREATE | {"rootfs": [MOUNT | {"options": "ro"}]}, t="sup.create"),
    "map for list[str]": _frame(CREATE | {"rootfs": [MOUNT | {"options": {"ro": 1}}]}, t="sup.create"),
    "int in list[str]": _frame(CREATE | {"rootfs": [MOUNT | {"options": ["ro", 1]}]}, t="sup.create"),
    "map for list[TaskInfo]": _frame({"tasks": {}}, t="sup.tasks"),
    "list for dict": _frame(CREATE | {"spec": []}, t="sup.create"),
    "str for dict": _frame(CREATE | {"spec": "{}"}, t="sup.create"),
    "int key in dict[str, Any]": _frame(CREATE | {"spec": {1: 2}}, t="sup.create"),
    "int value in dict[str, str]": _frame(
        {"type": "container", "action": "start", "actor_id": "c", "attributes": {"a": 1}},
        t="engine.event", k="evt", i=0),
    # nested attrs classes
    "nested missing field": _frame(CREATE | {"rootfs": [{"type": "overlay"}]}, t="sup.create"),
    "nested extra field": _frame(CREATE | {"rootfs": [MOUNT | {"x": 1}]}, t="sup.create"),
    "nested not a map": _frame(CREATE | {"rootfs": ["overlay"]}, t="sup.create"),
    "nested wrong type": _frame({"task": TASK | {"pid": "1"}}, t="evt.adopted", k="evt", i=0),
    "nested bool for int": _frame({"task": TASK | {"exit_status": False}}, t="shim.statereply"),
    "nested list of bad": _frame({"tasks": [TASK, TASK | {"oom_killed": 0}]}, t="sup.tasks"),
    # hostile shapes: deep nesting and huge values where a repr could blow up
    "deep kind": _frame(k=_deep(1000)),
    "deep id": _frame(i=_deep(1000)),
    "deep tag": _frame(t=_deep(1000)),
    "deep body": _frame(b=_deep(1000)),
    "deep field": _frame({"container_id": _deep(1000)}),
    "deep extra field": _frame({"container_id": "c", "x": _deep(1000)}),
    "huge kind": _frame(k="r" * (1 << 20)),
    "huge tag": _frame(t="t" * (1 << 20)),
    "huge id": _frame(i=b"\n" * (1 << 20)),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_valid_msgpack_bad_envelope_is_a_protocol_error(name):
    frame = BAD_FRAMES[name]
    with pytest.raises(ProtocolError) as info:
        unpack(frame)
    assert_one_line(info.value)
    # the reason is meant for a log line and an error reply: keep it short
    assert len(str(info.value)) < 500, str(info.value)[:200]


GOOD_FRAMES = {
    # the bases the bad frames above are one defect away from
    "start": _frame(),
    "id 0": _frame(i=0),
    "largest id": _frame(i=2**63 - 1),
    "created": _frame({"container_id": "c", "pid": 5}, t="sup.created"),
    "kill": _frame({"container_id": "c", "signal": 9, "all": True}, t="sup.kill"),
    "hello": _frame({"role": "daemon", "version": 1}, t="hello", k="hello", i=0),
    "ok": _frame({}, t="ok"),
    "create": _frame(CREATE, t="sup.create"),
    "create, spec with any values": _frame(
        CREATE | {"spec": {"a": [1, None, 2.5, {"b": [True]}], "c": -(2**63)}}, t="sup.create"),
    "event": _frame({"type": "container", "action": "start", "actor_id": "c",
                     "attributes": {"a": "1"}}, t="engine.event", k="evt", i=0),
    "adopted": _frame({"task": TASK}, t="evt.adopted", k="evt", i=0),
    "statereply": _frame({"task": TASK | {"exit_status": 0}}, t="shim.statereply"),
    "tasks": _frame({"tasks": [TASK, TASK | {"oom_killed": False}]}, t="sup.tasks"),
}


@pytest.mark.parametrize("name", sorted(GOOD_FRAMES))
def test_well_formed_frames_are_accepted(name):
    frame = GOOD_FRAMES[name]
    env = unpack(frame)
    assert env.kind.value == frame["k"] and env.id == frame["i"] and env.msg.TYPE == frame["t"]
    assert unpack(pack(env.kind, env.id, env.msg)) == env


def test_deep_nesting_off_the_wire_is_a_protocol_error():
    # 1000 nested arrays is within msgpack's own nesting limit, so the decoder
    # hands the object over and unpack must refuse it without recursing
    for key in (b"k", b"i", b"t"):
        raw = {b"k": b"\xa3req", b"i": b"\x07", b"t": b"\xa9sup.start",
               b"b": b"\x81\xaccontainer_id\xa1c"}
        raw[key] = b"\x91" * 1000 + b"\xc0"
        wire = b"\x84" + b"".join(b"\xa1" + k + v for k, v in raw.items())
        (frame,) = FrameDecoder().feed(wire)
        with pytest.raises(ProtocolError) as info:
            unpack(frame)
        assert_one_line(info.value)


# -- strictness, generically: unpack accepts exactly the well-typed bodies --


def _conforms(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if tp in (str, int, bool, bytes):
        return type(value) is tp
    if tp is float:
        return type(value) in (float, int)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return type(value) is list and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return type(value) is dict and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if attrs.has(tp):
        return _body_conforms(value, tp)
    raise NotImplementedError(tp)


def _body_conforms(body: Any, cls: type) -> bool:
    if type(body) is not dict:
        return False
    fields = {_alias(f): f for f in attrs.fields(cls)}
    if any(not isinstance(k, str) or k not in fields for k in body):
        return False
    hints = _hints(cls)
    for alias, f in fields.items():
        if alias not in body:
            if f.default is attrs.NOTHING:
                return False
        elif not _conforms(body[alias], hints[f.name]):
            return False
    return True


_REPLACEMENT = ANY_WIRE | JSON_SCALAR
_NEW_KEY = ANY_KEY | st.sampled_from(["pid", "x"])
_OPS = {n: st.sampled_from(["replace", *["descend", "descend", "delete"] * bool(n), "add"])
        for n in (0, 1)}


def _mutate(data: st.DataObject, value: Any) -> Any:
    """One random edit somewhere inside value: replace, delete or add."""
    container = isinstance(value, (dict, list))
    op = data.draw(_OPS[bool(value)]) if container else "replace"
    if op == "replace":
        return data.draw(_REPLACEMENT)
    if isinstance(value, dict):
        if op == "add":
            return value | {data.draw(_NEW_KEY): data.draw(ANY_WIRE)}
        key = data.draw(st.sampled_from(list(value)))
        if op == "delete":
            return {k: v for k, v in value.items() if k != key}
        return value | {key: _mutate(data, value[key])}
    if op == "add":
        return [*value, data.draw(ANY_WIRE)]
    i = data.draw(st.integers(0, len(value) - 1))
    if op == "delete":
        return value[:i] + value[i + 1:]
    return value[:i] + [_mutate(data, value[i])] + value[i + 1:]


@pytest.mark.parametrize("tag", TAGS)
@settings(PROPS, max_examples=15)
@given(data=st.data())
def test_unpack_accepts_exactly_the_well_typed_bodies(tag, data):
    cls = REGISTRY[tag]
    body = converter.unstructure(data.draw(message_strategy(cls), label="msg"))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        body = _mutate(data, body)
    frame = {"k": "rep", "i": 1, "t": tag, "b": body}
    if _body_conforms(body, cls):
        env = unpack(frame)
        assert type(env.msg) is cls
        assert unpack(pack(env.kind, env.id, env.msg)) == env
    else:
        with pytest.raises(ProtocolError) as info:
            unpack(frame)
        assert_one_line(info.value)


@settings(GARBAGE, max_examples=120)
@given(
    kind=st.sampled_from([k.value for k in Kind]) | ANY_WIRE,
    corr=CORR_ID | ANY_WIRE,
    tag=st.sampled_from(TAGS) | ANY_WIRE,
    body=st.just({}) | ANY_WIRE,
    drop=st.sets(st.sampled_from("kitb"), max_size=2),
)
def test_unpack_only_ever_raises_protocol_error(kind, corr, tag, body, drop):
    frame = {k: v for k, v in {"k": kind, "i": corr, "t": tag, "b": body}.items() if k not in drop}
    valid = (
        not drop
        and type(kind) is str and kind in {k.value for k in Kind}
        and type(corr) is int and 0 <= corr < 2**63
        and type(tag) is str and tag in REGISTRY
        and _body_conforms(body, REGISTRY[tag])
    )
    if valid:
        assert unpack(frame).id == corr
    else:
        with pytest.raises(ProtocolError) as info:
            unpack(frame)
        assert_one_line(info.value)
