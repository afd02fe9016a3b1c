"""Files of containers through the daemon: PUT/GET /containers/{id}/archive
(docker cp both ways), GET /containers/{id}/export and /changes (docker diff),
on running, created and exited containers; through HTTP and the trioctr CLI.

Root, real kernel.  Malicious archives and escaping symlinks planted in the
container must never write outside the container's root, and no operation
may leave a mount in the host's mount namespace."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# -- helpers -------------------------------------------------------------------------------
def mktar(entries) -> bytes:
    """entries: (name, kind, data[, extra]) with kind f(ile) d(ir) l(symlink) h(ardlink) c(hardev)."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, *extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            opts = extra[0] if extra else {}
            ti.mode = opts.get("mode", 0o755 if kind == "d" else 0o644)
            ti.uid, ti.gid = opts.get("uid", 0), opts.get("gid", 0)
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in opts.get("xattrs", {}).items()}
            if kind == "f":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
                       "c": tarfile.CHRTYPE}[kind]
            if kind in "lh":
                ti.linkname = data
            t.addfile(ti)
    return b.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: m for m in t.getmembers()}


def member_data(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return t.extractfile(name).read()


def put(engine, ref: str, path: str, tar: bytes, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return engine.request("PUT", f"/containers/{ref}/archive?path={path}" + ("&" + q if q else ""), tar,
                          headers={"Content-Type": "application/x-tar"})


def get_file(engine, ref: str, path: str) -> bytes | None:
    status, body = engine.request("GET", f"/containers/{ref}/archive?path={path}")
    if status == 404:
        return None
    assert status == 200, body
    return member_data(body, os.path.basename(path))


def create(engine, name: str, cmd: list[str], **extra) -> str:
    status, body = engine.request("POST", f"/containers/create?name={name}",
                                  {"Image": "busybox", "Cmd": cmd, **extra})
    assert status == 201, body
    return body["Id"]


def run_to_exit(engine, name: str, cmd: list[str], **extra) -> str:
    cid = create(engine, name, cmd, **extra)
    status, body = engine.request("POST", f"/containers/{cid}/start")
    assert status == 204, body
    status, body = engine.request("POST", f"/containers/{cid}/wait")
    assert status == 200 and body["StatusCode"] == 0, body
    return cid


def start_sleeper(engine, name: str, script: str = "true", **extra) -> str:
    cid = create(engine, name, ["sh", "-c", script + "; exec sleep 300"], **extra)
    status, body = engine.request("POST", f"/containers/{cid}/start")
    assert status == 204, body
    return cid


def remove(engine, ref: str) -> None:
    engine.request("DELETE", f"/containers/{ref}?force=1")


def assert_no_host_mounts(engine) -> None:
    """Nothing of this engine's is mounted in the host's mount namespace
    (the daemon's and ours are the same one)."""
    with open("/proc/self/mountinfo") as f:
        mine = f.read()
    assert engine.base not in mine
    with open(f"/proc/{engine.proc.pid}/mountinfo") as f:
        assert engine.base not in f.read()


@pytest.fixture
def marker():
    """A name no file on the host has: proof that nothing escaped."""
    name = f"trioctr-escape-{uuid.uuid4().hex[:10]}"
    yield name
    for d in ("/", "/tmp", "/etc", "/root"):
        p = os.path.join(d, name)
        if os.path.lexists(p):
            os.unlink(p)


def assert_not_on_host(name: str, engine) -> None:
    for d in ("/", "/tmp", "/etc", "/root", os.path.dirname(engine.base), engine.base, engine.root):
        assert not os.path.lexists(os.path.join(d, name)), f"escaped to {d}"


# -- PUT: the basics -----------------------------------------------------------------------
def test_put_into_created_container_is_seen_when_it_starts(engine):
    cid = create(engine, "put-created", ["cat", "/tmp/greeting", "/tmp/sub/x"])
    try:
        status, body = put(engine, cid, "/tmp", mktar([
            ("greeting", "f", b"hello\n", {"xattrs": {"user.trioctr": "yes"}}),
            ("sub", "d", None), ("sub/x", "f", b"x\n")]))
        assert status == 200, body
        assert_no_host_mounts(engine)
        # it landed in the container's upper directory, nowhere else
        _, rec = engine.request("GET", f"/containers/{cid}/json")
        upper = rec["GraphDriver"]["Data"]["UpperDir"]
        assert open(os.path.join(upper, "tmp", "greeting"), "rb").read() == b"hello\n"
        try:
            assert os.getxattr(os.path.join(upper, "tmp", "greeting"), "user.trioctr") == b"yes"
        except OSError:  # a host filesystem without user xattrs
            pass
        res = engine.cli("start", "-a", cid)
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"hello\nx\n"
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)


def test_put_into_exited_and_running_containers(engine):
    cid = run_to_exit(engine, "put-exited", ["true"])
    try:
        assert put(engine, cid, "/", mktar([("etc/motd", "f", b"exited\n")]))[0] == 200
        assert get_file(engine, cid, "/etc/motd") == b"exited\n"
        assert_no_host_mounts(engine)
        engine.request("POST", f"/containers/{cid}/start")
    finally:
        remove(engine, cid)
    cid = start_sleeper(engine, "put-running")
    try:
        status, body = put(engine, cid, "/root", mktar([("run.txt", "f", b"running\n", {"mode": 0o600})]))
        assert status == 200, body
        res = engine.cli("exec", cid, "cat", "/root/run.txt")
        if res.returncode == 0:  # exec may not exist yet in this engine
            assert res.stdout == b"running\n"
        m = members(engine.request("GET", f"/containers/{cid}/archive?path=/root/run.txt")[1])
        assert m["run.txt"].mode == 0o600 and m["run.txt"].mtime == 1_600_000_000
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)


