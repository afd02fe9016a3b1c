"""Test environment for the registry side: a real registry, a fault-injecting
proxy, a token server, and OCI layouts pushed with skopeo.  Everything listens
on 127.0.0.1 only, on free ports, and is stopped by its fixture."""

from __future__ import annotations

import base64
import contextlib
import gzip as _gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
import time
import urllib.parse
import uuid
import warnings

from tests.helpers.images import busybox_rootfs_entries, make_tar, tar_entry

REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
SERVICE = "trioctr-test-registry"
ISSUER = "trioctr-test-issuer"
USER, PASSWORD = "alice", "s3cret-pw"
REFRESH_TOKEN = "refresh-token-of-alice"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------- registry


class Registry:
    """``/usr/bin/docker-registry serve`` on 127.0.0.1:<free port>."""

    def __init__(self, workdir: str, *, auth: dict | None = None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.data = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "registry.log")
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.data}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {uuid.uuid4().hex}",
        ]
        if auth:
            lines.append("auth:")
            for kind, opts in auth.items():
                lines.append(f"  {kind}:")
                for k, v in opts.items():
                    lines.append(f"    {k}: {v}")
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Registry":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v2/")
                status = c.getresponse().status
                c.close()
                if status in (200, 401):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        self.proc = None
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    # direct registry queries (no auth), for assertions
    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()


# --------------------------------------------------------------------------- skopeo


def skopeo_copy(src: str, dest: str, *args: str) -> None:
    cmd = [SKOPEO, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
           *args, src, dest]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr}")


def skopeo_inspect(ref: str, *args: str) -> dict:
    cmd = [SKOPEO, "--insecure-policy", "inspect", "--tls-verify=false", *args, ref]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr}")
    return json.loads(res.stdout)


# --------------------------------------------------------------------------- OCI layouts


class Layout:
    """An OCI image layout on disk that we build by hand (``oci:DIR:TAG``)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": []}
        self._write_index()

    def blob(self, data: bytes) -> str:
        d = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def _write_index(self) -> None:
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)

    def image(self, layers: list[bytes], *, arch: str = "amd64", os_: str = "linux",
              variant: str | None = None, cmd: list[str] | None = None,
              created: str = "2024-01-02T03:04:05Z", gzip: bool = True
              ) -> tuple[dict, bytes, dict]:
        """Add an image (layers: uncompressed tars); return (manifest descriptor,
        config bytes, info)."""
        diff_ids = [sha256(t) for t in layers]
        descs = []
        for t in layers:
            data = gz(t) if gzip else t
            mt = ("application/vnd.oci.image.layer.v1.tar+gzip" if gzip
                  else "application/vnd.oci.image.layer.v1.tar")
            descs.append({"mediaType": mt, "digest": self.blob(data), "size": len(data)})
        config = {"architecture": arch, "os": os_, "created": created,
                  "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/bin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "history": [{"created": created, "created_by": f"layer {i}"}
                              for i in range(len(layers))]}
        if variant:
            config["variant"] = variant
        cfg = json.dumps(config, sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": self.blob(cfg), "size": len(cfg)},
                    "layers": descs}
        mb = json.dumps(manifest).encode()
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.blob(mb), "size": len(mb)}
        plat = {"architecture": arch, "os": os_}
        if variant:
            plat["variant"] = variant
        return desc, cfg, {"platform": plat, "manifest": mb, "layers": descs,
                           "diff_ids": diff_ids, "config_digest": sha256(cfg)}

    def tag(self, tag: str, desc: dict) -> None:
        d = dict(desc)
        d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"] = [m for m in self.index["manifests"]
                                   if m.get("annotations", {}).get(
                                       "org.opencontainers.image.ref.name") != tag] + [d]
        self._write_index()

    def multi(self, tag: str, entries: list[tuple[dict, dict]]) -> dict:
        """An image index of (descriptor, platform) entries, tagged ``tag``."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [dict(d, platform=p) for d, p in entries]}
        ib = json.dumps(idx).encode()
        desc = {"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": self.blob(ib), "size": len(ib)}
        self.tag(tag, desc)
        return desc


