"""The Docker SDK for Python (docker 7.x) drives trioctrd unchanged: the
container lifecycle, events, images, and Docker's error types and codes."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.compat.compat_util import poll

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.root

LOOP = "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done"


def test_ping_version_info(client):
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] == "1.41" and v["Os"] == "linux"
    assert client.api.api_version == "1.41"  # negotiated, not the SDK's default
    info = client.info()
    assert info["Driver"] == "overlay2" and info["Images"] >= 1
    assert isinstance(info["Containers"], int)


def test_run_returns_the_output(client):
    assert client.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True) == b"hi\n"
    out = client.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True,
                                stdout=False, stderr=True)
    assert out == b"err\n"


def test_run_with_a_failing_command_raises_container_error(client):
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo out; echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3
    assert info.value.stderr == b"bad\n"
    assert poll(lambda: client.containers.list(all=True) == [])


def test_command_not_found_is_an_api_error(client):
    with pytest.raises(docker.errors.APIError) as info:
        client.containers.run("busybox", ["no-such-command"], remove=True)
    assert info.value.status_code == 400
    assert 'exec: "no-such-command": executable file not found in $PATH' in info.value.explanation
    for c in client.containers.list(all=True):
        c.remove(force=True)


def test_detached_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", LOOP], detach=True, name="sdk-web",
                              labels={"app": "sdk"}, mem_limit="64m", environment={"FOO": "bar"})
    try:
        assert re.fullmatch(r"[0-9a-f]{64}", c.id) and c.name == "sdk-web"
        c.reload()
        assert c.status == "running"
        assert poll(lambda: c.logs() == b"up\n")
        assert [x.id for x in client.containers.list()] == [c.id]
        assert [x.name for x in client.containers.list(filters={"label": "app=sdk"})] == ["sdk-web"]
        assert client.containers.list(filters={"label": "app=other"}) == []
        assert client.containers.get("sdk-web").id == c.id
        assert client.containers.get(c.id[:10]).id == c.id
        # inspect fields
        a = c.attrs
        assert a["Name"] == "/sdk-web" and a["Id"] == c.id
        assert a["State"]["Running"] is True and a["State"]["Pid"] > 0
        assert a["Config"]["Labels"] == {"app": "sdk"} and "FOO=bar" in a["Config"]["Env"]
        assert a["HostConfig"]["Memory"] == 64 * 1024 * 1024
        assert c.image.tags == ["busybox:latest"]
        # logs streamed and followed, while the container stops
        lines = []

        def follow():
            for chunk in c.logs(stream=True, follow=True):
                lines.append(chunk)

        t = threading.Thread(target=follow)
        t.start()
        time.sleep(0.5)
        c.stop(timeout=5)
        t.join(20)
        assert not t.is_alive()
        assert b"".join(lines) == b"up\nbye\n"
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 0
        assert c.wait() == {"StatusCode": 0, "Error": None}
        assert client.containers.list() == []
        assert [x.id for x in client.containers.list(all=True)] == [c.id]
        assert [x.id for x in client.containers.list(all=True, filters={"status": "exited"})] == [c.id]
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("sdk-web")


def test_wait_kill_restart(client):
    c = client.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 7"], detach=True)
    assert c.wait(timeout=20) == {"StatusCode": 7, "Error": None}
    c.remove()
    c = client.containers.run("busybox", ["sh", "-c",
                                          "trap 'echo usr1' USR1; " + LOOP], detach=True)
    try:
        assert poll(lambda: b"up" in c.logs())
        c.kill(signal="SIGUSR1")
        assert poll(lambda: b"usr1" in c.logs())
        c.reload()
        assert c.status == "running"
        pid = c.attrs["State"]["Pid"]
        c.restart(timeout=5)
        c.reload()
        assert c.status == "running" and c.attrs["State"]["Pid"] != pid
        c.kill()
        assert c.wait(timeout=20)["StatusCode"] == 137
        with pytest.raises(docker.errors.APIError) as info:
            c.kill()
        assert info.value.status_code == 409
        assert f"Container {c.id} is not running" in info.value.explanation
        c.start()
        c.reload()
        assert c.status == "running"
    finally:
        c.remove(force=True)


def test_low_level_create_start_wait(client):
    api = client.api
    cont = api.create_container("busybox", ["sh", "-c", "echo low; exit 4"], name="sdk-low",
                                host_config=api.create_host_config(mem_limit="32m"))
    cid = cont["Id"]
    try:
        assert api.inspect_container(cid)["State"]["Status"] == "created"
        api.start(cid)
        assert api.wait(cid) == {"StatusCode": 4, "Error": None}
        assert api.logs(cid) == b"low\n"
        assert api.inspect_container("sdk-low")["HostConfig"]["Memory"] == 32 * 1024 * 1024
    finally:
        api.remove_container(cid, force=True)


def test_events_since_until(client):
    t0 = time.time()
    client.containers.run("busybox", ["true"], remove=True, name="sdk-evt")
    assert poll(lambda: client.containers.list(all=True, filters={"name": "sdk-evt"}) == [])
    t1 = time.time() + 0.01
    evs = list(client.events(since=t0, until=t1, decode=True, filters={"container": "sdk-evt"}))
    actions = [e["Action"] for e in evs]
    for want in ("create", "start", "die", "destroy"):
        assert want in actions, actions
    die = evs[actions.index("die")]
    assert die["Type"] == "container" and die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["name"] == "sdk-evt"
    # a live stream sees a container's events as they happen
    stream = client.events(decode=True, filters={"type": "container", "event": "create"})
    try:
        client.containers.create("busybox", ["true"], name="sdk-evt2")
        ev = next(iter(stream))
        assert ev["Action"] == "create" and ev["Actor"]["Attributes"]["name"] == "sdk-evt2"
    finally:
        stream.close()
        client.containers.get("sdk-evt2").remove()


def test_errors_have_docker_s_types_and_codes(client):
    with pytest.raises(docker.errors.NotFound) as info:
        client.containers.get("nope-x")
    assert info.value.status_code == 404
    assert info.value.explanation == "No such container: nope-x"
    with pytest.raises(docker.errors.NotFound):
        client.api.stop("nope-x")
    with pytest.raises(docker.errors.NotFound):
        client.api.logs("nope-x")
    with pytest.raises(docker.errors.ImageNotFound) as info:
        client.containers.create("nosuchimage:v9", ["true"])
    assert info.value.status_code == 404
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="sdk-busy")
    try:
        with pytest.raises(docker.errors.APIError) as info:
            c.remove()
        assert info.value.status_code == 409
        assert info.value.explanation == ('cannot remove container "/sdk-busy": container is running: '
                                          "stop the container before removing or force remove")
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.create("busybox", ["true"], name="sdk-busy")
        assert info.value.status_code == 409 and "is already in use" in info.value.explanation
        with pytest.raises(docker.errors.APIError) as info:
            client.api.kill(c.id, signal="NOPE")
        assert info.value.status_code == 400
        assert info.value.explanation == f"cannot kill container: {c.id}: Invalid signal: NOPE"
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.create("busybox", ["true"], name="bad name!")
        assert info.value.status_code == 400 and "Invalid container name" in info.value.explanation
    finally:
        c.remove(force=True)


def test_images_with_the_sdk(client, busybox_tar):
    with open(busybox_tar, "rb") as f:
        client.api.import_image_from_data(f.read(), repository="sdkimg", tag="v1",
                                          changes=['CMD ["echo", "sdk-image"]'])
    img = client.images.get("sdkimg:v1")
    assert img.tags == ["sdkimg:v1"] and img.id.startswith("sha256:")
    assert client.containers.run("sdkimg:v1", remove=True) == b"sdk-image\n"
    assert "sdkimg:v1" in [t for i in client.images.list() for t in i.tags]
    img.tag("sdkimg", "v2")
    assert sorted(client.images.get("sdkimg:v2").tags) == ["sdkimg:v1", "sdkimg:v2"]
    client.images.remove("sdkimg:v1")
    client.images.remove("sdkimg:v2")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("sdkimg:v1")