def test_put_errors_as_docker(engine):
    cid = create(engine, "put-errors", ["true"])
    ro = create(engine, "put-ro", ["true"], HostConfig={"ReadonlyRootfs": True})
    try:
        tar = mktar([("f", "f", b"x")])
        assert put(engine, cid, "/nope", tar) == (404, {"message": "Could not find the file /nope in container " + cid})
        assert put(engine, "put-errors", "/nope/deeper", tar) == (
            404, {"message": "Could not find the file /nope/deeper in container put-errors"})
        assert put(engine, cid, "/bin/busybox", tar) == (400, {"message": "extraction point is not a directory"})
        status, body = engine.request("PUT", f"/containers/{cid}/archive", tar)
        assert status == 400
        status, body = put(engine, "no-such-container", "/tmp", tar)
        assert status == 404 and body["message"] == "No such container: no-such-container"
        assert put(engine, ro, "/tmp", tar) == (403, {"message": "container rootfs is marked read-only"})
        assert get_file(engine, ro, "/tmp/f") is None
        status, body = put(engine, cid, "/tmp", b"this is not a tar archive" * 40)
        assert status == 500, body
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)
        remove(engine, ro)


def test_put_compressed_archive(engine):
    import gzip

    cid = create(engine, "put-gz", ["true"])
    try:
        assert put(engine, cid, "/tmp", gzip.compress(mktar([("z.txt", "f", b"zipped")])))[0] == 200
        assert get_file(engine, cid, "/tmp/z.txt") == b"zipped"
    finally:
        remove(engine, cid)


def test_put_no_overwrite_dir_non_dir(engine):
    cid = create(engine, "put-nooverwrite", ["true"])
    try:
        status, body = put(engine, cid, "/", mktar([("tmp", "f", b"file over dir")]), noOverwriteDirNonDir="true")
        assert status == 500 and "cannot overwrite directory" in body["message"]
        status, body = put(engine, cid, "/etc", mktar([("passwd/", "d", None)]), noOverwriteDirNonDir="true")
        assert status == 500 and "cannot overwrite non-directory" in body["message"]
        # without the flag, dockerd replaces one by the other
        assert put(engine, cid, "/tmp", mktar([("d/x", "f", b"1")]))[0] == 200
        assert put(engine, cid, "/tmp", mktar([("d", "f", b"now a file")]))[0] == 200
        assert get_file(engine, cid, "/tmp/d") == b"now a file"
    finally:
        remove(engine, cid)


def test_put_copy_uid_gid_uses_the_container_user(engine):
    cid = create(engine, "put-uidgid", ["true"], User="app")
    try:
        tar = mktar([("owned", "f", b"o", {"uid": 4321, "gid": 4321})])
        assert put(engine, cid, "/tmp", tar)[0] == 200
        m = members(engine.request("GET", f"/containers/{cid}/archive?path=/tmp/owned")[1])["owned"]
        assert (m.uid, m.gid) == (4321, 4321)  # the archive's owner, as dockerd without copyUIDGID
        assert put(engine, cid, "/tmp", tar, copyUIDGID="true")[0] == 200
        m = members(engine.request("GET", f"/containers/{cid}/archive?path=/tmp/owned")[1])["owned"]
        assert (m.uid, m.gid) == (1000, 1000)  # busybox's user app
    finally:
        remove(engine, cid)


