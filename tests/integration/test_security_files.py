"""Security review of the file routes (docker cp both ways, export, diff):
a container's own files (symlinks swapped while the daemon walks, fifos,
device nodes) must never make the root daemon read outside the container,
hang, or read forever.  Root, real kernel, real daemons."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import threading
import time
import uuid

import pytest

from tests.integration.test_files import create, mktar, put, remove, run_to_exit, start_sleeper

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def host_secret():
    """A host directory with a file whose name no container has."""
    d = f"/tmp/trioctr-secret-{uuid.uuid4().hex[:10]}"
    os.mkdir(d)
    name = f"SECRET-{uuid.uuid4().hex[:8]}"
    open(os.path.join(d, name), "w").close()
    os.mkdir(os.path.join(d, "sub"))
    yield d, name
    shutil.rmtree(d, ignore_errors=True)


def test_diff_never_follows_a_directory_swapped_for_a_symlink(engine, host_secret):
    """docker diff walks the container's upper directory while the container
    runs: a directory it swaps for a symlink to a host path (which means
    nothing in the container) must not be listed through."""
    d, secret = host_secret
    script = (f"mkdir -p /w; while :; do rm -rf /w/d; mkdir /w/d; mkdir /w/d/a; "
              f"rm -rf /w/d; ln -s {d} /w/d; done")
    cid = started(engine, "sec-diff-swap", "(" + script + ") &")
    try:
        deadline = time.monotonic() + 20
        n = 0
        while time.monotonic() < deadline and n < 400:
            status, body = engine.request("GET", f"/containers/{cid}/changes")
            assert status == 200, body
            paths = [c["Path"] for c in body or []]
            assert not any(secret in p or p.endswith("/d/sub") for p in paths), paths
            n += 1
    finally:
        remove(engine, cid)


def started(engine, name, script, **extra):
    """A running container whose ``script`` has run (it touches /ready last)."""
    cid = start_sleeper(engine, name, script + "\ntouch /ready", **extra)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _ = engine.request("HEAD", f"/containers/{cid}/archive?path=/ready")
        if status == 200:
            return cid
        time.sleep(0.05)
    raise AssertionError("the container's script did not finish")


def _timed_request(engine, method, path, body=None, headers=None, timeout=15.0):
    out: dict = {}

    def go():
        try:
            out["res"] = engine.request(method, path, body, headers=headers or {}, timeout=timeout + 30)
        except Exception as exc:  # noqa: BLE001
            out["exc"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    return None if t.is_alive() else out


def test_cp_copy_uid_gid_with_a_fifo_passwd_does_not_hang(engine):
    """docker cp -a reads the container's /etc/passwd: a fifo there must not
    block the daemon's worker forever."""
    cid = started(engine, "sec-passwd-fifo", "rm -f /etc/passwd && mkfifo /etc/passwd",
                        User="0")
    try:
        res = _timed_request(engine, "PUT", f"/containers/{cid}/archive?path=/tmp&copyUIDGID=1",
                             mktar([("x", "f", b"x")]), {"Content-Type": "application/x-tar"})
        assert res is not None, "PUT with copyUIDGID hung on a fifo /etc/passwd"
        status, _ = res["res"]
        assert status in (200, 500), res
    finally:
        remove(engine, cid)


def test_cp_copy_uid_gid_with_a_device_passwd_does_not_read_forever(engine):
    """/etc/passwd made a character device (/dev/zero's numbers: a running
    container has CAP_MKNOD): the daemon must not read it forever."""
    cid = started(engine, "sec-passwd-zero", "rm -f /etc/passwd && mknod /etc/passwd c 1 5",
                        User="0")
    try:
        res = _timed_request(engine, "PUT", f"/containers/{cid}/archive?path=/tmp&copyUIDGID=1",
                             mktar([("x", "f", b"x")]), {"Content-Type": "application/x-tar"})
        assert res is not None, "PUT with copyUIDGID kept reading a device /etc/passwd"
        status, _ = res["res"]
        assert status in (200, 500), res
    finally:
        remove(engine, cid)


def test_get_archive_of_fifo_and_devices_returns_headers_only(engine):
    cid = started(engine, "sec-get-fifo", "mkdir /x && mkfifo /x/fifo && mknod /x/zero c 1 5")
    try:
        res = _timed_request(engine, "GET", f"/containers/{cid}/archive?path=/x")
        assert res is not None, "GET archive hung"
        status, body = res["res"]
        assert status == 200
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            ms = {m.name: m for m in t.getmembers()}
        assert ms["x/fifo"].isfifo() and ms["x/zero"].ischr() and ms["x/zero"].size == 0
    finally:
        remove(engine, cid)


