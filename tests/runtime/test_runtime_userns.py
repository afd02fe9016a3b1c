"""User and time namespaces: the same userns bundle under runc and ours
(the view from inside: id maps, id, capabilities, ownership, mounts, /dev),
the create/start/exec lifecycle in a user namespace, joining one by path,
and time offsets read back from /proc/uptime.

Needs root.  A user namespace's root (host uid HOST_ID) must reach the
rootfs: it lives in a world-searchable directory of its own under /tmp,
chowned to HOST_ID as a caller (the engine) would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.runtime.test_runtime_differential import assert_same, both

pytestmark = pytest.mark.root

HOST_ID = 100000
SIZE = 65536
MAPS = {"uidMappings": [{"containerID": 0, "hostID": HOST_ID, "size": SIZE}],
        "gidMappings": [{"containerID": 0, "hostID": HOST_ID, "size": SIZE}]}
HAVE_RUNC = any(os.path.exists(p) for p in ("/usr/sbin/runc", "/usr/bin/runc"))

PROBE = ("cat /proc/self/uid_map /proc/self/gid_map; id; grep ^Cap /proc/self/status; "
         "ls -lnd / /bin /etc /tmp | cut -c1-10,15-35; "
         "echo mounts: $(cut -d' ' -f2,3 /proc/self/mounts | sort); "
         # (the owner of /dev/mqueue differs: runc mounts it with the host's
         # gid, ours is the namespace's root group, so no gids here)
         "for f in /dev/* /dev/pts /dev/shm; do stat -c '%n %A %u %t:%T' $f; done; "
         "cat /proc/self/cgroup; ls /sys/fs/cgroup; ls /sys/class/net; "
         "touch /written && echo wrote; echo sid: $(cut -d' ' -f6 /proc/self/stat)")


@pytest.fixture(scope="module")
def userns_rootfs(busybox_rootfs):
    top = tempfile.mkdtemp(prefix="trioctr-test-userns-", dir="/tmp")
    os.chmod(top, 0o755)
    root = os.path.join(top, "rootfs")
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), HOST_ID, HOST_ID)
    os.lchown(root, HOST_ID, HOST_ID)
    yield root
    shutil.rmtree(top)


def userns_spec(rt, rootfs: str, cid: str, args: list[str], **linux) -> dict:
    cfg = rt.spec(cid, args)
    cfg["root"]["path"] = rootfs
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"].update(json.loads(json.dumps(MAPS)))
    cfg["linux"].update(linux)
    return cfg


@pytest.mark.skipif(not HAVE_RUNC, reason="runc is not installed")
def test_userns_same_view_as_runc(rt, userns_rootfs):
    ours, theirs = both(rt, "userns", lambda cid: userns_spec(rt, userns_rootfs, cid,
                                                              ["sh", "-c", PROBE]))
    assert ours.returncode == 0, ours.stderr
    assert_same(ours, theirs)
    lines = ours.stdout.splitlines()
    assert lines[:2] == [f"{0:>10} {HOST_ID:>10} {SIZE:>10}"] * 2
    assert "uid=0(root) gid=0(root)" in ours.stdout and "wrote" in ours.stdout
    # device nodes are the host's, bound (mknod is not allowed in a user namespace)
    assert "/dev/null crw-rw-rw- 65534 1:3" in ours.stdout


def test_userns_lifecycle_and_exec(rt, userns_rootfs):
    cid = "userns-life"
    h = rt.create(cid, [], cfg=userns_spec(rt, userns_rootfs, cid, ["sleep", "1000"]))
    assert h.create_code() == 0, h.stderr() + str(rt.log_lines())
    assert rt.state(cid)["status"] == "created"
    assert rt.cmd("start", cid).returncode == 0
    pid = rt.pid(cid)
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", str(HOST_ID), str(SIZE)]
    assert os.stat(f"/proc/{pid}").st_uid == HOST_ID  # the container's root is HOST_ID outside
    res = rt.cmd("exec", cid, "sh", "-c", "id; cat /proc/self/uid_map; touch /tmp/x; ls -ln /tmp/x")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "uid=0(root) gid=0(root)"
    assert " 0        0 " in res.stdout.splitlines()[-1]
    assert os.stat(os.path.join(userns_rootfs, "tmp", "x")).st_uid == HOST_ID
    os.unlink(os.path.join(userns_rootfs, "tmp", "x"))
    assert rt.cmd("update", "--pids-limit", "77", cid).returncode == 0
    assert rt.cmd("delete", "--force", cid).returncode == 0
    assert h.exit_code(pid) == 137


def test_join_user_namespace_by_path(rt, userns_rootfs):
    owner = "userns-owner"
    h = rt.create(owner, [], cfg=userns_spec(rt, userns_rootfs, owner, ["sleep", "1000"]))
    assert h.create_code() == 0, h.stderr()
    pid = rt.pid(owner)
    cfg = rt.spec("userns-joiner", ["sh", "-c", "cat /proc/self/uid_map; readlink /proc/self/ns/user; id"])
    cfg["root"]["path"] = userns_rootfs
    cfg["linux"]["namespaces"].append({"type": "user", "path": f"/proc/{pid}/ns/user"})
    res = rt.run("userns-joiner", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0].split() == ["0", str(HOST_ID), str(SIZE)]
    assert out[1] == os.readlink(f"/proc/{pid}/ns/user")
    assert out[2] == "uid=0(root) gid=0(root)"


@pytest.mark.parametrize("change, why", [
    (lambda c: c["linux"]["namespaces"].pop(), "need a user namespace"),
    (lambda c: c["linux"].pop("gidMappings"), "needs linux.uidMappings and gidMappings"),
    (lambda c: c["linux"]["namespaces"][-1].update(path="/proc/1/ns/user"),
     "one joined by path keeps its own maps"),
    (lambda c: c["linux"]["uidMappings"][0].update(size=0), "size must be at least 1"),
    # overlapping ranges: the kernel refuses the map, the parent says so
    (lambda c: c["linux"]["uidMappings"].append({"containerID": 5, "hostID": 300000,
                                                 "size": 10}),
     "user namespace: write linux.uidMappings to /proc/"),
    (lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": 5}}),
     "timeOffsets needs a new time namespace"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].update(timeOffsets={"realtime": {"secs": 5}})),
     "not monotonic or boottime"),
])
def test_userns_and_timens_config_errors(rt, userns_rootfs, change, why):
    cfg = userns_spec(rt, userns_rootfs, "bad", ["true"])
    change(cfg)
    res = rt.run("bad", [], cfg=cfg)
    assert res.returncode == 1
    assert why in res.stderr
    assert not (rt.root / "bad").exists()


@pytest.mark.parametrize("userns", [False, True])
def test_time_namespace_offsets(rt, userns_rootfs, userns):
    year = 365 * 86400
    args = ["sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time"]
    cfg = userns_spec(rt, userns_rootfs, "timens", args) if userns else rt.spec("timens", args)
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": year, "nanosecs": 5},
                                   "monotonic": {"secs": -1}}
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    res = rt.run("timens", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    uptime, ns = res.stdout.splitlines()
    assert year + host_uptime <= float(uptime.split()[0]) < year + host_uptime + 60
    assert ns != os.readlink("/proc/self/ns/time")


@pytest.mark.skipif(not HAVE_RUNC, reason="runc is not installed")
def test_runc_here_has_no_time_namespace():
    """runc before 1.2 refuses a time namespace (why the test above is not
    differential); if this fails, runc learned it: make that test differential."""
    out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
    version = tuple(int(x) for x in out.split()[2].split("+")[0].split("-")[0].split(".")[:2])
    if version >= (1, 2):
        pytest.skip("runc >= 1.2 has time namespaces")
    feats = subprocess.run(["runc", "features"], capture_output=True, text=True)
    assert "time" not in (json.loads(feats.stdout).get("linux") or {}).get("namespaces", []) \
        if feats.returncode == 0 else True


@pytest.mark.skipif(not HAVE_RUNC, reason="runc is not installed")
def test_userns_console_same_as_runc(rt, userns_rootfs):
    """A terminal in a user namespace: devpts (gid=5 is mapped), the pty
    master over the console socket, the tty owned by the container's root."""
    from tests.runtime.test_runtime_console import PROBE as TTY_PROBE
    from tests.runtime.test_runtime_console import ConsoleServer

    results = {}
    for name in ("ours", "runc"):
        server = ConsoleServer(str(rt.tmp / f"{name}.sock"))
        cid = f"userns-tty-{name}"
        cfg = userns_spec(rt, userns_rootfs, cid, ["sh", "-c", TTY_PROBE])
        cfg["process"]["terminal"] = True
        cfg["process"]["consoleSize"] = {"height": 30, "width": 100}
        b = rt.bundle(cid, cfg)
        if name == "ours":
            rt.ids.append(cid)
            argv = rt.argv("run", "--detach", "--bundle", str(b), "--console-socket",
                           server.path, cid)
            delete = rt.argv("delete", "--force", cid)
        else:
            root = str(rt.tmp / "runc-state")
            argv = ["runc", "--root", root, "run", "--detach", "--bundle", str(b),
                    "--console-socket", server.path, cid]
            delete = ["runc", "--root", root, "delete", "--force", cid]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                 env=rt.env, cwd=str(rt.tmp))
            assert res.returncode == 0, res.stderr
            results[name] = (server.payload, server.target, server.wait())
        finally:
            subprocess.run(delete, capture_output=True, timeout=60, env=rt.env)
            server.close()
    assert results["ours"] == results["runc"]
    assert "owner=0" in results["ours"][2] and "stdio=tty" in results["ours"][2]


