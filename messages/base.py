"""Message classes, their registry, the one cattrs converter, the envelope.

Every message is an ``@attrs.frozen(kw_only=True)`` class with a stable
``TYPE`` tag (renaming the class never changes the wire).  Serialization
lives here, at the edge, and nowhere in the models.

Envelope (a msgpack map)::

    {"k": kind, "i": correlation id, "t": type tag, "b": body}

kind is one of ``hello``, ``req``, ``rep``, ``err``, ``evt``.  A reply or an
error carries the id of the request it answers.
"""

from __future__ import annotations

import enum
import reprlib
import typing
from typing import Any, ClassVar, TypeVar

import attrs
import cattrs

from .errors import ErrorCode, ProtocolError

REGISTRY: dict[str, type] = {}

M = TypeVar("M")


class Kind(str, enum.Enum):
    HELLO = "hello"
    REQUEST = "req"
    REPLY = "rep"
    ERROR = "err"
    EVENT = "evt"


def message(cls: type[M]) -> type[M]:
    """Register an attrs message class under its TYPE tag."""
    tag = cls.__dict__.get("TYPE")
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"{cls.__name__} needs a TYPE tag")
    if tag in REGISTRY and REGISTRY[tag] is not cls:
        raise TypeError(f"duplicate message tag {tag!r}")
    REGISTRY[tag] = cls
    return cls


@message
@attrs.frozen(kw_only=True)
class Hello:
    """First frame on every link, both ways: who I am and what I speak."""

    TYPE: ClassVar[str] = "hello"
    role: str
    version: int
    pid: int = 0


@message
@attrs.frozen(kw_only=True)
class ErrorReply:
    TYPE: ClassVar[str] = "error"
    code: int
    message: str
    exit_code: int = 0


@message
@attrs.frozen(kw_only=True)
class Ok:
    TYPE: ClassVar[str] = "ok"


def _strict(kind: type, *also: type):
    allowed = (kind, *also)

    def hook(value: Any, _type: Any) -> Any:
        # bool is an int in Python, never on our wire
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool")
        if not isinstance(value, allowed):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value) if kind is float else value

    return hook


def _is_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def _strict_list(conv: cattrs.Converter):
    # cattrs builds a list from any iterable: "ro" would become ["r", "o"]
    # and a map its list of keys
    def hook(value: Any, tp: Any) -> list:
        if not isinstance(value, list):
            raise TypeError(f"expected list, got {type(value).__name__}")
        (elem,) = typing.get_args(tp) or (Any,)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(conv.structure(item, elem))
            except Exception as exc:
                exc.add_note(f"Structuring list @ index {i}")
                raise
        return out

    return hook


def _make_converter() -> cattrs.Converter:
    """Strict: unknown fields, missing fields and wrong scalar types are
    refused instead of being coerced (cattrs would turn "5" into 5)."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook_func(_is_list, _strict_list(conv))
    conv.register_structure_hook(int, _strict(int))
    conv.register_structure_hook(str, _strict(str))
    conv.register_structure_hook(bool, _strict(bool))
    conv.register_structure_hook(float, _strict(float, int))
    conv.register_structure_hook(bytes, _strict(bytes))
    conv.register_structure_hook(dict, _strict(dict))
    conv.register_structure_hook(Any, lambda v, _t: v)
    # a free-form JSON document (an OCI spec, resources) goes as it is: cattrs
    # would walk every value of it by its runtime type (0.2 ms for a spec
    # with a seccomp profile, twice per create)
    conv.register_unstructure_hook_func(lambda t: t == dict[str, Any], lambda v: v)
    return conv


converter = _make_converter()


@attrs.frozen
class Envelope:
    kind: Kind
    id: int
    msg: Any


def pack(kind: Kind, corr_id: int, msg: Any) -> dict:
    tag = type(msg).TYPE
    return {"k": kind.value, "i": corr_id, "t": tag, "b": converter.unstructure(msg)}


def unpack(frame: Any) -> Envelope:
    """Validate a decoded frame into an Envelope.  Raises ProtocolError with a
    one-line reason for anything that is not a well-formed known message."""
    if not isinstance(frame, dict):
        raise ProtocolError(f"frame is a {type(frame).__name__}, not an envelope")
    kind = _KINDS.get(frame.get("k")) if isinstance(frame.get("k"), str) else None
    if kind is None:
        raise ProtocolError(f"unknown envelope kind {_short(frame.get('k'))}")
    corr_id = frame.get("i")
    if not isinstance(corr_id, int) or isinstance(corr_id, bool) or not 0 <= corr_id < 2**63:
        raise ProtocolError(f"bad correlation id {_short(corr_id)}")
    tag = frame.get("t")
    cls = REGISTRY.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {_short(tag)}")
    body = frame.get("b")
    if not isinstance(body, dict):
        raise ProtocolError(f"body of {tag} is not a map")
    try:
        msg = converter.structure(body, cls)
    except Exception as exc:  # cattrs raises ClassValidationError groups
        raise ProtocolError(f"bad {tag} message: {_one_line(exc)}") from None
    return Envelope(kind, corr_id, msg)


_KINDS = {k.value: k for k in Kind}

# peer-controlled values in a reason: bounded in length and nesting (the
# builtin repr of 1000 nested lists raises RecursionError)
_reprs = reprlib.Repr()
_reprs.maxstring = _reprs.maxother = 60


def _short(value: Any) -> str:
    return _reprs.repr(value)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_one_line(e) for e in exc.exceptions)
    note = getattr(exc, "__notes__", None)
    try:
        text = f"{exc}" or type(exc).__name__
    except Exception:  # cattrs' extra-keys error cannot print non-str keys
        text = f"{type(exc).__name__} {_short(getattr(exc, 'extra_fields', exc.args))}"
    if note:
        text = f"{note[0]}: {text}"
    return " ".join(text.splitlines())


def error_reply(code: ErrorCode, text: str, exit_code: int = 0) -> ErrorReply:
    return ErrorReply(code=int(code), message=text, exit_code=exit_code)
