"""Docker's multiplexed stream framing, decoded incrementally."""

import io
import struct

import pytest

from cli.stream import Demux, StreamError, demux_all, copy_stream


def frame(stream, data):
    return struct.pack(">BxxxL", stream, len(data)) + data


FRAMES = [(1, b"hello\n"), (2, b"oops\n"), (1, b""), (1, b"x" * 70000), (2, b"\x00\xff\x01"),
          (0, b"echoed stdin\n")]
STREAM = b"".join(frame(s, d) for s, d in FRAMES)
WANT_OUT = b"hello\n" + b"x" * 70000 + b"echoed stdin\n"
WANT_ERR = b"oops\n\x00\xff\x01"


def collect(pieces):
    d = Demux()
    out, err = bytearray(), bytearray()
    for p in pieces:
        for s, data in d.feed(p):
            (err if s == 2 else out).extend(data)
    return bytes(out), bytes(err), d


def test_whole_buffer():
    assert demux_all(STREAM) == (WANT_OUT, WANT_ERR)


def test_split_at_every_byte_position():
    small = b"".join(frame(s, d) for s, d in FRAMES if len(d) < 100)
    want_out = b"".join(d for s, d in FRAMES if s != 2 and len(d) < 100)
    want_err = b"".join(d for s, d in FRAMES if s == 2 and len(d) < 100)
    for i in range(len(small) + 1):
        for j in range(i, len(small) + 1):
            out, err, d = collect([small[:i], small[i:j], small[j:]])
            assert (out, err) == (want_out, want_err), (i, j)
            assert not d.pending()


def test_one_byte_at_a_time():
    out, err, d = collect([STREAM[i:i + 1] for i in range(len(STREAM))])
    assert (out, err) == (WANT_OUT, WANT_ERR)


def test_large_frame_is_emitted_as_it_arrives():
    d = Demux()
    hdr = frame(1, b"")[:4] + struct.pack(">L", 100000)
    assert d.feed(hdr) == []
    assert d.feed(b"a" * 10) == [(1, b"a" * 10)]
    assert d.pending()
    assert d.feed(b"b" * 99990 + frame(2, b"e")) == [(1, b"b" * 99990), (2, b"e")]
    assert not d.pending()


def test_truncated_stream_is_pending():
    d = Demux()
    d.feed(frame(1, b"abc")[:5])
    assert d.pending()


def test_system_error_frame_and_bad_header():
    with pytest.raises(StreamError, match="error from daemon in stream: boom"):
        Demux().feed(frame(3, b"boom"))
    with pytest.raises(StreamError, match="Unrecognized input header: 9"):
        Demux().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")


def test_copy_stream_demuxes_and_tty_is_raw():
    out, err = io.BytesIO(), io.BytesIO()
    chunks = [STREAM[:3], STREAM[3:50], STREAM[50:]]
    copy_stream(iter(chunks), False, out, err)
    assert out.getvalue() == WANT_OUT and err.getvalue() == WANT_ERR
    out, err = io.BytesIO(), io.BytesIO()
    copy_stream(iter([b"raw ", b"tty\r\n"]), True, out, err, leftover=b">")
    assert out.getvalue() == b">raw tty\r\n" and err.getvalue() == b""
