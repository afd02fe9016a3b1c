"""Volumes and bind mounts end to end (the local driver, as Docker has them):
the trioctr CLI and the HTTP API on a real daemon and kernel."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.engine import Engine

pytestmark = pytest.mark.root


def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def engine(busybox_tar):
    e = Engine()
    try:
        e.start()
        e.cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        # an image with a VOLUME over a directory that has content (copy-up)
        e.cli("run", "--name", "mkimg", "busybox", "sh", "-c",
              "mkdir -p /data/sub && echo seeded > /data/sub/f && chown 1000:1001 /data && "
              "chmod 0750 /data && chmod 0600 /data/sub/f && ln -s sub/f /data/link",
              check=True)
        exp = e.cli("export", "mkimg", check=True).stdout
        e.cli("rm", "mkimg", check=True)
        e.cli("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /data", "-", "volimg:1", input=exp,
              check=True)
        yield e
    finally:
        e.cleanup()


def _vols(engine) -> dict[str, dict]:
    status, body = engine.request("GET", "/volumes")
    assert status == 200, body
    assert body["Warnings"] is None
    return {v["Name"]: v for v in body["Volumes"]}


def _leftover_anonymous(engine) -> list[str]:
    return [n for n, v in _vols(engine).items()
            if "com.docker.volume.anonymous" in (v.get("Labels") or {})]


# -- the volume API ------------------------------------------------------------------


def test_volume_create_inspect_list_remove(engine):
    res = engine.cli("volume", "create", "--label", "team=a", "vol-a")
    assert res.returncode == 0, err(res)
    assert out(res) == "vol-a\n"
    status, v = engine.request("GET", "/volumes/vol-a")
    assert status == 200
    assert v["Name"] == "vol-a" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"team": "a"} and v["Options"] is None
    assert v["Mountpoint"] == os.path.join(engine.root, "volumes", "vol-a", "_data")
    assert os.path.isdir(v["Mountpoint"])
    assert set(v) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    # the same name again: the existing volume, no error
    status, again = engine.request("POST", "/volumes/create", {"Name": "vol-a"})
    assert status == 201 and again["CreatedAt"] == v["CreatedAt"]

    res = engine.cli("volume", "ls")
    assert res.returncode == 0, err(res)
    lines = out(res).splitlines()
    assert lines[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert "local     vol-a" in lines
    assert "vol-a\n" in out(engine.cli("volume", "ls", "-q", "--filter", "label=team=a"))
    assert out(engine.cli("volume", "ls", "-q", "--filter", "label=team=b")) == ""
    assert out(engine.cli("volume", "ls", "--format", "{{.Name}} {{.Driver}}",
                          "-f", "name=vol-a")) == "vol-a local\n"
    res = engine.cli("volume", "inspect", "vol-a")
    assert json.loads(out(res))[0]["Name"] == "vol-a"
    assert out(engine.cli("volume", "inspect", "-f", "{{.Driver}}", "vol-a")) == "local\n"

    res = engine.cli("volume", "rm", "vol-a")
    assert res.returncode == 0 and out(res) == "vol-a\n", err(res)
    status, body = engine.request("GET", "/volumes/vol-a")
    assert status == 404 and body["message"] == "get vol-a: no such volume"
    res = engine.cli("volume", "rm", "vol-a")
    assert res.returncode == 1
    assert "Error response from daemon: get vol-a: no such volume" in err(res)
    assert engine.request("DELETE", "/volumes/vol-a?force=1")[0] == 204


def test_volume_names_are_validated(engine):
    for bad in ("../x", "a", "x/y", ".hidden", "-x", "a b"):
        status, body = engine.request("POST", "/volumes/create", {"Name": bad})
        assert status == 400, (bad, body)
        assert body["message"] == (
            f'create {bad}: "{bad}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path")
    assert not os.path.exists(os.path.join(engine.root, "x"))
    status, body = engine.request("POST", "/volumes/create", {"Name": "o1", "DriverOpts": {"type": "tmpfs"}})
    assert status == 400 and "not supported" in body["message"]
    status, body = engine.request("POST", "/volumes/create", {"Name": "o1", "Driver": "nfs"})
    assert status == 400 and "not supported" in body["message"]
    assert "o1" not in _vols(engine)
    # a volume named through a path that climbs
    status, _ = engine.request("GET", "/volumes/..%2Fx")
    assert status == 404


def test_anonymous_volume_create(engine):
    status, v = engine.request("POST", "/volumes/create", {})
    assert status == 201
    assert len(v["Name"]) == 64 and int(v["Name"], 16) >= 0
    assert v["Labels"] == {"com.docker.volume.anonymous": ""}
    assert engine.request("DELETE", f"/volumes/{v['Name']}")[0] == 204


# -- containers -----------------------------------------------------------------------


def test_named_volume_shared_and_persists(engine):
    res = engine.cli("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c",
                     "echo one > /data/f")
    assert res.returncode == 0, err(res)
    assert "shared" in _vols(engine)  # created on the fly
    cid = out(engine.cli("run", "-d", "-v", "shared:/mnt", "busybox", "sleep", "60")).strip()
    try:
        res = engine.cli("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c",
                         "cat /data/f; echo two >> /data/f")
        assert out(res) == "one\n", err(res)
        res = engine.cli("exec", cid, "cat", "/mnt/f")
        assert out(res) == "one\ntwo\n", err(res)
        # in use: refused, with dockerd's words
        status, body = engine.request("DELETE", "/volumes/shared")
        assert status == 409
        assert body["message"] == f"remove shared: volume is in use - [{cid}]"
        res = engine.cli("volume", "rm", "shared")
        assert res.returncode == 1 and "volume is in use" in err(res)
        status, c = engine.request("GET", f"/containers/{cid}/json")
        assert c["Mounts"] == [{"Type": "volume", "Name": "shared",
                                "Source": os.path.join(engine.root, "volumes", "shared", "_data"),
                                "Destination": "/mnt", "Driver": "local", "Mode": "z", "RW": True,
                                "Propagation": ""}]
        assert c["HostConfig"]["Binds"] == ["shared:/mnt"]
        ps = out(engine.cli("ps", "-q", "--no-trunc", "--filter", "volume=shared"))
        assert ps.strip() == cid
    finally:
        engine.cli("rm", "-f", "-v", cid)  # -v never removes a named volume
    assert "shared" in _vols(engine)
    assert engine.cli("volume", "rm", "shared").returncode == 0


def test_image_volume_copy_up_and_rm_v(engine):
    cid = out(engine.cli("create", "volimg:1", "sh", "-c", "sleep 1")).strip()
    status, c = engine.request("GET", f"/containers/{cid}/json")
    (m,) = c["Mounts"]
    assert m["Type"] == "volume" and m["Destination"] == "/data" and len(m["Name"]) == 64
    assert m["Mode"] == "" and m["RW"] is True
    assert c["Config"]["Volumes"] == {"/data": {}}
    src = m["Source"]
    st = os.stat(src)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1001, 0o750)
    f = os.path.join(src, "sub", "f")
    assert open(f).read() == "seeded\n"
    assert os.stat(f).st_mode & 0o777 == 0o600
    assert os.readlink(os.path.join(src, "link")) == "sub/f"
    assert _vols(engine)[m["Name"]]["Labels"] == {"com.docker.volume.anonymous": ""}
    # rm without -v keeps the anonymous volume; a new container gets a new one
    engine.cli("rm", cid, check=True)
    assert m["Name"] in _vols(engine)
    engine.request("DELETE", f"/volumes/{m['Name']}")
    cid = out(engine.cli("create", "volimg:1", "true")).strip()
    name = engine.request("GET", f"/containers/{cid}/json")[1]["Mounts"][0]["Name"]
    assert engine.cli("rm", "-v", cid).returncode == 0
    assert name not in _vols(engine)


def test_copy_up_only_into_an_empty_volume_and_nocopy(engine):
    engine.cli("volume", "create", "prefilled", check=True)
    engine.cli("run", "--rm", "-v", "prefilled:/x", "busybox", "sh", "-c", "echo mine > /x/own",
               check=True)
    res = engine.cli("run", "--rm", "-v", "prefilled:/data", "volimg:1", "ls", "/data")
    assert out(res) == "own\n", err(res)
    res = engine.cli("run", "--rm", "-v", "fresh-nocopy:/data:nocopy", "volimg:1", "ls", "-A", "/data")
    assert out(res) == "", err(res)
    res = engine.cli("run", "--rm", "-v", "fresh-copy:/data", "volimg:1", "cat", "/data/sub/f")
    assert out(res) == "seeded\n", err(res)
    for n in ("prefilled", "fresh-nocopy", "fresh-copy"):
        engine.cli("volume", "rm", n, check=True)


def test_run_rm_removes_anonymous_volumes(engine):
    before = set(_leftover_anonymous(engine))
    res = engine.cli("run", "--rm", "-v", "/anon", "volimg:1", "sh", "-c", "ls /data; touch /anon/x")
    assert out(res) == "link\nsub\n", err(res)
    assert set(_leftover_anonymous(engine)) == before


def test_bind_mounts_ro_rw(engine, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "in").write_text("from host\n")
    res = engine.cli("run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c",
                     "cat /h/in; echo back > /h/out")
    assert res.returncode == 0, err(res)
    assert out(res) == "from host\n"
    assert (host / "out").read_text() == "back\n"
    res = engine.cli("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c",
                     "cat /h/in; echo x > /h/nope")
    assert res.returncode != 0
    assert "Read-only file system" in err(res)
    assert not (host / "nope").exists()
    # --mount, read-only, and the inspect shape
    cid = out(engine.cli("create", "--mount", f"type=bind,source={host},target=/m,readonly",
                         "busybox", "true")).strip()
    status, c = engine.request("GET", f"/containers/{cid}/json")
    assert c["Mounts"] == [{"Type": "bind", "Source": str(host), "Destination": "/m", "Mode": "",
                            "RW": False, "Propagation": "rprivate"}]
    assert c["HostConfig"]["Mounts"] == [{"Type": "bind", "Source": str(host), "Target": "/m",
                                          "ReadOnly": True}]
    engine.cli("rm", cid, check=True)


def test_bind_sources(engine, tmp_path):
    # Binds: a missing source directory is made (as dockerd does)
    missing = tmp_path / "made" / "here"
    res = engine.cli("run", "--rm", "-v", f"{missing}:/x", "busybox", "ls", "/x")
    assert res.returncode == 0, err(res)
    assert missing.is_dir()
    # Mounts: it must exist
    status, body = engine.request("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Mounts": [
            {"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]}})
    assert status == 400
    assert body["message"] == ('invalid mount config for type "bind": bind source path does not '
                               f"exist: {tmp_path / 'nope'}")
    # a symlink as the source binds its target
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("real\n")
    (tmp_path / "ln").symlink_to(real)
    res = engine.cli("run", "--rm", "-v", f"{tmp_path / 'ln'}:/l", "busybox", "cat", "/l/f")
    assert out(res) == "real\n", err(res)
    # a relative host path starting with "." is made absolute by the CLI, as docker's
    res = engine.cli("run", "--rm", "-v", "./README.md:/r:ro", "busybox", "head", "-c", "9", "/r")
    assert out(res) == "# trioctr", err(res)
    # propagation given in the mode
    cid = out(engine.cli("create", "-v", f"{real}:/p:rslave", "busybox", "true")).strip()
    m = engine.request("GET", f"/containers/{cid}/json")[1]["Mounts"][0]
    assert (m["Propagation"], m["Mode"], m["RW"]) == ("rslave", "rslave", True)
    engine.cli("rm", cid, check=True)
    # a single file
    (tmp_path / "one").write_text("file\n")
    res = engine.cli("run", "--rm", "-v", f"{tmp_path / 'one'}:/etc/one:ro", "busybox", "cat", "/etc/one")
    assert out(res) == "file\n", err(res)


def test_mount_destination_symlink_stays_inside(engine, tmp_path):
    """An image path that is a symlink out of the rootfs: the mount lands in
    the container (the runtime resolves it inside the root), not on the host."""
    host = tmp_path / "src"
    host.mkdir()
    (host / "mark").write_text("m\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    cid = out(engine.cli("run", "-d", "busybox", "sh", "-c",
                         f"ln -s {victim} /esc && ln -s ../../../../{victim} /esc2 && sleep 1")).strip()
    engine.cli("wait", cid)
    exp = engine.cli("export", cid, check=True).stdout
    engine.cli("rm", cid)
    engine.cli("import", "-c", 'CMD ["sh"]', "-", "escimg:1", input=exp, check=True)
    for dest in ("/esc", "/esc2"):
        res = engine.cli("run", "--rm", "-v", f"{host}:{dest}", "escimg:1", "cat", f"{dest}/mark")
        assert out(res) == "m\n", err(res)
    assert os.listdir(victim) == []
    engine.cli("rmi", "escimg:1")


def test_tmpfs(engine):
    res = engine.cli("run", "--rm", "--tmpfs", "/run/t:size=1m,mode=1777", "busybox", "sh", "-c",
                     "grep ' /run/t ' /proc/mounts; stat -c %a /run/t")
    assert res.returncode == 0, err(res)
    line, mode = out(res).splitlines()
    assert line.split()[2] == "tmpfs"
    assert "size=1024k" in line and "nosuid" in line and "nodev" in line and "noexec" in line
    assert mode == "1777"
    res = engine.cli("run", "--rm", "--mount", "type=tmpfs,destination=/tm,tmpfs-size=2m,tmpfs-mode=0700",
                     "busybox", "sh", "-c", "grep ' /tm ' /proc/mounts; stat -c %a /tm")
    assert res.returncode == 0, err(res)
    line, mode = out(res).splitlines()
    assert "size=2048k" in line and mode == "700"


def test_mount_errors(engine):
    def create(hc, **cfg):
        return engine.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc, **cfg})

    status, body = create({"Binds": ["/a:/x", "v1:/x"]})
    assert status == 400 and body["message"] == "Duplicate mount point: /x"
    status, body = create({"Binds": ["/a:ro"]})
    assert status == 400 and body["message"] == "invalid volume specification: '/a:ro'"
    status, body = create({"Binds": ["/a:/x:bogus"]})
    assert status == 400 and body["message"] == "invalid mode: bogus"
    status, body = create({"Binds": ["rel/path:/x"]})
    assert status == 400 and body["message"].startswith('create rel/path: "rel/path" includes invalid')
    status, body = create({"Binds": ["/a:/"]})
    assert status == 400 and "destination can't be '/'" in body["message"]
    status, body = create({"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]})
    assert status == 400 and body["message"] == 'invalid mount config for type "npipe": mount type unknown'
    status, body = create({"Mounts": [{"Type": "volume", "Target": "/x", "ReadOnly": True}]})
    assert status == 400 and "must not set ReadOnly mode when using anonymous volumes" in body["message"]
    status, body = create({"VolumeDriver": "flocker", "Binds": ["v:/x"]})
    assert status == 400 and "not supported" in body["message"]
    status, body = create({"Mounts": [{"Type": "volume", "Source": "dv", "Target": "/x",
                                       "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}]})
    assert status == 400 and "not supported" in body["message"]
    status, body = create({}, Volumes={"relative": {}})
    assert status == 400 and "mount path must be absolute" in body["message"]
    # nothing half-made: no container, no volume
    assert "v1" not in _vols(engine) and "dv" not in _vols(engine)
    status, lst = engine.request("GET", "/containers/json?all=1")
    assert not [c for c in lst if c["Image"] == "busybox" and c["State"] == "created"]
    res = engine.cli("run", "--rm", "-v", "a:b:c:d:e", "busybox", "true")
    assert res.returncode == 125
    assert "invalid spec: a:b:c:d:e: too many colons" in err(res)


def test_prune_and_system_df(engine):
    engine.cli("volume", "create", "keepme", check=True)
    engine.cli("volume", "create", "--label", "p=1", "dropme", check=True)
    busy = out(engine.cli("create", "-v", "busyvol:/b", "busybox", "true")).strip()
    engine.cli("run", "--rm", "-v", "dropme:/d", "busybox", "sh", "-c", "head -c 10000 /dev/zero > /d/z",
               check=True)
    status, df = engine.request("GET", "/system/df")
    dfv = {v["Name"]: v for v in df["Volumes"]}
    assert dfv["busyvol"]["UsageData"]["RefCount"] == 1
    assert dfv["dropme"]["UsageData"]["Size"] >= 10000
    # API 1.41: every unused volume (filters narrow it)
    status, rep = engine.request("POST", '/volumes/prune?filters={"label":["p=1"]}')
    assert status == 200 and rep["VolumesDeleted"] == ["dropme"] and rep["SpaceReclaimed"] >= 10000
    res = engine.cli("volume", "prune", "-f")
    assert res.returncode == 0, err(res)
    assert "Deleted Volumes:\nkeepme\n" in out(res)
    assert "Total reclaimed space:" in out(res)
    assert "busyvol" in _vols(engine) and "keepme" not in _vols(engine)
    # container prune leaves volumes alone
    assert engine.request("POST", "/containers/prune")[0] == 200
    assert "busyvol" in _vols(engine)
    assert busy not in [c["Id"] for c in engine.request("GET", "/containers/json?all=1")[1]]
    status, rep = engine.request("POST", "/volumes/prune")
    assert "busyvol" in (rep["VolumesDeleted"] or [])


def test_events(engine):
    import time
    t0 = time.time()
    engine.cli("run", "--rm", "-v", "evvol:/e", "busybox", "true", check=True)
    engine.cli("volume", "rm", "evvol", check=True)
    res = engine.cli("events", "--since", f"{t0:.3f}", "--until", f"{time.time() + 1:.3f}",
                     "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
    lines = out(res).splitlines()
    assert lines == ["create evvol", "mount evvol", "unmount evvol", "destroy evvol"], lines
    res = engine.cli("events", "--since", f"{t0:.3f}", "--until", f"{time.time() + 1:.3f}",
                     "--filter", "type=volume", "--filter", "type=container", "--format", "{{json .}}")
    evs = [json.loads(line) for line in out(res).splitlines()]
    seq = [(e["Type"], e["Action"]) for e in evs]
    assert seq.index(("volume", "mount")) + 1 == seq.index(("container", "start")), seq
    assert seq.index(("volume", "unmount")) == seq.index(("container", "die")) + 1, seq
    mount = evs[seq.index(("volume", "mount"))]["Actor"]["Attributes"]
    assert mount["destination"] == "/e" and mount["driver"] == "local"
    assert mount["read/write"] == "true"
    assert mount["container"] == evs[seq.index(("container", "start"))]["Actor"]["ID"]


def test_volumes_survive_a_daemon_restart(busybox_tar):
    e = Engine()
    try:
        e.start()
        e.cli("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        e.cli("volume", "create", "--label", "k=v", "durable", check=True)
        e.cli("run", "--rm", "-v", "durable:/d", "busybox", "sh", "-c", "echo kept > /d/f", check=True)
        cid = out(e.cli("create", "-v", "held:/h", "busybox", "true")).strip()
        before = e.request("GET", "/volumes/durable")[1]
        e.stop()
        e.start()
        after = e.request("GET", "/volumes/durable")[1]
        assert after == before
        res = e.cli("run", "--rm", "-v", "durable:/d", "busybox", "cat", "/d/f")
        assert out(res) == "kept\n", err(res)
        status, body = e.request("DELETE", "/volumes/held")
        assert status == 409 and cid in body["message"]
    finally:
        e.cleanup()


def test_nothing_mounted_on_the_host(engine):
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    assert engine.base not in text


def test_concurrent_creates_share_one_copy_up(engine):
    """Containers created at once with the same new volume: one copies the
    image's content in, none fails, the content is there once."""
    import concurrent.futures

    def create(_):
        return engine.request("POST", "/containers/create", {
            "Image": "volimg:1", "Cmd": ["true"], "HostConfig": {"Binds": ["racevol:/data"]}})

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(create, range(6)))
    assert [s for s, _ in results] == [201] * 6, results
    src = _vols(engine)["racevol"]["Mountpoint"]
    assert sorted(os.listdir(src)) == ["link", "sub"]
    status, body = engine.request("DELETE", "/volumes/racevol")
    assert status == 409 and body["message"].count(",") == 5
    for _, c in results:
        engine.request("DELETE", f"/containers/{c['Id']}?v=1")
    assert engine.request("DELETE", "/volumes/racevol")[0] == 204


