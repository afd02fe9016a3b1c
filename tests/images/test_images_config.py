"""The image config drives `run` (Docker's merge of the image's Config into the
container's): Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts, Labels,
StopSignal (`stop` sends it) and Volumes, end to end on a real daemon."""

from __future__ import annotations

import time

import pytest

from tests.helpers.engine import Engine
from tests.helpers.images import busybox_rootfs_tar

CHANGES = [
    "ENV GREETING=hello PATH=/usr/bin:/bin",
    'ENTRYPOINT ["/bin/sh", "-c"]',
    'CMD ["echo default $GREETING"]',
    "WORKDIR /home/app",
    "USER app",
    "EXPOSE 8080 53/udp",
    "LABEL org.example.role=web tier=front",
    "STOPSIGNAL SIGUSR1",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgcfg")
    bb = str(d / "busybox.tar")
    busybox_rootfs_tar(bb)
    e = Engine()
    try:
        e.start()
        args = ["import"] + [x for c in CHANGES for x in ("-c", c)] + [bb, "cfg/app:1"]
        e.cli(*args, check=True)
        e.cli("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /data", bb, "cfg/vol:1", check=True)
        yield e
    finally:
        e.cleanup()


def run(engine, *args):
    res = engine.cli("run", "--rm", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


def test_entrypoint_cmd_env(engine):
    assert run(engine, "cfg/app:1") == "default hello\n"  # ENTRYPOINT + CMD + ENV
    assert run(engine, "cfg/app:1", "echo $GREETING-$PATH") == "hello-/usr/bin:/bin\n"
    assert run(engine, "-e", "GREETING=bye", "cfg/app:1") == "default bye\n"
    assert run(engine, "--entrypoint", "echo", "cfg/app:1", "plain") == "plain\n"


def test_workdir_and_user(engine):
    assert run(engine, "cfg/app:1", "pwd; id -u; id -g") == "/home/app\n1000\n1000\n"
    assert run(engine, "-u", "0", "-w", "/tmp", "cfg/app:1", "pwd; id -u") == "/tmp\n0\n"


def test_exposed_ports_labels_stopsignal_in_the_container_config(engine):
    cid = engine.cli("create", "-l", "tier=back", "cfg/app:1", check=True).stdout.decode().strip()
    try:
        status, c = engine.request("GET", f"/containers/{cid}/json")
        cfg = c["Config"]
        assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
        assert cfg["Labels"] == {"org.example.role": "web", "tier": "back"}  # the user's wins
        assert cfg["StopSignal"] == "SIGUSR1"
        assert cfg["WorkingDir"] == "/home/app" and cfg["User"] == "app"
        assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["echo default $GREETING"]
        assert "GREETING=hello" in cfg["Env"]
        # the docker CLI shows the same
        res = engine.docker("inspect", "-f", "{{json .Config.ExposedPorts}} {{.Config.StopSignal}}",
                            cid)
        assert res.stdout.decode().strip() == '{"53/udp":{},"8080/tcp":{}} SIGUSR1'
    finally:
        engine.cli("rm", "-f", cid)


@pytest.mark.parametrize("client", ["trioctr", "docker"])
def test_stop_sends_the_images_stopsignal(engine, client):
    script = ("trap 'echo got USR1; exit 7' USR1; trap 'echo got TERM; exit 9' TERM; "
              "echo ready; while :; do sleep 0.1; done")
    cid = engine.cli("run", "-d", "cfg/app:1", script, check=True).stdout.decode().strip()
    try:
        deadline = time.monotonic() + 20
        while b"ready" not in engine.cli("logs", cid).stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        stop = engine.cli if client == "trioctr" else engine.docker
        res = stop("stop", "-t", "10", cid)
        assert res.returncode == 0, res.stderr
        assert engine.cli("logs", cid).stdout.decode() == "ready\ngot USR1\n"
        status, c = engine.request("GET", f"/containers/{cid}/json")
        assert c["State"]["ExitCode"] == 7
    finally:
        engine.cli("rm", "-f", cid)


def test_image_volumes_become_anonymous_volumes(engine):
    cid = engine.cli("create", "cfg/vol:1", check=True).stdout.decode().strip()
    try:
        status, c = engine.request("GET", f"/containers/{cid}/json")
        assert c["Config"]["Volumes"] == {"/data": {}}
        assert [m["Destination"] for m in c["Mounts"]] == ["/data"]
    finally:
        engine.cli("rm", "-f", cid)
