"""config.json hooks on the real kernel: where each runs, what it reads on
stdin, and the spec's failure rules.

Needs root.  The hooks are small shell scripts appending one JSON line to a
log: the host's /bin/sh for the hooks that run in the runtime's mount
namespace (or before pivot_root), the container's busybox sh for
startContainer (it runs inside the container, after pivot_root).
"""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.root

# args[0] is the hook's argv[0], args[1] its name; the log line has the
# namespaces it ran in, its environment and the state it read on stdin
HOOK = """#!/bin/sh
state=$(cat)
printf '{"hook": "%s", "mnt": "%s", "net": "%s", "env": "%s", "state": %s}\\n' \\
  "$1" "$(readlink /proc/self/ns/mnt)" "$(readlink /proc/self/ns/net)" \\
  "$(env | sort | tr '\\n' ' ')" "$state" >> "$LOG"
"""


def hook(path, name, log, **extra) -> dict:
    return {"path": str(path), "args": [f"hook-{name}", name],
            "env": [f"LOG={log}", "HOOKENV=yes"], **extra}


def read_log(path) -> list[dict]:
    try:
        return [json.loads(line) for line in open(path).read().splitlines()]
    except FileNotFoundError:
        return []


@pytest.fixture
def scripts(rt, tmp_path):
    """(host hook script, container hook script and its in-container path, logs)."""
    host = tmp_path / "hook.sh"
    host.write_text(HOOK)
    host.chmod(0o755)
    # inside the rootfs for startContainer (a per-test name: the rootfs is shared)
    inside_name = f"hook-{tmp_path.name}.sh"
    inside = os.path.join(rt.rootfs, "bin", inside_name)
    with open(inside, "w") as f:
        f.write(HOOK)
    os.chmod(inside, 0o755)
    log_name = f"hooks-{tmp_path.name}.log"
    try:
        yield host, f"/bin/{inside_name}", tmp_path / "hooks.log", log_name
    finally:
        os.unlink(inside)
        try:
            os.unlink(os.path.join(rt.rootfs, "tmp", log_name))
        except FileNotFoundError:
            pass


