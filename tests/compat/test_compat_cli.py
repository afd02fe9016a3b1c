"""The real docker CLI (28, API 1.41 negotiated through /_ping) drives
trioctrd unchanged: the container lifecycle, events, images, and Docker's
error messages and exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.compat.compat_util import err, out, poll
from tests.helpers.engine import env

pytestmark = pytest.mark.root

NO_SUCH = "Error response from daemon: No such container: nope-x\n"


def docker_popen(engine, *args: str) -> subprocess.Popen:
    e = env()
    e["DOCKER_HOST"] = f"unix://{engine.sock}"
    e.pop("DOCKER_CONTEXT", None)
    e["DOCKER_CONFIG"] = os.path.join(engine.base, "docker-config")
    return subprocess.Popen(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)


def ids(engine, *args: str) -> list[str]:
    return out(engine.docker("ps", "-aq", "--no-trunc", *args)).split()


def test_run_prints_output_and_returns_the_exit_code(engine):
    res = engine.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert res.returncode == 3, err(res)
    assert out(res) == "hi\n"
    assert err(res) == "oops\n"
    res = engine.docker("run", "--rm", "busybox", "true")
    assert (res.returncode, out(res), err(res)) == (0, "", "")
    # --rm: nothing is left behind
    assert poll(lambda: ids(engine) == [], 10), ids(engine)


def test_run_keeps_the_container_without_rm(engine):
    res = engine.docker("run", "--name", "kept", "busybox", "sh", "-c", "echo kept; exit 5")
    assert res.returncode == 5 and out(res) == "kept\n", err(res)
    res = engine.docker("ps", "-a", "--filter", "name=kept", "--format", "{{.Names}} {{.Status}}")
    assert re.match(r"^kept Exited \(5\) ", out(res)), out(res)
    assert out(engine.docker("logs", "kept")) == "kept\n"
    assert out(engine.docker("rm", "kept")) == "kept\n"


def test_run_command_not_found_is_127_and_not_executable_126(engine):
    res = engine.docker("run", "--rm", "busybox", "no-such-command")
    assert res.returncode == 127, err(res)
    assert "Error response from daemon:" in err(res)
    assert 'exec: "no-such-command": executable file not found in $PATH' in err(res)
    res = engine.docker("run", "--rm", "busybox", "/etc/passwd")
    assert res.returncode == 126, err(res)
    assert "permission denied" in err(res)
    assert poll(lambda: ids(engine) == [], 10), ids(engine)


def test_detached_run_ps_logs_follow_stop_rm(engine):
    res = engine.docker("run", "-d", "--name", "web", "-l", "app=demo", "busybox", "sh", "-c",
                        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    try:
        assert poll(lambda: out(engine.docker("logs", "web")) == "started\n"), err(res)
        ps = out(engine.docker("ps"))
        assert "web" in ps and cid[:12] in ps and "Up " in ps and "busybox" in ps
        assert out(engine.docker("ps", "-q")).split() == [cid[:12]]
        fmt = out(engine.docker("ps", "--format", "{{.ID}}|{{.Names}}|{{.Image}}|{{.Labels}}|{{.State}}"))
        assert fmt == f"{cid[:12]}|web|busybox|app=demo|running\n"
        # logs -f follows until the container stops
        follow = docker_popen(engine, "logs", "-f", "web")
        time.sleep(0.5)
        assert follow.poll() is None
        res = engine.docker("stop", "web")
        assert res.returncode == 0 and out(res) == "web\n", err(res)
        fout, ferr = follow.communicate(timeout=20)
        assert follow.returncode == 0, ferr
        assert fout == b"started\nbye\n"
        ps = out(engine.docker("ps", "-a", "--filter", "name=web", "--format", "{{.Status}}"))
        assert ps.startswith("Exited (0) "), ps
        assert out(engine.docker("ps", "-q")) == ""
        assert out(engine.docker("logs", "--tail", "1", "web")) == "bye\n"
        res = engine.docker("rm", "web")
        assert res.returncode == 0 and out(res) == "web\n", err(res)
        assert cid not in ids(engine)
    finally:
        engine.docker("rm", "-f", "web")


def test_logs_separates_stdout_and_stderr(engine):
    res = engine.docker("run", "--name", "streams", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert res.returncode == 0
    res = engine.docker("logs", "streams")
    assert (out(res), err(res)) == ("out\n", "err\n")
    res = engine.docker("logs", "-t", "streams")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out\n$", out(res)), out(res)
    engine.docker("rm", "streams")


def test_wait_prints_the_exit_code(engine):
    cid = out(engine.docker("run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 7")).strip()
    res = engine.docker("wait", cid)
    assert (res.returncode, out(res)) == (0, "7\n"), err(res)
    # an exited container: at once, the same code
    res = engine.docker("wait", cid[:12])
    assert (res.returncode, out(res)) == (0, "7\n"), err(res)
    engine.docker("rm", cid)


def test_inspect_fields(engine):
    res = engine.docker("run", "-d", "--name", "insp", "-m", "64m", "-l", "tier=web", "-e", "FOO=bar",
                        "-w", "/tmp", "--hostname", "boxy", "busybox", "sleep", "60")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    try:
        res = engine.docker("inspect", "insp")
        assert res.returncode == 0, err(res)
        [info] = json.loads(out(res))
        assert info["Id"] == cid
        assert info["Name"] == "/insp"
        assert info["Created"].endswith("Z")
        st = info["State"]
        assert st["Status"] == "running" and st["Running"] is True and st["Pid"] > 0
        assert st["ExitCode"] == 0 and st["OOMKilled"] is False and st["Paused"] is False
        assert st["StartedAt"].startswith(time.strftime("%Y-", time.gmtime()))
        assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
        cfg = info["Config"]
        assert cfg["Image"] == "busybox"
        assert cfg["Cmd"] == ["sleep", "60"]
        assert "FOO=bar" in cfg["Env"] and any(e.startswith("PATH=") for e in cfg["Env"])
        assert cfg["Labels"] == {"tier": "web"}
        assert cfg["WorkingDir"] == "/tmp" and cfg["Hostname"] == "boxy"
        assert info["Path"] == "sleep" and info["Args"] == ["60"]
        assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024
        assert info["Image"].startswith("sha256:")
        fmt = "{{.State.Status}} {{.Name}} {{.HostConfig.Memory}} {{.Config.Image}} {{.State.Running}}"
        res = engine.docker("inspect", "--format", fmt, cid[:12])
        assert out(res) == "running /insp 67108864 busybox true\n", err(res)
        res = engine.docker("container", "inspect", "-f", "{{json .Config.Labels}}", "insp")
        assert out(res) == '{"tier":"web"}\n'
        # the init really is the pid that inspect reports
        with open(f"/proc/{st['Pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"sleep"
        engine.docker("kill", "insp")
        res = engine.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}", "insp")
        assert poll(lambda: out(engine.docker("inspect", "-f", "{{.State.Status}}", "insp")) == "exited\n")
        res = engine.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}", "insp")
        assert out(res) == "exited 137 0\n"
    finally:
        engine.docker("rm", "-f", "insp")


def test_kill_with_a_signal(engine):
    script = ("trap 'echo got-usr1' USR1; trap 'echo got-term; exit 9' TERM; echo ready; "
              "while true; do sleep 0.1; done")
    cid = out(engine.docker("run", "-d", "busybox", "sh", "-c", script)).strip()
    try:
        assert poll(lambda: "ready" in out(engine.docker("logs", cid)))
        res = engine.docker("kill", "-s", "USR1", cid)
        assert res.returncode == 0 and out(res) == cid + "\n", err(res)
        assert poll(lambda: "got-usr1" in out(engine.docker("logs", cid)))
        assert out(engine.docker("inspect", "-f", "{{.State.Running}}", cid)) == "true\n"
        res = engine.docker("kill", "--signal", "SIGTERM", cid)
        assert res.returncode == 0, err(res)
        assert out(engine.docker("wait", cid)) == "9\n"
        assert out(engine.docker("logs", cid)) == "ready\ngot-usr1\ngot-term\n"
        # a stopped container cannot be killed: Docker's 409
        res = engine.docker("kill", cid)
        assert res.returncode == 1
        assert err(res) == (f"Error response from daemon: cannot kill container: {cid}: "
                            f"Container {cid} is not running\n"), err(res)
        res = engine.docker("kill", "-s", "NOSUCHSIG", cid[:12])
        assert res.returncode == 1
        assert err(res) == (f"Error response from daemon: cannot kill container: {cid[:12]}: "
                            "Invalid signal: NOSUCHSIG\n"), err(res)
    finally:
        engine.docker("rm", "-f", cid)


def test_default_kill_is_sigkill(engine):
    cid = out(engine.docker("run", "-d", "busybox", "sleep", "60")).strip()
    assert engine.docker("kill", cid).returncode == 0
    assert out(engine.docker("wait", cid)) == "137\n"
    engine.docker("rm", cid)


def test_restart(engine):
    res = engine.docker("run", "-d", "--name", "rs", "busybox", "sh", "-c",
                        "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    assert res.returncode == 0, err(res)
    try:
        assert poll(lambda: out(engine.docker("logs", "rs")) == "started\n")
        pid0, started0 = out(engine.docker("inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", "rs")).split()
        res = engine.docker("restart", "-t", "5", "rs")
        assert (res.returncode, out(res)) == (0, "rs\n"), err(res)
        pid1, started1 = out(engine.docker("inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", "rs")).split()
        assert pid1 != pid0 and started1 > started0
        assert out(engine.docker("inspect", "-f", "{{.State.Status}}", "rs")) == "running\n"
        assert poll(lambda: out(engine.docker("logs", "rs")) == "started\nstarted\n")
        # a stopped container: restart starts it
        assert engine.docker("stop", "rs").returncode == 0
        assert engine.docker("restart", "rs").returncode == 0
        assert out(engine.docker("inspect", "-f", "{{.State.Status}}", "rs")) == "running\n"
        # docker start of a running container is a no-op (304)
        res = engine.docker("start", "rs")
        assert (res.returncode, out(res)) == (0, "rs\n"), err(res)
    finally:
        engine.docker("rm", "-f", "rs")


def test_create_then_start(engine):
    res = engine.docker("create", "--name", "cs", "busybox", "sh", "-c", "echo made; exit 2")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    assert out(engine.docker("inspect", "-f", "{{.State.Status}}", "cs")) == "created\n"
    ps = out(engine.docker("ps", "-a", "--filter", "status=created", "--format", "{{.Names}} {{.Status}}"))
    assert ps == "cs Created\n"
    res = engine.docker("start", "-a", "cs")
    assert (res.returncode, out(res)) == (2, "made\n"), err(res)
    res = engine.docker("rm", cid)
    assert res.returncode == 0


def test_start_attached_on_an_exited_container_shows_the_new_run_only(engine):
    res = engine.docker("run", "--name", "again", "busybox", "sh", "-c", "echo run; exit 3")
    assert (res.returncode, out(res)) == (3, "run\n"), err(res)
    # `docker start -a` attaches (to a stopped container) before it starts it
    res = engine.docker("start", "-a", "again")
    assert (res.returncode, out(res)) == (3, "run\n"), err(res)
    logs = engine.docker("logs", "again")
    assert out(logs) == "run\nrun\n"
    engine.docker("rm", "again")


def test_image_names_with_slashes_and_a_registry_port(engine):
    name = "localhost:5000/team/app:1"
    res = engine.docker("tag", "busybox", name)
    assert res.returncode == 0, err(res)
    try:
        res = engine.docker("image", "inspect", "-f", "{{json .RepoTags}}", name)
        assert res.returncode == 0 and name in json.loads(out(res)), err(res)
        res = engine.docker("history", "-q", name)
        assert res.returncode == 0 and out(res).strip(), err(res)
    finally:
        res = engine.docker("rmi", name)
    assert (res.returncode, out(res)) == (0, f"Untagged: {name}\n"), err(res)
    res = engine.docker("image", "inspect", name)
    assert res.returncode == 1 and f"No such image: {name}" in err(res)


def test_events_since_until_as_json(engine):
    t0 = time.time()
    res = engine.docker("run", "--rm", "--name", "evt", "-l", "k=v", "busybox", "true")
    assert res.returncode == 0, err(res)
    assert poll(lambda: "evt" not in out(engine.docker("ps", "-a")))
    t1 = time.time() + 0.001
    res = engine.docker("events", "--since", f"{t0:.6f}", "--until", f"{t1:.6f}",
                        "--format", "{{json .}}", "--filter", "type=container")
    assert res.returncode == 0, err(res)
    evs = [json.loads(line) for line in out(res).splitlines()]
    actions = [e["Action"] for e in evs]
    for want in ("create", "attach", "start", "die", "destroy"):
        assert want in actions, actions
    assert actions.index("create") < actions.index("start") < actions.index("die") < actions.index("destroy")
    ev = evs[actions.index("die")]
    assert ev["Type"] == "container" and ev["status"] == "die" and ev["from"] == "busybox"
    assert ev["id"] == ev["Actor"]["ID"] and len(ev["id"]) == 64
    attrs = ev["Actor"]["Attributes"]
    assert attrs["name"] == "evt" and attrs["image"] == "busybox" and attrs["exitCode"] == "0"
    assert attrs["k"] == "v"
    assert ev["scope"] == "local"
    assert abs(ev["timeNano"] / 1e9 - ev["time"]) < 1
    assert t0 - 1 <= ev["time"] <= t1 + 1
    # the default format, and filters by event and container name
    res = engine.docker("events", "--since", f"{t0:.6f}", "--until", f"{t1:.6f}",
                        "--filter", "event=die", "--filter", "container=evt")
    lines = out(res).splitlines()
    assert len(lines) == 1, lines
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z container die [0-9a-f]{64} \(.*exitCode=0.*name=evt.*\)$",
                    lines[0]), lines


def test_events_live_stream(engine):
    proc = docker_popen(engine, "events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
                        "--filter", "container=live")
    try:
        time.sleep(1.0)
        assert engine.docker("run", "--rm", "--name", "live", "busybox", "true").returncode == 0
        seen = []
        deadline = time.time() + 20
        while time.time() < deadline and "container destroy live" not in seen:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.decode().strip())
        assert seen[0] == "container create live", seen
        assert "container destroy live" in seen, seen
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_version_and_info(engine):
    res = engine.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}} {{.Client.APIVersion}}")
    assert res.returncode == 0, err(res)
    assert out(res) == "1.41 linux 1.41\n"
    res = engine.docker("version")
    assert res.returncode == 0 and "Server: trioctr" in out(res), out(res) + err(res)
    res = engine.docker("info", "--format", "{{json .}}")
    assert res.returncode == 0, err(res)
    info = json.loads(out(res))
    assert info["Driver"] == "overlay2" and info["OSType"] == "linux"
    assert info["Images"] >= 1 and info["LoggingDriver"] == "json-file"
    res = engine.docker("info")
    assert res.returncode == 0, err(res)
    assert "Server Version: " in out(res) and "Storage Driver: overlay2" in out(res)
    assert "ERROR" not in out(res) + err(res)


@pytest.mark.parametrize("verb", [("logs",), ("stop",), ("kill",), ("rm",), ("wait",), ("restart",),
                                  ("start",), ("top",), ("port",), ("rename",), ("stats", "--no-stream")])
def test_unknown_container_is_docker_s_error(engine, verb):
    args = [*verb, "nope-x"] + (["new-name"] if verb[0] == "rename" else [])
    res = engine.docker(*args)
    assert res.returncode == 1, (out(res), err(res))
    if verb[0] == "kill":
        assert err(res) == ("Error response from daemon: cannot kill container: nope-x: "
                            "No such container: nope-x\n"), err(res)
    elif verb[0] == "stats":
        assert "No such container: nope-x" in err(res), err(res)
    else:
        assert err(res).startswith(NO_SUCH), err(res)


def test_inspect_unknown_object(engine):
    res = engine.docker("inspect", "nope-x")
    assert res.returncode == 1
    assert out(res) == "[]\n"
    assert err(res) == "Error: No such object: nope-x\n", err(res)
    res = engine.docker("container", "inspect", "nope-x")
    assert res.returncode == 1
    assert err(res) == "Error response from daemon: No such container: nope-x\n", err(res)


def test_rm_of_a_running_container_needs_force(engine):
    cid = out(engine.docker("run", "-d", "--name", "busy", "busybox", "sleep", "60")).strip()
    try:
        res = engine.docker("rm", "busy")
        assert res.returncode == 1
        assert err(res) == ('Error response from daemon: cannot remove container "/busy": container is '
                            "running: stop the container before removing or force remove\n"), err(res)
        assert out(engine.docker("inspect", "-f", "{{.State.Running}}", "busy")) == "true\n"
        res = engine.docker("rm", "-f", "busy")
        assert (res.returncode, out(res)) == (0, "busy\n"), err(res)
        assert cid not in ids(engine)
    finally:
        engine.docker("rm", "-f", "busy")


def test_name_conflict_and_invalid_name(engine):
    cid = out(engine.docker("create", "--name", "dup", "busybox", "true")).strip()
    try:
        res = engine.docker("create", "--name", "dup", "busybox", "true")
        assert res.returncode == 1  # the CLI's create says 1 where run says 125
        assert (f'Conflict. The container name "/dup" is already in use by container "{cid}". '
                "You have to remove (or rename) that container to be able to reuse that name.") in err(res)
        res = engine.docker("run", "--name", "bad name!", "busybox", "true")
        assert res.returncode == 125
        assert "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in err(res)
    finally:
        engine.docker("rm", "-f", "dup")


def test_run_of_an_unknown_image(engine):
    res = engine.docker("run", "--rm", "--pull", "never", "nosuchimage:v9", "true")
    assert res.returncode == 125
    assert "No such image: nosuchimage:v9" in err(res), err(res)


def test_images_import_and_rmi(engine, busybox_tar):
    res = engine.docker("import", "-c", 'CMD ["echo", "from-import"]', busybox_tar, "imported:v1")
    assert res.returncode == 0, err(res)
    image_id = out(res).strip()
    assert image_id.startswith("sha256:")
    with open(busybox_tar, "rb") as f:
        res = engine.docker("import", "-m", "via stdin", "-", "imported:v2", input=f.read())
    assert res.returncode == 0, err(res)
    res = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    listing = out(res).splitlines()
    assert f"imported:v1 {image_id[7:19]}" in listing, listing
    assert any(x.startswith("imported:v2 ") for x in listing) and any(x.startswith("busybox:latest ") for x in listing)
    res = engine.docker("image", "inspect", "-f", "{{json .Config.Cmd}} {{.Os}}", "imported:v1")
    assert out(res) == '["echo","from-import"] linux\n', err(res)
    res = engine.docker("run", "--rm", "imported:v1")
    assert (res.returncode, out(res)) == (0, "from-import\n"), err(res)
    user = out(engine.docker("create", "imported:v2", "true")).strip()
    res = engine.docker("rmi", "imported:v2")
    assert res.returncode == 1
    assert err(res).startswith('Error response from daemon: conflict: unable to remove repository reference '
                               f'"imported:v2" (must force) - container {user[:12]} is using its referenced '
                               "image "), err(res)
    engine.docker("rm", user)
    res = engine.docker("tag", "imported:v1", "again:latest")
    assert res.returncode == 0, err(res)
    res = engine.docker("rmi", "imported:v1", "imported:v2")
    assert res.returncode == 0, err(res)
    assert "Untagged: imported:v1" in out(res) and "Untagged: imported:v2" in out(res)
    res = engine.docker("rmi", "again")
    assert res.returncode == 0 and f"Deleted: {image_id}" in out(res), out(res) + err(res)
    assert "imported" not in out(engine.docker("images"))
    res = engine.docker("rmi", "nope-img")
    assert res.returncode == 1
    assert err(res) == "Error response from daemon: No such image: nope-img:latest\n", err(res)
