"""The API socket under abuse: malformed and oversized requests, wrong types,
clients that half-close or vanish in the middle of a stream.  Afterwards a
normal client still works, and the daemon holds no more descriptors, event
subscriptions or containers than before."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import time

import pytest

from tests.compat.compat_util import err, out, poll

pytestmark = pytest.mark.root

WRONG = [5, 1.5, "text", True, [1], ["a"], {"a": 1}, {"a": "b"}]
CONFIG_FIELDS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                 "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Entrypoint", "Image", "WorkingDir",
                 "Labels", "StopSignal", "StopTimeout", "ExposedPorts", "ArgsEscaped", "NetworkDisabled",
                 "OnBuild", "Shell", "Volumes", "MacAddress", "Healthcheck", "HostConfig", "NetworkingConfig"]
HOSTCONFIG_FIELDS = ["Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
                     "AutoRemove", "Runtime", "NetworkMode", "RestartPolicy", "LogConfig", "ReadonlyRootfs",
                     "CapAdd", "CapDrop", "ConsoleSize", "CgroupnsMode", "IpcMode", "Isolation",
                     "ContainerIDFile", "OomKillDisable", "Init", "Binds", "PortBindings", "Privileged",
                     "ShmSize", "Ulimits", "MemorySwappiness"]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raw(engine, data: bytes, *, shut: bool = False, read: bool = True, timeout: float = 15) -> bytes:
    """Send raw bytes on a new connection; return what comes back until EOF."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(engine.sock)
    got = b""
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the daemon may answer (and close) before reading everything
        while read:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


def request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: docker", "Connection: close"]
    hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    hdrs.update(headers or {})
    head += [f"{k}: {v}" for k, v in hdrs.items() if v is not None]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def status_of(resp: bytes) -> int:
    line = resp.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0


