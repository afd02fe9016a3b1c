"""GET /images/json filters (dangling, reference with Go path.Match globs, label,
label!, before, since, until), `trioctr images --filter` / `images REPO[:TAG]`
printing what the docker CLI prints, and the SDK's images.list(filters=)."""

from __future__ import annotations

import io

import pytest

from actors.api_images import filter_images, go_path_match, parse_image_filters
from actors.http import HTTPError
from tests.helpers.engine import Engine
from tests.helpers.images import make_tar, tar_entry


@pytest.mark.parametrize("pattern, name, ok", [
    ("busybox", "busybox", True), ("busy*", "busybox", True), ("*", "a/b", False),
    ("*/*", "a/b", True), ("app/*", "app/web", True), ("app/w?b", "app/web", True),
    ("[a-c]pp/*", "app/db", True), ("[^a-c]pp/*", "app/db", False), ("app/web:[0-9]", "app/web:1", True),
    ("\\*", "*", True), ("localhost:5000/*/*", "localhost:5000/team/x", True),
])
def test_go_path_match(pattern, name, ok):
    assert go_path_match(pattern, name) is ok


@pytest.mark.parametrize("bad", ["[", "[a-", "a\\", "[]"])
def test_go_path_match_bad_pattern(bad):
    with pytest.raises(ValueError):
        go_path_match(bad, "x")
    with pytest.raises(HTTPError) as exc:
        parse_image_filters({"reference": [bad]})
    assert exc.value.status == 400 and exc.value.message == "syntax error in pattern"


def test_parse_image_filters_errors():
    with pytest.raises(HTTPError) as exc:
        parse_image_filters({"colour": ["red"]})
    assert exc.value.message == "invalid filter 'colour'"
    with pytest.raises(HTTPError) as exc:
        parse_image_filters({"dangling": ["maybe"]})
    assert exc.value.message == "invalid filter 'dangling=[maybe]'"
    assert parse_image_filters({"dangling": {"true": True}}) == {"dangling": ["true"]}


def _store_images(store):
    def imp(name, ref=None, changes=(), created="2024-01-01T00:00:00Z"):
        tar = make_tar([tar_entry(name, data=name.encode())])
        return store.import_tar(io.BytesIO(tar), ref, changes=list(changes), created=created)
    a = imp("a", "app/web:1", ["LABEL tier=web"], "2024-01-01T00:00:00Z")
    store.tag("app/web:1", "app/web:2")
    b = imp("b", "app/db:1", ["LABEL tier=db"], "2024-01-02T00:00:00Z")
    c = imp("c", "busybox:latest", (), "2024-01-03T00:00:00Z")
    d = imp("d", None, (), "2024-01-04T00:00:00Z")
    store.tag(c.id, "localhost:5000/team/x:dev")
    return a, b, c, d, store.list()


def _ids(out):
    return [(x["Id"][7:8], x["RepoTags"]) for x in out]


