"""The real docker CLI (28) and the Docker SDK for Python drive exec,
pause/unpause and update on trioctrd unchanged."""

from __future__ import annotations

import json
import os
import struct
import time

import pytest

from tests.compat.compat_util import err, out, poll
from tests.helpers.engine import env
from tests.helpers.pty import run_in_pty

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def box(engine):
    res = engine.docker("run", "-d", "--name", "cbox", "busybox", "sleep", "600")
    assert res.returncode == 0, err(res)
    yield out(res).strip()
    engine.docker("rm", "-f", "cbox")


def docker_env(engine) -> dict:
    e = env()
    e["DOCKER_HOST"] = f"unix://{engine.sock}"
    e.pop("DOCKER_CONTEXT", None)
    e["DOCKER_CONFIG"] = os.path.join(engine.base, "docker-config")
    return e


# -- docker CLI --------------------------------------------------------------------
def test_docker_exec_output_and_exit_code(engine, box):
    res = engine.docker("exec", "cbox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3
    assert (out(res), err(res)) == ("out\n", "err\n")


def test_docker_exec_command_not_found(engine, box):
    res = engine.docker("exec", "cbox", "nosuchcmd")
    assert res.returncode == 127
    assert out(res) == ('OCI runtime exec failed: exec failed: unable to start container process: '
                        'exec: "nosuchcmd": executable file not found in $PATH: unknown\r\n')


def test_docker_exec_i_pipes_stdin(engine, box):
    res = engine.docker("exec", "-i", "cbox", "sh", "-c", "read a; read b; echo $b $a; exit 7",
                        input=b"one\ntwo\n")
    assert (res.returncode, out(res)) == (7, "two one\n"), err(res)


def test_docker_exec_d_and_env_workdir_user(engine, box):
    res = engine.docker("exec", "-d", "cbox", "sh", "-c", "echo detached > /tmp/d")
    assert res.returncode == 0 and out(res) == ""
    assert poll(lambda: out(engine.docker("exec", "cbox", "cat", "/tmp/d")) == "detached\n")
    res = engine.docker("exec", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "cbox",
                        "sh", "-c", "echo $A $(pwd) $(id -u)")
    assert out(res) == "1 /tmp 65534\n", err(res)


def test_docker_exec_t_under_a_pty(engine, box):
    code, data, _ = run_in_pty(["docker", "exec", "-it", "cbox", "sh", "-c",
                                   "tty; echo $TERM; [ -t 1 ] && echo out-tty; exit 4"],
                                  docker_env(engine), size=(33, 101))
    text = data.decode(errors="replace")
    assert code == 4, text
    assert "/dev/pts/" in text and "xterm" in text and "out-tty" in text


def test_docker_exec_on_a_stopped_container(engine):
    res = engine.docker("create", "busybox", "true")
    cid = out(res).strip()
    try:
        res = engine.docker("exec", cid, "true")
        assert res.returncode == 1
        assert err(res) == f"Error response from daemon: Container {cid} is not running\n"
    finally:
        engine.docker("rm", cid)


def test_docker_pause_unpause_and_ps(engine):
    res = engine.docker("run", "-d", "--name", "cpause", "busybox", "sleep", "600")
    cid = out(res).strip()
    try:
        assert out(engine.docker("pause", "cpause")) == "cpause\n"
        ps = out(engine.docker("ps", "--filter", "status=paused", "--format", "{{.Names}} {{.Status}}"))
        assert ps.startswith("cpause Up") and ps.strip().endswith("(Paused)")
        fmt = "{{.State.Status}} {{.State.Running}} {{.State.Paused}}"
        assert out(engine.docker("inspect", "-f", fmt, "cpause")) == "paused true true\n"
        res = engine.docker("pause", "cpause")
        assert res.returncode == 1
        assert err(res) == f"Error response from daemon: Container {cid} is already paused\n"
        assert engine.docker("unpause", "cpause").returncode == 0
        assert out(engine.docker("inspect", "-f", fmt, "cpause")) == "running true false\n"
        res = engine.docker("unpause", "cpause")
        assert err(res) == f"Error response from daemon: Container {cid} is not paused\n"
        assert engine.docker("pause", "cpause").returncode == 0
        assert engine.docker("stop", "-t", "1", "cpause").returncode == 0
        assert out(engine.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "cpause")) == "exited 137\n"
        res = engine.docker("pause", "cpause")
        assert err(res) == f"Error response from daemon: Container {cid} is not running\n"
    finally:
        engine.docker("rm", "-f", "cpause")