def test_rootfs_out_of_the_namespace_reach_is_explained(rt):
    """The session rootfs lives under pytest's 0700 directory: the user
    namespace's root cannot reach it (runc fails the same way); the error
    says why, in one line, and nothing is left behind."""
    cfg = rt.spec("unreachable", ["true"])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"].update(json.loads(json.dumps(MAPS)))
    res = rt.run("unreachable", [], cfg=cfg)
    assert res.returncode == 1
    assert "Permission denied (in a user namespace the rootfs must be reachable" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (rt.root / "unreachable").exists()


def test_sysfs_is_bound_when_the_namespace_cannot_mount_it(rt, userns_rootfs):
    """A user namespace without a network namespace of its own may not mount
    sysfs: the host's /sys is bound instead, read-only as asked (newer runc
    does the same; runc 1.1 fails the create)."""
    cfg = userns_spec(rt, userns_rootfs, "userns-sysfs",
                      ["sh", "-c", "grep ' /sys ' /proc/self/mounts | cut -d' ' -f3,4; "
                                   "ls /sys/class/net | grep -c .; touch /sys/x || echo ro"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "network"]
    res = rt.run("userns-sysfs", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0].startswith("sysfs ro,")
    assert int(out[1]) == len(os.listdir("/sys/class/net"))  # the host's
    assert out[-1] == "ro"
