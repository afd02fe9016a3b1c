"""An isolated dockerd for the benchmarks (Debian's docker.io, when installed).

Never the host's /var/lib/docker or /run/docker: data root, exec root, socket,
pid file and containerd state all live in a temporary directory, no bridge and no
iptables rules are made (``--bridge=none --iptables=false``), and everything is
stopped and removed on exit.  Yields the environment for the docker CLI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time


def available() -> bool:
    return bool(shutil.which("dockerd") and shutil.which("containerd") and shutil.which("docker"))


@contextlib.contextmanager
def isolated_dockerd(busybox_tar: str | None, *, env: dict, extra_args: list[str] = ()):
    """Yield the docker CLI environment; ``busybox_tar`` (if given) is imported as
    busybox:latest.  ``extra_args`` go to dockerd (e.g. ``--insecure-registry``)."""
    with isolated_dockerd_proc(busybox_tar, env=env, extra_args=extra_args) as (denv, _proc, _base):
        yield denv


@contextlib.contextmanager
def isolated_dockerd_proc(busybox_tar: str | None, *, env: dict, extra_args: list[str] = ()):
    """As ``isolated_dockerd`` but yield ``(denv, dockerd Popen, temporary base dir)``
    (the data root is ``base/data``)."""
    base = tempfile.mkdtemp(prefix="trioctr-test-dockerd-")
    sock = os.path.join(base, "docker.sock")
    denv = dict(env, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(base, "cli"))
    log = open(os.path.join(base, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", os.path.join(base, "data"), "--exec-root", os.path.join(base, "exec"),
         "-H", f"unix://{sock}", "--pidfile", os.path.join(base, "dockerd.pid"),
         "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
         "--storage-driver=overlay2", "--log-level=warn", *extra_args],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["docker", "version"], capture_output=True, env=denv).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {base}/dockerd.log")
            time.sleep(0.2)
        if busybox_tar is not None:
            subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest"],
                           check=True, capture_output=True, env=denv)
        yield denv, proc, base
    finally:
        subprocess.run(["sh", "-c", "docker rm -f $(docker ps -aq) 2>/dev/null"], env=denv,
                       capture_output=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        # dockerd leaves its overlay mounts and netns bind mounts under the roots
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in sorted((m for m in mounts if m.startswith(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