# -- PUT: never outside the container's root ---------------------------------------------------
PLANT = "ln -s / /hostroot; ln -s ../../../../../../.. /dotdot; ln -s /../../../../tmp /hosttmp"


@pytest.mark.parametrize("state", ["created", "exited", "running"])
def test_malicious_archives_stay_inside(engine, marker, state):
    name = f"evil-{state}"
    if state == "created":
        cid = create(engine, name, ["true"])
        # as if the container had made them: symlinks pointing out, in its layer
        upper = engine.request("GET", f"/containers/{cid}/json")[1]["GraphDriver"]["Data"]["UpperDir"]
        os.symlink("/", os.path.join(upper, "hostroot"))
        os.symlink("../../../../../../..", os.path.join(upper, "dotdot"))
        os.symlink("/../../../../tmp", os.path.join(upper, "hosttmp"))
    elif state == "exited":
        cid = run_to_exit(engine, name, ["sh", "-c", PLANT])
    else:
        cid = start_sleeper(engine, name, PLANT)
    try:
        # names leaving the destination: refused, nothing written
        for entries in ([(f"../../../../../../tmp/{marker}", "f", b"x")],
                        [(f"/../../../tmp/{marker}", "f", b"x")],
                        [("ok", "d", None), (f"ok/../../{marker}", "f", b"x")],
                        [("up", "l", "../../../../../../../../"), (f"up/tmp/{marker}", "f", b"x")],
                        [(marker, "h", "../../../../../../etc/passwd")]):
            status, body = put(engine, cid, "/tmp", mktar(entries))
            assert status == 500, (entries, body)
            assert "outside of" in body["message"] or "invalid" in body["message"]
        # an absolute name is relative to the destination (as dockerd)
        assert put(engine, cid, "/tmp", mktar([(f"/abs-{marker}", "f", b"abs")]))[0] == 200
        assert get_file(engine, cid, f"/tmp/abs-{marker}") == b"abs"
        # an absolute symlink in the archive is the container's root, not the host's
        status, body = put(engine, cid, "/tmp", mktar([("root", "l", "/"), (f"root/{marker}", "f", b"in root"),
                                                      ("etc", "l", "/etc"), (f"etc/{marker}", "f", b"in etc")]))
        assert status == 200, body
        assert get_file(engine, cid, f"/{marker}") == b"in root"
        assert get_file(engine, cid, f"/etc/{marker}") == b"in etc"
        # a hard link to a file outside the destination but named absolutely:
        # the name is taken in the destination, which has no such file
        status, body = put(engine, cid, "/tmp", mktar([(f"h-{marker}", "h", "/etc/shadow")]))
        assert status != 200
        # symlinks planted in the container, pointing out of it
        for dest in ("/hostroot", "/dotdot", "/hosttmp", "/dotdot/tmp", "/hostroot/../../tmp"):
            status, body = put(engine, cid, dest, mktar([(f"via-{marker}", "f", dest.encode())]))
            assert status == 200, (dest, body)
        assert get_file(engine, cid, f"/via-{marker}") == b"/dotdot"
        assert get_file(engine, cid, f"/tmp/via-{marker}") == b"/hostroot/../../tmp"
        # entries whose directories are those symlinks
        status, body = put(engine, cid, "/", mktar([(f"hosttmp/deep-{marker}", "f", b"deep"),
                                                   (f"dotdot/etc/deep-{marker}", "f", b"deep2")]))
        assert status == 200, body
        assert get_file(engine, cid, f"/tmp/deep-{marker}") == b"deep"
        assert get_file(engine, cid, f"/etc/deep-{marker}") == b"deep2"
        assert_not_on_host(marker, engine)
        assert_not_on_host(f"via-{marker}", engine)
        assert_not_on_host(f"deep-{marker}", engine)
        assert_not_on_host(f"abs-{marker}", engine)
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)


def test_running_container_pseudo_filesystems_are_not_written(engine):
    cid = start_sleeper(engine, "evil-proc")
    try:
        status, body = put(engine, cid, "/proc", mktar([("sysrq-trigger", "f", b"c")]))
        assert status in (403, 500), body
        status, body = put(engine, cid, "/", mktar([("sys/kernel/x", "f", b"c")]))
        assert status in (403, 500), body
    finally:
        remove(engine, cid)