def json_body(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def start_stream(engine, path: str) -> socket.socket:
    """Open a streaming request and read its response head; the caller drops it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(engine.sock)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return s


def test_type_confusion_in_create_is_always_a_4xx(engine):
    """Every field of ContainerConfig and HostConfig, given a value of every
    wrong JSON type: a clear 4xx, or (when Docker would accept it) a container;
    never a 500 and never a crash."""
    created = []
    bad = []
    cases = []
    for field in CONFIG_FIELDS:
        for value in WRONG:
            cases.append({"Image": "busybox", "Cmd": ["true"], field: value})
    for field in HOSTCONFIG_FIELDS:
        for value in WRONG:
            cases.append({"Image": "busybox", "Cmd": ["true"], "HostConfig": {field: value}})

    def one(body):
        resp = raw(engine, request("POST", "/v1.41/containers/create", json.dumps(body).encode()))
        return body, status_of(resp), resp

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for body, status, resp in pool.map(one, cases):
            if status == 201:
                created.append(json_body(resp)["Id"])
            elif not (400 <= status < 500) or "message" not in json_body(resp):
                bad.append((body, status, resp[-300:]))
    for cid in created:
        engine.request("DELETE", f"/containers/{cid}?force=1")
    assert not bad, bad[:5]
    assert engine.proc.poll() is None


def listeners(engine) -> int:
    """The daemon's event subscribers, asked on a connection of its own that
    is closed at once (a kept-alive client connection is a descriptor too)."""
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url="unix://" + engine.sock)
    try:
        return c.info()["NEventsListener"]
    finally:
        c.close()


def test_flood_of_bad_requests_leaks_nothing(engine):
    docker = pytest.importorskip("docker")
    pid = engine.proc.pid
    # a running container whose logs can be followed
    res = engine.docker("run", "-d", "--name", "quiet", "busybox", "sleep", "600")
    assert res.returncode == 0, err(res)
    cid = out(res).strip()
    # warm up every path once, then take the baseline
    for path in ("/events?since=0&until=1", f"/containers/{cid}/logs?stdout=1", "/containers/json"):
        raw(engine, request("GET", path))
    engine.docker("ps")
    # the event bus forgets a closed subscription at its next event: give it one
    engine.docker("rm", out(engine.docker("create", "busybox", "true")).strip())
    time.sleep(0.5)
    base_fds = fd_count(pid)
    assert listeners(engine) == 0

    big = b"x" * (20 * 1024 * 1024)
    bad_requests = [
        (request("POST", "/containers/create", b"{"), 400),
        (request("POST", "/containers/create", b"[1, 2"), 400),
        (request("POST", "/containers/create", b"\xff\xfe\x00garbage"), 400),
        (request("POST", "/containers/create", b"null"), 400),
        (request("POST", "/containers/create", b"42"), 400),
        (request("POST", "/containers/create", b'{"Image": 5}'), 400),
        (request("POST", "/containers/create", b'{"Image": "busybox", "Cmd": 5}'), 400),
        (request("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": []}'), 400),
        (request("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Memory": "lots"}}'), 400),
        (request("POST", "/containers/create", b""), 400),
        (request("POST", "/containers/create", big), 413),
        (request("POST", "/containers/create", big, {"Content-Length": None,
                                                      "Transfer-Encoding": "chunked"})[:-len(big)]
         + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n", 413),
        (request("GET", "/containers/json?filters=%7Bnot-json"), 400),
        (request("GET", "/containers/json?limit=abc"), 400),
        (request("GET", "/containers/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D"), 400),
        (request("GET", "/v9.99/containers/json"), 400),
        (request("GET", "/containers/nope-x/json"), 404),
        (request("DELETE", "/_ping"), 405),
        (request("GET", "/no/such/path"), 404),
        (request("POST", f"/containers/{cid}/kill?signal=NOPE"), 400),
        (request("GET", f"/containers/{cid}/logs"), 400),
        (request("GET", f"/containers/{cid}/archive?path=/etc/../../../../nope"), 404),
        (request("GET", f"/containers/{cid}/top?ps_args=--evil"), 500),
        (b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nConnection: close\r\n\r\n", 0),
        (b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         + b"X-Long: " + b"a" * 100000 + b"\r\n\r\n", 0),
        (b"POST /containers/create HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 300000, 0),
    ]

    def send(item):
        data, want = item
        resp = raw(engine, data)
        return want, status_of(resp), resp[:300]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, bad_requests * 3))
    for want, got, resp in results:
        if want:
            assert got == want, (want, got, resp)
        else:
            assert got == 0 or 400 <= got < 500, resp

    # half-closed clients: a complete request is still answered; an incomplete one is dropped
    resp = raw(engine, request("GET", "/containers/json"), shut=True)
    assert status_of(resp) == 200
    resp = raw(engine, b"GET /containers/json HTTP/1.1\r\nHost: x\r\n", shut=True)
    assert resp == b"" or 400 <= status_of(resp) < 500
    resp = raw(engine, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
               shut=True)
    assert status_of(resp) == 400

    # clients that vanish in the middle of streams that have nothing to say
    streams = []
    for _ in range(5):
        streams.append(start_stream(engine, "/events"))
        streams.append(start_stream(engine, f"/containers/{cid}/logs?follow=1&stdout=1&stderr=1"))
        streams.append(start_stream(engine, f"/containers/{cid}/stats"))
        s = socket.socket(socket.AF_UNIX)
        s.connect(engine.sock)
        s.sendall(f"POST /containers/{cid}/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        streams.append(s)
    assert poll(lambda: listeners(engine) == 5)
    assert fd_count(pid) >= base_fds + len(streams)
    for s in streams:
        s.close()
    # and a connection that is opened and left without a word
    s = socket.socket(socket.AF_UNIX)
    s.connect(engine.sock)
    s.close()

    # a normal client still works, and everything was let go
    assert engine.docker("ps", "-q").returncode == 0
    client = docker.DockerClient(base_url="unix://" + engine.sock)
    try:
        assert client.ping() is True
        assert client.containers.run("busybox", ["echo", "fine"], remove=True) == b"fine\n"
    finally:
        client.close()
    res = engine.docker("run", "--rm", "busybox", "sh", "-c", "echo fine")
    assert (res.returncode, out(res)) == (0, "fine\n"), err(res)
    assert poll(lambda: listeners(engine) == 0, 10)
    assert poll(lambda: fd_count(pid) <= base_fds, 10), (fd_count(pid), base_fds,
                                                               sorted(os.listdir(f"/proc/{pid}/fd")))
    assert engine.proc.poll() is None
    engine.docker("rm", "-f", "quiet")


# PR_SET_PDEATHSIG fires when the *thread* that forked a child exits; trio
# forks from worker threads that retire after 10 s idle.  The supervisor and the
# shim zygote used it, and were killed after every idle spell: never again.
def test_the_supervisor_outlives_an_idle_spell(engine):
    t0 = time.time()
    time.sleep(12)  # nothing at all happens: trio's idle worker threads exit after 10 s
    res = engine.docker("events", "--since", f"{t0:.6f}", "--until", f"{time.time():.6f}",
                        "--filter", "type=daemon", "--format", "{{.Action}}")
    assert res.returncode == 0, err(res)
    assert "supervisor-exit" not in out(res).split(), out(res)
