"""Host selection, image references, and the container config built from run/create flags."""

import importlib
import socket

import pytest

from cli import reference
from cli.client import select_host, parse_host, urlencode, DEFAULT_HOST, HostError
from cli.run import (build_config, ConfigError, validate_env, parse_kv_file, parse_publish,
                     parse_restart, run_error_code, build_env)


def test_host_precedence():
    env = {"TRIOCTR_HOST": "unix:///t.sock", "DOCKER_HOST": "unix:///d.sock"}
    assert select_host(["unix:///flag.sock"], env) == "unix:///flag.sock"
    assert select_host(None, env) == "unix:///t.sock"
    assert select_host(None, {"DOCKER_HOST": "unix:///d.sock"}) == "unix:///d.sock"
    # a tcp:// DOCKER_HOST is docker's, not ours
    assert select_host(None, {"DOCKER_HOST": "tcp://1.2.3.4:2375"}) == DEFAULT_HOST
    assert select_host(None, {}) == DEFAULT_HOST == "unix:///run/trioctr/trioctr.sock"
    assert select_host([], {"TRIOCTR_HOST": ""}) == DEFAULT_HOST


def test_parse_host():
    assert parse_host("unix:///run/x.sock") == (socket.AF_UNIX, "/run/x.sock")
    assert parse_host("/run/x.sock") == (socket.AF_UNIX, "/run/x.sock")
    assert parse_host("tcp://127.0.0.1:2376") == (socket.AF_INET, ("127.0.0.1", 2376))
    assert parse_host("tcp://localhost") == (socket.AF_INET, ("localhost", 2375))
    for bad in ("unix://", "ssh://x", "fd://", "tcp://h:notaport"):
        with pytest.raises(HostError):
            parse_host(bad)


def test_urlencode():
    assert urlencode({"a": "x y", "b": None, "c": ["1", "2"], "d": True}) == "a=x%20y&c=1&c=2&d=1"
    assert urlencode([("filters", '{"a":{"b":true}}')]) == \
        "filters=%7B%22a%22%3A%7B%22b%22%3Atrue%7D%7D"


@pytest.mark.parametrize("ref,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    ("localhost:5000/x/y:v1", "localhost:5000/x/y:v1", "localhost:5000/x/y:v1"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64,
     "busybox@sha256:" + "a" * 64),
])
def test_reference_normalisation(ref, full, familiar):
    reference.validate(ref)
    assert reference.normalize(ref) == full
    assert reference.familiar(ref, default_tag=True) == familiar


@pytest.mark.parametrize("ref", ["Busybox", "busybox:", "a b", "busybox@sha256:abc", ":tag", ""])
def test_reference_invalid(ref):
    with pytest.raises(reference.InvalidReference):
        reference.validate(ref)


def _opts(*argv):
    run = importlib.import_module("cli.run")
    return run.spec("run").parse(list(argv))


def test_default_config_is_dockers():
    opts, args = _opts("busybox", "sh", "-c", "echo hi")
    cfg, q = build_config(opts, args)
    assert q == {"name": None, "platform": None}
    assert cfg["Image"] == "busybox" and cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] is None and cfg["Env"] is None and cfg["Labels"] == {}
    assert cfg["AttachStdout"] and cfg["AttachStderr"] and not cfg["AttachStdin"]
    assert not cfg["Tty"] and not cfg["OpenStdin"] and not cfg["StdinOnce"]
    hc = cfg["HostConfig"]
    assert hc["NetworkMode"] == "default" and hc["AutoRemove"] is False
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["Memory"] == 0 and hc["NanoCpus"] == 0 and "PidsLimit" not in hc
    assert "Runtime" not in hc
    assert cfg["NetworkingConfig"] == {"EndpointsConfig": {"default": {}}}


def test_config_from_the_briefs_flags():
    opts, args = _opts("--rm", "-e", "A=1", "-e", "FOO", "-e", "NOPE", "--name", "x", "-w", "/w",
                       "-u", "1:2", "--entrypoint", "", "-m", "10m", "--memory-swap", "20m",
                       "--pids-limit", "5", "--cpus", "1.5", "--cpu-shares", "100", "-h", "hh",
                       "-l", "a=b", "-l", "c", "-i", "-t", "--runtime", "runc", "--network",
                       "host", "--restart", "no", "busybox", "echo", "hi")
    cfg, q = build_config(opts, args, environ={"FOO": "bar"})
    assert q["name"] == "x"
    assert cfg["Env"] == ["A=1", "FOO=bar", "NOPE"]
    assert cfg["Entrypoint"] == [""]
    assert cfg["WorkingDir"] == "/w" and cfg["User"] == "1:2" and cfg["Hostname"] == "hh"
    assert cfg["Labels"] == {"a": "b", "c": ""}
    assert cfg["Tty"] and cfg["OpenStdin"] and cfg["StdinOnce"] and cfg["AttachStdin"]
    hc = cfg["HostConfig"]
    assert hc["Memory"] == 10 << 20 and hc["MemorySwap"] == 20 << 20
    assert hc["PidsLimit"] == 5 and hc["NanoCpus"] == 1500000000 and hc["CpuShares"] == 100
    assert hc["AutoRemove"] is True and hc["Runtime"] == "runc" and hc["NetworkMode"] == "host"
    assert cfg["NetworkingConfig"] == {"EndpointsConfig": {}}