# -- GET archive and export of stopped containers -----------------------------------------------
def test_get_archive_and_export_of_created_and_exited_containers(engine):
    created = create(engine, "get-created", ["true"])
    exited = run_to_exit(engine, "get-exited", ["sh", "-c", "echo out > /tmp/made; rm /bin/ls"])
    try:
        status, body = engine.request("GET", f"/containers/{created}/archive?path=/etc/passwd")
        assert status == 200 and b"root:" in member_data(body, "passwd")
        assert get_file(engine, exited, "/tmp/made") == b"out\n"
        assert get_file(engine, exited, "/bin/ls") is None  # deleted: the whiteout hides it
        status, body = engine.request("HEAD", f"/containers/{exited}/archive?path=/tmp/made")
        assert status == 200
        for cid, present, absent in ((created, "bin/ls", None), (exited, "tmp/made", "bin/ls")):
            status, body = engine.request("GET", f"/containers/{cid}/export")
            assert status == 200
            names = members(body)
            assert present in names and "bin/busybox" in names
            if absent:
                assert absent not in names
        assert_no_host_mounts(engine)
    finally:
        remove(engine, created)
        remove(engine, exited)


# -- changes (docker diff) -----------------------------------------------------------------
def test_changes_of_exited_and_running_containers(engine):
    created = create(engine, "diff-created", ["true"])
    cid = run_to_exit(engine, "diff-exited", [
        "sh", "-c", "echo x > /etc/newfile; rm /bin/ls; mkdir -p /tmp/a/b; echo y > /tmp/a/b/c; "
                    "echo more >> /etc/passwd; rm -r /home/app; mkdir /home/app; touch /home/app/new"])
    try:
        status, body = engine.request("GET", f"/containers/{created}/changes")
        assert status == 200 and body is None  # nothing changed: null, as dockerd
        status, body = engine.request("GET", f"/containers/{cid}/changes")
        assert status == 200
        got = [(c["Kind"], c["Path"]) for c in body]
        assert got == [
            (0, "/bin"), (2, "/bin/ls"),
            (0, "/etc"), (1, "/etc/newfile"), (0, "/etc/passwd"),
            (0, "/home"), (2, "/home/app"), (1, "/home/app/new"),
            (0, "/tmp"), (1, "/tmp/a"), (1, "/tmp/a/b"), (1, "/tmp/a/b/c"),
        ], got
        res = engine.cli("diff", "diff-exited")
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode().splitlines()[:3] == ["C /bin", "D /bin/ls", "C /etc"]
        res = engine.cli("diff", "no-such")
        assert res.returncode == 1 and b"No such container: no-such" in res.stderr
    finally:
        remove(engine, created)
        remove(engine, cid)
    cid = start_sleeper(engine, "diff-running", "echo r > /root/r")
    try:
        deadline = time.monotonic() + 10
        while True:
            body = engine.request("GET", f"/containers/{cid}/changes")[1]
            if body and {"Path": "/root/r", "Kind": 1} in body:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        assert {"Path": "/root", "Kind": 0} in body
    finally:
        remove(engine, cid)


