#!/usr/bin/env python3
"""Benchmarks (not timed tests): trioctr against runc, and dockerd when present.

    sudo python3 bench/bench.py [-n 20]

Starts an isolated trioctrd in a temporary directory (never the defaults),
imports a busybox image made from the host's busybox-static, and measures
p50/p90 wall time over N runs of:

- ``trioctr run --rm busybox true`` and ``trioctr ps``
- ``docker run --rm busybox true`` and ``docker ps`` (docker CLI -> trioctrd)
- ``runc run`` and ``trioctr-runtime run`` (``python3 -S -m actors.runtime``, as
  the shim runs it) on the same bundle (busybox ``true``), interleaved
- the same docker commands against an isolated dockerd of its own (temporary
  roots and socket, no bridge, no iptables), when Debian's docker.io is installed

``--interleave``: only the docker CLI, against trioctrd and dockerd in turn, run
by run (the numbers issue 5 asks for; this VM's speed drifts over minutes).

Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.helpers.engine import Engine, env  # noqa: E402
from tests.helpers.images import busybox_rootfs_tar  # noqa: E402
from tests.helpers.rootfs import make_busybox_rootfs  # noqa: E402

import dockerd  # noqa: E402  (bench/dockerd.py)


def timed(argv, n, *, envv=None, warmup=2, check=True):
    samples = []
    for i in range(n + warmup):
        t = time.perf_counter()
        res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=envv)
        dt = time.perf_counter() - t
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.decode(errors='replace')}")
        if i >= warmup:
            samples.append(dt * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "p90": samples[int(len(samples) * 0.9) - 1],
            "min": samples[0], "n": n}


def make_bundle(base: str, cgroup_parent: str) -> str:
    bundle = os.path.join(base, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs)
    make_busybox_rootfs(rootfs)
    subprocess.run([sys.executable, "-m", "actors.runtime", "spec", "--bundle", bundle],
                   check=True, env=env(), cwd=ROOT)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    spec["linux"]["cgroupsPath"] = f"/{cgroup_parent}/bench"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return bundle


def rows_table(rows):
    w = max(len(r[0]) for r in rows)
    out = [f"{'benchmark'.ljust(w)}  {'p50 ms':>8}  {'p90 ms':>8}  {'min ms':>8}"]
    for name, s in rows:
        out.append(f"{name.ljust(w)}  {s['p50']:8.1f}  {s['p90']:8.1f}  {s['min']:8.1f}")
    return "\n".join(out)


def runtime_rows(n: int, base: str, cgroup_parent: str) -> list:
    """`trioctr-runtime run` against `runc run` on the same bundle, N
    interleaved runs each (so that load drifts hit both alike), p50."""
    bundle = make_bundle(base, cgroup_parent)
    rt_root = os.path.join(base, "rt")
    i = [0]

    def runtime_cmd(binary):
        i[0] += 1
        return binary + ["--root", rt_root, "run", "--bundle", bundle, f"bench{i[0]}"]

    # as the shim runs it: no site processing (the runtime imports only
    # the standard library's C modules, linux/ and actors/runtime.py)
    ours = [sys.executable, "-S", "-m", "actors.runtime"]
    s_ours, s_runc = [], []
    for k in range(n + 2):
        for binary, bucket in ((ours, s_ours), (["runc"], s_runc)):
            if binary == ["runc"] and not shutil.which("runc"):
                continue
            t = time.perf_counter()
            res = subprocess.run(runtime_cmd(binary), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=env(), cwd=ROOT)
            dt = (time.perf_counter() - t) * 1000
            if res.returncode != 0:
                raise RuntimeError(f"{binary} run failed: {res.stderr.decode(errors='replace')}")
            if k >= 2:
                bucket.append(dt)
    rows = []
    for name, s in (("trioctr-runtime run (bundle: true)", s_ours),
                    ("runc run (same bundle)", s_runc)):
        if s:
            s.sort()
            rows.append((name, {"p50": statistics.median(s), "p90": s[int(len(s) * 0.9) - 1],
                                "min": s[0], "n": len(s)}))
    return rows


def trioctrd_env(e: Engine, base: str) -> dict:
    """The docker CLI's environment for trioctrd."""
    envv = env()
    envv["DOCKER_HOST"] = f"unix://{e.sock}"
    envv["DOCKER_CONFIG"] = os.path.join(base, "docker-config")
    return envv


def start_sleepers(envv: dict) -> None:
    """The 3 running containers of the `docker ps` rows."""
    for _ in range(3):
        subprocess.run(["docker", "run", "-d", "busybox", "sleep", "300"], check=True,
                       capture_output=True, env=envv)


