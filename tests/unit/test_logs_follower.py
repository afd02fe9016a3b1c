"""The json-file log follower keeps reading what was written after the file
is gone (a `run --rm` container is removed, log and all, as it exits)."""

import json
import os

from actors import logs as L


def _line(text: str, stream: str = "stdout") -> bytes:
    return json.dumps({"log": text, "stream": stream, "time": "2026-11-28T00:00:00.000000000Z"}).encode() + b"\n"


def test_reads_complete_lines_and_survives_the_files_removal(tmp_path):
    path = str(tmp_path / "c-json.log")
    r = L.Follower(path)
    assert r.read() == []  # no file yet: nothing, no error
    with open(path, "wb") as f:
        f.write(_line("a\n") + _line("b\n")[:10])  # a torn last line
        f.flush()
        assert [e[1] for e in r.read()] == [b"a\n"]
        f.write(_line("b\n")[10:] + _line("c\n", "stderr"))
        f.flush()
        os.unlink(path)  # removed with its container
        got = r.read()
    assert [(e[0], e[1]) for e in got] == [("stdout", b"b\n"), ("stderr", b"c\n")]
    assert r.read() == []
    r.close()


def test_starts_at_an_offset(tmp_path):
    path = str(tmp_path / "c-json.log")
    with open(path, "wb") as f:
        f.write(_line("old\n"))
    r = L.Follower(path, os.path.getsize(path))
    with open(path, "ab") as f:
        f.write(_line("new\n"))
    assert [e[1] for e in r.read()] == [b"new\n"]
    r.close()
