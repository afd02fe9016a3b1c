"""HostConfig.SecurityOpt and Docker's default seccomp profile, end to end:
CLI -> daemon (the profile converted for the container's capabilities) ->
runtime (built with libseccomp once, then loaded from its cache)."""

from __future__ import annotations

import glob
import json
import os

import pytest

pytestmark = pytest.mark.root


def out(res) -> str:
    return res.stdout.decode(errors="replace")


def err(res) -> str:
    return res.stderr.decode(errors="replace")


def status_field(engine, name: str, *opts: str) -> str:
    res = engine.cli("run", "--rm", *opts, "busybox", "grep", f"^{name}:", "/proc/self/status")
    assert res.returncode == 0, err(res)
    return out(res).split(":", 1)[1].strip()


def test_the_default_profile_is_applied_and_can_be_turned_off(engine):
    assert status_field(engine, "Seccomp") == "2"  # SECCOMP_MODE_FILTER
    assert status_field(engine, "Seccomp", "--security-opt", "seccomp=unconfined") == "0"
    # and it is Docker's: without CAP_SYS_ADMIN, unshare(2) is refused by the
    # filter (a new user namespace needs no capability at all)
    res = engine.cli("run", "--rm", "busybox", "unshare", "-U", "true")
    assert res.returncode != 0 and "Operation not permitted" in err(res), (res.returncode, err(res))
    res = engine.cli("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox",
                     "unshare", "-U", "true")
    assert res.returncode == 0, err(res)


def test_a_profile_from_a_file_is_applied_each_time(engine, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile, indent=2))
    cache = os.path.join(engine.exec_root, "runtime", "@seccomp")
    for _ in range(2):  # built, then loaded from the runtime's cache
        res = engine.cli("run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                         "mkdir", "/made")
        assert res.returncode == 1 and "Operation not permitted" in err(res), err(res)
    assert glob.glob(os.path.join(cache, "*.bpf"))
    res = engine.cli("run", "--rm", "busybox", "mkdir", "/made")
    assert res.returncode == 0, err(res)


def test_no_new_privileges(engine):
    assert status_field(engine, "NoNewPrivs") == "0"
    assert status_field(engine, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert status_field(engine, "NoNewPrivs", "--security-opt", "no-new-privileges=true") == "1"


@pytest.mark.parametrize("opt, status, message", [
    ("foo", 400, 'invalid --security-opt 1: "foo"'),
    ("foo=bar", 400, 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges=maybe", 400, 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("seccomp={not json", 400, "Decoding seccomp profile failed"),
    ("seccomp=[1]", 400, "Decoding seccomp profile failed"),
    ('seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}',
     400, "Decoding seccomp profile failed"),
    ("apparmor=docker-default", 400, "AppArmor"),
    ("label=type:svirt_lxc_net_t", 400, "SELinux"),
])
def test_bad_security_options_are_refused_and_create_nothing(engine, opt, status, message):
    before = out(engine.cli("ps", "-aq"))
    code, body = engine.request("POST", "/containers/create",
                                {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"SecurityOpt": [opt]}})
    assert code == status and message in body["message"], (code, body)
    assert out(engine.cli("ps", "-aq")) == before


def test_cli_errors_for_security_options(engine, tmp_path):
    res = engine.cli("run", "--rm", "--security-opt", "foo", "busybox", "true")
    assert res.returncode == 125 and 'Invalid --security-opt: "foo"' in err(res), err(res)
    res = engine.cli("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true")
    assert res.returncode == 125, err(res)
    assert ("opening seccomp profile (/nonexistent.json) failed: open /nonexistent.json: "
            "no such file or directory") in err(res)


def test_info_reports_the_seccomp_profile(engine):
    info = json.loads(out(engine.cli("info", "--format", "{{json .SecurityOptions}}")))
    assert "name=seccomp,profile=builtin" in info
    text = out(engine.cli("info"))
    assert "  seccomp\n   Profile: builtin\n" in text