def test_filter_images_pure(store):
    a, b, c, d, imgs = _store_images(store)
    names = {a.id: "a", b.id: "b", c.id: "c", d.id: "d"}

    def run(f, **kw):
        return [(names[x["Id"]], x["RepoTags"]) for x in filter_images(imgs, f, **kw)]

    assert run({}) == [("d", ["<none>:<none>"]), ("c", ["busybox:latest", "localhost:5000/team/x:dev"]),
                       ("b", ["app/db:1"]), ("a", ["app/web:1", "app/web:2"])]
    assert run({"dangling": ["true"]}) == [("d", ["<none>:<none>"])]
    assert [n for n, _ in run({"dangling": ["false"]})] == ["c", "b", "a"]
    assert run({"reference": ["app/*:1"]}) == [("b", ["app/db:1"]), ("a", ["app/web:1"])]
    assert run({"reference": ["app/web"]}) == [("a", ["app/web:1", "app/web:2"])]
    assert run({"reference": ["busybox", "*/*/*"]}) == [
        ("c", ["busybox:latest", "localhost:5000/team/x:dev"])]
    assert run({"reference": ["*:dev"]}) == []  # "*" stops at "/": the name has two
    assert run({"label": ["tier"]}) == [("b", ["app/db:1"]), ("a", ["app/web:1", "app/web:2"])]
    assert run({"label": ["tier=web"]}) == [("a", ["app/web:1", "app/web:2"])]
    assert [n for n, _ in run({"label!": ["tier"]})] == ["d", "c"]
    from oci.store import parse_rfc3339_ns
    t = parse_rfc3339_ns("2024-01-02T00:00:00Z")
    assert [n for n, _ in run({"before": ["x"]}, before=t)] == ["a"]
    assert [n for n, _ in run({"since": ["x"]}, since=t)] == ["d", "c"]
    assert [n for n, _ in run({"until": ["x"]}, until=t)] == ["b", "a"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("filters")
    e = Engine()
    try:
        e.start()
        for name, ref, changes in (("a", "app/web:1", ["LABEL tier=web"]),
                                   ("b", "app/db:1", ["LABEL tier=db", "LABEL env=prod"]),
                                   ("c", "busybox:latest", []), ("d", None, [])):
            path = str(d / f"{name}.tar")
            with open(path, "wb") as f:
                f.write(make_tar([tar_entry(name, data=name.encode() * 100)]))
            args = ["import"] + [x for ch in changes for x in ("-c", ch)] + [path]
            e.cli(*args, *([ref] if ref else []), check=True)
        e.cli("tag", "app/web:1", "app/web:2", check=True)
        e.cli("tag", "busybox", "localhost:5000/team/x:dev", check=True)
        yield e
    finally:
        e.cleanup()


FMT = "{{.Repository}}:{{.Tag}} {{.ID}}"


@pytest.mark.parametrize("args", [
    (), ("-a",), ("--digests",), ("--filter", "dangling=true"), ("--filter", "dangling=false"),
    ("--filter", "reference=app/*"), ("--filter", "reference=app/web:2"),
    ("--filter", "reference=*/*/*"), ("--filter", "reference=busybox", "--filter", "reference=app/db"),
    ("--filter", "label=tier"), ("--filter", "label=tier=db"), ("--filter", "label=env=prod"),
    ("--filter", "before=app/db:1"), ("--filter", "since=app/web:1"),
    ("--filter", "since=app/web:1", "--filter", "label=tier"),
    ("--filter", "until=2000-01-01"),
    ("app/web",), ("app/web:2",), ("app/*",), ("busybox:nope",), ("-q", "app/web"),
])
def test_cli_images_filters_match_docker(engine, args):
    fmt = () if "-q" in args else ("--format", FMT)
    ours = engine.cli("images", *fmt, *args)
    theirs = engine.docker("images", *fmt, *args)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    # the docker CLI lists the repositories of one image in Go map order (random)
    assert sorted(ours.stdout.decode().splitlines()) == sorted(theirs.stdout.decode().splitlines())


def test_cli_images_filter_errors_match_docker(engine):
    for args in (("--filter", "colour=red"), ("--filter", "dangling=maybe"),
                 ("--filter", "before=nope:1"), ("--filter", "reference=[")):
        ours = engine.cli("images", *args)
        theirs = engine.docker("images", *args)
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr == theirs.stderr, args
    assert engine.cli("images", "--filter", "before=nope:1").stderr == \
        b"Error response from daemon: No such image: nope:1\n"


def test_sdk_images_list_filters(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url="unix://" + engine.sock, timeout=60)
    try:
        assert sorted(t for i in client.images.list(filters={"label": "tier"}) for t in i.tags) == [
            "app/db:1", "app/web:1", "app/web:2"]
        assert sorted(t for i in client.images.list("app/web") for t in i.tags) == [
            "app/web:1", "app/web:2"]
        dangling = client.images.list(filters={"dangling": True})
        assert len(dangling) == 1 and dangling[0].tags == []
    finally:
        client.close()
