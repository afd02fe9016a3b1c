"""Escape-class tests: known container breakouts, tried for real from inside
a busybox container on the real kernel.  Each asserts that the attack fails
and that the host is untouched.  Needs root.

- CVE-2019-5736: overwrite the runtime's binary through /proc/PID/exe.
- CVE-2024-21626: a host fd or cwd leaked into the container.
- CVE-2021-30465: mount destinations through symlinks in the rootfs.
- masked and read-only paths of a Docker-like config.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time

import pytest

from tests.runtime.support import ENV, REPO
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.root


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()



def out_mount(path) -> dict:
    return {"destination": "/out", "type": "bind", "source": str(path),
            "options": ["rbind", "rw"]}


# ---------------------------------------------------------------------------
# CVE-2019-5736: /proc/PID/exe of a process the runtime runs in the container
# ---------------------------------------------------------------------------

# The attacker (root in the container, Docker's default capabilities) spins
# on /proc/PID/exe of the given pids: it tries to open it for writing, and
# keeps any read fd it gets, then, once the runtime's interpreter no longer
# runs (the process execs the user's command and the runtime exits), reopens
# that fd for writing through /proc/self/fd (the 2019 exploit) and writes.
# Only shell builtins in the loop: no fork, so the pids stay predictable.
ATTACK = r"""
log=/out/log
got=
while [ ! -e /out/stop ]; do
  for p in $PIDS; do
    if [ -z "$got" ] && { command exec 3</proc/$p/exe; } 2>/dev/null; then
      got=$p; echo "opened $p" >>$log
    fi
    if { command exec 4>>/proc/$p/exe; } 2>/dev/null; then
      echo PWNED >&4; exec 4>&-; echo "direct write $p" >>$log
    fi
  done
  if [ -n "$got" ] && { command exec 4>>/proc/self/fd/3; } 2>/dev/null; then
    echo PWNED >&4; exec 4>&-; exec 3<&-; echo "write through fd of $got" >>$log; got=
  fi
done
echo done >>$log
"""


@pytest.fixture
def python_copy(rt, tmp_path):
    """The runtime runs under a private copy of the interpreter: nothing else
    executes it (so ETXTBSY does not hide a leak once the runtime exits), and
    a successful attack cannot damage the host's Python."""
    real = os.path.realpath(sys.executable)
    copy = tmp_path / "python3"
    shutil.copy2(real, copy)
    rt.python = str(copy)
    rt.env = dict(ENV, PYTHONHOME=sys.prefix)
    before = {p: sha256(p) for p in (real, copy, REPO / "actors" / "runtime.py")}
    yield copy
    after = {p: sha256(p) for p in before}
    assert after == before, "the container modified the runtime's files"


def _attacker_cfg(rt, cid, out, args, pids):
    cfg = rt.spec(cid, args)
    cfg["mounts"].append(out_mount(out))
    cfg["process"]["env"].append(f"PIDS={pids}")
    return cfg


def _finish_attack(out) -> str:
    (out / "stop").touch()
    wait_for(lambda: "done" in (out / "log").read_text()
             if (out / "log").exists() else False)
    return (out / "log").read_text()


def test_exec_process_exe_cannot_be_opened_by_the_container(rt, tmp_path, python_copy):
    out = tmp_path / "out"
    out.mkdir()
    # the init is the attacker; every `exec` process is pid 2, 3, ... in its
    # pid namespace (the attack loop forks nothing)
    cfg = _attacker_cfg(rt, "cve5736x", out, ["sh", "-c", ATTACK], "2 3 4 5 6 7 8 9 10 11")
    rt.started("cve5736x", [], cfg=cfg)
    for _ in range(10):
        res = rt.cmd("exec", "cve5736x", "true")
        assert res.returncode == 0, res.stderr
    time.sleep(0.5)  # the runtime is gone: a kept fd would now be writable
    log = _finish_attack(out)
    assert "write" not in log, log
    assert b"PWNED" not in python_copy.read_bytes()


def test_created_init_exe_cannot_be_opened_by_the_container(rt, tmp_path, python_copy):
    out = tmp_path / "out"
    out.mkdir()
    cfg = rt.spec("cve5736i", ["sleep", "1000"])
    cfg["mounts"].append(out_mount(out))
    h = rt.create("cve5736i", [], cfg=cfg)
    assert h.create_code() == 0, h.stderr()
    # while created, the init is the runtime's interpreter (pid 1): an exec'd
    # attacker grabs /proc/1/exe, then the container starts (the init execs
    # `sleep`) and every runtime process exits
    rt.exec_detached("attacker", "cve5736i",
                     ["env", "PIDS=1", "sh", "-c", ATTACK])
    wait_for(lambda: (tmp_path / "attacker.pid").exists())
    time.sleep(0.3)
    res = rt.cmd("start", "cve5736i")
    assert res.returncode == 0, res.stderr
    time.sleep(0.5)
    log = _finish_attack(out)
    assert "write" not in log, log
    assert b"PWNED" not in python_copy.read_bytes()


