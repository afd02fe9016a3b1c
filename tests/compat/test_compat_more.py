"""top, stats, rename, ps filters, system df, container prune, export and
docker cp (archive GET/HEAD), through the real docker CLI and the SDK."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time

import pytest

from tests.compat.compat_util import err, out, poll

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root

LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


@pytest.fixture
def running(engine):
    """A running container named 'box' (64 MiB limit) with a few files made inside."""
    script = ("mkdir -p /data/sub && echo hello > /data/file && echo deep > /data/sub/deep && "
              "ln -s /data/file /data/abslink && mkdir /links && ln -s ../../../../../../../ /links/up && "
              "ln /data/file /data/hard && " + LOOP)
    res = engine.docker("run", "-d", "--name", "box", "-m", "64m", "-l", "role=box", "busybox",
                        "sh", "-c", script)
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    yield cid
    engine.docker("rm", "-f", cid)


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getnames()


def _tar_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.extractfile(name).read()


def _settled(engine, cid):
    """The container's script made its files (it loops once they exist)."""
    return poll(lambda: engine.docker("cp", f"{cid}:/data/hard", "-").returncode == 0)


# -- top ------------------------------------------------------------------------------
def test_top_with_the_cli(engine, running):
    pid = out(engine.docker("inspect", "-f", "{{.State.Pid}}", "box")).strip()
    res = engine.docker("top", "box")
    assert res.returncode == 0, err(res)
    lines = out(res).splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split(None, 7) for line in lines[1:]]
    init = [r for r in rows if r[1] == pid]
    assert init and init[0][0] == "root" and init[0][7].startswith("sh -c mkdir -p /data/sub")
    assert init[0][5] == "?" and re.fullmatch(r"\d\d:\d\d:\d\d", init[0][6])
    res = engine.docker("top", "box", "-o", "pid,comm")
    assert res.returncode == 0, err(res)
    lines = out(res).splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert [pid, "sh"] in [line.split() for line in lines[1:]]
    res = engine.docker("top", "box", "aux")
    assert out(res).split("\n")[0].split()[:3] == ["USER", "PID", "%CPU"], err(res)


def test_top_with_the_sdk_and_its_errors(client, running):
    c = client.containers.get("box")
    top = c.top()
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert str(c.attrs["State"]["Pid"]) in [p[1] for p in top["Processes"]]
    top = c.top(ps_args="-o pid,args")
    assert top["Titles"] == ["PID", "COMMAND"]
    with pytest.raises(docker.errors.APIError) as info:
        c.top(ps_args="--no-such-thing")
    assert info.value.status_code == 500 and "ps" in info.value.explanation
    stopped = client.containers.create("busybox", ["true"])
    try:
        with pytest.raises(docker.errors.APIError) as info:
            stopped.top()
        assert info.value.status_code == 409
        assert info.value.explanation == f"Container {stopped.id} is not running"
    finally:
        stopped.remove()


# -- stats ----------------------------------------------------------------------------
def test_stats_no_stream_prints_a_row(engine, running):
    res = engine.docker("stats", "--no-stream", "--format", "{{json .}}", "box")
    assert res.returncode == 0, err(res)
    row = json.loads(out(res))
    assert row["Name"] == "box" and row["ID"] == running[:12]
    assert re.fullmatch(r"\d+\.\d\d%", row["CPUPerc"])
    used, limit = row["MemUsage"].split(" / ")
    assert limit == "64MiB" and re.fullmatch(r"[\d.]+(B|KiB|MiB)", used)
    assert int(row["PIDs"]) >= 1
    res = engine.docker("stats", "--no-stream")
    assert res.returncode == 0, err(res)
    lines = out(res).splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert any(line.startswith(running[:12]) and " box " in line for line in lines[1:])