def test_archive_never_opens_a_file_swapped_for_a_device(engine):
    """Files swapped between regular files and fifos while the daemon walks
    them: no hang, no bogus member.  (That a file swapped for a device after
    the daemon's stat is never opened holds by construction: it is pinned
    with O_PATH, checked, then reopened through /proc/self/fd.)"""
    script = ("mkdir /x; i=0; while [ $i -lt 200 ]; do echo data > /x/f$i; i=$((i+1)); done; "
              "(while :; do for f in /x/f*; do rm -f $f; mkfifo $f; done; "
              "for f in /x/f*; do rm -f $f; echo data > $f; done; done) &")
    cid = started(engine, "sec-swap-dev", script)
    try:
        for _ in range(10):
            res = _timed_request(engine, "GET", f"/containers/{cid}/archive?path=/x")
            assert res is not None, "GET archive hung"
            status, body = res["res"]
            assert status == 200
            with tarfile.open(fileobj=io.BytesIO(body)) as t:
                for m in t.getmembers():
                    assert m.isdir() or m.isfifo() or m.isfile(), m
    finally:
        remove(engine, cid)


def test_put_does_not_write_into_pseudo_filesystems_of_a_running_container(engine):
    cid = start_sleeper(engine, "sec-put-proc")
    try:
        for path in ("/proc", "/proc/sys/kernel", "/sys", "/sys/fs/cgroup", "/dev/pts"):
            status, body = put(engine, cid, path, mktar([("core_pattern", "f", b"|/tmp/x")]))
            assert status >= 400, (path, body)
        with open("/proc/sys/kernel/core_pattern") as f:
            assert "/tmp/x" not in f.read()
    finally:
        remove(engine, cid)


def test_put_whiteout_and_setuid_stay_in_the_container(engine):
    """A whiteout (0/0) and a setuid root file in a PUT land in the
    container's layer only (as dockerd; the container could make them too)."""
    cid = create(engine, "sec-put-wh", ["true"])
    try:
        # overlayfs refuses to make a whiteout through the mount (EPERM): either way
        # nothing leaves the layer
        status, body = put(engine, cid, "/etc", mktar([("hostname", "c", None)]))
        assert status in (200, 403), body
        status, body = put(engine, cid, "/", mktar([("su", "f", b"#!/bin/sh\n", {"mode": 0o4755})]))
        assert status == 200, body
        _, rec = engine.request("GET", f"/containers/{cid}/json")
        upper = rec["GraphDriver"]["Data"]["UpperDir"]
        st = os.lstat(os.path.join(upper, "su"))
        assert st.st_mode & 0o4000
    finally:
        remove(engine, cid)


@pytest.mark.parametrize("opts", ["rbind", "bind", "remount", "move", "rbind,rw"])
def test_tmpfs_options_cannot_turn_a_tmpfs_into_something_else(engine, opts):
    """HostConfig.Tmpfs options are mount options of a tmpfs (size, mode,
    exec ...): not a bind, a remount or a move of something else."""
    status, body = engine.request("POST", "/containers/create?name=sec-tmpfs-" + opts.replace(",", "-"),
                                  {"Image": "busybox", "Cmd": ["sh", "-c", "grep ' /mnt ' /proc/mounts"],
                                   "HostConfig": {"Tmpfs": {"/mnt": opts}}})
    if status == 400:
        return
    assert status == 201, body
    cid = body["Id"]
    try:
        engine.request("POST", f"/containers/{cid}/start")
        engine.request("POST", f"/containers/{cid}/wait")
        _, logs = engine.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        text = logs if isinstance(logs, (str, bytes)) else str(logs)
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        mounted = [ln for ln in text.splitlines() if " /mnt " in ln]
        assert all(" tmpfs " in ln and ln.split(" /mnt ")[0].endswith("tmpfs") for ln in mounted), text
    finally:
        remove(engine, cid)


def _vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def test_put_with_a_huge_extended_header_does_not_eat_the_daemons_memory(fresh_engine):
    """A gzipped PUT body of a few hundred kilobytes whose PAX header claims
    512 MiB: tarfile would read the whole header into the daemon's memory."""
    import gzip

    engine = fresh_engine
    cid = create(engine, "sec-put-bomb", ["true"])
    size = 512 << 20
    ti = tarfile.TarInfo("x")
    ti.type, ti.size = tarfile.XHDTYPE, size
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as g:
        g.write(ti.tobuf(tarfile.GNU_FORMAT))
        zeros = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            g.write(zeros)
        g.write(b"\0" * 1024)
    before = _vm(engine.proc.pid, "VmRSS")
    status, body = put(engine, cid, "/tmp", raw.getvalue())
    assert status >= 400, body
    assert _vm(engine.proc.pid, "VmHWM") - before < (256 << 20), "the header was read into memory"
    remove(engine, cid)
