"""The CLI as a subprocess against a fake Docker-API server: what it sends, what it
prints, how it exits.  (The real daemon is exercised by tests/integration.)"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.conftest import run_cli, cli_env, ROOT
from tests.cli.fakedaemon import Reply, error, frame

CID = "c0ffee" + "0" * 58
NOW = int(time.time())


def lines(b):
    return b.decode().splitlines()


# --- no daemon, bad usage ------------------------------------------------------------------

@pytest.mark.parametrize("args", [["ps"], ["images"], ["stop", "x"], ["logs", "x"],
                                  ["inspect", "x"], ["events"], ["info"], ["rm", "-f", "x"],
                                  ["exec", "x", "true"], ["pull", "busybox"], ["create", "busybox"]])
def test_no_daemon_is_one_line_exit_1(tmp_path, args):
    host = "unix://%s/nope.sock" % tmp_path
    res = run_cli(*args, host=host)
    assert res.returncode == 1
    # docker prints "Using default tag: latest" before it connects, so do we
    assert res.stdout == (b"Using default tag: latest\n" if args[0] == "pull" else b"")
    assert res.stderr.decode() == ("Cannot connect to the trioctr daemon at %s. Is the trioctr "
                                   "daemon running?\n" % host)


def test_no_daemon_default_host_and_env(tmp_path):
    if os.path.exists("/run/trioctr/trioctr.sock"):
        pytest.skip("a trioctrd listens on the default socket of this host")
    res = run_cli("ps")
    assert res.returncode == 1
    assert lines(res.stderr) == ["Cannot connect to the trioctr daemon at "
                                 "unix:///run/trioctr/trioctr.sock. Is the trioctr daemon running?"]
    host = "unix://%s/env.sock" % tmp_path
    res = run_cli("ps", env={"TRIOCTR_HOST": host})
    assert host in res.stderr.decode() and res.returncode == 1


def test_no_daemon_run_is_one_line_and_exit_1(tmp_path):
    # docker says this in three lines and exits 125; our issue asks every
    # command for one clear line and exit 1 when no daemon answers
    host = "unix://%s/nope.sock" % tmp_path
    res = run_cli("run", "busybox", host=host)
    assert res.returncode == 1
    assert lines(res.stderr) == [
        "Cannot connect to the trioctr daemon at %s. Is the trioctr daemon running?" % host]


def test_no_daemon_version_prints_client_then_error(tmp_path):
    host = "unix://%s/nope.sock" % tmp_path
    res = run_cli("version", host=host)
    assert res.returncode == 1
    out = lines(res.stdout)
    assert out[0] == "Client:" and out[1].startswith(" Version:           ")
    assert len(lines(res.stderr)) == 1


def test_usage_errors_and_help():
    res = run_cli("ps", "--foo")
    assert res.returncode == 125 and res.stdout == b""
    assert lines(res.stderr) == ["unknown flag: --foo", "", "Usage:  trioctr ps [OPTIONS]", "",
                                 "Run 'trioctr ps --help' for more information"]
    res = run_cli("run", "--foo", "busybox")
    assert res.returncode == 125
    res = run_cli("nosuch")
    assert res.returncode == 1
    assert lines(res.stderr) == ["trioctr: unknown command: trioctr nosuch", "",
                                 "Run 'trioctr --help' for more information"]
    res = run_cli("stop")
    assert res.returncode == 1 and "requires at least 1 argument" in res.stderr.decode()
    res = run_cli("--help")
    assert res.returncode == 0 and res.stdout.startswith(b"Usage:  trioctr [OPTIONS] COMMAND")
    res = run_cli()
    assert res.returncode == 0 and b"Common Commands:" in res.stdout
    res = run_cli("ps", "--help")
    assert res.returncode == 0 and res.stdout.startswith(b"Usage:  trioctr ps [OPTIONS]")
    res = run_cli("help", "run")
    assert res.returncode == 0 and res.stdout.startswith(b"Usage:  trioctr run [OPTIONS] IMAGE")
    res = run_cli("login")  # docker's answer without a terminal and without -u/-p
    assert res.returncode == 1 and res.stderr == \
        b"Error: Cannot perform an interactive login from a non TTY device\n"
    res = run_cli("-H", "unix:///a", "-H", "unix:///b", "ps")
    assert res.returncode == 1 and lines(res.stderr) == ["Specify only one -H"]
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith(b"trioctr version ")


def test_host_from_env(fake):
    fake.routes["GET /containers/json"] = Reply(body=[])
    res = run_cli("ps", "-q", env={"TRIOCTR_HOST": fake.host})
    assert res.returncode == 0, res.stderr
    res = run_cli("ps", "-q", env={"DOCKER_HOST": fake.host})
    assert res.returncode == 0, res.stderr
    assert len(fake.find("GET", "/containers/json")) == 2


def test_only_the_stdlib_is_imported(fake):
    fake.routes["GET /containers/json"] = Reply(body=[])
    code = ("import sys; sys.argv = ['trioctr', '-H', %r, 'ps']\n"
            "from cli.main import main\n"
            "rc = main()\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('trio', 'attr', 'attrs', 'cattrs', 'msgpack', 'h11', 'actors', 'messages', 'oci')"
            " or m in ('http.client', 'ssl', 'email', 'argparse')]\n"
            "print(bad)\n" % fake.host)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         env=cli_env(), timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines()[-1] == "[]"


# --- container listing and simple commands ------------------------------------------------------

def test_ps_table_query_and_quiet(cli, fake):
    fake.routes["GET /containers/json"] = Reply(body=[
        {"Id": CID, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:" + "1" * 64,
         "Command": "sh -c 'echo hi; sleep 1000000'", "Created": int(time.time()) - 130, "State": "running",
         "Status": "Up 2 minutes", "Ports": [], "Labels": {}}])
    res = cli("ps", "-a", "-f", "status=running", "-n", "2")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == ("CONTAINER ID   IMAGE     COMMAND                  CREATED         "
                      "STATUS         PORTS     NAMES")
    assert out[1].startswith("c0ffee000000   busybox   \"sh -c 'echo hi; sle\u2026\"   2 minutes ago")
    assert out[1].endswith("   Up 2 minutes             web")
    q = fake.requests[-1].query
    assert q["all"] == ["1"] and q["limit"] == ["2"]
    assert json.loads(q["filters"][0]) == {"status": {"running": True}}
    res = cli("ps", "-q", "--no-trunc")
    assert res.stdout.decode() == CID + "\n"
    res = cli("ps", "--format", "{{.Names}} {{.Status}}")
    assert res.stdout.decode() == "web Up 2 minutes\n"
    res = cli("ps", "--format", "{{json .}}")
    assert json.loads(res.stdout)["Names"] == "web"


def test_ps_accepts_chunked_json(cli, fake):
    body = json.dumps([{"Id": CID, "Names": ["/a"], "Created": NOW}]).encode()
    fake.routes["GET /containers/json"] = Reply(chunks=[body[:7], body[7:20], body[20:]])
    res = cli("ps", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"c0ffee000000\n"


def test_daemon_errors_json_and_text(cli, fake):
    fake.routes["GET /containers/json"] = error(500, "something broke")
    res = cli("ps")
    assert res.returncode == 1
    assert res.stderr == b"Error response from daemon: something broke\n"
    fake.routes["GET /containers/json"] = Reply(500, "plain text failure", ctype="text/plain")
    res = cli("ps")
    assert res.stderr == b"Error response from daemon: plain text failure\n"


def test_rm_continues_after_errors_and_exits_1(cli, fake):
    fake.routes["DELETE /containers/a"] = Reply(204)
    fake.routes["DELETE /containers/b"] = error(
        409, 'cannot remove container "/b": container is running: stop the container before '
             'removing or force remove')
    fake.routes["DELETE /containers/c"] = error(404, "No such container: c")
    res = cli("rm", "a", "b", "c")
    assert res.returncode == 1
    assert res.stdout == b"a\n"
    assert lines(res.stderr) == [
        'Error response from daemon: cannot remove container "/b": container is running: stop '
        'the container before removing or force remove',
        "Error response from daemon: No such container: c"]
    assert [r.path for r in fake.requests] == ["/containers/a", "/containers/b", "/containers/c"]
    res = cli("rm", "-fv", "c", "a")
    assert res.returncode == 0 and res.stdout == b"a\n"
    assert res.stderr == b"Error response from daemon: No such container: c\n"
    assert fake.requests[-1].query == {"force": ["1"], "v": ["1"]}


def test_stop_kill_restart_pause_wait_rename(cli, fake):
    for verb in ("stop", "kill", "restart", "pause", "unpause"):
        fake.routes["POST /containers/a/%s" % verb] = Reply(204)
    fake.routes["POST /containers/b/stop"] = Reply(304)
    fake.routes["POST /containers/c/stop"] = error(404, "No such container: c")
    res = cli("stop", "-t", "3", "a", "b", "c")
    assert res.returncode == 1 and res.stdout == b"a\nb\n"
    assert res.stderr == b"Error response from daemon: No such container: c\n"
    assert fake.find("POST", "/containers/a/stop")[0].query == {"t": ["3"]}
    res = cli("kill", "-s", "HUP", "a")
    assert res.stdout == b"a\n" and fake.requests[-1].query == {"signal": ["HUP"]}
    res = cli("restart", "-s", "TERM", "a")
    assert res.stdout == b"a\n" and fake.requests[-1].query == {"signal": ["TERM"]}
    assert cli("pause", "a").stdout == b"a\n"
    assert cli("unpause", "a").stdout == b"a\n"
    fake.routes["POST /containers/a/wait"] = Reply(body={"StatusCode": 0})
    fake.routes["POST /containers/b/wait"] = Reply(body={"StatusCode": 137})
    res = cli("wait", "a", "b")
    assert res.returncode == 0 and res.stdout == b"0\n137\n"
    fake.routes["POST /containers/a/rename"] = Reply(204)
    res = cli("rename", "a", "new")
    assert res.returncode == 0 and fake.requests[-1].query == {"name": ["new"]}


def test_start_reports_failures_like_docker(cli, fake):
    fake.routes["POST /containers/a/start"] = Reply(204)
    fake.routes["POST /containers/c/start"] = error(404, "No such container: c")
    res = cli("start", "a", "c")
    assert res.returncode == 1 and res.stdout == b"a\n"
    assert lines(res.stderr) == ["Error response from daemon: No such container: c",
                                 "Error: failed to start containers: c"]


def test_top(cli, fake):
    fake.routes["GET /containers/a/top"] = Reply(body={
        "Titles": ["UID", "PID", "CMD"], "Processes": [["root", "1", "sleep 100"]]})
    res = cli("top", "a", "-ef")
    assert res.stdout.decode() == ("UID" + " " * 17 + "PID" + " " * 17 + "CMD\n"
                                   "root" + " " * 16 + "1" + " " * 19 + "sleep 100\n")
    assert fake.requests[-1].query == {"ps_args": ["-ef"]}


# --- inspect ---------------------------------------------------------------------------------------

def test_inspect_containers_then_images(cli, fake):
    raw = '{"Id":"%s","Name":"/x","State":{"Status":"running","Pid":42},"Config":{"Labels":' \
          '{"a":"\\u003cb\\u003e"}},"Empty":[]}' % CID
    fake.routes["GET /containers/x/json"] = Reply(body=raw)
    fake.routes["GET /containers/img/json"] = error(404, "No such container: img")
    fake.routes["GET /images/img/json"] = Reply(body={"Id": "sha256:abc", "RepoTags": []})
    fake.routes["GET /containers/nope/json"] = error(404, "No such container: nope")
    fake.routes["GET /images/nope/json"] = error(404, "No such image: nope:latest")
    res = cli("inspect", "x", "img")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == (
        '[\n    {\n        "Id": "%s",\n        "Name": "/x",\n        "State": {\n'
        '            "Status": "running",\n            "Pid": 42\n        },\n'
        '        "Config": {\n            "Labels": {\n                "a": "\\u003cb\\u003e"\n'
        '            }\n        },\n        "Empty": []\n    },\n    {\n'
        '        "Id": "sha256:abc",\n        "RepoTags": []\n    }\n]\n' % CID)
    res = cli("inspect", "nope")
    assert res.returncode == 1 and res.stdout == b"[]\n"
    assert res.stderr == b"Error: No such object: nope\n"
    res = cli("inspect", "-f", "{{.State.Status}} {{.State.Pid}} {{json .Config.Labels}}", "x")
    assert res.stdout == b'running 42 {"a":"<b>"}\n'
    res = cli("inspect", "--type", "container", "img")
    assert res.returncode == 1
    assert res.stderr == b"Error response from daemon: No such container: img\n"
    res = cli("inspect", "-f", "{{.Nope}}", "x")
    assert res.returncode == 1
    assert res.stderr.decode().startswith("template parsing error: template: :1:2: executing")
    # then volumes, as docker looks them up
    fake.routes["GET /containers/vol/json"] = error(404, "No such container: vol")
    fake.routes["GET /images/vol/json"] = error(404, "No such image: vol:latest")
    fake.routes["GET /volumes/vol"] = Reply(body={"Name": "vol", "Driver": "local"})
    res = cli("inspect", "-f", "{{.Name}} {{.Driver}}", "vol")
    assert (res.returncode, res.stdout) == (0, b"vol local\n"), res.stderr
    res = cli("inspect", "--type", "volume", "-f", "{{.Driver}}", "vol")
    assert (res.returncode, res.stdout) == (0, b"local\n"), res.stderr


# --- run / create ------------------------------------------------------------------------------------

def _run_routes(fake, wait=None, start=None, frames=None, attach=None):
    fake.routes["POST /containers/create"] = Reply(201, {"Id": CID, "Warnings": []})
    fake.routes["POST /containers/%s/start" % CID] = start or Reply(204)
    fake.routes["POST /containers/%s/wait" % CID] = wait or Reply(body={"StatusCode": 0})
    fake.routes["POST /containers/%s/attach" % CID] = attach or Reply(hijack=True,
                                                                       frames=frames or [])


def test_run_detached_prints_the_id(cli, fake):
    _run_routes(fake)
    res = cli("run", "-d", "--name", "web", "-e", "A=1", "-l", "k=v", "busybox", "sleep", "60")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == CID + "\n"
    create = fake.find("POST", "/containers/create")[0]
    assert create.query == {"name": ["web"]}
    body = create.json()
    assert body["Image"] == "busybox" and body["Cmd"] == ["sleep", "60"]
    assert body["Env"] == ["A=1"] and body["Labels"] == {"k": "v"}
    assert not body["AttachStdout"]
    assert [r.path for r in fake.requests] == ["/containers/create",
                                               "/containers/%s/start" % CID]


def test_run_attached_demuxes_and_exits_with_the_status(cli, fake):
    _run_routes(fake, wait=Reply(body={"StatusCode": 3, "Error": None}),
                frames=[(1, b"hello\n"), (2, b"oops\n"), (1, b"bye\n")])
    res = cli("run", "--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout == b"hello\nbye\n"
    assert res.stderr == b"oops\n"
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths == [("POST", "/containers/create"), ("POST", "/containers/%s/attach" % CID),
                     ("POST", "/containers/%s/wait" % CID), ("POST", "/containers/%s/start" % CID)]
    attach = fake.find("POST", "/containers/%s/attach" % CID)[0]
    assert attach.query == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    assert attach.headers["Connection"] == "Upgrade" and attach.headers["Upgrade"] == "tcp"
    assert fake.find("POST", "/containers/%s/wait" % CID)[0].query == {"condition": ["removed"]}
    assert fake.find("POST", "/containers/create")[0].json()["HostConfig"]["AutoRemove"] is True


def test_run_without_rm_waits_for_next_exit(cli, fake):
    _run_routes(fake)
    assert cli("run", "busybox", "true").returncode == 0
    assert fake.find("POST", "/containers/%s/wait" % CID)[0].query == \
        {"condition": ["next-exit"]}


def test_run_streams_stdin_and_half_closes(cli, fake):
    _run_routes(fake, attach=Reply(hijack=True, echo_stdin=True))
    res = cli("run", "-i", "busybox", "cat", input=b"line one\nline two\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"line one\nline two\n"
    assert fake.stdin_received == [b"line one\nline two\n"]
    attach = fake.find("POST", "/containers/%s/attach" % CID)[0]
    assert attach.query["stdin"] == ["1"]
    body = fake.find("POST", "/containers/create")[0].json()
    assert body["OpenStdin"] and body["StdinOnce"] and body["AttachStdin"]


def test_run_tty_stream_is_raw(cli, fake):
    _run_routes(fake, attach=Reply(hijack=True, chunks=[b"raw\r\nbytes"]))
    res = cli("run", "-t", "busybox")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"raw\r\nbytes"
    res = cli("run", "-it", "busybox")
    assert res.returncode == 1 and res.stderr == b"the input device is not a TTY\n"


def test_run_pulls_a_missing_image(cli, fake):
    _run_routes(fake)
    fake.routes["POST /containers/create"] = [error(404, "No such image: busybox:latest"),
                                              Reply(201, {"Id": CID, "Warnings": ["careful"]})]
    progress = [b'{"status":"Pulling from library/busybox","id":"latest"}\r\n',
                b'{"status":"Downloading","progressDetail":{"current":1,"total":9},"id":"ab"}\r\n',
                b'{"status":"Pull complete","progressDetail":{},"id":"ab"}\r\n'
                b'{"status":"Digest: sha256:1234"}\r\n',
                b'{"status":"Status: Downloaded newer image for busybox:latest"}\r\n']
    fake.routes["POST /images/create"] = Reply(chunks=progress)
    res = cli("run", "-d", "busybox")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == CID + "\n"
    assert lines(res.stderr) == ["Unable to find image 'busybox:latest' locally",
                                 "latest: Pulling from library/busybox", "ab: Pull complete",
                                 "Digest: sha256:1234",
                                 "Status: Downloaded newer image for busybox:latest",
                                 "WARNING: careful"]
    pull = fake.find("POST", "/images/create")[0]
    assert pull.query == {"fromImage": ["docker.io/library/busybox"], "tag": ["latest"]}
    assert len(fake.find("POST", "/containers/create")) == 2


def test_run_pull_failure_exits_125(cli, fake):
    fake.routes["POST /containers/create"] = error(404, "No such image: nosuch:latest")
    fake.routes["POST /images/create"] = error(
        404, "pull access denied for nosuch, repository does not exist")
    res = cli("run", "nosuch")
    assert res.returncode == 125
    assert lines(res.stderr) == [
        "Unable to find image 'nosuch:latest' locally",
        "trioctr: Error response from daemon: pull access denied for nosuch, repository does "
        "not exist", "", "Run 'trioctr run --help' for more information"]
    fake.routes["POST /images/create"] = Reply(chunks=[
        b'{"errorDetail":{"message":"oops failed"},"error":"oops failed"}\n'])
    res = cli("run", "nosuch")
    assert res.returncode == 125 and "trioctr: oops failed" in res.stderr.decode()
    res = cli("create", "nosuch")
    assert res.returncode == 1 and lines(res.stderr)[-1] == "oops failed"
    res = cli("run", "--pull", "never", "nosuch")
    assert res.returncode == 125
    assert lines(res.stderr)[0] == "trioctr: Error response from daemon: No such image: " \
                                   "nosuch:latest"


@pytest.mark.parametrize("message,code", [
    ('failed to create task: exec: "nosuch": executable file not found in $PATH', 127),
    ("exec /etc: permission denied", 126),
    ("cannot start: cgroup trouble", 125),
])
def test_run_start_failure_exit_codes(cli, fake, message, code):
    _run_routes(fake, start=error(400, message))
    res = cli("run", "busybox", "x")
    assert res.returncode == code
    assert lines(res.stderr) == ["trioctr: Error response from daemon: " + message, "",
                                 "Run 'trioctr run --help' for more information"]


def test_run_daemon_refusing_tty_is_reported(cli, fake):
    fake.routes["POST /containers/create"] = error(400, "a TTY is not supported yet")
    res = cli("run", "-t", "busybox")
    assert res.returncode == 125
    assert lines(res.stderr)[0] == "trioctr: Error response from daemon: a TTY is not supported yet"


def test_run_config_errors_exit_125(cli, fake):
    res = cli("run", "--rm", "--restart", "always", "busybox")
    assert res.returncode == 125
    assert lines(res.stderr) == ["trioctr: Conflicting options: --restart and --rm", "",
                                 "Run 'trioctr run --help' for more information"]
    res = cli("run", "--env-file", "/nonexistent", "busybox")
    assert res.returncode == 125
    assert lines(res.stderr)[0] == "trioctr: open /nonexistent: no such file or directory"
    res = cli("run", "-m", "1q", "busybox")
    assert res.returncode == 125
    assert lines(res.stderr)[0] == ('invalid argument "1q" for "-m, --memory" flag: invalid '
                                    "suffix: 'q'")
    assert fake.requests == []


def test_create_prints_the_id(cli, fake):
    fake.routes["POST /containers/create"] = Reply(201, {"Id": CID, "Warnings": None})
    res = cli("create", "--name", "n", "busybox")
    assert res.returncode == 0 and res.stdout.decode() == CID + "\n"
    fake.routes["POST /containers/create"] = error(409, 'Conflict. The container name "/n" is '
                                                   'already in use')
    res = cli("create", "--name", "n", "busybox")
    assert res.returncode == 1
    assert res.stderr == (b'Error response from daemon: Conflict. The container name "/n" is '
                          b'already in use\n')


def test_start_attach(cli, fake):
    _run_routes(fake, wait=Reply(body={"StatusCode": 5}), frames=[(1, b"out\n")])
    fake.routes["GET /containers/a/json"] = Reply(body={"Id": CID, "Config": {"Tty": False},
                                                        "HostConfig": {"AutoRemove": False}})
    res = cli("start", "-a", "a")
    assert res.returncode == 5 and res.stdout == b"out\n"


# --- exec ---------------------------------------------------------------------------------------------

def test_exec_runs_and_returns_the_exit_code(cli, fake):
    fake.routes["POST /containers/a/exec"] = Reply(201, {"Id": "e1"})
    fake.routes["POST /exec/e1/start"] = Reply(hijack=True, frames=[(1, b"out\n"), (2, b"err\n")])
    fake.routes["GET /exec/e1/json"] = Reply(body={"ID": "e1", "Running": False, "ExitCode": 7})
    res = cli("exec", "-e", "X=1", "-u", "u", "-w", "/w", "a", "sh", "-c", "exit 7")
    assert res.returncode == 7
    assert res.stdout == b"out\n" and res.stderr == b"err\n"
    body = fake.find("POST", "/containers/a/exec")[0].json()
    assert body == {"User": "u", "Privileged": False, "Tty": False, "AttachStdin": False,
                    "AttachStderr": True, "AttachStdout": True, "Detach": False,
                    "DetachKeys": "", "Env": ["X=1"], "WorkingDir": "/w",
                    "Cmd": ["sh", "-c", "exit 7"]}
    assert fake.find("POST", "/exec/e1/start")[0].json() == {"Detach": False, "Tty": False}
    fake.routes["POST /containers/b/exec"] = error(409, "Container b is not running")
    res = cli("exec", "b", "true")
    assert res.returncode == 1
    assert res.stderr == b"Error response from daemon: Container b is not running\n"


# --- logs, events ------------------------------------------------------------------------------------

def test_logs_demux_and_query(cli, fake):
    fake.routes["GET /containers/web/json"] = Reply(body={"Id": CID, "Config": {"Tty": False}})
    data = frame(1, b"started\n") + frame(2, b"warn\n") + frame(1, b"bye\n")
    fake.routes["GET /containers/%s/logs" % CID] = Reply(
        chunks=[data[:3], data[3:11], data[11:30], data[30:]],
        ctype="application/vnd.docker.multiplexed-stream")
    res = cli("logs", "--tail", "2", "-t", "--since", "2024-01-01T00:00:00Z", "web")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"started\nbye\n" and res.stderr == b"warn\n"
    assert fake.requests[-1].query == {"stdout": ["1"], "stderr": ["1"], "tail": ["2"],
                                       "timestamps": ["1"], "since": ["1704067200.000000000"]}


def test_logs_tty_is_raw(cli, fake):
    fake.routes["GET /containers/t/json"] = Reply(body={"Id": CID, "Config": {"Tty": True}})
    fake.routes["GET /containers/%s/logs" % CID] = Reply(body=b"raw\r\n", ctype="text/plain")
    res = cli("logs", "t")
    assert res.stdout == b"raw\r\n"


EVENTS = [
    {"status": "start", "id": CID, "from": "busybox", "Type": "container", "Action": "start",
     "Actor": {"ID": CID, "Attributes": {"name": "x", "image": "busybox", "a": "<b>"}},
     "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789},
    {"Type": "daemon", "Action": "reload", "Actor": {"ID": "dddd", "Attributes": {}},
     "time": 1700000001},
]


def test_events_pretty_json_and_query(cli, fake):
    body = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)
    fake.routes["GET /events"] = Reply(chunks=[body[:50], body[50:51], body[51:]])
    res = cli("events", "--since", "1700000000", "--until", "1700000002.5",
              "-f", "type=container", "-f", "event=start", env={"TZ": "UTC"})
    assert res.returncode == 0, res.stderr
    assert lines(res.stdout) == [
        "2023-11-14T22:13:20.123456789Z container start %s (a=<b>, image=busybox, name=x)" % CID,
        "2023-11-14T22:13:21.000000000Z daemon reload dddd"]
    q = fake.requests[-1].query
    assert q["since"] == ["1700000000"] and q["until"] == ["1700000002.5"]
    assert json.loads(q["filters"][0]) == {"event": {"start": True}, "type": {"container": True}}
    res = cli("events", "--format", "{{json .}}")
    out = lines(res.stdout)
    assert json.loads(out[0]) == EVENTS[0]
    assert out[1] == ('{"Type":"daemon","Action":"reload","Actor":{"ID":"dddd","Attributes":{}},'
                      '"time":1700000001}')
    res = cli("events", "--format", "{{.Type}} {{.Actor.Attributes.name}} {{.Status}}|{{.ID}}")
    assert lines(res.stdout) == ["container x start|" + CID, "daemon <no value> |"]


def test_events_ctrl_c_exits_quietly(fake):
    fake.routes["GET /events"] = Reply(chunks=[json.dumps(EVENTS[1]).encode() + b"\n"] * 200,
                                       chunk_delay=0.05)
    p = subprocess.Popen([sys.executable, "-m", "cli", "-H", fake.host, "events"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    first = p.stdout.readline()
    assert b"daemon reload dddd" in first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130
    assert err == b""


# --- images --------------------------------------------------------------------------------------------

def test_images_and_rmi_and_tag(cli, fake):
    fake.routes["GET /images/json"] = Reply(body=[
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest"], "RepoDigests": [],
         "Created": NOW - 7200, "Size": 4261550}])
    res = cli("images", "busybox")
    assert lines(res.stdout) == ["REPOSITORY   TAG       IMAGE ID       CREATED       SIZE",
                                 "busybox      latest    aaaaaaaaaaaa   2 hours ago   4.26MB"]
    assert json.loads(fake.requests[-1].query["filters"][0]) == {"reference": {"busybox": True}}
    assert cli("images", "-q").stdout == b"aaaaaaaaaaaa\n"
    fake.routes["DELETE /images/busybox"] = Reply(body=[{"Untagged": "busybox:latest"},
                                                        {"Deleted": "sha256:" + "a" * 64}])
    fake.routes["DELETE /images/nope"] = error(404, "No such image: nope:latest")
    res = cli("rmi", "busybox", "nope")
    assert res.returncode == 1
    assert lines(res.stdout) == ["Untagged: busybox:latest", "Deleted: sha256:" + "a" * 64]
    assert res.stderr == b"Error response from daemon: No such image: nope:latest\n"
    res = cli("rmi", "-f", "nope")
    assert res.returncode == 0 and res.stderr == b"Error response from daemon: No such image: " \
                                                 b"nope:latest\n"
    fake.routes["POST /images/busybox/tag"] = Reply(201)
    res = cli("tag", "busybox", "localhost:5000/mine:v2")
    assert res.returncode == 0, res.stderr
    assert fake.requests[-1].query == {"repo": ["localhost:5000/mine"], "tag": ["v2"]}


def test_pull(cli, fake):
    fake.routes["POST /images/create"] = Reply(chunks=[
        b'{"status":"Pulling from library/busybox","id":"latest"}\n',
        b'{"status":"Status: Image is up to date for busybox:latest"}\n'])
    res = cli("pull", "busybox")
    assert res.returncode == 0, res.stderr
    assert lines(res.stdout) == ["Using default tag: latest", "latest: Pulling from library/busybox",
                                 "Status: Image is up to date for busybox:latest",
                                 "docker.io/library/busybox:latest"]
    res = cli("pull", "-q", "busybox:1")
    assert res.stdout == b"docker.io/library/busybox:1\n"
    assert fake.requests[-1].query == {"fromImage": ["docker.io/library/busybox"], "tag": ["1"]}
    fake.routes["POST /images/create"] = Reply(chunks=[b'{"error":"nope","errorDetail":'
                                                       b'{"message":"manifest unknown"}}\n'])
    res = cli("pull", "busybox:2")
    assert res.returncode == 1 and res.stderr == b"manifest unknown\n"
    res = cli("pull", "Bad/Name")
    assert res.returncode == 1 and b"must be lowercase" in res.stderr


def test_pull_cut_short_by_a_dying_daemon_is_an_error(cli, fake):
    # the stream ends without its last chunk: not a success (docker: "unexpected EOF")
    fake.routes["POST /images/create"] = Reply(cut=True, chunks=[
        b'{"status":"Pulling from library/busybox","id":"latest"}\n',
        b'{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":9}}\n'])
    res = cli("pull", "busybox")
    assert res.returncode == 1
    assert res.stderr.endswith(b"unexpected EOF\n")
    assert b"docker.io/library/busybox:latest" not in res.stdout


def test_import_streams_the_tar(cli, fake, tmp_path):
    tar = tmp_path / "rootfs.tar"
    payload = os.urandom(200000)
    tar.write_bytes(payload)
    fake.routes["POST /images/create"] = Reply(body={"status": "sha256:" + "f" * 64})
    res = cli("import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "msg", str(tar), "busybox:latest")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == "sha256:" + "f" * 64 + "\n"
    req = fake.requests[-1]
    assert req.body == payload
    assert req.headers.get("Transfer-Encoding") == "chunked"
    assert req.query == {"fromSrc": ["-"], "repo": ["busybox"], "tag": ["latest"],
                         "changes": ['CMD ["sh"]', "ENV A=1"], "message": ["msg"]}
    res = cli("import", "-", "x", input=b"from stdin")
    assert res.returncode == 0 and fake.requests[-1].body == b"from stdin"
    res = cli("import", "/nonexistent.tar")
    assert res.returncode == 1
    assert res.stderr == b"open /nonexistent.tar: no such file or directory\n"


# --- version, info ---------------------------------------------------------------------------------------

def test_version_and_info(cli, fake):
    fake.routes["GET /version"] = Reply(body={
        "Platform": {"Name": "trioctr"}, "Version": "0.1.0", "ApiVersion": "1.41",
        "MinAPIVersion": "1.24", "GitCommit": "abc", "GoVersion": "python3.11", "Os": "linux",
        "Arch": "amd64", "KernelVersion": "6.1", "BuildTime": "2024-01-01T00:00:00.000000000+00:00"})
    res = cli("version")
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert out[0] == "Client:" and out[1].startswith(" Version:           ")
    i = out.index("Server: trioctr")
    assert out[i + 1:] == [" Engine:",
                           "  Version:          0.1.0",
                           "  API version:      1.41 (minimum version 1.24)",
                           "  Go version:       python3.11",
                           "  Git commit:       abc",
                           "  Built:            Mon Jan  1 00:00:00 2024",
                           "  OS/Arch:          linux/amd64",
                           "  Experimental:     false"]
    assert cli("version", "-f", "{{.Server.Version}}").stdout == b"0.1.0\n"
    fake.routes["GET /info"] = Reply(body={"Containers": 3, "ContainersRunning": 1,
                                           "ContainersPaused": 0, "ContainersStopped": 2,
                                           "Images": 5, "MemTotal": 8000000000, "NCPU": 4,
                                           "Warnings": ["WARNING: no bridge"]})
    res = cli("info")
    assert res.returncode == 0
    out = res.stdout.decode()
    assert " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 5\n" in out
    assert " CPUs: 4\n Total Memory: 7.451GiB\n" in out
    assert res.stderr == b"\nWARNING: no bridge\n"
    assert cli("info", "-f", "{{.NCPU}}").stdout == b"4\n"


# --- signals, attach, port, tty --------------------------------------------------------------------------

def test_run_forwards_ctrl_c_to_the_container(fake):
    _run_routes(fake, wait=Reply(body={"StatusCode": 130}),
                attach=Reply(hijack=True, frames=[(1, b"tick\n")] * 15, chunk_delay=0.1))
    fake.routes["POST /containers/%s/kill" % CID] = Reply(204)
    p = subprocess.Popen([sys.executable, "-m", "cli", "-H", fake.host, "run", "busybox", "top"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    assert p.stdout.readline() == b"tick\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130
    assert err == b""
    kills = fake.find("POST", "/containers/%s/kill" % CID)
    assert [k.query for k in kills] == [{"signal": ["INT"]}]


def test_attach_and_port(cli, fake):
    fake.routes["GET /containers/a/json"] = Reply(body={
        "Id": CID, "State": {"Running": True}, "Config": {"Tty": False, "OpenStdin": False},
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                      "53/udp": [{"HostIp": "::", "HostPort": "5353"}],
                                      "9/tcp": None}}})
    fake.routes["POST /containers/%s/wait" % CID] = Reply(body={"StatusCode": 4})
    fake.routes["POST /containers/%s/attach" % CID] = Reply(hijack=True, frames=[(1, b"x\n")])
    res = cli("attach", "a")
    assert res.returncode == 4 and res.stdout == b"x\n"
    q = fake.find("POST", "/containers/%s/attach" % CID)[0].query
    assert q == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    res = cli("port", "a")
    assert lines(res.stdout) == ["53/udp -> [::]:5353", "80/tcp -> 0.0.0.0:8080"]
    assert cli("port", "a", "80").stdout == b"0.0.0.0:8080\n"
    res = cli("port", "a", "81")
    assert res.returncode == 1 and res.stderr == b"Error: No public port '81/tcp' published for a\n"
    fake.routes["GET /containers/s/json"] = Reply(body={"Id": CID, "State": {"Running": False}})
    res = cli("attach", "s")
    assert res.returncode == 1
    assert res.stderr == b"You cannot attach to a stopped container, start it first\n"


def test_run_it_in_a_terminal_resizes_and_restores(fake):
    import pty
    import termios
    _run_routes(fake, attach=Reply(hijack=True, chunks=[b"hi from tty\r\n"]))
    fake.routes["POST /containers/%s/resize" % CID] = Reply(200)
    try:
        master, slave = pty.openpty()
    except OSError:
        pytest.skip("no pseudo-terminals here")
    import fcntl
    import struct
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([sys.executable, "-m", "cli", "-H", fake.host, "run", "-it", "busybox"],
                         cwd=ROOT, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=cli_env())
    rc = p.wait(timeout=20)
    err = p.stderr.read()
    after = termios.tcgetattr(slave)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    os.close(master)
    assert rc == 0, err
    assert b"hi from tty" in out
    assert after == before  # raw mode undone
    resize = fake.find("POST", "/containers/%s/resize" % CID)
    assert resize and resize[0].query == {"h": ["33"], "w": ["101"]}
    body = fake.find("POST", "/containers/create")[0].json()
    assert body["Tty"] and body["AttachStdin"] and body["OpenStdin"]
