"""A throwaway Docker-API server on a Unix socket for the CLI's client-side tests.

Routes map "METHOD /path" (the /v1.41 prefix removed, no query) to a Reply or
a list of Replies (served in turn, the last one repeating).  Every request is
recorded with its query and body, so tests can check what the CLI sent.
Standard library only (http.server in a thread).
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import struct
import tempfile
import threading
import time
import urllib.parse


class Reply:
    def __init__(self, status=200, body=None, ctype="application/json", chunks=None,
                 frames=None, hijack=False, delay=0.0, headers=None, chunk_delay=0.0,
                 echo_stdin=False, cut=False):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.chunks = chunks          # list of bytes: a chunked (streamed) body
        self.frames = frames          # list of (stream, bytes): multiplexed frames
        self.hijack = hijack          # 101 UPGRADED, then frames/chunks raw, then close
        self.delay = delay
        self.headers = headers or {}
        self.chunk_delay = chunk_delay
        self.echo_stdin = echo_stdin  # hijack: read the client's input to EOF, echo it back
        self.cut = cut                # chunked: close without the last chunk (a daemon that died)


def error(status, message):
    return Reply(status, {"message": message})


def frame(stream, data):
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">BxxxL", stream, len(data)) + data


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%s %s %s>" % (self.method, self.path, self.query)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        daemon = self.server.fake
        body = self._body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        req = Request(self.command, path, query, dict(self.headers), body)
        daemon.requests.append(req)
        reply = daemon.reply_for(self.command, path)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.hijack:
            self.send_response(101, "UPGRADED")
            self.send_header("Content-Type", reply.ctype)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
            self.end_headers()
            self.wfile.flush()
            data = b""
            if reply.echo_stdin:
                received = b""
                while True:
                    piece = self.rfile.read1(65536)
                    if not piece:
                        break
                    received += piece
                daemon.stdin_received.append(received)
                data += frame(1, received)
            for s, d in reply.frames or []:
                data += frame(s, d)
            for c in reply.chunks or []:
                data += c
            if reply.chunk_delay and reply.frames:
                for s, d in reply.frames:
                    self.wfile.write(frame(s, d))
                    self.wfile.flush()
                    time.sleep(reply.chunk_delay)
            else:
                self.wfile.write(data)
            self.wfile.flush()
            daemon.hijacked.append(req)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if reply.chunks is not None or reply.frames is not None:
            self.send_header("Content-Type", reply.ctype)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            pieces = list(reply.chunks or []) + [frame(s, d) for s, d in reply.frames or []]
            try:
                for p in pieces:
                    if p:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
                        self.wfile.flush()
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                if reply.cut:
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        b = reply.body
        if b is None:
            b = b""
        elif isinstance(b, (dict, list)):
            b = json.dumps(b).encode()
        elif isinstance(b, str):
            b = b.encode()
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.ctype)
            self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        if reply.status not in (204, 304):
            try:
                self.wfile.write(b)
            except (BrokenPipeError, ConnectionResetError):
                pass

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _serve


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("local", 0)

    def handle_error(self, request, client_address):
        pass


class FakeDaemon:
    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests: list[Request] = []
        self.hijacked: list[Request] = []
        self.stdin_received: list[bytes] = []
        self.dir = tempfile.mkdtemp(prefix="trioctr-cli-test-")
        self.sock = os.path.join(self.dir, "api.sock")
        self.host = "unix://" + self.sock
        self._lock = threading.Lock()
        self.server = _Server(self.sock, _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def reply_for(self, method, path):
        with self._lock:
            r = self.routes.get("%s %s" % (method, path))
            if r is None:
                return error(404, "page not found")
            if isinstance(r, list):
                return r.pop(0) if len(r) > 1 else r[0]
            return r

    def find(self, method, path):
        return [r for r in self.requests if r.method == method and r.path == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.sock)
        except OSError:
            pass
        os.rmdir(self.dir)
