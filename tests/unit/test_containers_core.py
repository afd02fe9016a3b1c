import random

import pytest

from actors import containers as C


@pytest.mark.parametrize("secs,text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (3 * 3600, "3 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_docker(secs, text):
    assert C.human_duration(secs) == text


def test_status_text_for_each_state():
    now = 1_700_000_100.0
    st = C.new_state()
    assert C.status_text(st, now) == "Created"
    C.mark_started({"State": st}, 42, 1_700_000_000 * 10**9)
    assert C.status_text(st, now) == "Up About a minute"
    C.mark_exited({"State": st}, 3, 1_700_000_090 * 10**9)
    assert C.status_text(st, now) == "Exited (3) 10 seconds ago"
    assert st["Pid"] == 0 and st["Running"] is False


def test_rfc3339_round_trip():
    ns = 1_700_000_000_123_456_789
    text = C.rfc3339nano(ns)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert abs(C.parse_rfc3339(text) - ns / 1e9) < 1e-6
    assert C.parse_rfc3339(C.ZERO_TIME) == 0
    assert C.parse_rfc3339("garbage") == 0
    assert C.parse_rfc3339("2023-11-14T23:13:20+01:00") == 1_700_000_000


@pytest.mark.parametrize("name", ["web", "/web", "a_b.c-d", "A1"])
def test_valid_names(name):
    assert C.validate_name(name) == "/" + name.lstrip("/")


@pytest.mark.parametrize("name", ["", "x", "-web", "we b", "a/b", "ü"])
def test_invalid_names_get_dockers_message(name):
    with pytest.raises(C.ContainerError, match=r"Invalid container name .*only \[a-zA-Z0-9\]"):
        C.validate_name(name)


def test_generated_names_are_unique():
    rng = random.Random(1)
    taken: set[str] = set()
    for _ in range(300):
        n = C.generate_name(taken, rng)
        assert n not in taken and n.startswith("/")
        taken.add(n)


def rec(cid, name, status="running", exit_code=0, labels=None, image="busybox", created="2024-01-01T00:00:00Z"):
    st = C.new_state()
    st["Status"] = status
    st["Running"] = status == "running"
    st["ExitCode"] = exit_code
    return {"Id": cid, "Name": name, "State": st, "Created": created, "Image": "sha256:" + "1" * 64,
            "Config": {"Labels": labels or {}, "Image": image}, "Path": "sh", "Args": ["-c", "x"],
            "HostConfig": {}}


def test_filters():
    a = rec("aaa1", "/web", labels={"app": "x"})
    b = rec("bbb2", "/db", status="exited", exit_code=3, created="2024-01-02T00:00:00Z")
    f = C.parse_filters({"status": ["exited"]}, C.CONTAINER_FILTERS)
    assert [r["Id"] for r in (a, b) if C.matches(r, f)] == ["bbb2"]
    f = C.parse_filters({"label": {"app=x": True}}, C.CONTAINER_FILTERS)
    assert [r["Id"] for r in (a, b) if C.matches(r, f)] == ["aaa1"]
    f = C.parse_filters({"exited": ["3"], "name": ["d"]}, C.CONTAINER_FILTERS)
    assert [r["Id"] for r in (a, b) if C.matches(r, f)] == ["bbb2"]
    f = C.parse_filters({"since": ["web"]}, C.CONTAINER_FILTERS)
    assert [r["Id"] for r in (a, b) if C.matches(r, f, lookup={"web": a}.get)] == ["bbb2"]
    f = C.parse_filters({"ancestor": ["busybox"]}, C.CONTAINER_FILTERS)
    assert all(C.matches(r, f) for r in (a, b))


@pytest.mark.parametrize("raw,msg", [
    ({"bogus": ["x"]}, "invalid filter 'bogus'"), ({"status": ["sleeping"]}, "status=sleeping"),
    ([1], "must be a JSON object"), ({"name": [1]}, "invalid filter 'name'"),
])
def test_bad_filters(raw, msg):
    with pytest.raises(C.ContainerError, match=msg):
        C.parse_filters(raw, C.CONTAINER_FILTERS)


def test_summary_shape():
    s = C.summary(rec("abc", "/web"))
    assert s["Names"] == ["/web"] and s["Command"] == "sh -c x" and s["State"] == "running"
    assert set(s) >= {"Id", "Image", "ImageID", "Created", "Status", "Ports", "Labels", "Mounts"}


def test_records_round_trip_atomically(tmp_path):
    r = rec("f" * 64, "/x")
    d = tmp_path / r["Id"]
    d.mkdir()
    C.atomic_write_json(str(d / "config.v2.json"), r)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.v2.json").write_text("{torn")
    assert C.load_records(str(tmp_path)) == [r]
    assert not [p for p in d.iterdir() if ".tmp" in p.name]
