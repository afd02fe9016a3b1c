"""Volumes, bind mounts and tmpfs through the real docker CLI (28) and the
Docker SDK for Python, unchanged, against trioctrd."""

from __future__ import annotations

import json

import pytest

from tests.compat.compat_util import err, out

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root


def test_docker_volume_create_ls_inspect_rm(engine):
    res = engine.docker("volume", "create", "--label", "a=b", "dv1")
    assert res.returncode == 0, err(res)
    assert out(res) == "dv1\n"
    res = engine.docker("volume", "ls")
    assert res.returncode == 0, err(res)
    lines = out(res).splitlines()
    assert lines[0] == "DRIVER    VOLUME NAME"
    assert "local     dv1" in lines
    assert out(engine.docker("volume", "ls", "-q", "--filter", "label=a=b")) == "dv1\n"
    assert out(engine.docker("volume", "ls", "-q", "--filter", "dangling=true")).split() == ["dv1"]
    res = engine.docker("volume", "inspect", "dv1")
    assert res.returncode == 0, err(res)
    (v,) = json.loads(out(res))
    assert v["Name"] == "dv1" and v["Driver"] == "local" and v["Labels"] == {"a": "b"}
    assert v["Mountpoint"].endswith("/volumes/dv1/_data")
    assert out(engine.docker("volume", "inspect", "-f", "{{.Scope}}", "dv1")) == "local\n"
    # `docker inspect` finds a volume too
    assert out(engine.docker("inspect", "-f", "{{.Driver}}", "dv1")) == "local\n"
    res = engine.docker("volume", "rm", "dv1")
    assert res.returncode == 0 and out(res) == "dv1\n", err(res)
    res = engine.docker("volume", "rm", "dv1")
    assert res.returncode == 1
    assert "no such volume" in err(res)
    res = engine.docker("volume", "create", "../x")
    assert res.returncode == 1
    assert ('"../x" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed') in err(res)


def test_docker_run_with_a_named_volume(engine):
    res = engine.docker("run", "--rm", "-v", "dnamed:/data", "busybox", "sh", "-c", "echo hi > /data/f")
    assert res.returncode == 0, err(res)
    res = engine.docker("run", "--rm", "-v", "dnamed:/other:ro", "busybox", "sh", "-c",
                        "cat /other/f; touch /other/x")
    assert out(res) == "hi\n"
    assert "Read-only file system" in err(res)
    cid = out(engine.docker("create", "-v", "dnamed:/data", "busybox", "true")).strip()
    res = engine.docker("volume", "rm", "dnamed")
    assert res.returncode == 1
    assert f"remove dnamed: volume is in use - [{cid}]" in err(res)
    res = engine.docker("inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} "
                        "{{.Mode}} {{.RW}}{{end}}", cid)
    assert out(res) == "volume dnamed /data z true\n", err(res)
    assert engine.docker("rm", "-v", cid).returncode == 0
    assert engine.docker("volume", "rm", "dnamed").returncode == 0


def test_docker_run_bind_mount_and_mount_flag(engine, tmp_path):
    (tmp_path / "f").write_text("host\n")
    res = engine.docker("run", "--rm", "-v", f"{tmp_path}:/x", "busybox", "sh", "-c",
                        "cat /x/f && echo c > /x/g")
    assert out(res) == "host\n", err(res)
    assert (tmp_path / "g").read_text() == "c\n"
    res = engine.docker("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/m,readonly",
                        "busybox", "sh", "-c", "cat /m/f; touch /m/nope")
    assert out(res) == "host\n"
    assert not (tmp_path / "nope").exists()
    res = engine.docker("run", "--rm", "--mount", "type=bind,src=/does/not/exist,dst=/m", "busybox", "true")
    assert res.returncode == 125
    assert ('invalid mount config for type "bind": bind source path does not exist: /does/not/exist'
            in err(res))
    res = engine.docker("run", "--rm", "--mount", "type=volume,src=dmount,dst=/v", "busybox", "sh",
                        "-c", "echo v > /v/f")
    assert res.returncode == 0, err(res)
    res = engine.docker("run", "--rm", "-v", "dmount:/v", "busybox", "cat", "/v/f")
    assert out(res) == "v\n", err(res)
    assert engine.docker("volume", "rm", "dmount").returncode == 0


def test_docker_run_tmpfs(engine):
    res = engine.docker("run", "--rm", "--tmpfs", "/scratch:size=2m", "busybox", "sh", "-c",
                        "grep ' /scratch ' /proc/mounts")
    assert res.returncode == 0, err(res)
    assert "tmpfs" in out(res) and "size=2048k" in out(res)
    res = engine.docker("run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", "busybox",
                        "sh", "-c", "grep ' /t ' /proc/mounts")
    assert "size=1024k" in out(res), err(res)


def test_docker_run_rm_and_prune(engine):
    before = set(out(engine.docker("volume", "ls", "-q")).split())
    res = engine.docker("run", "--rm", "-v", "/anon", "busybox", "touch", "/anon/x")
    assert res.returncode == 0, err(res)
    assert set(out(engine.docker("volume", "ls", "-q")).split()) == before
    assert engine.docker("volume", "create", "dprune").returncode == 0
    res = engine.docker("volume", "prune", "-f")
    assert res.returncode == 0, err(res)
    assert "dprune" in out(res)
    assert "Total reclaimed space:" in out(res)
    res = engine.docker("system", "df", "-v")
    assert res.returncode == 0, err(res)
    assert "Local Volumes space usage:" in out(res)


def test_sdk_volumes(client):
    vol = client.volumes.create("sdkvol", labels={"k": "v"})
    assert vol.name == "sdkvol" and vol.attrs["Labels"] == {"k": "v"}
    assert client.volumes.get("sdkvol").attrs["Mountpoint"].endswith("/volumes/sdkvol/_data")
    assert "sdkvol" in [v.name for v in client.volumes.list()]
    assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["sdkvol"]
    output = client.containers.run("busybox", ["sh", "-c", "echo sdk > /d/f; cat /d/f"],
                                   volumes={"sdkvol": {"bind": "/d", "mode": "rw"}}, remove=True)
    assert output == b"sdk\n"
    c = client.containers.create("busybox", "true", volumes=["sdkvol:/d:ro"])
    try:
        with pytest.raises(docker.errors.APIError) as ei:
            vol.remove()
        assert ei.value.status_code == 409
        assert c.attrs["Mounts"][0]["Name"] == "sdkvol"
        assert c.attrs["Mounts"][0]["RW"] is False
    finally:
        c.remove(v=True)
    vol.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("sdkvol")
    pruned = client.volumes.prune()
    assert "VolumesDeleted" in pruned and "SpaceReclaimed" in pruned


def test_sdk_mounts_and_binds(client, tmp_path):
    from docker.types import Mount

    (tmp_path / "f").write_text("bound\n")
    output = client.containers.run(
        "busybox", ["sh", "-c", "cat /b/f; grep ' /t ' /proc/mounts | cut -d' ' -f3"],
        mounts=[Mount("/b", str(tmp_path), type="bind", read_only=True),
                Mount("/t", None, type="tmpfs", tmpfs_size="1m")],
        remove=True)
    assert output == b"bound\ntmpfs\n"
