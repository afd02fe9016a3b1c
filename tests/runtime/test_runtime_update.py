"""`update`: new resource limits for a live container, differentially against
runc (the same sequence of updates on the same config, the same cgroup files
after each step, the same success or failure), plus the pure merge rules.

Needs root and runc for the differential part (cgroup v1 or v2, whichever
the host has).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from actors.runtime import Failure, check_update, merge_resources, update_from_flags
from linux import cgroups
from tests.runtime.support import REPO

HAVE_RUNC = any(os.path.exists(p) for p in ("/usr/sbin/runc", "/usr/bin/runc"))


# --- pure: flags, checks, merge ------------------------------------------------------

def test_flags_become_a_resources_patch():
    patch = update_from_flags({"--memory": "200M", "--memory-swap": "-1", "--cpu-share": "512",
                               "--cpu-quota": "-1", "--cpuset-cpus": "0", "--pids-limit": "-1",
                               "--blkio-weight": "500"})
    assert patch == {"memory": {"limit": 200 << 20, "swap": -1},
                     "cpu": {"shares": 512, "quota": -1, "cpus": "0"},
                     "pids": {"limit": -1}, "blockIO": {"weight": 500}}


@pytest.mark.parametrize("flags, why", [
    ({"--memory": "12x"}, "invalid value for memory"),
    ({"--cpu-share": "-5"}, "invalid value for cpu-share"),
    ({"--pids-limit": "many"}, "invalid value for pids-limit"),
    ({"--blkio-weight": "5"}, "between 10 and 1000"),
    ({"--kernel-memory": "1M"}, "kernel memory"),
    ({"--l3-cache-schema": "L3:0=f"}, "Intel RDT"),
])
def test_bad_flags_are_refused(flags, why):
    with pytest.raises(Failure, match=why):
        update_from_flags(flags)


@pytest.mark.parametrize("patch, why", [
    ([], "must be an object"),
    ({"memory": {"limt": 5}}, r"resources.memory.limt is not a field"),
    ({"bogus": {}}, "resources.bogus is not a field"),
    ({"memory": {"limit": "5"}}, "must be an integer"),
    ({"memory": {"kernel": 5}}, "kernel memory"),
    ({"pids": {"limit": -2}}, "at least -1"),
])
def test_bad_patches_are_refused(patch, why):
    with pytest.raises(Failure, match=why):
        check_update(patch)


def test_merge_keeps_what_the_patch_leaves_out():
    old = {"memory": {"limit": 100, "swap": 300}, "pids": {"limit": 50},
           "cpu": {"shares": 512, "cpus": "0-1"},
           "devices": [{"allow": False, "access": "rwm"}]}
    got = merge_resources(old, {"memory": {"limit": 200, "reservation": 0},
                                "cpu": {"shares": 0, "quota": 1000, "cpus": ""},
                                "pids": {"limit": 0}})
    assert got == {"memory": {"limit": 200, "swap": 300}, "pids": {"limit": 50},
                   "cpu": {"shares": 512, "quota": 1000, "cpus": "0-1"},
                   "devices": [{"allow": False, "access": "rwm"}]}
    assert old["memory"] == {"limit": 100, "swap": 300}  # not changed in place
    # runc: unlimited memory without a word about swap is unlimited swap
    assert merge_resources(old, {"memory": {"limit": -1}})["memory"] == {"limit": -1, "swap": -1}
    # the same device rules are no change; other rules are refused
    assert merge_resources(old, {"devices": old["devices"]}) == old
    with pytest.raises(Failure, match="devices cannot be changed"):
        merge_resources(old, {"devices": []})


# --- differential, against runc ------------------------------------------------------

# (update arguments, or a JSON dict for `--resources -`), in order: each step
# sees what the previous ones left
STEPS = [
    ["--memory", "200M"],
    ["--memory-swap", "300M"],
    ["--memory", "400M"],                       # above memory+swap: both refuse
    ["--memory", "250M", "--memory-swap", "500M"],
    ["--memory", "-1"],                         # swap follows to unlimited
    ["--memory", "64M", "--memory-swap", "128M", "--memory-reservation", "32M"],
    ["--cpu-share", "512", "--cpu-period", "50000", "--cpu-quota", "25000"],
    ["--cpu-period", "20000"],                  # the quota stays
    ["--cpu-quota", "-1"],
    ["--cpuset-cpus", "0"],
    ["--pids-limit", "20"],
    ["--pids-limit", "-1"],
    {"memory": {"limit": 96 << 20}, "cpu": {"shares": 256, "cpus": "0-1"},
     "pids": {"limit": 33}},
    ["--cpu-rt-runtime", "1000"],               # a parent without rt budget: both refuse
]

V1_FILES = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"), ("cpu", "cpu.shares"),
            ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.rt_runtime_us"), ("cpuset", "cpuset.cpus"), ("pids", "pids.max")]
V2_FILES = ["memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max",
            "cpuset.cpus", "pids.max"]


def cgroup_values(rel: str) -> dict[str, str]:
    """The limit files of the cgroup at cgroupsPath rel."""
    out = {}
    if cgroups.detect_version() == 1:
        for ctrl, name in V1_FILES:
            path = os.path.join("/sys/fs/cgroup", ctrl, rel.lstrip("/"), name)
            out[name] = open(path).read().strip() if os.path.exists(path) else "-"
    else:
        for name in V2_FILES:
            path = os.path.join("/sys/fs/cgroup", rel.lstrip("/"), name)
            out[name] = open(path).read().strip() if os.path.exists(path) else "-"
    return out


class RuncContainer:
    def __init__(self, rt, cid: str, cfg: dict):
        self.rt = rt
        self.id = cid
        self.root = str(rt.tmp / "runc-state")
        self.bundle = rt.bundle(cid, cfg)

    def start(self) -> None:
        # (the container inherits runc's stdio: no pipe that would stay open)
        err = self.rt.tmp / f"runc-{self.id}.err"
        with open(err, "w") as f:
            res = subprocess.run(self.argv("run", "--detach", "--bundle", str(self.bundle),
                                           self.id),
                                 stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=60)
        assert res.returncode == 0, err.read_text()

    def argv(self, *args: str) -> list[str]:
        return ["runc", "--root", self.root, *args]

    def cmd(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=60)

    def close(self) -> None:
        self.cmd("delete", "--force", self.id)


def update_both(rt, runc, ours_id: str, step) -> tuple:
    if isinstance(step, dict):
        data = json.dumps(step)
        mine = subprocess.run(rt.argv("update", "--resources", "-", ours_id), input=data,
                              capture_output=True, text=True, cwd=REPO, env=rt.env, timeout=60)
        theirs = runc.cmd("update", "--resources", "-", runc.id, stdin=data)
    else:
        mine = rt.cmd("update", *step, ours_id)
        theirs = runc.cmd("update", *step, runc.id)
    return mine, theirs


@pytest.mark.root
@pytest.mark.skipif(not HAVE_RUNC, reason="runc is not installed")
def test_update_matches_runc_step_by_step(rt):
    def cfg_for(cid):
        cfg = rt.spec(cid, ["sleep", "1000"])
        cfg["linux"]["resources"].update({"memory": {"limit": 100 << 20},
                                          "pids": {"limit": 50},
                                          "cpu": {"shares": 1024}})
        return cfg

    ours_id, runc_id = "upd-ours", "upd-runc"
    rt.started(ours_id, [], cfg=cfg_for(ours_id))
    runc = RuncContainer(rt, runc_id, cfg_for(runc_id))
    try:
        runc.start()
        ours_cg, runc_cg = f"{rt.cgroup_parent}/{ours_id}", f"{rt.cgroup_parent}/{runc_id}"
        assert cgroup_values(ours_cg) == cgroup_values(runc_cg)
        for step in STEPS:
            mine, theirs = update_both(rt, runc, ours_id, step)
            assert mine.returncode == theirs.returncode, (step, mine.stderr, theirs.stderr)
            assert cgroup_values(ours_cg) == cgroup_values(runc_cg), (step, mine.stderr)
            assert rt.state(ours_id)["status"] == "running"
        # what the state keeps is what the cgroup has: the last good steps merged
        cfg = json.loads((rt.root / ours_id / "state.json").read_text())["config"]
        res = cfg["linux"]["resources"]
        assert res["memory"]["limit"] == 96 << 20 and res["pids"]["limit"] == 33
        assert res["cpu"] == {"shares": 256, "period": 20000, "quota": -1, "cpus": "0-1"}
        assert res["devices"] == [{"allow": False, "access": "rwm"}]
        # later operations still work on the updated container
        assert rt.cmd("pause", ours_id).returncode == 0
        assert rt.state(ours_id)["status"] == "paused"
        assert rt.cmd("update", "--pids-limit", "40", ours_id).returncode == 0
        assert rt.cmd("resume", ours_id).returncode == 0
        assert cgroup_values(ours_cg)["pids.max"] == "40"

        # stopped: refused by both, with runc's words
        pid = rt.pid(ours_id)
        os.kill(pid, signal.SIGKILL)
        runc.cmd("kill", runc.id, "KILL")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                rt.state(ours_id)["status"] != "stopped"
                or json.loads(runc.cmd("state", runc.id).stdout)["status"] != "stopped"):
            time.sleep(0.01)
        mine, theirs = update_both(rt, runc, ours_id, ["--memory", "300M"])
        assert mine.returncode == theirs.returncode == 1
        assert "container not running" in theirs.stderr
        assert "container not running" in mine.stderr
    finally:
        runc.close()


@pytest.mark.root
@pytest.mark.skipif(not HAVE_RUNC, reason="runc is not installed")
def test_update_errors_like_runc(rt, tmp_path):
    runc_root = str(tmp_path / "runc-state")
    theirs = subprocess.run(["runc", "--root", runc_root, "update", "--memory", "1M", "nope"],
                            capture_output=True, text=True, timeout=60)
    mine = rt.cmd("update", "--memory", "1M", "nope")
    assert mine.returncode == theirs.returncode == 1
    assert "container does not exist" in theirs.stderr
    assert "container does not exist" in mine.stderr
    # usage errors: no ID
    mine = rt.cmd("update", "--memory", "1M")
    assert mine.returncode != 0 and "missing ID" in mine.stderr
    # a resources file that is not there, and one that is not JSON
    mine = rt.cmd("update", "--resources", str(tmp_path / "missing.json"), "nope")
    assert mine.returncode == 1 and "missing.json" in mine.stderr
    (tmp_path / "bad.json").write_text("{")
    mine = rt.cmd("update", "-r", str(tmp_path / "bad.json"), "nope")
    assert mine.returncode == 1 and "invalid JSON" in mine.stderr


@pytest.mark.root
def test_update_refuses_device_changes_and_leaves_the_cgroup(rt, tmp_path):
    rt.started("upd-dev", ["sleep", "1000"])
    before = cgroup_values(f"{rt.cgroup_parent}/upd-dev")
    patch = tmp_path / "res.json"
    patch.write_text(json.dumps({"memory": {"limit": 1 << 30}, "devices": []}))
    res = rt.cmd("update", "--resources", str(patch), "upd-dev")
    assert res.returncode == 1 and "devices cannot be changed" in res.stderr
    assert cgroup_values(f"{rt.cgroup_parent}/upd-dev") == before
    res = rt.cmd("update", "--resources", str(patch), "--memory", "1M", "upd-dev")
    assert res.returncode == 1 and "cannot be combined" in res.stderr


def test_v2_update_rules_on_a_fake_tree(tmp_path):
    """cgroup v2 (this host's cgroup2 has no controllers): unlimited memory
    takes swap along, a missing memory.swap.max is fine for "max", and
    checkBeforeUpdate refuses a limit below the current usage."""
    leaf = tmp_path / "c1"
    leaf.mkdir()
    for name in ("memory.max", "memory.swap.max", "cpu.max", "pids.max"):
        (leaf / name).write_text("")
    (leaf / "memory.current").write_text("5000\n")
    cg = cgroups.CgroupV2(str(tmp_path), str(leaf))
    cg.apply(merge_resources({"memory": {"limit": 100, "swap": 300}}, {"memory": {"limit": -1}}))
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "memory.swap.max").read_text() == "max"
    cg.apply({"cpu": {"period": 20000, "quota": -1}})
    assert (leaf / "cpu.max").read_text() == "max 20000"
    with pytest.raises(OSError, match="below the current usage 5000"):
        cg.apply({"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    (leaf / "memory.swap.max").unlink()
    cg.apply({"memory": {"limit": -1}})  # no swap accounting: nothing to lift
