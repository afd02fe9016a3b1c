#!/usr/bin/env python3
"""Pull benchmark (not a timed test): trioctr pull against skopeo + umoci and dockerd.

    sudo python3 bench/pull.py [-n 5] [--layers 5] [--layer-mb 40] [--json FILE]

Starts a local docker-registry (Debian's, 127.0.0.1, temporary storage) and
seeds it with skopeo: one image of ``--layers`` layers of ``--layer-mb`` MB of
random (incompressible) bytes each, gzip level 1.  Then, interleaved, N times:

- ``trioctr pull`` through a fresh trioctrd (fresh data root each run: every
  layer is downloaded, verified, unpacked and registered), wall time of the CLI;
  meanwhile ``/proc/PID/status`` of trioctrd and all its descendants is sampled
  every 10 ms: the peak of their summed VmRSS, and trioctrd's own VmHWM;
- ``skopeo copy docker://... oci:DIR:latest`` then ``umoci unpack --image
  DIR:latest BUNDLE`` (the same work: download, verify, unpack), wall time of
  both, and their peak RSS (``wait4`` rusage);
- ``docker pull`` through a fresh isolated dockerd (Debian's docker.io, when
  installed; bench/dockerd.py: temporary data/exec roots and socket, no bridge,
  no iptables; fresh data root each run, checked empty, so every pull is cold),
  wall time of the CLI; the same 10 ms sampling of dockerd and its descendants
  (its own containerd): peak summed VmRSS, dockerd's and containerd's peaks and
  dockerd's VmHWM.  ``--no-dockerd`` skips it.

Prints p50 / min / max per tool and the memory figures.  Needs root,
docker-registry, skopeo and umoci (``apt install umoci``; without it only
skopeo's copy is timed).  On a shared machine the numbers are noisy.
Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.helpers.engine import Engine, env  # noqa: E402
from tests.helpers.images import make_tar, tar_entry  # noqa: E402
from tests.images import registry_env as renv  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
import dockerd  # noqa: E402  (bench/dockerd.py)

REPO = "bench/pull"


def random_bytes(n: int, seed: bytes) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += hashlib.shake_256(block).digest(1 << 20)
    return bytes(out[:n])


def seed_registry(registry: renv.Registry, workdir: str, layers: int, layer_mb: int) -> str:
    """Build the OCI layout and copy it into the registry; return the reference."""
    layout = os.path.join(workdir, "seed")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)

    def blob(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    descs, diff_ids = [], []
    for i in range(layers):
        tar = make_tar([tar_entry(f"data{i}.bin", data=random_bytes(layer_mb << 20,
                                                                     b"bench%d" % i))])
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        z = gzip.compress(tar, compresslevel=1, mtime=0)
        del tar
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(z)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 **blob(config)},
                      "layers": descs}).encode()
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(man),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    ref = f"{registry.host}/{REPO}:latest"
    renv.skopeo_copy(f"oci:{layout}:latest", f"docker://{ref}")
    shutil.rmtree(layout)
    return ref


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += children.get(q, [])
    return out


class RSSSampler:
    """Peak of the summed VmRSS of a process tree, sampled every ``interval``."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.per_pid: dict[int, int] = {}  # pid -> its own peak VmRSS (KiB)
        self.comm: dict[int, str] = {}  # pid -> its /proc/PID/comm, read when first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tree = _descendants(pid)
        self._tree_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._tree_at > 0.5:
                self._tree, self._tree_at = _descendants(self.pid), time.monotonic()
            total = 0
            for p in self._tree:
                kb = _status_kb(p, "VmRSS")
                if p not in self.comm:
                    self.comm[p] = _comm(p)
                total += kb
                self.per_pid[p] = max(self.per_pid.get(p, 0), kb)
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RSSSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_trioctr(ref: str) -> dict:
    e = Engine()
    try:
        e.start()
        pid = e.proc.pid
        before = _status_kb(pid, "VmRSS")
        cmd = [sys.executable, "-m", "cli", "-H", f"unix://{e.sock}", "pull", ref]
        with RSSSampler(pid) as s:
            t = time.perf_counter()
            res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env(), cwd=ROOT)
            dt = time.perf_counter() - t
        status, images = e.request("GET", "/images/json")
        if res.returncode != 0 or not any(ref in (i.get("RepoTags") or []) for i in images or []):
            raise RuntimeError(f"trioctr pull failed: {res.stderr.decode(errors='replace')}")
        others = {p: kb for p, kb in s.per_pid.items() if p != pid}
        return {"s": dt, "tree_peak_mb": s.peak_kb / 1024,
                "daemon_peak_mb": s.per_pid.get(pid, 0) / 1024,
                "children_peak_mb": sum(others.values()) / 1024, "daemon_hwm_mb":
                _status_kb(pid, "VmHWM") / 1024, "daemon_before_mb": before / 1024}
    finally:
        e.cleanup()


