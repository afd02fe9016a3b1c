#!/usr/bin/env python3
"""How much of `docker run --rm busybox true` and `docker ps` is the docker CLI's
own time: both against a stand-in API on a Unix socket that answers every
request at once (ping, create, attach, wait, start; an empty list for ps).

    python3 bench/cli_floor.py [-n 30]

No daemon, no container, nothing left behind (a temporary directory).  What a
daemon can win is what is above this floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

CID = "c0ffee" + "0" * 58


class InstantAPI:
    """Just enough of the Engine API for the two commands, answered at once."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        self.attached: list[socket.socket] = []
        self.started = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _reply(conn, status: str, body: bytes = b"", head_only: bool = False) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nOstype: linux\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + (b"" if head_only else body))

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                if length:
                    f.read(length)
                path = target.split("?")[0]
                if path.endswith("/_ping"):
                    self._reply(conn, "200 OK", b"OK", head_only=method == "HEAD")
                elif path.endswith("/containers/create"):
                    self._reply(conn, "201 Created", json.dumps({"Id": CID, "Warnings": []}).encode())
                elif path.endswith("/attach"):
                    conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                                 b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                    self.attached.append(conn)
                    return
                elif path.endswith("/wait"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    self.started.wait()
                    self.started.clear()
                    for a in self.attached:  # the container "exited": its stream ends
                        try:
                            a.shutdown(socket.SHUT_RDWR)
                            a.close()
                        except OSError:
                            pass
                    self.attached.clear()
                    body = b'{"StatusCode":0,"Error":null}\n'
                    conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
                elif path.endswith("/start"):
                    self._reply(conn, "204 No Content")
                    self.started.set()
                elif path.endswith("/containers/json"):
                    self._reply(conn, "200 OK", b"[]")
                else:
                    self._reply(conn, "404 Not Found", b'{"message":"not here"}')
        except OSError:
            pass


def timed(argv, env, n: int) -> dict:
    samples = []
    for i in range(n + 2):
        t = time.perf_counter()
        res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if res.returncode != 0 or res.stderr:
            raise RuntimeError(f"{' '.join(argv)}: {res.stderr.decode(errors='replace')}")
        if i >= 2:
            samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "min": samples[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30)
    n = ap.parse_args().n
    if not shutil.which("docker"):
        print("no docker CLI on this host")
        return 1
    base = tempfile.mkdtemp(prefix="trioctr-bench-floor-")
    try:
        path = os.path.join(base, "api.sock")
        api = InstantAPI(path)
        env = dict(os.environ, DOCKER_HOST=f"unix://{path}", DOCKER_CONFIG=os.path.join(base, "cli"))
        print(f"{'docker CLI against an instant API':40s}  {'p50 ms':>8}  {'min ms':>8}")
        for argv in (["docker", "run", "--rm", "busybox", "true"], ["docker", "ps"],
                     ["docker", "--version"]):
            r = timed(argv, env, n)
            print(f"{' '.join(argv):40s}  {r['p50']:8.1f}  {r['min']:8.1f}")
        api.sock.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