def test_detached_config_attaches_nothing():
    opts, args = _opts("-d", "-i", "busybox")
    cfg, _ = build_config(opts, args, detach=True)
    assert not (cfg["AttachStdin"] or cfg["AttachStdout"] or cfg["AttachStderr"])
    assert cfg["OpenStdin"] and not cfg["StdinOnce"]
    opts, args = _opts("-d", "-a", "stdout", "busybox")
    with pytest.raises(ConfigError, match="Conflicting options: -a and -d"):
        build_config(opts, args, detach=True)


def test_entrypoint_given():
    opts, args = _opts("--entrypoint", "echo", "busybox", "x")
    cfg, _ = build_config(opts, args)
    assert cfg["Entrypoint"] == ["echo"] and cfg["Cmd"] == ["x"]


def test_restart_and_rm_conflict():
    opts, args = _opts("--rm", "--restart", "always", "busybox")
    with pytest.raises(ConfigError, match="Conflicting options: --restart and --rm"):
        build_config(opts, args)
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("unless-stopped") == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    with pytest.raises(ConfigError, match="maximum retry count must be an integer"):
        parse_restart("on-failure:x")
    with pytest.raises(ConfigError, match="no policy provided before colon"):
        parse_restart(":3")


def test_ports_volumes_and_more():
    opts, args = _opts("-p", "8080:80", "-p", "127.0.0.1::53/udp", "-p", "9000-9001:9000-9001",
                       "--expose", "7000-7001", "-P", "-v", "/a:/b:ro", "-v", "/anon",
                       "--tmpfs", "/run:size=1m", "--ulimit", "nofile=10:20", "--sysctl",
                       "net.ipv4.ip_forward=1", "--cap-add", "NET_ADMIN", "--privileged",
                       "--read-only", "--init", "--stop-signal", "SIGINT", "--stop-timeout", "3",
                       "busybox")
    cfg, _ = build_config(opts, args)
    hc = cfg["HostConfig"]
    assert hc["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "9000/tcp": [{"HostIp": "", "HostPort": "9000"}],
        "9001/tcp": [{"HostIp": "", "HostPort": "9001"}]}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "9000/tcp", "9001/tcp", "7000/tcp",
                                        "7001/tcp"}
    assert hc["PublishAllPorts"] and hc["Privileged"] and hc["ReadonlyRootfs"] and hc["Init"]
    assert hc["Binds"] == ["/a:/b:ro"] and cfg["Volumes"] == {"/anon": {}}
    assert hc["Tmpfs"] == {"/run": "size=1m"}
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
    assert hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert hc["CapAdd"] == ["NET_ADMIN"]
    assert cfg["StopSignal"] == "SIGINT" and cfg["StopTimeout"] == 3


def test_parse_publish():
    assert parse_publish("80") == [("80/tcp", "", "")]
    assert parse_publish("[::1]:8080:80") == [("80/tcp", "::1", "8080")]
    assert parse_publish("8000-8001:80") == [("80/tcp", "", "8000-8001")]
    with pytest.raises(ConfigError):
        parse_publish("80/xyz")
    with pytest.raises(ConfigError):
        parse_publish("1:2:3:x")


def test_env_handling(tmp_path):
    assert validate_env("A=1", {}) == "A=1"
    assert validate_env("A", {"A": "v"}) == "A=v"
    assert validate_env("A", {}) == "A"
    with pytest.raises(ConfigError, match="invalid environment variable: =x"):
        validate_env("=x", {})
    f = tmp_path / "env"
    f.write_bytes(b"\xef\xbb\xbf# comment\n\n  A=1\nB= spaced \nFROMENV\nMISSING\nC\r\n")
    assert parse_kv_file(str(f), lambda k: {"FROMENV": "e", "C": "c"}.get(k)) == \
        ["A=1", "B= spaced ", "FROMENV=e", "C=c"]
    assert build_env([str(f)], ["D=4", "FROMENV"], {"FROMENV": "e", "C": "c"}) == \
        ["A=1", "B= spaced ", "FROMENV=e", "C=c", "D=4", "FROMENV=e"]
    bad = tmp_path / "bad"
    bad.write_text("MY VAR=1\n")
    with pytest.raises(ConfigError, match="variable 'MY VAR' contains whitespaces"):
        parse_kv_file(str(bad))
    with pytest.raises(ConfigError, match="open /nonexistent/env: no such file or directory"):
        parse_kv_file("/nonexistent/env")


def test_run_error_codes_follow_docker():
    assert run_error_code('exec: "nosuch": executable file not found in $PATH') == 127
    assert run_error_code("open /x: no such file or directory") == 127
    assert run_error_code("exec /etc: permission denied") == 126
    assert run_error_code("exec /etc: is a directory") == 126
    assert run_error_code("No such image: busybox:latest") == 125
