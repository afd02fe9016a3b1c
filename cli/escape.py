"""Detach keys: the key-sequence syntax and the escape matcher, as Docker has them.

Pure and stdlib-only: the CLI and the daemon (actors/api.py, actors/api_exec.py)
both use it.

``to_bytes`` follows moby/term's ToBytes: a comma-separated list where each item
is either a single character (taken as its first byte) or ``ctrl-<x>`` with x in
``@ a-z [ \\ ] ^ _`` (codes 0-31) or ``DEL`` (127); anything else is an error
worded ``Unknown character: '<item>'``.

``EscapeProxy`` follows moby/term's EscapeProxy: bytes that match a prefix of the
sequence are held back; when a byte breaks the prefix the held bytes are
released (in order, before it) and the breaking byte itself is *not* tried as
the start of a new match; a full match ends the stream (bytes before it in the
same read are still delivered, bytes after it are dropped).  The state moves one
byte at a time, so the result does not depend on how the input was split into
reads.
"""

DEFAULT_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q

_CTRL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


class KeysError(ValueError):
    pass


def to_bytes(keys):
    """'ctrl-p,ctrl-q' -> b'\\x10\\x11' (raises KeysError with moby's wording)."""
    codes = bytearray()
    for key in keys.split(","):
        raw = key.encode("utf-8", "surrogateescape")
        if len(raw) == 1:
            codes.append(raw[0])
            continue
        if key.startswith("ctrl-") and len(key) == 6 and key[5] in _CTRL:
            codes.append(_CTRL.index(key[5]))
        elif key == "DEL":
            codes.append(127)
        else:
            raise KeysError("Unknown character: '%s'" % key)
    return bytes(codes)


class EscapeProxy:
    """Feed it what the client typed; it says what to pass on and whether the
    detach sequence was completed."""

    def __init__(self, keys=DEFAULT_KEYS):
        self.keys = bytes(keys)
        self.pos = 0
        self.detached = False

    def feed(self, data):
        """-> (bytes to forward, detached)."""
        keys = self.keys
        if not keys:
            return bytes(data), False
        if self.detached:
            return b"", True
        out = bytearray()
        pos = self.pos
        for b in data:
            if b == keys[pos]:
                pos += 1
                if pos == len(keys):
                    self.pos, self.detached = 0, True
                    return bytes(out), True
                continue
            if pos:
                out += keys[:pos]  # a broken prefix is passed on as typed
                pos = 0
            out.append(b)
        self.pos = pos
        return bytes(out), False

    def held(self):
        """The prefix typed so far and held back."""
        return self.keys[:self.pos]