# ---------------------------------------------------------------------------
# CVE-2024-21626: no host fd, no host cwd in the container
# ---------------------------------------------------------------------------

FD_PROBE = ("for f in /proc/self/fd/*; do echo \"$f $(readlink $f)\"; done; "
            "echo cwd=$(readlink /proc/self/cwd); ls /proc/self/fd | tr '\\n' ' '; echo")


def _check_fd_probe(stdout: str) -> None:
    lines = stdout.splitlines()
    cwd = [line for line in lines if line.startswith("cwd=")]
    assert cwd == ["cwd=/"], stdout
    # the shell's stdio and the fds of the probe's own commands only
    fds = sorted(int(n) for n in lines[-1].split())
    assert set(fds) <= {0, 1, 2, 3}, stdout
    assert fds[:3] == [0, 1, 2], stdout
    for line in lines:
        if line.startswith("/proc/self/fd/"):
            target = line.split(" ", 1)[1]
            # stdio are the test's pipes; anything else is the probe's own
            assert not target.startswith(("/sys", "/work", "/tmp", "/run", "/root")), stdout


def test_no_host_fd_or_cwd_leaks_into_the_container_or_exec(rt):
    # the runtime's caller holds extra fds: none may pass into the container
    extra = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
    try:
        res = rt.cmd("run", "--bundle", str(rt.bundle("leakrun", rt.spec(
            "leakrun", ["sh", "-c", FD_PROBE]))), "leakrun", pass_fds=(extra,))
        rt.ids.append("leakrun")
        assert res.returncode == 0, res.stderr
        _check_fd_probe(res.stdout)

        rt.started("leakexec", ["sleep", "1000"])
        res = rt.cmd("exec", "leakexec", "sh", "-c", FD_PROBE, pass_fds=(extra,))
        assert res.returncode == 0, res.stderr
        _check_fd_probe(res.stdout)
    finally:
        os.close(extra)


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8])
def test_cwd_through_a_leaked_fd_is_refused(rt, fd):
    # the runc exploit: process.cwd /proc/self/fd/7 (a leaked fd on the
    # host's /sys/fs/cgroup) gives the container a cwd outside its root
    cid = f"cwdleak{fd}"
    cfg = rt.spec(cid, ["sh", "-c", "readlink /proc/self/cwd; ls ../../../../"])
    cfg["process"]["cwd"] = f"/proc/self/fd/{fd}"
    res = rt.run(cid, [], cfg=cfg)
    if res.returncode == 0:  # it may only land inside the container
        assert res.stdout.splitlines()[0].startswith("/"), res.stdout
        assert "trioctr" not in res.stdout and "work" not in res.stdout
    else:
        assert "cwd" in res.stderr, res.stderr
    assert not (rt.root / cid).exists()


def test_exec_cwd_through_a_leaked_fd_is_refused(rt):
    rt.started("cwdexec", ["sleep", "1000"])
    for fd in (3, 4, 5, 6, 7, 8):
        res = rt.cmd("exec", "--cwd", f"/proc/self/fd/{fd}", "cwdexec",
                     "sh", "-c", "readlink /proc/self/cwd")
        if res.returncode == 0:
            assert res.stdout.startswith("/") and "/sys" not in res.stdout, res.stdout
        else:
            assert "cwd" in res.stderr, res.stderr


# ---------------------------------------------------------------------------
# CVE-2021-30465: mount destinations through symlinks in the rootfs
# ---------------------------------------------------------------------------

def _host_view(paths) -> dict:
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f)
    view = {"mounts": [m for m in mounts if m in paths or m.startswith(("/etc/", "/tmp/pwn"))]}
    for p in paths:
        try:
            st = os.lstat(p)
            view[p] = (st.st_dev, st.st_ino, st.st_mode)
        except FileNotFoundError:
            view[p] = None
    view["etc"] = sorted(os.listdir("/etc"))
    return view