def _timed_rusage(cmd: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode(errors='replace')}")
    return dt, ru.ru_maxrss  # KiB


def run_skopeo_umoci(ref: str, base: str, umoci: bool) -> dict:
    d = tempfile.mkdtemp(prefix="pull-", dir=base)
    try:
        t1, rss1 = _timed_rusage([renv.SKOPEO, "--insecure-policy", "copy", "--quiet",
                                  "--src-tls-verify=false", f"docker://{ref}",
                                  f"oci:{d}/oci:latest"])
        t2, rss2 = 0.0, 0
        if umoci:
            t2, rss2 = _timed_rusage(["umoci", "unpack", "--image", f"{d}/oci:latest",
                                      f"{d}/bundle"])
        return {"s": t1 + t2, "copy_s": t1, "unpack_s": t2,
                "peak_mb": max(rss1, rss2) / 1024}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def run_dockerd(ref: str, registry_host: str) -> dict:
    with dockerd.isolated_dockerd_proc(
            None, env=env(), extra_args=[f"--insecure-registry={registry_host}"]) as (denv, proc, dbase):
        pid = proc.pid
        layerdb = os.path.join(dbase, "data", "image", "overlay2", "layerdb", "sha256")
        def ls(d: str) -> list[str]:
            return os.listdir(d) if os.path.isdir(d) else []
        if ls(os.path.join(dbase, "data", "overlay2")) not in ([], ["l"]) or ls(layerdb):
            raise RuntimeError(f"dockerd data root not empty before the pull: {dbase}")
        time.sleep(1)  # let dockerd + containerd settle before the 'before' reading
        before = sum(_status_kb(p, "VmRSS") for p in _descendants(pid))
        with RSSSampler(pid) as s:
            t = time.perf_counter()
            res = subprocess.run(["docker", "pull", ref], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=denv)
            dt = time.perf_counter() - t
        ok = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, env=denv)
        if res.returncode != 0 or ok.returncode != 0:
            raise RuntimeError(f"docker pull failed: {res.stderr.decode(errors='replace')}")
        nlayers = len(os.listdir(layerdb))
        ctr = sum(kb for p, kb in s.per_pid.items() if s.comm.get(p) == "containerd")
        others: dict[str, int] = {}  # comm -> the largest peak of a process of that name
        for p, kb in s.per_pid.items():
            if p != pid and s.comm.get(p) != "containerd":
                c = s.comm.get(p) or "?"
                others[c] = max(others.get(c, 0), kb)
        return {"s": dt, "tree_peak_mb": s.peak_kb / 1024,
                "daemon_peak_mb": s.per_pid.get(pid, 0) / 1024,
                "containerd_peak_mb": ctr / 1024,
                "children_peak_mb": {c: kb / 1024 for c, kb in sorted(others.items())},
                "daemon_hwm_mb": _status_kb(pid, "VmHWM") / 1024,
                "tree_before_mb": before / 1024, "layers": nlayers}


