"""pause/unpause (the runtime's freezer, through the shim) and update (the
record and the live cgroup), end to end, with Docker's states, errors and
events; a paused container stays paused across a supervisor SIGKILL and a
daemon restart."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.integration.test_runtimes import need
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"



def inspect(engine, ref):
    return json.loads(engine.cli("inspect", ref).stdout)[0]


def counter(pid: int) -> int:
    with open(f"/proc/{pid}/root/tmp/n") as f:
        text = f.read().strip()
    return int(text) if text else 0


def frozen(pid: int, span: float = 0.4) -> bool:
    a = counter(pid)
    time.sleep(span)
    return counter(pid) == a


def events(engine, since):
    res = engine.cli("events", "--since", since, "--until", f"{time.time() + 0.5:.9f}",
                     "--format", "{{json .}}")
    return [json.loads(line) for line in res.stdout.decode().splitlines()]


def test_pause_and_unpause(engine):
    cid = engine.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c", COUNTER,
                     check=True).stdout.decode().strip()
    pid = inspect(engine, cid)["State"]["Pid"]
    wait_for(lambda: os.path.exists(f"/proc/{pid}/root/tmp/n") and counter(pid) > 0)
    since = f"{time.time():.9f}"
    res = engine.cli("pause", "ticker")
    assert (res.returncode, res.stdout) == (0, b"ticker\n"), res.stderr
    st = inspect(engine, cid)["State"]
    assert (st["Status"], st["Running"], st["Paused"]) == ("paused", True, True)
    ps = engine.cli("ps", "--format", "{{.Names}} {{.Status}} {{.State}}").stdout.decode()
    assert "ticker Up" in ps and "(Paused) paused" in ps
    assert frozen(pid)
    res = engine.cli("pause", "ticker")
    assert res.returncode == 1
    assert f"Container {cid} is already paused" in res.stderr.decode()
    res = engine.cli("exec", "ticker", "true")
    assert res.returncode != 0 and "is paused, unpause the container before exec" in res.stderr.decode()
    assert engine.cli("unpause", "ticker").returncode == 0
    st = inspect(engine, cid)["State"]
    assert (st["Status"], st["Paused"]) == ("running", False)
    assert not frozen(pid)
    res = engine.cli("unpause", "ticker")
    assert res.returncode == 1 and f"Container {cid} is not paused" in res.stderr.decode()
    acts = [e["Action"] for e in events(engine, since) if e["Type"] == "container"]
    assert acts == ["pause", "unpause"]
    engine.cli("rm", "-f", cid, check=True)


def test_pause_errors_on_a_stopped_container(engine):
    cid = engine.cli("create", "busybox", "true", check=True).stdout.decode().strip()
    status, res = engine.request("POST", f"/containers/{cid}/pause")
    assert (status, res["message"]) == (409, f"Container {cid} is not running")
    status, res = engine.request("POST", f"/containers/{cid}/unpause")
    assert (status, res["message"]) == (409, f"Container {cid} is not paused")
    status, res = engine.request("POST", "/containers/nosuch/pause")
    assert (status, res["message"]) == (404, "No such container: nosuch")
    engine.cli("rm", cid, check=True)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stop_and_kill_of_a_paused_container(engine, how):
    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    assert engine.cli("pause", cid).returncode == 0
    args = ["stop", "-t", "1", cid] if how == "stop" else ["kill", cid]
    t0 = time.monotonic()
    res = engine.cli(*args)
    assert res.returncode == 0, res.stderr
    st = wait_for(lambda: (s := inspect(engine, cid)["State"])["Status"] == "exited" and s)
    assert st["ExitCode"] == 137 and st["Paused"] is False
    assert time.monotonic() - t0 < 10
    engine.cli("rm", cid, check=True)


def test_paused_survives_supervisor_and_daemon_death(fresh_engine):
    e = fresh_engine
    cid = e.cli("run", "-d", "--name", "frozen", "busybox", "sh", "-c", COUNTER,
                check=True).stdout.decode().strip()
    pid = inspect(e, cid)["State"]["Pid"]
    wait_for(lambda: os.path.exists(f"/proc/{pid}/root/tmp/n") and counter(pid) > 0)
    assert e.cli("pause", "frozen").returncode == 0
    old = e.supervisor_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (p := e.supervisor_pid()) and p != old, what="a new supervisor")
    st = inspect(e, cid)["State"]
    assert (st["Status"], st["Paused"], st["Pid"]) == ("paused", True, pid)
    assert frozen(pid)
    e.kill_daemon(signal.SIGKILL)
    wait_for(lambda: not e.supervisor_pid(), what="the supervisor to go with the daemon")
    e.start()
    st = inspect(e, cid)["State"]
    assert (st["Status"], st["Paused"], st["Pid"]) == ("paused", True, pid)
    assert "(Paused)" in e.cli("ps", "--format", "{{.Status}}").stdout.decode()
    assert frozen(pid)
    assert e.cli("unpause", "frozen").returncode == 0
    assert not frozen(pid)
    assert e.cli("rm", "-f", "frozen").returncode == 0


# -- update ---------------------------------------------------------------------------
LIMITS = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "
          "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
          "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; "
          "cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight")


@pytest.mark.parametrize("runtime", ["trioctr", "runc"])
def test_update_a_running_container(engine, request, runtime):
    need(request, runtime)
    cid = engine.cli("run", "-d", "--runtime", runtime, "busybox", "sleep", "600",
                     check=True).stdout.decode().strip()
    try:
        since = f"{time.time():.9f}"
        res = engine.cli("update", "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                         "--pids-limit", "50", "--cpu-shares", "512", cid)
        assert (res.returncode, res.stdout) == (0, cid.encode() + b"\n"), res.stderr
        hc = inspect(engine, cid)["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"], hc["CpuShares"]) == \
            (64 << 20, 128 << 20, 500_000_000, 50, 512)
        limits = engine.cli("exec", cid, "sh", "-c", LIMITS).stdout.decode().split()
        assert limits[:3] == [str(64 << 20), "50", "50000"], limits
        acts = [e["Action"] for e in events(engine, since) if e["Type"] == "container"]
        assert "update" in acts
        # unlimited pids again
        assert engine.cli("update", "--pids-limit", "-1", cid).returncode == 0
        assert inspect(engine, cid)["HostConfig"]["PidsLimit"] in (None, 0)
        assert engine.cli("exec", cid, "sh", "-c", LIMITS).stdout.decode().split()[1] == "max"
    finally:
        engine.cli("rm", "-f", cid)


def test_update_a_stopped_container_applies_at_start(engine):
    cid = engine.cli("create", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        status, res = engine.request("POST", f"/containers/{cid}/update",
                                     {"Memory": 32 << 20, "PidsLimit": 40})
        assert (status, res) == (200, {"Warnings": []})
        assert inspect(engine, cid)["HostConfig"]["Memory"] == 32 << 20
        engine.cli("start", cid, check=True)
        limits = engine.cli("exec", cid, "sh", "-c", LIMITS).stdout.decode().split()
        assert limits[:2] == [str(32 << 20), "40"], limits
    finally:
        engine.cli("rm", "-f", cid)


def test_update_errors(engine):
    cid = engine.cli("run", "-d", "--cpus", "1", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        for body, message in (
            ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
            ({"Memory": 64 << 20, "MemorySwap": 32 << 20},
             "Minimum memoryswap limit should be larger than memory limit, see usage"),
            ({"MemoryReservation": 1 << 20}, "Minimum memory reservation allowed is 6MB"),
            ({"CpuPeriod": 100000},
             f"Cannot update container {cid}: Conflicting options: CPU Period cannot be updated "
             "as NanoCPUs has already been set"),
            ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
            ({"CpusetCpus": "abc"}, "Invalid value abc for cpuset cpus"),
        ):
            status, res = engine.request("POST", f"/containers/{cid}/update", body)
            assert (status, res["message"]) == (400, message), body
        status, res = engine.request("POST", "/containers/nosuch/update", {"Memory": 64 << 20})
        assert status == 404
        res = engine.cli("update", "-m", "1m", cid)
        assert res.returncode == 1
        assert "Minimum memory limit allowed is 6MB" in res.stderr.decode()
        res = engine.cli("update", cid)
        assert res.returncode != 0 and "one or more flags" in res.stderr.decode()
        # nothing changed
        assert inspect(engine, cid)["HostConfig"]["Memory"] == 0
    finally:
        engine.cli("rm", "-f", cid)


def test_update_blkio_weight_is_kept_or_discarded_with_dockers_warning(engine):
    from actors.api_exec import _blkio_weight_supported

    cid = engine.cli("run", "-d", "busybox", "sleep", "600", check=True).stdout.decode().strip()
    try:
        status, res = engine.request("POST", f"/containers/{cid}/update", {"BlkioWeight": 300})
        assert status == 200
        if _blkio_weight_supported():
            assert res == {"Warnings": []}
            assert inspect(engine, cid)["HostConfig"]["BlkioWeight"] == 300
        else:
            assert res["Warnings"] == ["Your kernel does not support Block I/O weight or the cgroup "
                                       "is not mounted. Weight discarded."]
            assert inspect(engine, cid)["HostConfig"]["BlkioWeight"] == 0
    finally:
        engine.cli("rm", "-f", cid)
