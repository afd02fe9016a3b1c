import json

import pytest
import trio

from actors.events import EventBus, event_matches, parse_time
from messages.events import EngineEvent


def test_publish_persists_and_reloads(tmp_path):
    path = str(tmp_path / "events.jsonl")
    bus = EventBus(path)
    e1 = bus.publish("container", "create", "abc", {"name": "web", "image": "busybox"})
    e2 = bus.publish("container", "start", "abc", {"name": "web", "image": "busybox"})
    assert e2.time_nano > e1.time_nano
    bus.close()
    # a torn last line (crash mid-write) is skipped
    with open(path, "a") as f:
        f.write('{"type": "contai')
    bus2 = EventBus(path)
    assert [e.action for e in bus2.since(0, None)] == ["create", "start"]
    assert [e.action for e in bus2.since(e2.time_nano, None)] == ["start"]
    assert [e.action for e in bus2.since(0, e1.time_nano)] == ["create"]
    bus2.close()


def test_journal_is_bounded(tmp_path):
    path = str(tmp_path / "events.jsonl")
    bus = EventBus(path, max_events=100)
    for i in range(1000):
        bus.publish("container", "start", str(i))
    bus.close()
    with open(path) as f:
        lines = f.read().splitlines()
    assert 50 <= len(lines) <= 100
    assert json.loads(lines[-1])["actor_id"] == "999"


def test_docker_shape():
    ev = EngineEvent(type="container", action="die", actor_id="abc",
                     attributes={"image": "busybox", "name": "web", "exitCode": "0"},
                     time_nano=1_700_000_000_123_456_789)
    d = ev.to_docker()
    assert d == {"status": "die", "id": "abc", "from": "busybox", "Type": "container",
                 "Action": "die", "Actor": {"ID": "abc", "Attributes": ev.attributes},
                 "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789}


def test_filters():
    ev = EngineEvent(type="container", action="start", actor_id="abc123",
                     attributes={"image": "busybox:latest", "name": "web", "app": "x"}, time_nano=1)
    assert event_matches(ev, {"type": ["container"], "event": ["start", "die"]})
    assert event_matches(ev, {"container": ["web"]}) and event_matches(ev, {"container": ["abc"]})
    assert event_matches(ev, {"image": ["busybox"]}) and event_matches(ev, {"label": ["app=x"]})
    assert not event_matches(ev, {"type": ["image"]})
    assert not event_matches(ev, {"label": ["app=y"]})
    assert not event_matches(ev, {"container": ["db"]})


def test_parse_time():
    assert parse_time("1700000000") == 1_700_000_000 * 10**9
    assert parse_time("1700000000.5") == 1_700_000_000_500_000_000
    assert parse_time(None) is None
    with pytest.raises(ValueError):
        parse_time("yesterday")


async def test_slow_subscriber_is_dropped_not_waited_for(tmp_path):
    bus = EventBus(None, subscriber_buffer=4)
    slow = bus.subscribe()
    fast = bus.subscribe()
    got = []
    async with trio.open_nursery() as n:
        async def reader():
            async for ev in fast:
                got.append(ev.actor_id)
                if len(got) == 10:
                    return
        n.start_soon(reader)
        for i in range(10):
            bus.publish("container", "start", str(i))
            await trio.sleep(0)
    assert got == [str(i) for i in range(10)]
    drained = []
    async for ev in slow:  # its channel was closed after its buffer filled
        drained.append(ev.actor_id)
    assert drained == ["0", "1", "2", "3"]


def test_events_published_around_others_keep_their_order():
    bus = EventBus(None)
    bus.around("container", "start", before=lambda cid: bus.publish("volume", "mount", f"v-{cid}"))
    bus.around("container", "die", after=lambda cid: bus.publish("volume", "unmount", f"v-{cid}"))
    for action in ("create", "start", "die", "destroy"):
        bus.publish("container", action, "c1")
    got = [(e.type, e.action, e.actor_id) for e in bus.recent]
    assert got == [("container", "create", "c1"), ("volume", "mount", "v-c1"),
                   ("container", "start", "c1"), ("container", "die", "c1"),
                   ("volume", "unmount", "v-c1"), ("container", "destroy", "c1")]
    times = [e.time_nano for e in bus.recent]
    assert times == sorted(set(times))