def test_stats_with_the_sdk(client, running):
    c = client.containers.get("box")
    s = c.stats(stream=False)
    assert s["id"] == c.id and s["name"] == "/box"
    assert s["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert 0 < s["memory_stats"]["usage"] <= 64 * 1024 * 1024
    assert s["pids_stats"]["current"] >= 1
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > 0 and cpu["online_cpus"] >= 1
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0  # two samples, as dockerd
    s = c.stats(stream=False, one_shot=True)
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    frames = []
    stream = c.stats(stream=True, decode=True)
    for frame in stream:
        frames.append(frame)
        if len(frames) == 2:
            break
    stream.close()
    assert frames[0]["preread"] == "0001-01-01T00:00:00Z"
    assert frames[1]["precpu_stats"] == frames[0]["cpu_stats"]
    stopped = client.containers.create("busybox", ["true"])
    try:
        s = stopped.stats(stream=False)
        assert s["id"] == stopped.id and s["read"] == "0001-01-01T00:00:00Z"
        assert s["memory_stats"] == {} and s["pids_stats"] == {}
    finally:
        stopped.remove()


# -- rename ---------------------------------------------------------------------------
def test_rename(engine, client):
    t0 = time.time()
    a = out(engine.docker("create", "--name", "first", "busybox", "true")).strip()
    b = out(engine.docker("create", "--name", "second", "busybox", "true")).strip()
    try:
        res = engine.docker("rename", "first", "renamed")
        assert (res.returncode, out(res), err(res)) == (0, "", ""), err(res)
        assert out(engine.docker("inspect", "-f", "{{.Name}}", a)) == "/renamed\n"
        assert out(engine.docker("ps", "-a", "--filter", f"id={a}", "--format", "{{.Names}}")) == "renamed\n"
        # the old name is free again
        c = out(engine.docker("create", "--name", "first", "busybox", "true")).strip()
        engine.docker("rm", c)
        res = engine.docker("rename", "renamed", "second")
        assert res.returncode == 1
        assert err(res).startswith(
            'Error response from daemon: Error when allocating new name: Conflict. The container name '
            f'"/second" is already in use by container "{b}". You have to remove (or rename) that '
            "container to be able to reuse that name.\n"), err(res)
        res = engine.docker("rename", "renamed", "renamed")
        assert "Renaming a container with the same name as its current name" in err(res)
        t1 = time.time() + 0.01
        evs = [json.loads(x) for x in out(engine.docker(
            "events", "--since", f"{t0:.6f}", "--until", f"{t1:.6f}", "--format", "{{json .}}",
            "--filter", "event=rename")).splitlines()]
        assert [e["Actor"]["Attributes"]["oldName"] for e in evs] == ["/first"]
        assert evs[0]["Actor"]["Attributes"]["name"] == "renamed" and evs[0]["id"] == a
        # with the SDK, and a running container
        cont = client.containers.get(b)
        cont.rename("third")
        cont.reload()
        assert cont.name == "third"
        with pytest.raises(docker.errors.APIError) as info:
            cont.rename("renamed")
        assert info.value.status_code == 409
        with pytest.raises(docker.errors.NotFound):
            client.api.rename("nope-x", "whatever")
    finally:
        engine.docker("rm", "-f", a, b)


# -- ps filters -------------------------------------------------------------------------
def test_ps_filters(engine):
    ids = {}
    ids["a"] = out(engine.docker("run", "-d", "--name", "flt-a", "-l", "tier=web", "-l", "x", "busybox",
                                 "sh", "-c", LOOP)).strip()
    ids["b"] = out(engine.docker("run", "--name", "flt-b", "-l", "tier=db", "busybox", "sh", "-c", "exit 3")).strip()
    ids["b"] = out(engine.docker("inspect", "-f", "{{.Id}}", "flt-b")).strip()
    ids["c"] = out(engine.docker("create", "--name", "flt-c", "--expose", "8080", "busybox", "true")).strip()
    try:
        def names(*filters, all_=True):
            args = ["ps", "--format", "{{.Names}}"] + (["-a"] if all_ else [])
            for f in filters:
                args += ["--filter", f]
            res = engine.docker(*args)
            assert res.returncode == 0, err(res)
            return sorted(out(res).split())

        assert names(all_=False) == ["flt-a"]
        assert names("name=flt-") == ["flt-a", "flt-b", "flt-c"]
        assert names("name=flt-b") == ["flt-b"]
        assert names("label=tier") == ["flt-a", "flt-b"]
        assert names("label=tier=db") == ["flt-b"]
        assert names("label=tier=web", "label=x") == ["flt-a"]
        assert names("status=exited") == ["flt-b"]
        assert names("status=created") == ["flt-c"]
        assert names("status=running", "status=created") == ["flt-a", "flt-c"]
        assert names("exited=3") == ["flt-b"]
        assert names("exited=0") == []
        assert names("ancestor=busybox", "name=flt-a") == ["flt-a"]
        assert names(f"id={ids['c'][:8]}") == ["flt-c"]
        assert names("since=flt-a", "name=flt-") == ["flt-b", "flt-c"]
        assert names("before=flt-c", "name=flt-") == ["flt-a", "flt-b"]
        assert names("health=none", "name=flt-") == ["flt-a", "flt-b", "flt-c"]
        assert names("health=healthy") == [] and names("publish=80") == []
        assert names("expose=8080") == ["flt-c"] and names("expose=8080/udp") == []
        assert names("is-task=false", "name=flt-a") == ["flt-a"]
        res = engine.docker("ps", "-a", "--filter", "nope=1")
        assert res.returncode == 1 and "invalid filter 'nope'" in err(res)
        res = engine.docker("ps", "-a", "--filter", "status=sleeping")
        assert res.returncode == 1 and "invalid filter 'status=sleeping'" in err(res)
        res = engine.docker("ps", "--filter", "since=nope-x")
        assert res.returncode == 1 and "No such container: nope-x" in err(res)
        assert out(engine.docker("ps", "-a", "-n", "1", "--format", "{{.Names}}")) == "flt-c\n"
        assert out(engine.docker("ps", "-l", "-q")) == ids["c"][:12] + "\n"
    finally:
        engine.docker("rm", "-f", *ids.values())


# -- system df, prune ------------------------------------------------------------------------
def test_system_df(engine, client, running):
    res = engine.docker("system", "df", "--format", "{{json .}}")
    assert res.returncode == 0, err(res)
    rows = {r["Type"]: r for r in map(json.loads, out(res).splitlines())}
    assert set(rows) == {"Images", "Containers", "Local Volumes", "Build Cache"}
    assert int(rows["Images"]["TotalCount"]) >= 1 and int(rows["Containers"]["Active"]) >= 1
    df = client.df()
    assert df["LayersSize"] > 0 and df["Volumes"] == [] and df["BuildCache"] == []
    [box] = [c for c in df["Containers"] if c["Id"] == running]
    assert box["SizeRw"] >= len("hello\n") + len("deep\n") and box["SizeRootFs"] > box["SizeRw"]
    assert any("busybox:latest" in i["RepoTags"] and i["Containers"] >= 1 for i in df["Images"])
    res = engine.docker("ps", "-s", "--filter", "name=box", "--format", "{{.Size}}")
    assert re.fullmatch(r"\d+(\.\d+)?k?B \(virtual [\d.]+MB\)\n", out(res)), out(res)


def test_container_prune(engine, client):
    keep = out(engine.docker("run", "-d", "--name", "keep", "busybox", "sh", "-c", LOOP)).strip()
    gone = [out(engine.docker("create", "busybox", "true")).strip()]
    engine.docker("run", "--name", "dead1", "busybox", "sh", "-c", "echo data > /f")
    gone.append(out(engine.docker("inspect", "-f", "{{.Id}}", "dead1")).strip())
    labelled = out(engine.docker("create", "-l", "keepme=1", "busybox", "true")).strip()
    try:
        res = engine.docker("container", "prune", "-f", "--filter", "label!=keepme")
        assert res.returncode == 0, err(res)
        text = out(res)
        assert text.startswith("Deleted Containers:\n")
        assert sorted(text.split("\n\n")[0].splitlines()[1:]) == sorted(gone)
        assert "Total reclaimed space: " in text
        left = out(engine.docker("ps", "-aq", "--no-trunc")).split()
        assert keep in left and labelled in left and not set(gone) & set(left)
        r = client.containers.prune(filters={"label": "keepme=1"})
        assert r["ContainersDeleted"] == [labelled] and isinstance(r["SpaceReclaimed"], int)
        assert client.containers.prune() == {"ContainersDeleted": None, "SpaceReclaimed": 0}
        assert out(engine.docker("ps", "-aq", "--no-trunc")).split() == [keep]
    finally:
        engine.docker("rm", "-f", keep, labelled, *gone)


# -- export and cp ----------------------------------------------------------------------------
def test_export(engine, client, running, tmp_path):
    assert _settled(engine, running)
    res = engine.docker("export", "box")
    assert res.returncode == 0, err(res)
    names = _tar_names(res.stdout)
    assert "data/file" in names and "data/sub/deep" in names and "bin/sh" in names
    assert "etc/passwd" in names and "proc/" not in names
    assert not any(n.startswith("proc/") or n.startswith("sys/") for n in names if n not in ("proc", "sys"))
    assert _tar_member(res.stdout, "data/sub/deep") == b"deep\n"
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        assert tf.getmember("data/abslink").issym() and tf.getmember("data/abslink").linkname == "/data/file"
        assert tf.getmember("data/hard").islnk() or tf.getmember("data/file").islnk()
    dest = tmp_path / "box.tar"
    res = engine.docker("export", "-o", str(dest), "box")
    assert res.returncode == 0 and "data/file" in _tar_names(dest.read_bytes()), err(res)
    data = b"".join(client.containers.get("box").export())
    assert "data/sub/deep" in _tar_names(data)
    stopped = out(engine.docker("create", "busybox", "true")).strip()
    try:
        res = engine.docker("export", stopped)  # a created container: its layers, mounted aside
        assert res.returncode == 0 and "bin/sh" in _tar_names(res.stdout), err(res)
    finally:
        engine.docker("rm", stopped)
    res = engine.docker("export", "nope-x")
    assert res.returncode == 1 and "No such container: nope-x" in err(res)


def test_cp_from_a_container(engine, running, tmp_path):
    assert _settled(engine, running)
    d = str(tmp_path)
    res = engine.docker("cp", "box:/data/file", f"{d}/copy")
    assert res.returncode == 0, err(res)
    assert open(f"{d}/copy").read() == "hello\n"
    res = engine.docker("cp", "box:/data", f"{d}/tree")
    assert res.returncode == 0, err(res)
    assert open(f"{d}/tree/sub/deep").read() == "deep\n"
    assert os.readlink(f"{d}/tree/abslink") == "/data/file"
    res = engine.docker("cp", "box:/data/sub/.", f"{d}/contents")
    assert res.returncode == 0 and os.listdir(f"{d}/contents") == ["deep"], err(res)
    res = engine.docker("cp", "-L", "box:/data/abslink", f"{d}/followed")
    assert res.returncode == 0 and open(f"{d}/followed").read() == "hello\n", err(res)
    res = engine.docker("cp", "box:/data/abslink", f"{d}/link")
    assert res.returncode == 0 and os.readlink(f"{d}/link") == "/data/file", err(res)
    # the file the container sees, not the host's
    res = engine.docker("cp", "box:/etc/hostname", "-")
    assert _tar_member(res.stdout, "hostname") == (running[:12] + "\n").encode()
    res = engine.docker("cp", "box:/links/up/etc/hostname", "-")
    assert _tar_member(res.stdout, "hostname") == (running[:12] + "\n").encode()
    res = engine.docker("cp", "box:/nope", f"{d}/x")
    assert res.returncode == 1
    assert "Could not find the file /nope in container box" in err(res), err(res)
    stopped = out(engine.docker("create", "busybox", "true")).strip()
    try:
        res = engine.docker("cp", f"{stopped}:/etc/passwd", f"{d}/p")
        assert res.returncode == 0 and open(f"{d}/p").read().startswith("root:"), err(res)
    finally:
        engine.docker("rm", stopped)


def test_cp_never_leaves_the_container_root(engine, running):
    """Symlinks made inside the container that point at a host path are read
    in the container's scope: the host file stays out of reach."""
    secret_dir = tempfile.mkdtemp(prefix="trioctr-secret-")
    try:
        with open(os.path.join(secret_dir, "secret"), "w") as f:
            f.write("HOST SECRET\n")
        # made from the host, in the container's /data (there is no exec yet)
        assert _settled(engine, running)
        pid = out(engine.docker("inspect", "-f", "{{.State.Pid}}", "box")).strip()
        root = f"/proc/{pid}/root"
        os.symlink(f"{secret_dir}/secret", f"{root}/data/evil-abs")
        os.symlink(f"../../../../../../..{secret_dir}", f"{root}/data/evil-rel")
        os.symlink("/proc/1/root/../../../../", f"{root}/data/evil-proc")
        for path in ("/data/evil-abs", "/data/evil-rel/secret", f"/links/up{secret_dir}/secret",
                     f"/data/evil-proc{secret_dir}/secret"):
            res = engine.docker("cp", "-L", f"box:{path}", "-")
            assert res.returncode != 0 and b"HOST SECRET" not in res.stdout, (path, err(res))
        # the link itself can be copied: it is just a link
        res = engine.docker("cp", "box:/data/evil-abs", "-")
        assert res.returncode == 0, err(res)
        with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
            assert tf.getmember("evil-abs").linkname == f"{secret_dir}/secret"
        # a directory with the same path inside the container is what cp finds
        os_pid = out(engine.docker("inspect", "-f", "{{.State.Pid}}", "box")).strip()
        inner = f"/proc/{os_pid}/root{secret_dir}"
        os.makedirs(inner)
        with open(f"{inner}/secret", "w") as f:
            f.write("CONTAINER FILE\n")
        res = engine.docker("cp", "-L", "box:/data/evil-abs", "-")
        assert res.returncode == 0, err(res)
        assert _tar_member(res.stdout, "secret") == b"CONTAINER FILE\n"  # -L asks for the target
        assert b"HOST SECRET" not in engine.docker("export", "box").stdout
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


def test_archive_with_the_sdk(client, running, engine):
    assert _settled(engine, running)
    c = client.containers.get("box")
    stream, stat = c.get_archive("/data/file")
    assert stat["name"] == "file" and stat["size"] == 6 and stat["linkTarget"] == ""
    assert stat["mode"] & 0o777 == 0o644
    assert _tar_member(b"".join(stream), "file") == b"hello\n"
    stream, stat = c.get_archive("/data")
    assert stat["mode"] & (1 << 31)  # Go's os.ModeDir
    assert sorted(_tar_names(b"".join(stream)))[:3] == ["data", "data/abslink", "data/file"]
    _, stat = c.get_archive("/data/abslink")
    assert stat["mode"] & (1 << 27) and stat["linkTarget"] == "/data/file"  # os.ModeSymlink
    with pytest.raises(docker.errors.NotFound) as info:
        c.get_archive("/nope")
    assert info.value.explanation == "Could not find the file /nope in container " + c.id
    # HEAD: only the stat header
    res = client.api.head(client.api._url("/containers/{0}/archive", c.id), params={"path": "/data/file"})
    assert res.status_code == 200 and res.content == b""
    assert json.loads(base64.b64decode(res.headers["X-Docker-Container-Path-Stat"]))["name"] == "file"
    res = client.api.head(client.api._url("/containers/{0}/archive", c.id), params={"path": "/nope"})
    assert res.status_code == 404