def block_rows(n: int, e: Engine, base: str, tar: str) -> list:
    """Each command N times in a row: our CLI and the docker CLI against trioctrd, the
    runtimes, then the docker CLI against dockerd (when there is one)."""
    rows = []
    cli = [sys.executable, "-m", "cli", "-H", f"unix://{e.sock}"]
    rows.append(("trioctr run --rm busybox true", timed(cli + ["run", "--rm", "busybox", "true"], n, envv=env())))
    for _ in range(3):
        e.cli("run", "-d", "busybox", "sleep", "300", check=True)
    rows.append(("trioctr ps (3 running)", timed(cli + ["ps"], n, envv=env())))
    if shutil.which("docker"):
        denv = trioctrd_env(e, base)
        rows.append(("docker run --rm busybox true -> trioctrd",
                     timed(["docker", "run", "--rm", "busybox", "true"], n, envv=denv, check=False)))
        rows.append(("docker ps -> trioctrd (3 running)", timed(["docker", "ps"], n, envv=denv)))
    rows += runtime_rows(n, base, e.cgroup_parent)
    if dockerd.available():
        # the same docker CLI against an isolated dockerd (Debian's docker.io)
        with dockerd.isolated_dockerd(tar, env=env()) as denv:
            rows.append(("docker run --rm busybox true -> dockerd",
                         timed(["docker", "run", "--rm", "busybox", "true"], n, envv=denv)))
            start_sleepers(denv)
            rows.append(("docker ps -> dockerd (3 running)", timed(["docker", "ps"], n, envv=denv)))
    else:
        print("no dockerd on this host (apt install docker.io): the dockerd comparison is skipped",
              file=sys.stderr)
    return rows


def interleaved_rows(n: int, e: Engine, base: str, tar: str, gap: float) -> list:
    """The docker CLI against trioctrd and against dockerd, one run each in turn, then the
    same for ``docker ps`` with 3 containers running on each; rows with the ratio."""
    if not (shutil.which("docker") and dockerd.available()):
        raise SystemExit("bench --interleave: needs the docker CLI and Debian's docker.io")
    tenv = trioctrd_env(e, base)
    rows = []
    with dockerd.isolated_dockerd(tar, env=env()) as denv:
        for label, argv, setup in (
                ("docker run --rm busybox true", ["docker", "run", "--rm", "busybox", "true"], False),
                ("docker ps (3 running)", ["docker", "ps"], True)):
            if setup:
                for envv in (tenv, denv):
                    start_sleepers(envv)
            samples = {"trioctrd": [], "dockerd": []}
            for i in range(n + 2):
                for name, envv in (("trioctrd", tenv), ("dockerd", denv)):
                    time.sleep(gap)
                    t = time.perf_counter()
                    subprocess.run(argv, check=True, capture_output=True, env=envv)
                    if i >= 2:
                        samples[name].append((time.perf_counter() - t) * 1000)
            p50 = {}
            for name, v in samples.items():
                v.sort()
                p50[name] = statistics.median(v)
                rows.append((f"{label} -> {name}", {"p50": p50[name], "p90": v[int(len(v) * 0.9) - 1],
                                                     "min": v[0], "n": n}))
            print(f"{label}: trioctrd/dockerd p50 = {p50['trioctrd'] / p50['dockerd']:.3f}", flush=True)
    return rows


def _remove_cgroup_parent(name: str) -> None:
    """rmdir /NAME (and its children) in every hierarchy."""
    base = "/sys/fs/cgroup"
    for d in [base] + [os.path.join(base, x) for x in os.listdir(base)]:
        top = os.path.join(d, name)
        if not os.path.isdir(top) or not os.path.exists(os.path.join(d, "cgroup.procs")):
            continue
        for sub in sorted((os.path.join(top, x) for x in os.listdir(top)
                           if os.path.isdir(os.path.join(top, x))), reverse=True):
            os.rmdir(sub)
        os.rmdir(top)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--runtime-only", action="store_true",
                   help="only trioctr-runtime run against runc run (no daemon)")
    p.add_argument("--interleave", action="store_true",
                   help="only the docker CLI against trioctrd and dockerd, alternating run by run "
                        "(this VM's speed drifts by ~20%% between blocks; ratios of interleaved runs hold)")
    p.add_argument("--gap", type=float, default=0.3,
                   help="seconds between interleaved runs, so that no run finds the kernel's "
                        "host-wide state (e.g. cgroup migrations, warm for one RCU grace period "
                        "after the last one) left warm by the other engine's run")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root", file=sys.stderr)
        return 1
    n = args.n
    rows = []
    if args.runtime_only:
        base = tempfile.mkdtemp(prefix="trioctr-test-bench-")
        parent = os.path.basename(base)
        try:
            rows += runtime_rows(n, base, parent)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            _remove_cgroup_parent(parent)
        print(rows_table(rows))
        return 0
    e = Engine()
    base = tempfile.mkdtemp(prefix="trioctr-test-bench-")
    try:
        e.start()
        tar = os.path.join(base, "busybox.tar")
        busybox_rootfs_tar(tar)
        e.cli("import", "-c", 'CMD ["sh"]', tar, "busybox:latest", check=True)
        if args.interleave:
            rows += interleaved_rows(n, e, base, tar, args.gap)
        else:
            rows += block_rows(n, e, base, tar)
    finally:
        e.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    print(rows_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: s for name, s in rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
