"""The runtime's pure parts: config validation, signals, ids, lookpath,
state, command line parsing, the init channel.  No root needed."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import time

import pytest

from actors import runtime as rtm
from actors.runtime import ConfigError, Failure, default_spec, validate_config


def good() -> dict:
    cfg = copy.deepcopy(default_spec())
    cfg["linux"]["cgroupsPath"] = "/trioctr-test-unit/c1"
    return cfg


def refused(cfg: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = info.value.message
    assert msg.startswith("config.json: ") and "\n" not in msg
    return msg


def test_default_spec_is_valid_and_like_runc():
    cfg = validate_config(good())
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert {ns["type"] for ns in cfg["linux"]["namespaces"]} == \
        {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert cfg["process"]["terminal"] is False


@pytest.mark.parametrize("mutate, expect", [
    (lambda c: c.pop("ociVersion"), "ociVersion is required"),
    (lambda c: c.pop("root"), "root is required"),
    (lambda c: c["root"].pop("path"), "root.path is required"),
    (lambda c: c.pop("process"), "process is required"),
    (lambda c: c["process"].pop("args"), "process.args must not be empty"),
    (lambda c: c["process"].update(args="sh"), "process.args must be an array"),
    (lambda c: c["process"].update(args=["sh", 3]), "process.args[1] must be a string"),
    (lambda c: c["process"].update(cwd="tmp"), "process.cwd must be an absolute path"),
    (lambda c: c["process"].update(env=["NOEQUALS"]), "process.env[0] 'NOEQUALS' is not KEY=VALUE"),
    (lambda c: c["process"]["user"].update(uid="0"), "process.user.uid must be an integer"),
    (lambda c: c["process"]["user"].update(uid=True), "process.user.uid must be an integer"),
    (lambda c: c["process"]["user"].pop("gid"), "process.user.gid is required"),
    (lambda c: c["process"].update(terminal="yes"), "process.terminal must be a boolean"),
    (lambda c: c["process"].update(consoleSize={"height": 24}),
     "process.consoleSize.width must be an integer"),
    (lambda c: c["process"]["capabilities"].update(bounding=["CAP_NOPE"]),
     "unknown capability 'CAP_NOPE'"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type 'RLIMIT_BOGUS' is not a known rlimit"),
    (lambda c: c["process"].update(apparmorProfile="docker-default"), "AppArmor"),
    (lambda c: c.update(hooks={"preStart": [{"path": "/bin/true"}]}),
     "hooks.preStart is not a hook"),
    (lambda c: c.update(hooks={"poststop": [{"path": "true"}]}),
     "hooks.poststop[0].path must be an absolute path"),
    (lambda c: c.update(hooks={"poststop": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.poststop[0].timeout must be a positive number"),
    (lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/true", "env": ["X"]}]}),
     "hooks.createRuntime[0].env[0] 'X' is not KEY=VALUE"),
    (lambda c: c.update(hooks={"poststart": {"path": "/bin/true"}}),
     "hooks.poststart must be an array"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOTIFY"}),
     "linux.seccomp: SCMP_ACT_NOTIFY"),
    (lambda c: c["linux"].update(seccomp={"syscalls": []}),
     "linux.seccomp: defaultAction is required"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                                          "listenerPath": "/run/agent.sock"}),
     "listenerPath"),
    (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
     "need a user namespace"),
    (lambda c: c["linux"].update(somethingNew={"x": 1}), "linux.somethingNew is not supported"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "'bogus' is not a namespace"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "pid given twice"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}),
     "a new user namespace needs linux.uidMappings"),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid"}]), "must include a mount namespace"),
    (lambda c: c["linux"].update(namespaces=[{"type": "mount"}]), "hostname needs a new uts"),
    (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}), "kernel.panic is not in a"),
    (lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": 1}), "must be a string"),
    (lambda c: c["linux"].update(cgroupsPath="/a/../b"), "must not contain '..'"),
    (lambda c: c["linux"].update(cgroupsPath="system.slice:docker:abc"), "systemd"),
    (lambda c: c["mounts"].append({"destination": "rel", "type": "tmpfs"}),
     "mounts[7].destination must be an absolute path"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs",
                                   "options": ["tmpcopyup"]}), "tmpcopyup"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind", "options": ["rro"]}),
     "recursive mount attribute"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "none", "options": ["bind"]}),
     "a bind mount needs a source"),
    (lambda c: c["linux"]["resources"].update(memory={"kernel": 1 << 20}), "kernel memory"),
    (lambda c: c["linux"]["resources"].update(memory={"limit": "1g"}), "must be an integer"),
    (lambda c: c["linux"]["resources"]["devices"].append({"allow": True, "type": "x"}),
     "bad device rule type"),
    (lambda c: c["linux"].update(rootfsPropagation="sideways"), "not a propagation type"),
    (lambda c: c["linux"].update(personality={"domain": "BSD"}), "LINUX or LINUX32"),
])
def test_config_refusals(mutate, expect):
    cfg = good()
    mutate(cfg)
    assert expect in refused(cfg)


def test_config_accepts_namespaced_sysctls_and_paths():
    cfg = good()
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000",
                              "fs.mqueue.msg_max": "10"}
    cfg["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "soft": 10, "hard": 20})
    validate_config(cfg)


def test_load_config_errors(tmp_path):
    with pytest.raises(Failure, match="config.json: not found in bundle"):
        rtm.load_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: invalid JSON"):
        rtm.load_config(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match="the top level must be an object"):
        rtm.load_config(str(tmp_path))


@pytest.mark.parametrize("text, num", [
    ("TERM", signal.SIGTERM), ("SIGTERM", signal.SIGTERM), ("sigterm", signal.SIGTERM),
    ("term", signal.SIGTERM), ("15", 15), ("9", 9), ("KILL", 9), ("SIGHUP", 1),
    ("USR1", signal.SIGUSR1), ("RTMIN+1", signal.SIGRTMIN + 1), ("SIGRTMAX-2", signal.SIGRTMAX - 2),
])
def test_parse_signal(text, num):
    assert rtm.parse_signal(text) == num


@pytest.mark.parametrize("text", ["FOO", "SIGFOO", "0", "65", "-9", "", "RTMIN+99", "__class__"])
def test_parse_signal_refuses(text):
    with pytest.raises(Failure, match="invalid signal"):
        rtm.parse_signal(text)


@pytest.mark.parametrize("cid", ["abc", "a-b_c.d+e", "X1"])
def test_check_id_ok(cid):
    assert rtm.check_id(cid) == cid


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "a b", "é", "../x"])
def test_check_id_refuses(cid):
    with pytest.raises(Failure, match="invalid container id"):
        rtm.check_id(cid)


def test_env_dict_last_wins():
    assert rtm.env_dict(["A=1", "B=x=y", "A=2", "C="]) == {"A": "2", "B": "x=y", "C": ""}


def test_lookpath(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    plain = bindir / "plain"
    plain.write_text("data")
    plain.chmod(0o644)
    (bindir / "adir").mkdir()
    path = f"/nonexistent:{bindir}"
    assert rtm.lookpath("tool", path) == str(tool)
    assert rtm.lookpath(str(tool), "") == str(tool)
    with pytest.raises(Failure) as info:
        rtm.lookpath("nosuch", path)
    assert info.value.exit_code == 127
    assert info.value.message == 'exec: "nosuch": executable file not found in $PATH'
    with pytest.raises(Failure) as info:
        rtm.lookpath("plain", path)  # found but not executable: skipped in a PATH search
    assert info.value.exit_code == 127
    with pytest.raises(Failure) as info:
        rtm.lookpath(str(plain), path)
    assert info.value.exit_code == 126
    assert info.value.message == f'exec: "{plain}": permission denied'
    with pytest.raises(Failure) as info:
        rtm.lookpath(str(bindir / "adir"), path)
    assert info.value.exit_code == 126
    with pytest.raises(Failure) as info:
        rtm.lookpath("/no/such", path)
    assert info.value.exit_code == 127
    assert info.value.message == 'exec: "/no/such": stat /no/such: no such file or directory'
    with pytest.raises(Failure):
        rtm.lookpath("tool", None)  # no PATH at all: nothing is searched


def test_sysctl_namespace():
    assert rtm.sysctl_namespace("net.core.somaxconn") == "network"
    assert rtm.sysctl_namespace("kernel.shmmax") == "ipc"
    assert rtm.sysctl_namespace("fs.mqueue.queues_max") == "ipc"
    assert rtm.sysctl_namespace("kernel.domainname") == "uts"
    assert rtm.sysctl_namespace("vm.swappiness") is None


def test_proc_start_time_and_status(tmp_path):
    state, start = rtm.proc_start_time(os.getpid())
    assert state in "RS" and start > 0
    assert rtm.proc_start_time(2**22 + 12345) is None
    c = rtm.Container(str(tmp_path), "me", {"pid": os.getpid(), "pid_start": start,
                                            "bundle": "/b", "cgroup": None})
    os.makedirs(c.dir)
    os.mkfifo(c.fifo)
    assert c.status() == "created"
    os.unlink(c.fifo)
    assert c.status() == "running"
    # same pid, another start time: the pid was reused, the container is gone
    c.state["pid_start"] = start + 1
    assert c.status() == "stopped"
    assert c.oci_state()["pid"] == 0


def test_state_round_trip_and_unknown(tmp_path):
    root = str(tmp_path)
    c = rtm.Container(root, "c1", {"id": "c1", "pid": 1, "pid_start": 1, "bundle": "/b",
                                   "annotations": {"a": "b"}, "created": "t"})
    os.makedirs(c.dir)
    c.save()
    loaded = rtm.Container.load(root, "c1")
    assert loaded.state == c.state
    assert oct(os.stat(os.path.join(c.dir, "state.json")).st_mode & 0o777) == "0o600"
    with pytest.raises(Failure, match="container does not exist: c2"):
        rtm.Container.load(root, "c2")
    assert [x.id for x in rtm.list_containers(root)] == ["c1"]
    st = loaded.oci_state()
    assert set(st) >= {"ociVersion", "id", "pid", "status", "bundle", "annotations"}
    assert st["annotations"] == {"a": "b"}


def test_write_atomic_leaves_no_temp(tmp_path):
    p = tmp_path / "f.json"
    rtm.write_atomic(str(p), b"one")
    rtm.write_atomic(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f.json"]


def test_parse_args_runc_style():
    a = rtm.parse_args(["--root", "/r", "--log=/l", "--log-format", "json", "kill", "c1",
                        "KILL", "--all"])
    assert (a.root, a.log, a.log_format, a.command, a.id, a.signal, a.all) == \
        ("/r", "/l", "json", "kill", "c1", "KILL", True)
    a = rtm.parse_args(["create", "-b", "/bun", "--pid-file", "p", "--sync-fd", "5", "x"])
    assert (a.bundle, a.pid_file, a.sync_fd, a.id, a.root) == ("/bun", "p", 5, "x", rtm.DEFAULT_ROOT)
    a = rtm.parse_args(["delete", "-f", "x"])
    assert a.force and a.id == "x"
    a = rtm.parse_args(["kill", "x"])
    assert a.signal == "TERM"
    a = rtm.parse_args(["kill", "x", "-9"])  # a negative-looking positional is a signal
    assert a.signal == "-9"
    for bad in (["bogus"], ["start"], ["start", "a", "b"], ["create", "--nope", "x"],
                ["--log-format", "xml", "list"], ["create", "--sync-fd", "x", "y"],
                ["--systemd-cgroup", "list"]):
        with pytest.raises(rtm.UsageError):
            rtm.parse_args(bad)


def test_main_usage_and_errors(capsys, tmp_path):
    assert rtm.main(["--help"]) == 0
    assert "create" in capsys.readouterr().out
    assert rtm.main(["bogus"]) == 2
    log = tmp_path / "log"
    assert rtm.main(["--root", str(tmp_path), "--log", str(log), "--log-format", "json",
                     "state", "nope"]) == 1
    entry = json.loads(log.read_text())
    assert entry["level"] == "error"
    assert entry["msg"] == "container does not exist: nope"
    assert entry["time"].endswith("Z")


def test_spec_command(tmp_path):
    assert rtm.main(["spec", "--bundle", str(tmp_path)]) == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg == default_spec()
    assert rtm.main(["spec", "--bundle", str(tmp_path)]) == 1  # exists: refused


def test_channel_round_trip():
    from actors.runtime import CGROUP_JOINED, CREATED, FAILED, READY, Msg

    a, b = socket.socketpair()
    try:
        left, right = rtm.Channel(a.fileno()), rtm.Channel(b.fileno())
        left.send(Msg(CREATED, pid=42))
        left.send(Msg(CGROUP_JOINED))
        right.send(Msg(FAILED, message="exec: nope\nl\u00e9", exit_code=127))
        right.send(Msg(READY))
        got = right.recv(1)
        assert got == Msg(CREATED, pid=42) and got.pid == 42
        assert right.recv(1) == Msg(CGROUP_JOINED)
        assert left.recv(1) == Msg(FAILED, message="exec: nope\nl\u00e9", exit_code=127)
        assert left.recv(1) == Msg(READY)
        with pytest.raises(Failure, match="timed out"):
            left.recv(0.01)
        b.sendall(b"[1, 2]\n")
        with pytest.raises(Failure, match="garbled"):
            left.recv(1)
        b.shutdown(socket.SHUT_WR)
        assert left.recv(1) is None  # EOF: the peer died
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("pid", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31, 2**32, 2**62])
def test_sync_envelope_is_what_the_shim_decodes(pid):
    """--sync-fd is hand-written msgpack: byte for byte messages.wire's
    encoding of messages.runtime's envelope, for every size of field."""
    from messages.base import Kind, pack, unpack
    from messages.runtime import ContainerCreated, CreateFailed
    from messages.wire import FrameDecoder, encode

    from actors.runtime import CREATED, FAILED, Msg, sync_envelope

    ours = sync_envelope(Msg(CREATED, pid=pid))
    assert ours == encode(pack(Kind.REPLY, 0, ContainerCreated(pid=pid)))
    for text in ("", "x" * 31, "x" * 32, "é" * 200, "y" * 70000, 'exec: "nosuch": not found'):
        for code in (126, 127, 128, -1, -200, -40000, -2**40):
            msg = CreateFailed(message=text, exit_code=code)
            ours = sync_envelope(Msg(FAILED, message=text, exit_code=code))
            assert ours == encode(pack(Kind.REPLY, 0, msg))
            assert unpack(FrameDecoder().feed(ours)[0]).msg == msg


