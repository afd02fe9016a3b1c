"""Reading the json-file logs the shims write: tail, since/until, follow,
and Docker's stream framing (multiplexed when there is no TTY)."""

from __future__ import annotations

import json
import os
import struct
from typing import Iterator

from .containers import parse_rfc3339

STDOUT, STDERR = 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed framing: [stream, 0, 0, 0, len(4, BE)] + data."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def parse_line(line: bytes) -> tuple[str, bytes, str] | None:
    try:
        rec = json.loads(line)
        return rec["stream"], rec["log"].encode(), rec["time"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_from(path: str, offset: int) -> tuple[list[tuple[str, bytes, str]], int]:
    """Complete lines from ``offset``; returns the entries and the new offset
    (a torn last line is left for the next read)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for line in data[:end].split(b"\n"):
        entry = parse_line(line)
        if entry:
            out.append(entry)
    return out, offset + end + 1


class Follower:
    """Reads a json-file log from an offset through a descriptor held from the
    first read on: what was written stays readable after the file is removed
    (`run --rm`: the container, log included, goes as soon as it exits, and
    its attached client must still get the last lines)."""

    def __init__(self, path: str, offset: int = 0):
        self.path = path
        self.offset = offset
        self._f = None
        self.open()

    def open(self) -> bool:
        if self._f is None:
            try:
                self._f = open(self.path, "rb")
            except FileNotFoundError:
                return False
        return True

    def read(self) -> list[tuple[str, bytes, str]]:
        """The complete lines written since the last read."""
        if not self.open():
            return []
        self._f.seek(self.offset)
        data = self._f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return [e for e in (parse_line(line) for line in data[:end].split(b"\n")) if e]

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def tail_offset(path: str, n: int) -> int:
    """Offset of the start of the last ``n`` lines, reading backwards."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return 0
    with f:
        end = f.seek(0, os.SEEK_END)
        if n <= 0:
            return end
        pos, seen = end, 0
        # the file ends with "\n": the last newline ends the last line
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            for i in range(len(chunk) - 1, -1, -1):
                if chunk[i] == 0x0A and pos + i != end - 1:
                    seen += 1
                    if seen == n:
                        return pos + i + 1
        return 0


def render(entries, *, stdout: bool, stderr: bool, timestamps: bool, tty: bool,
           since: float = 0.0, until: float | None = None) -> Iterator[bytes]:
    for stream, data, ts in entries:
        if stream == "stdout" and not stdout or stream == "stderr" and not stderr:
            continue
        if since or until is not None:
            t = parse_rfc3339(ts)
            if t < since or (until is not None and t > until):
                continue
        if timestamps:
            data = ts.encode() + b" " + data
        if tty:
            yield data
        else:
            yield frame(STDOUT if stream == "stdout" else STDERR, data)