# -- the trioctr CLI ---------------------------------------------------------------------------
def test_cli_cp_both_ways_with_a_stopped_container(engine, tmp_path):
    cid = run_to_exit(engine, "cli-cp", ["sh", "-c", "mkdir -p /data/sub; echo 1 > /data/one; echo 2 > /data/sub/two"])
    try:
        src = tmp_path / "src"
        (src / "inner").mkdir(parents=True)
        (src / "a.txt").write_text("A\n")
        (src / "inner" / "b.txt").write_text("B\n")
        # a local file to a new name, to an existing directory, a directory to a new name
        assert engine.cli("cp", str(src / "a.txt"), "cli-cp:/tmp/renamed.txt").returncode == 0
        assert engine.cli("cp", str(src / "a.txt"), "cli-cp:/tmp").returncode == 0
        res = engine.cli("cp", str(src), "cli-cp:/opt")
        assert res.returncode == 0, res.stderr
        assert engine.cli("cp", str(src), "cli-cp:/data").returncode == 0
        assert get_file(engine, cid, "/tmp/renamed.txt") == b"A\n"
        assert get_file(engine, cid, "/tmp/a.txt") == b"A\n"
        assert get_file(engine, cid, "/opt/inner/b.txt") == b"B\n"
        assert get_file(engine, cid, "/data/src/inner/b.txt") == b"B\n"
        # a tar from stdin into a directory
        res = engine.cli("cp", "-", "cli-cp:/tmp", input=mktar([("from-stdin", "f", b"S")]))
        assert res.returncode == 0, res.stderr
        assert get_file(engine, cid, "/tmp/from-stdin") == b"S"
        res = engine.cli("cp", "-", "cli-cp:/tmp/from-stdin", input=mktar([("x", "f", b"S")]))
        assert res.returncode == 1 and b"must be a directory" in res.stderr
        # out of the container
        out = tmp_path / "out"
        out.mkdir()
        assert engine.cli("cp", "cli-cp:/data", str(out)).returncode == 0
        assert (out / "data" / "sub" / "two").read_text() == "2\n"
        assert engine.cli("cp", "cli-cp:/data/one", str(out / "uno")).returncode == 0
        assert (out / "uno").read_text() == "1\n"
        assert engine.cli("cp", "cli-cp:/data", str(out / "copy")).returncode == 0
        assert (out / "copy" / "one").read_text() == "1\n"
        assert engine.cli("cp", "cli-cp:/data/.", str(out / "copy")).returncode == 0
        res = engine.cli("cp", "cli-cp:/data/one", "-")
        assert res.returncode == 0 and member_data(res.stdout, "one") == b"1\n"
        res = engine.cli("cp", "cli-cp:/nope", str(out))
        assert res.returncode == 1
        assert res.stderr == "Error response from daemon: Could not find the file /nope in container cli-cp\n".encode()
        res = engine.cli("cp", str(tmp_path / "missing"), "cli-cp:/tmp")
        assert res.returncode == 1 and b"no such file or directory" in res.stderr
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)


def test_cli_export_of_a_stopped_container(engine, tmp_path):
    cid = run_to_exit(engine, "cli-export", ["sh", "-c", "echo e > /exported"])
    try:
        out = tmp_path / "fs.tar"
        res = engine.cli("export", "-o", str(out), "cli-export")
        assert res.returncode == 0, res.stderr
        assert member_data(out.read_bytes(), "exported") == b"e\n"
        res = engine.cli("export", "cli-export")
        assert res.returncode == 0 and "bin/busybox" in members(res.stdout)
        res = engine.cli("container", "diff", "cli-export")
        assert res.stdout == b"A /exported\n"
        assert_no_host_mounts(engine)
    finally:
        remove(engine, cid)


# -- while an operation is in progress -----------------------------------------------------------
def _raw(engine):
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(engine.sock)
    return s


def test_no_host_mount_even_while_a_stopped_container_is_read(engine):
    cid = run_to_exit(engine, "mid-export", ["true"])
    s = _raw(engine)
    try:
        s.sendall(f"GET /containers/{cid}/export HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        # the overlay is mounted now, detached: the host's namespace has no trace of it
        assert_no_host_mounts(engine)
    finally:
        s.close()
        remove(engine, cid)


def test_start_waits_for_a_copy_into_the_stopped_container(engine):
    """A start during a PUT into a created container waits for the copy (its
    lock): the container never runs on an upper directory being written to
    through another mount, and it sees the whole copy."""
    import threading

    cid = create(engine, "put-vs-start", ["cat", "/tmp/slow"])
    tar = mktar([("slow", "f", b"complete\n")])
    s = _raw(engine)
    try:
        s.sendall(f"PUT /containers/{cid}/archive?path=/tmp HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/x-tar\r\nContent-Length: {len(tar)}\r\n\r\n".encode())
        s.sendall(tar[:1024])
        time.sleep(0.3)  # the daemon holds the lock and waits for the rest
        started = {}
        t = threading.Thread(target=lambda: started.update(
            r=engine.request("POST", f"/containers/{cid}/start")))
        t.start()
        time.sleep(0.5)
        assert "r" not in started  # waiting for the copy
        s.sendall(tar[1024:])
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        t.join(30)
        assert started["r"][0] == 204, started
        status, body = engine.request("POST", f"/containers/{cid}/wait")
        assert body["StatusCode"] == 0
        res = engine.cli("logs", cid)
        assert res.stdout == b"complete\n", res
    finally:
        s.close()
        remove(engine, cid)