def test_docker_update(engine):
    res = engine.docker("run", "-d", "--name", "cupd", "busybox", "sleep", "600")
    assert res.returncode == 0
    try:
        res = engine.docker("update", "-m", "48m", "--memory-swap", "96m", "--cpu-shares", "256",
                            "--pids-limit", "30", "cupd")
        assert (res.returncode, out(res)) == (0, "cupd\n"), err(res)
        fmt = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}"
        assert out(engine.docker("inspect", "-f", fmt, "cupd")) == f"{48 << 20} {96 << 20} 256 30\n"
        res = engine.docker("exec", "cupd", "sh", "-c",
                            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
        assert out(res) == f"{48 << 20}\n"
        res = engine.docker("update", "-m", "1m", "cupd")
        assert res.returncode == 1
        assert err(res) == "Error response from daemon: Minimum memory limit allowed is 6MB\n"
    finally:
        engine.docker("rm", "-f", "cupd")


# -- Docker SDK ----------------------------------------------------------------------
def test_sdk_exec_run(client, box):
    c = client.containers.get("cbox")
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"])
    # two pipes: their order is not kept (nor is it by dockerd)
    assert r.exit_code == 5 and sorted(r.output.splitlines()) == [b"err", b"out"]
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert r.exit_code == 0 and r.output == (b"out\n", b"err\n")
    r = c.exec_run("sh -c 'echo $X'", environment={"X": "y"}, workdir="/tmp", user="nobody")
    assert r.output == b"y\n"
    r = c.exec_run("tty", tty=True)
    assert r.output.startswith(b"/dev/pts/")


def test_sdk_exec_streams_live(client, box):
    c = client.containers.get("cbox")
    r = c.exec_run(["sh", "-c", "echo one; sleep 1.5; echo two"], stream=True)
    t0 = time.monotonic()
    got = []
    for chunk in r.output:
        got.append((chunk, time.monotonic() - t0))
    assert b"".join(x for x, _ in got) == b"one\ntwo\n"
    assert got[0][1] < 1.0


def test_sdk_exec_api_and_inspect(client, box):
    api = client.api
    e = api.exec_create("cbox", ["sh", "-c", "sleep 0.5; exit 3"], stdout=True, stderr=True)
    info = api.exec_inspect(e["Id"])
    assert info["Running"] is False and info["ExitCode"] is None
    assert info["ProcessConfig"]["entrypoint"] == "sh"
    api.exec_start(e["Id"], detach=True)
    info = poll(lambda: (i := api.exec_inspect(e["Id"])) and not i["Running"] and i)
    assert info["ExitCode"] == 3 and info["Pid"] > 0
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect("nosuchexec")
    with pytest.raises(docker.errors.APIError) as exc:
        api.exec_start(e["Id"], detach=True)
    assert exc.value.status_code == 409


def test_sdk_exec_with_stdin_socket(client, box):
    api = client.api
    e = api.exec_create("cbox", ["sh", "-c", "cat; echo end"], stdin=True, stdout=True)
    sock = api.exec_start(e["Id"], socket=True)
    raw = sock._sock
    raw.sendall(b"hello\n")
    raw.shutdown(1)  # SHUT_WR: the exec's stdin is closed
    data = b""
    raw.settimeout(20)
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    payload = b""
    while data:
        size = struct.unpack(">I", data[4:8])[0]
        payload += data[8:8 + size]
        data = data[8 + size:]
    assert payload == b"hello\nend\n"
    assert poll(lambda: api.exec_inspect(e["Id"])["ExitCode"] == 0)


def test_sdk_pause_unpause_update(client):
    c = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        c.pause()
        c.reload()
        assert c.status == "paused" and c.attrs["State"]["Paused"] is True
        docker = pytest.importorskip("docker")
        with pytest.raises(docker.errors.APIError) as exc:
            c.pause()
        assert exc.value.status_code == 409
        with pytest.raises(docker.errors.APIError) as exc:
            c.exec_run("true")
        assert exc.value.status_code == 409
        c.unpause()
        c.reload()
        assert c.status == "running"
        assert c.update(mem_limit="40m", memswap_limit="80m", cpu_shares=300) == {"Warnings": []}
        c.reload()
        hc = c.attrs["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"]) == (40 << 20, 80 << 20, 300)
        with pytest.raises(docker.errors.APIError) as exc:
            c.update(mem_limit="1m")
        assert exc.value.status_code == 400 and "Minimum memory limit allowed is 6MB" in exc.value.explanation
    finally:
        c.remove(force=True)


def test_sdk_exec_events(client, box):
    since = time.time()
    client.containers.get("cbox").exec_run(["sh", "-c", "exit 1"])
    evs = list(client.events(since=since, until=time.time() + 1, decode=True,
                             filters={"event": ["exec_create", "exec_start", "exec_die"]}))
    assert [e["Action"].split(":")[0] for e in evs] == ["exec_create", "exec_start", "exec_die"]
    assert evs[-1]["Actor"]["Attributes"]["exitCode"] == "1"
    assert json.dumps(evs)  # plain JSON