def gz(data: bytes) -> bytes:
    raw = io.BytesIO()
    with _gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as g:
        g.write(data)
    return raw.getvalue()


def busybox_layer() -> bytes:
    return make_tar(busybox_rootfs_entries())


def whiteout_layer() -> bytes:
    """Deletes etc/hostname (whiteout), makes var/tmp opaque, adds etc/motd."""
    return make_tar([
        tar_entry("etc", "dir"),
        tar_entry("etc/.wh.hostname"),
        tar_entry("etc/motd", data=b"layer two\n"),
        tar_entry("var", "dir"),
        tar_entry("var/tmp", "dir", mode=0o1777),
        tar_entry("var/tmp/.wh..wh..opq"),
        tar_entry("var/tmp/fresh", data=b"fresh\n"),
    ])


def small_layer(name: str, data: bytes) -> bytes:
    return make_tar([tar_entry(name, data=data)])


# --------------------------------------------------------------------------- proxy


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = True


class LoopbackServer:
    """An HTTP server of the tests on 127.0.0.1 and a free port, served by a
    thread between ``start()`` and ``stop()``."""

    def _listen(self, handler: type) -> None:
        self.server = _ThreadingServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class ForwardingHandler(http.server.BaseHTTPRequestHandler):
    """Quiet HTTP/1.1 handler passing every method to ``owner._handle(self,
    method)`` (set ``owner`` on a subclass)."""

    protocol_version = "HTTP/1.1"
    owner = None

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.owner._handle(self, "GET")

    def do_HEAD(self):
        self.owner._handle(self, "HEAD")

    def do_POST(self):
        self.owner._handle(self, "POST")

    def do_PUT(self):
        self.owner._handle(self, "PUT")

    def do_PATCH(self):
        self.owner._handle(self, "PATCH")

    def do_DELETE(self):
        self.owner._handle(self, "DELETE")


