"""The detach-keys syntax and matcher (cli/escape.py), as moby/term has them:
ToBytes's syntax and wording, EscapeProxy's holding, replay and ending."""

from __future__ import annotations

import random

import pytest

from cli.escape import DEFAULT_KEYS, EscapeProxy, KeysError, to_bytes

P, Q = b"\x10", b"\x11"


@pytest.mark.parametrize("text,want", [
    ("ctrl-p,ctrl-q", P + Q),
    ("ctrl-@", b"\x00"), ("ctrl-a", b"\x01"), ("ctrl-z", b"\x1a"), ("ctrl-[", b"\x1b"),
    ("ctrl-\\", b"\x1c"), ("ctrl-]", b"\x1d"), ("ctrl-^", b"\x1e"), ("ctrl-_", b"\x1f"),
    ("a", b"a"), ("A,b,1", b"Ab1"), ("DEL", b"\x7f"),
    ("ctrl-x,y", b"\x18y"), ("ctrl-e,e", b"\x05e"), (" ", b" "),
])
def test_to_bytes(text, want):
    assert to_bytes(text) == want


@pytest.mark.parametrize("text,bad", [
    ("xyz", "xyz"), ("", ""), (",", ""), ("ctrl-P", "ctrl-P"), ("ctrl-p,,ctrl-q", ""), ("ctrl-1", "ctrl-1"),
    ("ctrl-pq", "ctrl-pq"), ("del", "del"), ("\u00e9", "\u00e9"), ("ctrl-p, ctrl-q", " ctrl-q"),
])
def test_to_bytes_errors_are_worded_as_moby(text, bad):
    with pytest.raises(KeysError) as exc:
        to_bytes(text)
    assert str(exc.value) == "Unknown character: '%s'" % bad


def feed_all(proxy, pieces):
    out, detached = b"", False
    for piece in pieces:
        data, detached = proxy.feed(piece)
        out += data
        if detached:
            break
    return out, detached


def test_default_keys_are_ctrl_p_ctrl_q():
    assert DEFAULT_KEYS == P + Q == to_bytes("ctrl-p,ctrl-q")


def test_plain_input_passes_through():
    p = EscapeProxy()
    assert p.feed(b"hello\r") == (b"hello\r", False)
    assert p.feed(b"") == (b"", False)


def test_a_prefix_is_held_back_then_the_whole_sequence_detaches():
    p = EscapeProxy()
    assert p.feed(P) == (b"", False)
    assert p.held() == P
    assert p.feed(Q) == (b"", True)
    assert p.feed(b"after") == (b"", True)  # ended: nothing more goes through


def test_a_broken_prefix_is_forwarded_in_order():
    p = EscapeProxy()
    assert p.feed(b"a") == (b"a", False)
    assert p.feed(P) == (b"", False)
    assert p.feed(b"b") == (P + b"b", False)
    assert p.held() == b""


def test_the_breaking_byte_is_not_a_new_start():
    # moby/term: after ctrl-p, a second ctrl-p breaks the prefix and is not
    # tried again as its start, so ctrl-p ctrl-p ctrl-q does not detach
    p = EscapeProxy()
    assert feed_all(p, [P, P, Q]) == (P + P + Q, False)
    assert feed_all(EscapeProxy(), [P + P + Q]) == (P + P + Q, False)
    # ...but the next ctrl-p, ctrl-q does
    assert p.feed(P + Q) == (b"", True)


def test_bytes_before_the_sequence_in_one_read_go_through_the_rest_is_dropped():
    p = EscapeProxy()
    assert p.feed(b"ls" + P + Q + b"rm -rf") == (b"ls", True)


def test_a_trailing_prefix_in_a_read_is_held():
    p = EscapeProxy()
    assert p.feed(b"xy" + P) == (b"xy", False)
    assert p.feed(b"z") == (P + b"z", False)


def test_longer_custom_sequence_across_reads():
    keys = to_bytes("ctrl-x,y,z")
    p = EscapeProxy(keys)
    assert p.feed(b"\x18") == (b"", False)
    assert p.feed(b"y") == (b"", False)
    assert p.feed(b"q") == (b"\x18yq", False)
    assert p.feed(b"\x18y") == (b"", False)
    assert p.feed(b"z!") == (b"", True)


def test_single_key_sequence():
    p = EscapeProxy(b"a")
    assert p.feed(b"xyz") == (b"xyz", False)
    assert p.feed(b"bca") == (b"bc", True)


def test_no_keys_is_a_plain_copy():
    p = EscapeProxy(b"")
    assert p.feed(P + Q) == (P + Q, False)


def test_the_result_does_not_depend_on_how_input_is_split():
    rng = random.Random(7)
    alphabet = [b"a", b"b", P, Q, b"\x18", b"y"]
    for keys in (P + Q, b"\x18y", b"\x18y\x18", b"aab"):
        for _ in range(300):
            data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            whole = EscapeProxy(keys).feed(data)
            cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 4))))
            pieces, last = [], 0
            for c in cuts + [len(data)]:
                pieces.append(data[last:c])
                last = c
            assert feed_all(EscapeProxy(keys), pieces) == whole, (keys, data, pieces)