def test_cp_into_and_out_of_a_stopped_containers_volume(engine, tmp_path):
    # dockerd mounts a stopped container's volumes for `docker cp`: a path under
    # a volume is the volume's, not the container's own layer
    engine.cli("volume", "create", "cpvol", check=True)
    cid = out(engine.cli("create", "-v", "cpvol:/data", "busybox", "cat", "/data/in",
                         check=True)).strip()
    try:
        src = tmp_path / "in"
        src.write_text("into the volume\n")
        res = engine.cli("cp", str(src), f"{cid}:/data/")
        assert res.returncode == 0, err(res)
        vol_data = os.path.join(engine.root, "volumes", "cpvol", "_data")
        with open(os.path.join(vol_data, "in")) as f:
            assert f.read() == "into the volume\n"
        upper = json.loads(out(engine.cli("inspect", cid)))[0]["GraphDriver"]["Data"]["UpperDir"]
        assert not os.path.exists(os.path.join(upper, "data", "in"))  # not the layer
        # and out again while it is still stopped
        with open(os.path.join(vol_data, "out"), "w") as f:
            f.write("from the volume\n")
        res = engine.cli("cp", f"{cid}:/data/out", str(tmp_path / "got"))
        assert res.returncode == 0, err(res)
        assert (tmp_path / "got").read_text() == "from the volume\n"
        # the container sees what was copied when it runs
        res = engine.cli("start", "-a", cid)
        assert (res.returncode, out(res)) == (0, "into the volume\n"), err(res)
    finally:
        engine.cli("rm", "-f", cid)
        engine.cli("volume", "rm", "cpvol")
