"""docker history: ImageStore.history (dockerd's ImageHistory), GET
/images/{name}/history, and `trioctr history` printing what the docker CLI prints."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from oci import tarexport
from oci.digest import sha256_bytes
from tests.helpers.engine import Engine
from tests.helpers.images import make_tar, tar_entry

LONG = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in /\tsecond part"


def history_archive(path: str, tags=("hist/app:1",)) -> tuple[str, list[bytes]]:
    """A docker-save archive of a two-layer image whose history has empty layers."""
    l1 = make_tar([tar_entry("bin", "dir"), tar_entry("bin/one", data=b"1" * 3000)])
    l2 = make_tar([tar_entry("etc", "dir"), tar_entry("etc/two", data=b"2" * 1500)])
    history = [
        {"created": "2023-01-01T00:00:00Z", "created_by": LONG, "comment": "base"},
        {"created": "2023-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True},
        {"created": "2023-01-03T00:00:00.5Z", "created_by": "RUN make two"},
        {"created": "2023-01-04T00:00:00Z", "created_by": "LABEL a=b", "empty_layer": True},
    ]
    cfg = {"architecture": "amd64", "os": "linux", "created": "2023-01-04T00:00:00Z",
           "config": {"Cmd": ["sh"], "Labels": {"a": "b"}}, "history": history,
           "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(l1), sha256_bytes(l2)]}}
    from oci.store import host_platform
    cfg["architecture"] = host_platform()["architecture"]
    config = json.dumps(cfg).encode()
    files = {"config.json": config, "l1/layer.tar": l1, "l2/layer.tar": l2,
             "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": list(tags),
                                           "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()}
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return sha256_bytes(config), [l1, l2]


def test_store_history_rows(store, tmp_path):
    iid, layers = history_archive(str(tmp_path / "h.tar"))
    tarexport.load(store, str(tmp_path / "h.tar"), lambda m: None)
    img = store.get("hist/app:1")
    store.tag("hist/app:1", "hist/app:2")
    h = store.history("hist/app:1")
    sizes = [store.layer_meta(c)["size"] for c in img.layers]
    assert h == [
        {"Comment": "", "Created": 1672790400, "CreatedBy": "LABEL a=b", "Id": iid, "Size": 0,
         "Tags": ["hist/app:1", "hist/app:2"]},
        {"Comment": "", "Created": 1672704000, "CreatedBy": "RUN make two", "Id": "<missing>",
         "Size": sizes[1], "Tags": None},
        {"Comment": "", "Created": 1672617600, "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]',
         "Id": "<missing>", "Size": 0, "Tags": None},
        {"Comment": "base", "Created": 1672531200, "CreatedBy": LONG, "Id": "<missing>",
         "Size": sizes[0], "Tags": None},
    ]
    assert sizes == [3000, 1500]


def test_store_history_of_an_import(store, tmp_path):
    img = store.import_tar(io.BytesIO(make_tar([tar_entry("a", data=b"abc")])), "imp:1",
                           message="hello", created="2024-05-06T07:08:09Z")
    assert store.history(img.id) == [{"Comment": "hello", "Created": 1714979289, "CreatedBy": "",
                                      "Id": img.id, "Size": 3, "Tags": ["imp:1"]}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("history")
    e = Engine()
    try:
        e.start()
        e.iid, _ = history_archive(str(d / "h.tar"))  # type: ignore[attr-defined]
        e.cli("load", "-i", str(d / "h.tar"), check=True)
        yield e
    finally:
        e.cleanup()


def test_api_history(engine):
    status, body = engine.request("GET", "/images/hist/app:1/history")
    assert status == 200 and [x["Id"] for x in body] == [engine.iid] + ["<missing>"] * 3
    status, body = engine.request("GET", "/images/nope:1/history")
    assert status == 404 and body["message"] == "No such image: nope:1"


@pytest.mark.parametrize("args", [
    (), ("--no-trunc",), ("-q",), ("-q", "--no-trunc"), ("-H=false",), ("--human=false", "--no-trunc"),
    ("--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"),
    ("--format", "{{.Tags}}"),
    ("--format", "table {{.ID}}\t{{.CreatedAt}}\t{{.Size}}"),
    ("--format", "{{json .}}"),
])
def test_cli_history_matches_docker(engine, args):
    ours = engine.cli("history", *args, "hist/app:1")
    theirs = engine.docker("history", *args, "hist/app:1")
    if "{{.Tags}}" in args:  # not a field of docker's history rows
        assert ours.returncode == theirs.returncode == 1
        assert b"can't evaluate field Tags in type *image.historyContext" in ours.stderr
        return
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    if args and "{{json .}}" in args:  # CreatedSince ("... ago") may tick between the two runs
        a = [json.loads(x) for x in ours.stdout.decode().splitlines()]
        b = [json.loads(x) for x in theirs.stdout.decode().splitlines()]
        for x in a + b:
            x.pop("CreatedSince")
        assert a == b
        return
    assert ours.stdout.decode() == theirs.stdout.decode()


def test_cli_history_errors(engine):
    ours = engine.cli("history", "nope:1")
    theirs = engine.docker("history", "nope:1")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (
        1, b"Error response from daemon: No such image: nope:1\n")
    ours = engine.cli("history")
    assert ours.returncode == 1 and b"'trioctr history' requires 1 argument" in ours.stderr


def test_sdk_history(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url="unix://" + engine.sock, timeout=60)
    try:
        h = client.images.get("hist/app:1").history()
        assert [x["CreatedBy"] for x in h] == ["LABEL a=b", "RUN make two",
                                              '/bin/sh -c #(nop)  CMD ["sh"]', LONG]
        assert h[0]["Id"] == engine.iid and h[0]["Tags"] == ["hist/app:1"]
    finally:
        client.close()
