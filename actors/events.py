"""The daemon's event bus and its persisted, bounded journal.

Docker keeps events in memory only; trioctr appends each event to
``<data-root>/events.jsonl`` so that ``events --since`` works across a
daemon restart.  The journal is bounded: past ``max_events`` lines it is
rewritten (atomically) with the newest half.

Subscribers get a bounded trio memory channel; one that falls behind by more
than its buffer is dropped (its stream ends) rather than slowing everyone.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from typing import Iterable

import trio

from messages.events import EngineEvent

log = logging.getLogger("trioctr.events")

EVENT_FILTERS = {"type", "container", "image", "event", "label", "network", "volume",
                 "daemon", "scope", "plugin", "node", "service", "secret", "config"}


class EventBus:
    def __init__(self, journal_path: str | None, *, max_events: int = 10000,
                 subscriber_buffer: int = 1024):
        self.path = journal_path
        self.max_events = max_events
        self.buffer = subscriber_buffer
        self.recent: collections.deque[EngineEvent] = collections.deque(maxlen=max_events)
        self._subs: dict[trio.MemoryReceiveChannel, trio.MemorySendChannel] = {}
        # (type, action) -> functions of the actor id, called just before / just
        # after such an event is published (events that go with it, in order:
        # a volume's mount before its container's start, its unmount after die)
        self._before: dict[tuple[str, str], list] = {}
        self._after: dict[tuple[str, str], list] = {}
        self._lines = 0
        self._fd = -1
        if journal_path:
            self._load()
            self._fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def _load(self) -> None:
        assert self.path
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                d = json.loads(line)
                ev = EngineEvent(type=d["type"], action=d["action"], actor_id=d["actor_id"],
                                 attributes=dict(d.get("attributes") or {}),
                                 time_nano=int(d["time_nano"]), scope=d.get("scope", "local"))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash: skip it
            self.recent.append(ev)
        self._lines = len(lines)

    def _append(self, ev: EngineEvent) -> None:
        if self._fd < 0:
            return
        rec = {"type": ev.type, "action": ev.action, "actor_id": ev.actor_id,
               "attributes": ev.attributes, "time_nano": ev.time_nano, "scope": ev.scope}
        os.write(self._fd, (json.dumps(rec) + "\n").encode())
        self._lines += 1
        if self._lines > self.max_events:
            self._compact()

    def _compact(self) -> None:
        assert self.path
        keep = list(self.recent)[-(self.max_events // 2):]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for ev in keep:
                f.write(json.dumps({"type": ev.type, "action": ev.action, "actor_id": ev.actor_id,
                                    "attributes": ev.attributes, "time_nano": ev.time_nano,
                                    "scope": ev.scope}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._lines = len(keep)

    def around(self, type_: str, action: str, *, before=None, after=None) -> None:
        """Call ``before(actor_id)`` / ``after(actor_id)`` around every
        (``type_``, ``action``) event; they may publish events themselves."""
        if before is not None:
            self._before.setdefault((type_, action), []).append(before)
        if after is not None:
            self._after.setdefault((type_, action), []).append(after)

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: dict[str, str] | None = None) -> EngineEvent:
        for hook in self._before.get((type_, action), ()):
            hook(actor_id)
        ev = self._publish(type_, action, actor_id, attributes)
        for hook in self._after.get((type_, action), ()):
            hook(actor_id)
        return ev

    def _publish(self, type_: str, action: str, actor_id: str,
                 attributes: dict[str, str] | None) -> EngineEvent:
        now = time.time_ns()
        if self.recent and now <= self.recent[-1].time_nano:
            now = self.recent[-1].time_nano + 1  # strictly increasing: since/until stay exact
        ev = EngineEvent(type=type_, action=action, actor_id=actor_id,
                         attributes={k: str(v) for k, v in (attributes or {}).items()},
                         time_nano=now)
        self.recent.append(ev)
        try:
            self._append(ev)
        except OSError as exc:
            log.warning("event journal write failed: %s", exc)
        for recv, ch in list(self._subs.items()):
            try:
                ch.send_nowait(ev)
            except trio.WouldBlock:
                log.warning("dropping a slow event subscriber")
                self._subs.pop(recv, None)
                ch.close()
            except trio.BrokenResourceError:
                self._subs.pop(recv, None)
        return ev

    def subscribe(self) -> trio.MemoryReceiveChannel:
        send, recv = trio.open_memory_channel(self.buffer)
        self._subs[recv] = send
        return recv

    def unsubscribe(self, recv: trio.MemoryReceiveChannel) -> None:
        send = self._subs.pop(recv, None)
        if send is not None:
            send.close()
        recv.close()

    def since(self, since_ns: int, until_ns: int | None) -> Iterable[EngineEvent]:
        for ev in list(self.recent):
            if ev.time_nano < since_ns:
                continue
            if until_ns is not None and ev.time_nano > until_ns:
                break
            yield ev

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for ch in list(self._subs.values()):
            ch.close()
        self._subs.clear()


def event_matches(ev: EngineEvent, f: dict[str, list[str]]) -> bool:
    """Docker's event filters: every given key must match one of its values."""
    attrs_ = ev.attributes
    for key, vals in f.items():
        if not vals:
            continue
        if key == "type":
            ok = ev.type in vals
        elif key == "event":
            ok = ev.action in vals or ev.action.split(":")[0] in vals
        elif key == "container":
            ok = ev.type == "container" and any(
                ev.actor_id.startswith(v) or attrs_.get("name") == v for v in vals)
        elif key == "image":
            img = attrs_.get("image", "")
            ok = any(v == ev.actor_id or v == img or img.startswith(v + ":")
                     or attrs_.get("name") == v for v in vals)
        elif key == "label":
            ok = all(_label_ok(attrs_, v) for v in vals)
        elif key in ("network", "volume"):
            ok = ev.type == key and any(ev.actor_id.startswith(v) or attrs_.get("name") == v
                                        for v in vals)
        elif key == "daemon":
            ok = ev.type == "daemon" and any(v == ev.actor_id or v == attrs_.get("name") for v in vals)
        elif key == "scope":
            ok = ev.scope in vals
        else:
            ok = False
        if not ok:
            return False
    return True


def _label_ok(attrs_: dict[str, str], want: str) -> bool:
    k, eq, v = want.partition("=")
    return k in attrs_ and (not eq or attrs_[k] == v)


def parse_time(value: str | None, now: float | None = None) -> int | None:
    """`since`/`until` as Docker sends them: unix seconds with optional
    fraction ("1700000000.123456789").  Returns ns, or None when absent."""
    if value is None or value == "":
        return None
    v = value.strip()
    try:
        if "." in v:
            secs, frac = v.split(".", 1)
            frac = (frac + "000000000")[:9]
            return int(secs) * 1_000_000_000 + int(frac)
        return int(v) * 1_000_000_000
    except ValueError:
        raise ValueError(f"invalid timestamp {value!r}") from None
