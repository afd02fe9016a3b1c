"""What the suite may leave behind on the host, and a check that it does not.

A snapshot is taken when the session starts; the last test compares.
"""

from __future__ import annotations

import os
import re
import subprocess

TEST_PREFIX = "trioctr-test-"
ENGINE_PROC = re.compile(r"trioctrd|actors[./](shim|supervisor|runtime|daemon)|trioctr-(shim|supervisor|runtime)")


def overlay_mounts() -> set[str]:
    out = set()
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "overlay":
                out.add(parts[1])
    return out


def test_mounts() -> set[str]:
    out = set()
    with open("/proc/self/mounts") as f:
        for line in f:
            if TEST_PREFIX in line:
                out.add(line.split()[1])
    return out


def cgroups() -> set[str]:
    found = set()
    base = "/sys/fs/cgroup"
    try:
        ctrls = os.listdir(base)
    except OSError:
        return found
    dirs = [base] + [os.path.join(base, c) for c in ctrls]
    for d in dirs:
        try:
            for name in os.listdir(d):
                if name.startswith(TEST_PREFIX):
                    found.add(os.path.join(d, name))
        except OSError:
            continue
    return found


def engine_processes() -> set[tuple[int, str]]:
    out = set()
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ENGINE_PROC.search(cmd) and "pytest" not in cmd:
            out.add((int(pid), cmd.strip()))
    return out


def veths() -> set[str]:
    try:
        res = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.split(":")[1].strip().split("@")[0] for line in res.stdout.splitlines() if ":" in line}


def netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def snapshot() -> dict[str, set]:
    return {"overlay mounts": overlay_mounts(), "test mounts": test_mounts(),
            "cgroups": cgroups(), "engine processes": engine_processes(),
            "veth interfaces": veths(), "named netns": netns()}


def leaks(before: dict[str, set]) -> dict[str, set]:
    after = snapshot()
    return {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}
