"""The wire between trioctr's actors: message classes, converter, framing."""

from . import events, runtime, shim, supervisor  # noqa: F401  (register tags)
from .base import REGISTRY, Envelope, ErrorReply, Hello, Kind, Ok, converter, pack, unpack
from .errors import ErrorCode, ProtocolError, RemoteError
from .wire import MAX_FRAME, PROTOCOL_VERSION, FrameDecoder, encode

__all__ = [
    "REGISTRY", "Envelope", "ErrorReply", "Hello", "Kind", "Ok", "converter", "pack",
    "unpack", "ErrorCode", "ProtocolError", "RemoteError", "MAX_FRAME",
    "PROTOCOL_VERSION", "FrameDecoder", "encode",
]