def test_symlinked_mount_destinations_stay_in_the_rootfs(rt, tmp_path):
    from tests.helpers.rootfs import make_busybox_rootfs

    tag = os.urandom(4).hex()
    rootfs = make_busybox_rootfs(tmp_path / "evilroot")
    os.symlink("/", os.path.join(rootfs, "to_root"))
    os.symlink("/etc", os.path.join(rootfs, "to_etc"))
    os.symlink("../../..", os.path.join(rootfs, "to_up"))
    os.makedirs(os.path.join(rootfs, "deep", "er"))
    os.symlink("../../../../../tmp", os.path.join(rootfs, "deep", "er", "to_tmp"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("bound\n")
    host_paths = ["/", "/etc", "/tmp", f"/pwn{tag}", f"/tmp/pwn{tag}", f"/tmp/pwn{tag}b",
                  f"/etc/pwn{tag}"]
    before = _host_view(host_paths)

    cfg = rt.spec("symmnt", ["sh", "-c",
                             f"ls /pwn{tag}/; ls /etc/pwn{tag}/; ls /tmp/pwn{tag}/; "
                             "ls /etc/hostname /tmp"])
    cfg["root"]["path"] = rootfs
    cfg["mounts"] += [
        {"destination": f"/to_root/pwn{tag}", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/to_etc/pwn{tag}", "type": "bind", "source": str(src),
         "options": ["rbind", "ro"]},
        {"destination": f"/to_up/tmp/pwn{tag}", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/deep/er/to_tmp/pwn{tag}b/x", "type": "bind", "source": str(src),
         "options": ["rbind"]},
    ]
    res = rt.run("symmnt", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    # every destination landed inside the rootfs, and the host is untouched
    assert "marker" in res.stdout
    assert os.path.isdir(os.path.join(rootfs, f"pwn{tag}"))
    assert os.path.isdir(os.path.join(rootfs, "etc", f"pwn{tag}"))
    assert os.path.isdir(os.path.join(rootfs, "tmp", f"pwn{tag}b", "x"))
    assert _host_view(host_paths) == before


def test_symlinked_root_destination_does_not_cover_the_host(rt, tmp_path):
    from tests.helpers.rootfs import make_busybox_rootfs

    rootfs = make_busybox_rootfs(tmp_path / "evilroot")
    os.symlink("/", os.path.join(rootfs, "to_root"))
    os.symlink("../../../../etc", os.path.join(rootfs, "to_etc"))
    before = _host_view(["/", "/etc"])
    cfg = rt.spec("symroot", ["sh", "-c", "cat /etc/marker"])
    cfg["root"]["path"] = rootfs
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("over-etc\n")
    # a bind over "/to_etc": the container's /etc, never the host's
    cfg["mounts"].append({"destination": "/to_etc", "type": "bind", "source": str(src),
                          "options": ["rbind", "ro"]})
    res = rt.run("symroot", [], cfg=cfg)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "over-etc\n"
    assert not os.path.exists("/etc/marker")
    assert _host_view(["/", "/etc"]) == before


# ---------------------------------------------------------------------------
# masked and read-only paths (Docker's defaults)
# ---------------------------------------------------------------------------

MASK_PROBE = r"""
try() { if "$@" 2>/dev/null; then echo "ok: $*"; else echo "refused: $*"; fi; }
try sh -c 'echo h > /proc/sysrq-trigger'
try sh -c 'cat /proc/sys/kernel/printk_ratelimit > /proc/sys/kernel/printk_ratelimit'
try sh -c 'cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname'
try sh -c 'cat /proc/sys/vm/overcommit_memory > /proc/sys/vm/overcommit_memory'
try touch /sys/firmware/pwn
try mkdir /sys/firmware/pwn
try touch /proc/kcore.pwn
echo firmware=$(ls -A /sys/firmware | wc -l)
echo kcore=$(wc -c < /proc/kcore)
echo kcoredev=$(stat -c %t:%T /proc/kcore)
echo keys=$(wc -c < /proc/keys)
"""


def _check_mask_probe(stdout: str) -> None:
    out = stdout.splitlines()
    assert not [line for line in out if line.startswith("ok:")], stdout
    assert len([line for line in out if line.startswith("refused:")]) == 7, stdout
    assert "firmware=0" in out  # an empty tmpfs
    assert "keys=0" in out  # /dev/null
    if os.path.exists("/proc/kcore"):  # not every kernel has one
        assert "kcore=0" in out
        assert "kcoredev=1:3" in out


def test_masked_and_readonly_paths_cannot_be_written(rt):
    watched = ("/proc/sys/kernel/printk_ratelimit", "/proc/sys/vm/overcommit_memory")
    before = [open(p).read() for p in watched]
    res = rt.run("masked", ["sh", "-c", MASK_PROBE])
    assert res.returncode == 0, res.stderr
    _check_mask_probe(res.stdout)
    assert [open(p).read() for p in watched] == before


def test_masked_paths_also_hold_for_exec(rt):
    rt.started("maskexec", ["sleep", "1000"])
    res = rt.cmd("exec", "maskexec", "sh", "-c", MASK_PROBE)
    assert res.returncode == 0, res.stderr
    _check_mask_probe(res.stdout)