def test_runtime_does_not_import_trio():
    import subprocess
    import sys

    from tests.runtime.support import ENV, REPO

    code = ("import sys, actors.runtime, linux.cgroups, linux.mounts, linux.caps, linux.net;"
            "import messages.runtime;"
            "print('trio' in sys.modules, 'attr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=ENV, check=True).stdout.split()
    assert out[0] == "False"
    # --help must not even load the message classes (attrs, cattrs)
    code = ("import sys; sys.argv=['x','--help'];"
            "import actors.runtime as r; r._main(['--help']);"
            "print('attr' in sys.modules, 'messages' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=ENV, check=True).stdout.split()
    assert out[-2:] == ["False", "False"]


# --- exec: the command line and the process it runs -----------------------------------

def test_parse_args_exec_like_runc():
    a = rtm.parse_args(["exec", "-e", "A=1", "--env=B=2", "-u", "1000:1000", "-g", "5",
                        "--cap", "CAP_KILL", "-t", "--console-socket", "/s", "-d",
                        "--pid-file", "p", "--sync-fd", "4", "--preserve-fds", "2", "c1",
                        "sh", "-c", "echo -e x", "--env", "not-a-flag"])
    assert (a.command, a.id, a.env, a.user, a.additional_gids, a.cap, a.tty, a.detach) == \
        ("exec", "c1", ["A=1", "B=2"], "1000:1000", ["5"], ["CAP_KILL"], True, True)
    assert (a.console_socket, a.pid_file, a.sync_fd, a.preserve_fds) == ("/s", "p", 4, 2)
    # everything after the id is the command, flags and all
    assert a.args == ["sh", "-c", "echo -e x", "--env", "not-a-flag"]
    a = rtm.parse_args(["exec", "--process", "p.json", "c1"])
    assert (a.process, a.id, a.args) == ("p.json", "c1", [])
    assert rtm.parse_args(["exec", "c1", "--", "ls", "-l"]).args == ["ls", "-l"]
    for bad in (["exec"], ["exec", "--bogus", "c1", "true"], ["exec", "--sync-fd", "x", "c"]):
        with pytest.raises(rtm.UsageError):
            rtm.parse_args(bad)


def exec_args(**kw):
    base = dict(process=None, args=[], cwd=None, env=[], user=None, additional_gids=[],
                cap=[], tty=False, no_new_privs=False)
    base.update(kw)
    return rtm.Args(**base)


def test_exec_process_from_the_config_and_the_flags():
    cfg = good()
    cfg["process"]["user"] = {"uid": 5, "gid": 6, "additionalGids": [7]}
    p = rtm.exec_process_spec(cfg, exec_args(args=["ls", "-l"]))
    assert p["args"] == ["ls", "-l"] and p["user"] == cfg["process"]["user"]
    assert p["env"] == cfg["process"]["env"] and p["terminal"] is False
    assert p["capabilities"] == cfg["process"]["capabilities"]
    p = rtm.exec_process_spec(cfg, exec_args(
        args=["id"], cwd="/tmp", env=["A=1"], user="1000", additional_gids=["8,9"],
        cap=["sys_admin"], tty=True, no_new_privs=True))
    assert p["cwd"] == "/tmp" and p["env"][-1] == "A=1" and p["terminal"] is True
    assert p["user"] == {"uid": 1000, "gid": 6, "additionalGids": [7, 8, 9]}
    assert all("CAP_SYS_ADMIN" in p["capabilities"][k] for k in
               ("bounding", "effective", "permitted", "inheritable", "ambient"))
    assert p["noNewPrivileges"] is True
    assert cfg["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}  # a copy
    assert rtm.exec_process_spec(cfg, exec_args(args=["id"], user="1:2"))["user"]["gid"] == 2


@pytest.mark.parametrize("kw, expect", [
    (dict(), "a command is needed"),
    (dict(args=["x"], user="app"), "want UID[:GID]"),
    (dict(args=["x"], user="1:"), "want UID[:GID]"),
    (dict(args=["x"], additional_gids=["wheel"]), "want numbers"),
    (dict(args=["x"], cwd="tmp"), "exec: process.cwd must be an absolute path"),
    (dict(args=["x"], env=["NOEQ"]), "is not KEY=VALUE"),
    (dict(args=["x"], cap=["CAP_NOPE"]), "unknown capability"),
    (dict(process="/p.json", args=["x"]), "not both"),
    (dict(process="/p.json", cwd="/"), "--cwd cannot be combined with --process"),
    (dict(process="/nonexistent/p.json"), "No such file or directory"),
])
def test_exec_process_refusals(kw, expect):
    with pytest.raises(Failure) as info:
        rtm.exec_process_spec(good(), exec_args(**kw))
    assert expect in info.value.message


def test_exec_process_file(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}))
    assert rtm.exec_process_spec(good(), exec_args(process=str(f)))["args"] == ["true"]
    f.write_text("{")
    with pytest.raises(Failure, match="invalid JSON"):
        rtm.exec_process_spec(good(), exec_args(process=str(f)))
    f.write_text(json.dumps({"args": ["true"], "cwd": "/"}))
    with pytest.raises(Failure, match=r"--process .*p.json: process.user is required"):
        rtm.exec_process_spec(good(), exec_args(process=str(f)))


def test_terminal_needs_a_console_socket_and_the_other_way_round():
    rtm.check_terminal({"terminal": True}, "/sock")
    rtm.check_terminal({"terminal": False}, None)
    with pytest.raises(Failure, match="a --console-socket is needed"):
        rtm.check_terminal({"terminal": True}, None)
    with pytest.raises(Failure, match="only for process.terminal: true"):
        rtm.check_terminal({}, "/sock")


# --- hooks -------------------------------------------------------------------------

def test_hook_state_and_budget():
    state = json.loads(rtm.hook_state("c1", "creating", 42, "/b", None))
    assert state == {"ociVersion": rtm.OCI_VERSION, "id": "c1", "status": "creating",
                     "pid": 42, "bundle": "/b", "annotations": {}}
    assert rtm.hooks_budget([]) == 0
    assert rtm.hooks_budget([{"path": "/a", "timeout": 2}, {"path": "/b", "timeout": 3}]) == 5
    assert rtm.hooks_budget([{"path": "/a", "timeout": 2}, {"path": "/b"}]) == rtm.HOOK_FOREVER


def test_run_hook(tmp_path):
    out = tmp_path / "out"
    # argv[0], the state on stdin, and the environment the hook was given: only its own
    script = f'echo "$0 $(cat) $(tr "\\0" " " < /proc/$$/environ)" > {out}'
    ok = {"path": "/bin/sh", "args": ["my-argv0", "-c", script], "env": ["X=1", "Y=a b"]}
    assert rtm.run_hook(ok, b'{"id": "c1"}') == ""
    assert out.read_text() == 'my-argv0 {"id": "c1"} X=1 Y=a b \n'
    fail = {"path": "/bin/sh", "args": ["sh", "-c", "echo line one; echo line two >&2; exit 3"]}
    assert rtm.run_hook(fail, b"") == "exit status 3: line one line two"
    killed = {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $$"]}
    assert rtm.run_hook(killed, b"") == "killed by signal 9"
    slow = {"path": "/bin/sh", "args": ["sh", "-c", "sleep 10"], "timeout": 1}
    assert rtm.run_hook(slow, b"") == "timed out after 1s"
    assert rtm.run_hook({"path": "/no/such"}, b"") == "no such file or directory"
    # a hook that leaves a daemon holding its stdout does not hold us up
    daemon = {"path": "/bin/sh", "args": ["sh", "-c", "sleep 5 & exit 0"]}
    started = time.monotonic()
    assert rtm.run_hook(daemon, b"") == ""
    assert time.monotonic() - started < 3
    with pytest.raises(Failure, match=r"poststop hook #1 \(/bin/sh\): exit status 3"):
        rtm.run_hooks("poststop", [ok, fail, ok], b"")


def test_run_hooks_warn_goes_on(tmp_path):
    out = tmp_path / "out"
    log = rtm.Log(str(tmp_path / "log"), "json")
    fail = {"path": "/bin/sh", "args": ["sh", "-c", "exit 2"]}
    ok = {"path": "/bin/sh", "args": ["sh", "-c", f"echo ran > {out}"]}
    rtm.run_hooks_warn("poststart", [fail, ok], b"", log)
    assert out.read_text() == "ran\n"
    entry = json.loads((tmp_path / "log").read_text())
    assert entry["level"] == "warning"
    assert entry["msg"] == "poststart hook #0 (/bin/sh): exit status 2"


# --- features ----------------------------------------------------------------------

def test_features_lists_what_is_implemented(capsys):
    assert rtm.main(["features"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert f["ociVersionMin"] == "1.0.0" and f["ociVersionMax"] == rtm.OCI_VERSION_MAX == "1.3.0"
    assert f["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                          "poststart", "poststop"]
    # every mount option listed is accepted; the refused ones are not listed
    from linux.mounts import parse_options

    for opt in f["mountOptions"]:
        assert parse_options([opt]).data == ""  # a flag, never fs data
    assert "rro" not in f["mountOptions"] and "tmpcopyup" not in f["mountOptions"]
    assert {"bind", "rbind", "ro", "nosuid", "rslave", "private"} <= set(f["mountOptions"])
    linux = f["linux"]
    assert linux["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "time", "user",
                                  "uts"]
    assert linux["capabilities"][0] == "CAP_CHOWN" and "CAP_BPF" in linux["capabilities"]
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                               "rdma": False}
    sec = linux["seccomp"]
    assert "SCMP_ACT_NOTIFY" not in sec["actions"] and "SCMP_ACT_ERRNO" in sec["actions"]
    assert sorted(sec["operators"]) == sorted(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                                               "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                               "SCMP_CMP_MASKED_EQ"])
    if sec["enabled"]:
        assert "SCMP_ARCH_X86_64" in sec["archs"]
    assert linux["apparmor"] == {"enabled": False} and linux["selinux"] == {"enabled": False}
    # every config these features describe is one validate_config accepts
    cfg = good()
    cfg["hooks"] = {name: [{"path": "/bin/true"}] for name in f["hooks"]}
    cfg["mounts"].append({"destination": "/x", "type": "bind", "source": "/tmp",
                          "options": f["mountOptions"][:20]})
    validate_config(cfg)


def test_features_validate_against_the_oci_schema():
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4

    base = "/work/shared/specs/oci-runtime"
    path = os.path.join(base, "features-schema.json")
    if not os.path.exists(path):
        pytest.skip("spec schemas not available")

    def retrieve(uri):
        with open(os.path.join(base, uri.rsplit("/", 1)[-1])) as f:
            return referencing.Resource.from_contents(json.load(f), default_specification=DRAFT4)

    with open(path) as f:
        schema = json.load(f)
    schema["id"] = "file://" + path
    v = jsonschema.Draft4Validator(schema, registry=referencing.Registry(retrieve=retrieve))
    errors = list(v.iter_errors(rtm.features()))
    assert errors == [], [e.message for e in errors[:5]]


@pytest.mark.parametrize("text", ['{"a": [1, 2.5, null, true, false, "\\u00e9\\n"], "b": {}}',
                                  " [] ", "3", '"x"', '{"k": -1e400}', "\t{}\n"])
def test_json_through_the_accelerator_is_json(text):
    assert rtm.json_loads(text) == json.loads(text)
    assert rtm.json_loads(text.encode()) == json.loads(text)
    obj = json.loads(text)
    if obj == obj:  # (no NaN)
        assert rtm.json_dumps(obj) == json.dumps(obj)


@pytest.mark.parametrize("text", ["{", "", "[1,]", "{} {}", "nan", "\x00", "{\"a\" 1}"])
def test_json_through_the_accelerator_refuses_what_json_refuses(text):
    with pytest.raises(ValueError):
        rtm.json_loads(text)
