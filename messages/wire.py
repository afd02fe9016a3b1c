"""Framing: one msgpack object per frame; a stream is a sequence of frames.

Sans-IO: ``encode`` turns an object into bytes, ``FrameDecoder.feed`` turns
bytes into objects.  msgpack's streaming unpacker does the framing; its buffer
is bounded so that a peer cannot make us hold more than ``MAX_FRAME`` bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_FRAME = 16 * 1024 * 1024  # 16 MiB: bigger frames are refused


def encode(obj: Any) -> bytes:
    data = msgpack.packb(obj, use_bin_type=True)
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    return data


class FrameDecoder:
    """Feed bytes, get whole msgpack objects back.  Bounded and crash-free:
    garbage or an oversized frame raises ProtocolError, and the decoder stays
    broken (the link it serves must be dropped)."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self._max = max_frame
        self._unpacker = msgpack.Unpacker(
            raw=False,
            max_buffer_size=max_frame,
            strict_map_key=False,
            use_list=True,
        )
        self._fed = 0  # bytes fed in total
        # where the frame being decoded starts: msgpack parses a frame's items
        # as they arrive (tell() moves inside a frame), so the size of the
        # current frame is fed - start, not fed - tell()
        self._start = 0
        self.broken: ProtocolError | None = None

    def _fail(self, why: str) -> ProtocolError:
        self.broken = ProtocolError(why)
        return self.broken

    def feed(self, data: bytes) -> list[Any]:
        if self.broken:
            raise self.broken
        out: list[Any] = []
        view = memoryview(data)
        # feed in pieces no larger than the room left, so that one huge read
        # cannot overflow the bounded buffer before it is drained
        while view:
            room = self._max - (self._fed - self._start)
            if room <= 0:
                raise self._fail(f"frame larger than {self._max} bytes")
            chunk, view = view[:room], view[room:]
            try:
                self._unpacker.feed(chunk)
            except msgpack.BufferFull:
                raise self._fail(f"frame larger than {self._max} bytes") from None
            self._fed += len(chunk)
            try:
                for obj in self._unpacker:
                    out.append(obj)
                    self._start = self._unpacker.tell()
            except Exception as exc:  # msgpack raises several unrelated types
                raise self._fail(f"garbage on the link: {type(exc).__name__}: {exc}") from None
        return out