def test_hooks_run_in_order_in_the_right_namespaces_with_the_state(rt, scripts):
    host, inside, log, log_name = scripts
    cfg = rt.spec("hooked", ["sleep", "1000"])
    cfg["annotations"] = {"org.example.key": "value"}
    hooks = {name: [hook(host, name, log)] for name in
             ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    # startContainer runs in the container: its path and log are the container's
    hooks["startContainer"] = [hook(inside, "startContainer", f"/tmp/{log_name}")]
    cfg["hooks"] = hooks
    h = rt.create("hooked", [], cfg=cfg)
    assert h.create_code() == 0, h.stderr()
    init = rt.pid("hooked")
    bundle = str(rt.tmp / "bundle-hooked")
    got = read_log(log)
    assert [e["hook"] for e in got] == ["prestart", "createRuntime", "createContainer"]
    host_ns = (os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/net"))
    init_ns = (os.readlink(f"/proc/{init}/ns/mnt"), os.readlink(f"/proc/{init}/ns/net"))
    for e in got:
        # only the hook's own environment (sh adds PWD, SHLVL)
        env = dict(kv.split("=", 1) for kv in e["env"].split())
        assert env["HOOKENV"] == "yes" and env["LOG"] == str(log) and "PATH" not in env
        assert e["state"] == {"ociVersion": "1.0.2", "id": "hooked", "status": "creating",
                              "pid": init, "bundle": bundle,
                              "annotations": {"org.example.key": "value"}}
    # prestart and createRuntime: the runtime's namespaces; createContainer: the container's
    assert [(e["mnt"], e["net"]) for e in got] == [host_ns, host_ns, init_ns]

    assert rt.cmd("start", "hooked").returncode == 0
    got = read_log(log)
    assert [e["hook"] for e in got][3:] == ["poststart"]
    assert got[3]["state"]["status"] == "running" and got[3]["state"]["pid"] == init
    assert (got[3]["mnt"], got[3]["net"]) == host_ns
    inside_log = read_log(os.path.join(rt.rootfs, "tmp", log_name))
    assert [e["hook"] for e in inside_log] == ["startContainer"]
    assert inside_log[0]["state"]["status"] == "created"
    assert inside_log[0]["state"]["pid"] == init
    assert (inside_log[0]["mnt"], inside_log[0]["net"]) == init_ns

    assert rt.cmd("delete", "--force", "hooked").returncode == 0
    assert h.exit_code(init) == 137
    got = read_log(log)
    assert [e["hook"] for e in got][4:] == ["poststop"]
    assert got[4]["state"]["status"] == "stopped" and got[4]["state"]["pid"] == 0
    assert not (rt.root / "hooked").exists()  # poststop ran after the delete


def test_create_container_hook_runs_before_pivot_root(rt, scripts, tmp_path):
    # the host's paths are still there: the hook sees the rootfs at its host path
    # and can write into it
    marker = "created-by-hook"
    script = tmp_path / "before-pivot.sh"
    script.write_text(f"#!/bin/sh\ntest -d {rt.rootfs}/bin && "
                      f"echo yes > {rt.rootfs}/tmp/{marker}\n")
    script.chmod(0o755)
    cfg = rt.spec("prepivot", ["cat", f"/tmp/{marker}"])
    cfg["hooks"] = {"createContainer": [{"path": str(script)}]}
    try:
        res = rt.run("prepivot", [], cfg=cfg)
        assert res.returncode == 0, res.stderr
        assert res.stdout == "yes\n"
    finally:
        os.unlink(os.path.join(rt.rootfs, "tmp", marker))


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(rt, scripts, tmp_path, kind):
    host, _inside, log, _ = scripts
    fail = tmp_path / "fail.sh"
    fail.write_text("#!/bin/sh\necho 'no way' >&2\nexit 3\n")
    fail.chmod(0o755)
    cid = f"fail-{kind.lower()}"
    cfg = rt.spec(cid, ["true"])
    cfg["hooks"] = {kind: [{"path": str(fail)}, hook(host, "never", log)],
                    "poststop": [hook(host, "poststop", log)]}
    h = rt.create(cid, [], cfg=cfg)
    assert h.create_code() == 1
    assert f"{kind} hook #0 ({fail}): exit status 3: no way" in h.stderr()
    # the spec: a failing hook stops the lifecycle at delete, poststop included
    assert [e["hook"] for e in read_log(log)] == ["poststop"]
    assert not (rt.root / cid).exists()
    assert not os.path.exists(f"/sys/fs/cgroup/memory{rt.cgroup_parent}/{cid}")


def test_a_hook_that_times_out_fails_create(rt, tmp_path):
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    cfg = rt.spec("slowhook", ["true"])
    cfg["hooks"] = {"createRuntime": [{"path": str(slow), "timeout": 1}]}
    started = time.monotonic()
    res = rt.run("slowhook", [], cfg=cfg)
    assert time.monotonic() - started < 15
    assert res.returncode == 1
    assert f"createRuntime hook #0 ({slow}): timed out after 1s" in res.stderr
    assert not (rt.root / "slowhook").exists()


def test_a_hook_that_cannot_run_fails_create(rt):
    cfg = rt.spec("nohook", ["true"])
    cfg["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}
    res = rt.run("nohook", [], cfg=cfg)
    assert res.returncode == 1
    assert "createRuntime hook #0 (/no/such/hook): no such file or directory" in res.stderr


def test_a_failing_start_container_hook_fails_start(rt, scripts):
    cfg = rt.spec("badstart", ["sh", "-c", "echo should not run"])
    cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}
    h = rt.create("badstart", [], cfg=cfg)
    assert h.create_code() == 0, h.stderr()
    init = rt.pid("badstart")
    res = rt.cmd("start", "badstart")
    assert res.returncode == 1
    assert "startContainer hook #0 (/bin/sh): exit status 4" in res.stderr
    assert h.exit_code(init) == 1  # the container stopped, the process never ran
    assert "should not run" not in h.output()
    assert rt.state("badstart")["status"] == "stopped"
    assert rt.cmd("delete", "badstart").returncode == 0


def test_poststart_and_poststop_failures_are_warnings(rt, scripts, tmp_path):
    host, _inside, log, _ = scripts
    cfg = rt.spec("warned", ["sh", "-c", "echo ran"])
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 9"]}
    # args[0] is the hook's argv[0], whatever its path
    argv0 = {"path": "/bin/sh", "args": ["mine", "-c", f'echo "$0" > {tmp_path}/argv0']}
    cfg["hooks"] = {"poststart": [failing, hook(host, "poststart", log), argv0],
                    "poststop": [failing, hook(host, "poststop", log)]}
    res = rt.run("warned", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ran\n"
    assert (tmp_path / "argv0").read_text() == "mine\n"
    # the hooks after the failing one still ran
    assert [e["hook"] for e in read_log(log)] == ["poststart", "poststop"]
    warnings = [line["msg"] for line in rt.log_lines() if line["level"] == "warning"]
    assert warnings == ["poststart hook #0 (/bin/sh): exit status 9: oops",
                        "poststop hook #0 (/bin/sh): exit status 9: oops"]