def summary(samples: list[float]) -> str:
    s = sorted(samples)
    return f"p50 {statistics.median(s):6.2f} s   min {s[0]:6.2f} s   max {s[-1]:6.2f} s"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--layer-mb", type=int, default=40)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-dockerd", action="store_true", help="skip the dockerd pull")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/pull: needs root", file=sys.stderr)
        return 1
    if not (os.access(renv.REGISTRY_BIN, os.X_OK) and shutil.which(renv.SKOPEO)):
        print("bench/pull: needs docker-registry and skopeo (scripts/install.sh --test)",
              file=sys.stderr)
        return 1
    umoci = shutil.which("umoci") is not None
    if not umoci:
        print("no umoci (apt install umoci): only skopeo's copy is timed", file=sys.stderr)
    with_dockerd = not args.no_dockerd and dockerd.available()
    if not args.no_dockerd and not with_dockerd:
        print("no dockerd on this host (apt install docker.io): the dockerd pull is skipped",
              file=sys.stderr)
    base = tempfile.mkdtemp(prefix="trioctr-test-bench-pull-")
    registry = renv.Registry(os.path.join(base, "registry"))
    ours: list[dict] = []
    theirs: list[dict] = []
    docker: list[dict] = []
    try:
        registry.start()
        ref = seed_registry(registry, base, args.layers, args.layer_mb)
        for i in range(args.n):  # interleaved: load drifts hit both alike
            ours.append(run_trioctr(ref))
            theirs.append(run_skopeo_umoci(ref, base, umoci))
            print(f"run {i + 1}: trioctr {ours[-1]['s']:.2f} s (tree peak "
                  f"{ours[-1]['tree_peak_mb']:.0f} MB = trioctrd {ours[-1]['daemon_peak_mb']:.0f}"
                  f" + children {ours[-1]['children_peak_mb']:.0f}, trioctrd VmHWM "
                  f"{ours[-1]['daemon_hwm_mb']:.0f} MB); skopeo+umoci {theirs[-1]['s']:.2f} s "
                  f"(copy {theirs[-1]['copy_s']:.2f} + unpack {theirs[-1]['unpack_s']:.2f}, "
                  f"peak {theirs[-1]['peak_mb']:.0f} MB)", file=sys.stderr)
            if with_dockerd:
                docker.append(run_dockerd(ref, registry.host))
                d = docker[-1]
                print(f"run {i + 1}: dockerd {d['s']:.2f} s (tree peak {d['tree_peak_mb']:.0f} MB"
                      f" = dockerd {d['daemon_peak_mb']:.0f} + containerd "
                      f"{d['containerd_peak_mb']:.0f} + children, peaks "
                      f"{', '.join(f'{c} {mb:.0f}' for c, mb in d['children_peak_mb'].items())}"
                      f"; dockerd VmHWM "
                      f"{d['daemon_hwm_mb']:.0f} MB; {d['layers']} layers)", file=sys.stderr)
    finally:
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)
    size = args.layers * args.layer_mb
    other = "skopeo copy + umoci unpack" if umoci else "skopeo copy"
    print(f"pull of {args.layers} x {args.layer_mb} MB random layers ({size} MB), "
          f"n={args.n}")
    print(f"  trioctr pull (trioctrd, fresh store)  {summary([r['s'] for r in ours])}")
    print(f"  {other:<37} {summary([r['s'] for r in theirs])}")
    if docker:
        print(f"  {'docker pull (dockerd, fresh root)':<37} {summary([r['s'] for r in docker])}")
    print(f"  trioctrd + children peak RSS during the pull: "
          f"{max(r['tree_peak_mb'] for r in ours):.0f} MB (max over runs); trioctrd VmHWM "
          f"{max(r['daemon_hwm_mb'] for r in ours):.0f} MB; before the pull "
          f"{statistics.median(r['daemon_before_mb'] for r in ours):.0f} MB")
    print(f"  {other} peak RSS: {max(r['peak_mb'] for r in theirs):.0f} MB")
    if docker:
        print(f"  dockerd + containerd peak RSS during the pull: "
              f"{max(r['tree_peak_mb'] for r in docker):.0f} MB (max over runs; dockerd "
              f"{max(r['daemon_peak_mb'] for r in docker):.0f}, containerd "
              f"{max(r['containerd_peak_mb'] for r in docker):.0f}); dockerd VmHWM "
              f"{max(r['daemon_hwm_mb'] for r in docker):.0f} MB; before the pull "
              f"{statistics.median(r['tree_before_mb'] for r in docker):.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trioctr": ours, "skopeo_umoci": theirs, "dockerd": docker}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
