"""Docker's multiplexed stream framing (attach, logs, exec without a TTY).

Each frame: one byte stream type (0 stdin, 1 stdout, 2 stderr, 3 system
error), three zero bytes, a 4-byte big-endian payload length, the payload.
The decoder is incremental and emits payload bytes as soon as they arrive, so
a frame split anywhere (even inside its header) is handled and large frames
are not held back.
"""

STDIN, STDOUT, STDERR, SYSERR = 0, 1, 2, 3


class StreamError(Exception):
    pass


class Demux:
    def __init__(self):
        self._hdr = bytearray()
        self._stream = None
        self._left = 0
        self._syserr = bytearray()

    def feed(self, data):
        """Return a list of (stream, bytes) for the complete or partial payloads in data."""
        out = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._left == 0:
                need = 8 - len(self._hdr)
                self._hdr += data[pos:pos + need]
                pos += need
                if len(self._hdr) < 8:
                    break
                hdr = self._hdr
                stream = hdr[0]
                if stream not in (STDIN, STDOUT, STDERR, SYSERR):
                    raise StreamError("Unrecognized input header: %d" % stream)
                self._stream = stream
                self._left = int.from_bytes(hdr[4:8], "big")
                self._hdr = bytearray()
                continue
            take = min(self._left, n - pos)
            piece = bytes(data[pos:pos + take])
            pos += take
            self._left -= take
            if self._stream == SYSERR:
                self._syserr += piece
                if self._left == 0:
                    msg = self._syserr.decode("utf-8", "replace")
                    self._syserr = bytearray()
                    raise StreamError("error from daemon in stream: %s" % msg)
                continue
            out.append((self._stream, piece))
        return out

    def pending(self):
        """True if the stream stopped inside a frame."""
        return bool(self._hdr) or self._left > 0


def demux_all(data):
    """Decode a whole buffer: -> (stdout bytes, stderr bytes)."""
    d = Demux()
    o, e = bytearray(), bytearray()
    for s, piece in d.feed(data):
        (e if s == STDERR else o).extend(piece)
    return bytes(o), bytes(e)


def _writer(f):
    buf = getattr(f, "buffer", f)

    def write(b):
        buf.write(b)
        buf.flush()
    return write


def copy_stream(chunks, tty, stdout=None, stderr=None, leftover=b""):
    """Copy a (possibly multiplexed) byte stream to stdout/stderr until it ends."""
    import sys
    out = _writer(stdout or sys.stdout)
    err = _writer(stderr or sys.stderr)
    if tty:
        if leftover:
            out(leftover)
        for chunk in chunks:
            out(chunk)
        return
    d = Demux()
    if leftover:
        for s, piece in d.feed(leftover):
            (err if s == STDERR else out)(piece)
    for chunk in chunks:
        for s, piece in d.feed(chunk):
            (err if s == STDERR else out)(piece)
