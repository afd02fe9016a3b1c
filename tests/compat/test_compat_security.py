"""Security options through the real docker CLI and the Docker SDK for Python:
Docker's default seccomp profile, a profile from a file (the CLI sends its
content), unconfined, no-new-privileges, and what `docker info` says."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_docker_cli_seccomp_profiles(engine, tmp_path):
    res = engine.docker("run", "--rm", "busybox", "grep", "^Seccomp:", "/proc/self/status")
    assert res.returncode == 0 and res.stdout.split() == [b"Seccomp:", b"2"], res
    res = engine.docker("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox",
                        "grep", "^Seccomp:", "/proc/self/status")
    assert res.stdout.split() == [b"Seccomp:", b"0"], res
    path = tmp_path / "deny-mkdir.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    res = engine.docker("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "mkdir", "/d")
    assert res.returncode == 1 and b"Permission denied" in res.stderr, res
    res = engine.docker("run", "--rm", "--security-opt", "no-new-privileges", "busybox",
                        "grep", "^NoNewPrivs:", "/proc/self/status")
    assert res.stdout.split() == [b"NoNewPrivs:", b"1"], res
    res = engine.docker("run", "--rm", "--security-opt", "apparmor=docker-default", "busybox", "true")
    assert res.returncode == 125 and b"AppArmor" in res.stderr, res


def test_docker_info_shows_the_builtin_profile(engine):
    res = engine.docker("info")
    assert res.returncode == 0, res
    assert b" Security Options:\n  seccomp\n   Profile: builtin\n  cgroupns\n" in res.stdout, res.stdout


def test_sdk_security_opt(client):
    out = client.containers.run("busybox", ["grep", "^Seccomp:", "/proc/self/status"],
                                security_opt=["seccomp=unconfined"], remove=True)
    assert out.split() == [b"Seccomp:", b"0"]
    out = client.containers.run("busybox", ["grep", "^Seccomp:", "/proc/self/status"], remove=True)
    assert out.split() == [b"Seccomp:", b"2"]
    assert "name=seccomp,profile=builtin" in client.info()["SecurityOptions"]