class FaultProxy(LoopbackServer):
    """A reverse proxy in front of a registry that can break things on purpose:

    - ``drop_once``: blob digests whose first full GET is cut after half the body
      (the client must retry and resume with Range);
    - ``drop_always``: blob digests whose GETs are always cut;
    - ``corrupt``: blob digests whose bytes are altered (same length);
    - ``tamper_manifests``: manifest bodies get a trailing space;
    - ``schema1``: manifest GETs answer a schema1 manifest;
    - ``redirect_blobs``: blob GETs answer 307 to another path of the proxy;
    - ``fail_manifest``: manifest GETs answer this status with a JSON error.
    ``requests`` logs (method, path, Range header)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.drop_once: set[str] = set()
        self.drop_always: set[str] = set()
        self.corrupt: set[str] = set()
        self.tamper_manifests = False
        self.schema1 = False
        self.redirect_blobs = False
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._listen(type("Handler", (ForwardingHandler,), {"owner": self}))

    def _handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        path = h.path
        with self.lock:
            self.requests.append((method, path, h.headers.get("Range")))
        if path.startswith("/_redirect/"):
            path = "/" + path[len("/_redirect/"):]
        elif self.redirect_blobs and method == "GET" and "/blobs/sha256:" in path:
            h.send_response(307)
            h.send_header("Location", "/_redirect" + path)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if self.schema1 and method == "GET" and "/manifests/" in path:
            body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "latest",
                               "architecture": "amd64", "fsLayers": [], "history": [],
                               "signatures": []}).encode()
            h.send_response(200)
            h.send_header("Content-Type",
                          "application/vnd.docker.distribution.manifest.v1+prettyjws")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else None
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            up.request(method, path, body=body, headers=headers)
            r = up.getresponse()
            data = r.read()
            rheaders = [(k, v) for k, v in r.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "content-length")]
            status = r.status
        finally:
            up.close()
        digest = None
        if "/blobs/sha256:" in path and method == "GET":
            digest = "sha256:" + path.rsplit("sha256:", 1)[1].split("?")[0]
        if digest and status in (200, 206) and digest in self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if self.tamper_manifests and "/manifests/" in path and status == 200:
            data = data + b" "
        cut = False
        if digest and status in (200, 206) and digest in self.drop_always and len(data) > 2:
            cut = True
        if digest and status == 200 and digest in self.drop_once and len(data) > 2:
            with self.lock:
                self.drop_once.discard(digest)
            cut = True
        h.send_response(status)
        for k, v in rheaders:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method == "HEAD":
            return
        if cut:
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(data)


# --------------------------------------------------------------------------- auth


def htpasswd_line(user: str, password: str) -> str | None:
    """A bcrypt htpasswd line (the registry accepts bcrypt only): Python's
    ``bcrypt`` if installed, else libxcrypt's through the stdlib ``crypt``."""
    try:
        import bcrypt  # type: ignore
        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(6)).decode()}"
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # type: ignore
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 6))
    except (ImportError, AttributeError, ValueError, OSError):
        return None
    if not h or not h.startswith("$2"):
        return None
    return f"{user}:{h}"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer(LoopbackServer):
    """A bearer token server (distribution's token auth): GET /token with
    service and scope (Basic credentials optional), POST /token with the OAuth2
    refresh_token grant.  alice (password or refresh token) gets what she asks
    for; anonymous gets pull on ``public/*`` only; a wrong password gets 401.
    Tokens are RS256 JWTs with a ``kid`` the registry finds in its root bundle."""

    def __init__(self, workdir: str):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID
        import datetime as dt

        self._padding, self._hashes = padding, hashes
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trioctr test token")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(workdir, "token-root.pem")
        with open(self.cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
        self.kid = ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        ts = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                user = None
                authz = self.headers.get("Authorization") or ""
                if authz.startswith("Basic "):
                    u_, _, p_ = base64.b64decode(authz[6:]).decode().partition(":")
                    if (u_, p_) != (USER, PASSWORD):
                        ts._log("GET", None, q.get("scope", []), False)
                        return self._reply(401, {"details": "incorrect username or password"})
                    user = u_
                scopes = q.get("scope", [])
                ts._log("GET", user, scopes, True)
                self._reply(200, ts.issue(user, q.get("service", [""])[0], scopes))

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                if form.get("grant_type") != ["refresh_token"] or \
                        form.get("refresh_token") != [REFRESH_TOKEN]:
                    ts._log("POST", None, [], False)
                    return self._reply(401, {"details": "invalid refresh token"})
                scopes = " ".join(form.get("scope", [])).split()
                ts._log("POST", USER, scopes, True)
                doc = ts.issue(USER, form.get("service", [""])[0], scopes)
                self._reply(200, {"access_token": doc["token"], "expires_in": 300,
                                  "refresh_token": REFRESH_TOKEN})

        self._listen(Handler)
        self.realm = f"http://127.0.0.1:{self.port}/token"

    def _log(self, method: str, user: str | None, scopes: list[str], ok: bool) -> None:
        with self.lock:
            self.requests.append({"method": method, "user": user, "scopes": list(scopes),
                                  "ok": ok})

    def issue(self, user: str | None, service: str, scopes: list[str]) -> dict:
        access = []
        for s in scopes:
            for one in s.split(" "):
                parts = one.split(":")
                if len(parts) < 3 or parts[0] != "repository":
                    continue
                name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
                if user is None:
                    actions = [a for a in actions if a == "pull" and name.startswith("public/")]
                access.append({"type": "repository", "name": name, "actions": actions})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing = (_b64url(json.dumps(header).encode()) + "." +
                   _b64url(json.dumps(claims).encode()))
        sig = self.key.sign(signing.encode(), self._padding.PKCS1v15(), self._hashes.SHA256())
        return {"token": signing + "." + _b64url(sig), "expires_in": 300}

