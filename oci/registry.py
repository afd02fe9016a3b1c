"""A registry client (Docker Registry HTTP API V2 / OCI distribution), synchronous.

Stdlib ``http.client`` over blocking sockets: the daemon runs it in worker
threads (``trio.to_thread.run_sync`` or ``actors.images_pull``), and ``abort()``
from any thread shuts every socket down so that a cancelled pull stops at once.

What it does, as Docker's daemon does:

- ``GET /v2/`` ping: finds the scheme and the auth challenge.  TLS is tried
  first; plain HTTP only for *insecure* registries: ``localhost``, 127.0.0.0/8,
  ``::1`` and the ``insecure`` list (``host``, ``host:port`` or a CIDR), with
  TLS verification off for them too (Docker's ``insecure-registries``).
- auth: anonymous, ``Basic`` (``WWW-Authenticate: Basic``) and bearer tokens
  (``WWW-Authenticate: Bearer realm=,service=,scope=``): a token is fetched from
  the realm with ``service`` and ``scope`` (GET with basic credentials, or the
  OAuth2 ``refresh_token`` POST with an identity token) and reused per scope set
  until it expires; a 401 with a cached token fetches a new one once.
- manifests: ``Accept`` for OCI and Docker schema2 manifests and indexes; the
  body is bounded and hashed (a pull by digest is verified).
- blobs: streamed into the content store (``ImageStore.blob_writer``), size and
  digest verified before the blob gets its name; redirects followed (auth is
  dropped when the host changes); a broken transfer is retried with backoff and
  resumed with ``Range: bytes=N-`` (a 200 answer restarts it).
- push: ``HEAD`` existence checks, cross-repository mount, monolithic upload
  (POST then PUT ``?digest=``) for small blobs, chunked upload (PATCH with
  ``Content-Range``, resumed where the registry stands after a cut) for blobs
  over ``chunk_threshold``, retried with backoff; manifest PUT.
- mirrors (for ``docker.io`` only, as Docker): tried in order before the real one.

Errors are ``RegistryError`` (an ``OCIError``) with Docker's wording, e.g.
``manifest unknown: manifest unknown``, ``unauthorized: authentication
required``, ``denied: requested access to the resource is denied``;
``registry_code`` is the registry's error code (``MANIFEST_UNKNOWN``, ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterable

import attrs

from . import manifest as mf
from .digest import sha256_bytes, validate_digest
from .errors import DigestMismatch, InvalidArgument, OCIError

USER_AGENT = "trioctr/0.1 (registry client)"
DEFAULT_TIMEOUT = 60.0
CHUNK = 1 << 16
DOCKER_HUB_HOST = "registry-1.docker.io"
MAX_REDIRECTS = 10
MAX_ERROR_BODY = 64 << 10
#: Blobs bigger than this are pushed in chunks (PATCH) of ``DEFAULT_CHUNK_SIZE``.
DEFAULT_CHUNK_THRESHOLD = 32 << 20
DEFAULT_CHUNK_SIZE = 16 << 20


# --------------------------------------------------------------------------- errors


class RegistryError(OCIError):
    """An error talking to a registry.  ``http_status`` is what the daemon should
    answer with, ``status`` the registry's HTTP status (0 for transport errors),
    ``registry_code`` the first error code of the registry's JSON body."""

    def __init__(self, message: str, *, http_status: int = 500, code: str = "INTERNAL",
                 status: int = 0, registry_code: str = "", errors: Iterable[dict] = ()):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.status = status
        self.registry_code = registry_code
        self.errors = list(errors)


class TransportError(RegistryError):
    """The connection failed (refused, reset, timed out, truncated): retryable."""


class VerificationError(RegistryError):
    """Content did not match its descriptor (digest or size)."""

    def __init__(self, message: str, **kw: Any):
        kw.setdefault("http_status", 400)
        kw.setdefault("code", "INVALID_ARGUMENT")
        super().__init__(message, **kw)


class Aborted(Exception):
    """The operation was cancelled (``RegistryClient.abort()``)."""


# registry error code -> (HTTP status for the daemon, messages.errors.ErrorCode name)
_HTTP_FOR_CODE = {"UNAUTHORIZED": (401, "FAILED_PRECONDITION"),
                  "DENIED": (403, "FAILED_PRECONDITION"),
                  "MANIFEST_UNKNOWN": (404, "NOT_FOUND"), "NAME_UNKNOWN": (404, "NOT_FOUND"),
                  "BLOB_UNKNOWN": (404, "NOT_FOUND"), "TOOMANYREQUESTS": (429, "UNAVAILABLE")}
_DEFAULT_MESSAGES = {"UNAUTHORIZED": "authentication required",
                     "DENIED": "requested access to the resource is denied",
                     "MANIFEST_UNKNOWN": "manifest unknown", "NAME_UNKNOWN":
                     "repository name not known to registry",
                     "BLOB_UNKNOWN": "blob unknown to registry"}


def _code_text(code: str) -> str:
    """errcode.ErrorCode.Error(): ``MANIFEST_UNKNOWN`` -> ``manifest unknown``."""
    return code.replace("_", " ").lower()


def error_from_response(status: int, reason: str, headers: Any, body: bytes) -> RegistryError:
    """Docker's ``HandleErrorResponse``: the OAuth error of a bearer challenge
    first, then the JSON ``errors`` body, then the bare status."""
    errors: list[dict] = []
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for e in doc["errors"]:
            if isinstance(e, dict) and e.get("code"):
                errors.append({"code": str(e.get("code")), "message": str(e.get("message") or
                               _DEFAULT_MESSAGES.get(str(e.get("code")), "")),
                               "detail": e.get("detail")})
    if 400 <= status < 500 and headers is not None:
        for ch in parse_challenges(headers.get_all("WWW-Authenticate") or []):
            if ch.scheme != "bearer":
                continue
            kind = ch.params.get("error")
            code = {"invalid_token": "UNAUTHORIZED", "insufficient_scope": "DENIED"}.get(kind or "")
            if code:
                msg = ch.params.get("error_description") or _DEFAULT_MESSAGES[code]
                errors.insert(0, {"code": code, "message": msg, "detail": None})
                break
    if not errors and status == 401:
        details = doc.get("details") if isinstance(doc, dict) else None
        errors.append({"code": "UNAUTHORIZED", "message": str(details or
                       _DEFAULT_MESSAGES["UNAUTHORIZED"]), "detail": None})
    if errors:
        first = errors[0]
        http_status, code = _HTTP_FOR_CODE.get(first["code"], (500, "INTERNAL"))
        return RegistryError(f"{_code_text(first['code'])}: {first['message']}",
                             http_status=http_status, code=code, status=status,
                             registry_code=first["code"], errors=errors)
    if status == 404:
        return RegistryError(f"not found: {status} {reason}", http_status=404, code="NOT_FOUND",
                             status=status)
    return RegistryError(f"received unexpected HTTP status: {status} {reason}".rstrip(),
                         status=status)


# --------------------------------------------------------------------------- auth


@attrs.define
class AuthConfig:
    """Docker's ``AuthConfig`` (the ``X-Registry-Auth`` JSON)."""
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @classmethod
    def from_dict(cls, d: dict | None) -> "AuthConfig | None":
        if not d:
            return None
        low = {str(k).lower(): v for k, v in d.items()}
        user = str(low.get("username") or "")
        pw = str(low.get("password") or "")
        if not user and low.get("auth"):
            try:
                raw = base64.b64decode(str(low["auth"]) + "=" * (-len(str(low["auth"])) % 4))
                user, _, pw = raw.decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise InvalidArgument("invalid X-Registry-Auth header: bad auth field") from None
        cfg = cls(username=user, password=pw,
                  identity_token=str(low.get("identitytoken") or ""),
                  registry_token=str(low.get("registrytoken") or ""),
                  server_address=str(low.get("serveraddress") or ""))
        if not (cfg.username or cfg.password or cfg.identity_token or cfg.registry_token):
            return None
        return cfg

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def decode_registry_auth(value: str | None) -> dict | None:
    """The ``X-Registry-Auth`` header: base64url (padding optional; standard
    base64 accepted too) of a JSON object ``{"username", "password",
    "serveraddress"}`` or ``{"identitytoken"}``.  Empty -> None.  Unreadable ->
    ``InvalidArgument`` (``invalid X-Registry-Auth header: ...``, HTTP 400)."""
    if not value or not value.strip():
        return None
    v = value.strip()
    v += "=" * (-len(v) % 4)
    try:
        raw = base64.urlsafe_b64decode(v.replace("+", "-").replace("/", "_"))
        doc = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {e}") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
    return doc


def encode_registry_auth(d: dict) -> str:
    """The inverse of ``decode_registry_auth`` (what the docker CLI sends)."""
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode()


@attrs.define
class Challenge:
    scheme: str  # lowercase: "basic", "bearer"
    params: dict[str, str]


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """RFC 7235 ``WWW-Authenticate`` values -> challenges (params lowercased keys)."""
    out: list[Challenge] = []
    for value in values:
        s = value
        i, n = 0, len(s)
        cur: Challenge | None = None
        while i < n:
            while i < n and s[i] in " ,\t":
                i += 1
            j = i
            while j < n and s[j] not in " =,\t":
                j += 1
            token = s[i:j]
            if not token:
                break
            k = j
            while k < n and s[k] in " \t":
                k += 1
            if k < n and s[k] == "=" and cur is not None:
                k += 1
                while k < n and s[k] in " \t":
                    k += 1
                if k < n and s[k] == '"':
                    k += 1
                    buf = []
                    while k < n and s[k] != '"':
                        if s[k] == "\\" and k + 1 < n:
                            k += 1
                        buf.append(s[k])
                        k += 1
                    val = "".join(buf)
                    k += 1
                else:
                    m = k
                    while k < n and s[k] not in ",":
                        k += 1
                    val = s[m:k].strip()
                cur.params[token.lower()] = val
                i = k
            else:
                cur = Challenge(token.lower(), {})
                out.append(cur)
                i = j
    return out


# --------------------------------------------------------------------------- hosts


def _split_host(netloc: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
        if not host:
            host, port = netloc, ""
    return host, int(port) if port.isdigit() else None


def is_insecure(netloc: str, insecure: Iterable[str] = ()) -> bool:
    """Docker's rule: plain HTTP (and unverified TLS) only for localhost,
    127.0.0.0/8 and ::1, and for what ``insecure`` lists (``host``,
    ``host:port`` or a CIDR; no DNS lookups)."""
    host, _ = _split_host(netloc)
    ip = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    if host == "localhost" or (ip is not None and ip.is_loopback):
        return True
    for entry in insecure or ():
        e = entry.strip()
        for pre in ("http://", "https://"):
            if e.startswith(pre):
                e = e[len(pre):]
        e = e.rstrip("/")
        if not e:
            continue
        if e == netloc or e == host:
            return True
        if "/" in e and ip is not None:
            try:
                if ip in ipaddress.ip_network(e, strict=False):
                    return True
            except ValueError:
                pass
    return False


# --------------------------------------------------------------------------- transport


class Response:
    """A response being read.  ``close()`` gives a fully read keep-alive
    connection back to the pool, and closes it otherwise."""

    def __init__(self, pool: "_Pool", key: tuple, conn: http.client.HTTPConnection,
                 resp: http.client.HTTPResponse, url: str):
        self._pool, self._key, self._conn, self._resp = pool, key, conn, resp
        self.url = url
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self._closed = False

    def read(self, n: int = CHUNK) -> bytes:
        try:
            return self._resp.read(n)
        except (OSError, http.client.HTTPException) as e:
            if self._pool.aborted:
                raise Aborted() from None
            raise TransportError(f"{self.url}: {_reason(e)}") from None

    def read_limited(self, limit: int) -> bytes:
        buf = bytearray()
        while True:
            b = self.read(CHUNK)
            if not b:
                break
            buf += b
            if len(buf) > limit:
                raise RegistryError(f"{self.url}: response larger than {limit} bytes")
        return bytes(buf)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        r = self._resp
        if r.isclosed() and not r.will_close and not r.length:
            # read to its very end (length 0, or a complete chunked body): reusable
            self._pool.put(self._key, self._conn)
        else:
            self._pool.discard(self._conn)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "i/o timeout"
    if isinstance(e, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(e, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(e, http.client.RemoteDisconnected):
        return "EOF"
    if isinstance(e, http.client.IncompleteRead):
        return "unexpected EOF"
    if isinstance(e, ssl.SSLError):
        return f"tls: {e.reason or e}"
    if isinstance(e, socket.gaierror):
        return f"dial tcp: lookup: {e.strerror or e}"
    return str(e) or type(e).__name__


class _Pool:
    """Keep-alive connections per (scheme, netloc, verify); thread-safe."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._all: set[http.client.HTTPConnection] = set()
        self.aborted = False

    def get(self, key: tuple) -> http.client.HTTPConnection:
        scheme, netloc, verify = key
        with self._lock:
            if self.aborted:
                raise Aborted()
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
            host, port = _split_host(netloc)
            if scheme == "https":
                ctx = ssl.create_default_context()
                if not verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout, context=ctx, blocksize=CHUNK)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout,
                                                  blocksize=CHUNK)
            self._all.add(conn)
            return conn

    def put(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self.aborted:
                conn.close()
                self._all.discard(conn)
                return
            self._idle.setdefault(key, []).append(conn)

    def drop_idle(self, key: tuple) -> None:
        with self._lock:
            idle = self._idle.pop(key, [])
            for c in idle:
                self._all.discard(c)
        for c in idle:
            c.close()

    def discard(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._all.discard(conn)
        conn.close()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            conns = list(self._all)
        for c in conns:
            sock = c.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            conns = list(self._all)
            self._all.clear()
            self._idle.clear()
        for c in conns:
            c.close()


Body = bytes | Callable[[], BinaryIO] | None


# --------------------------------------------------------------------------- registry


class Registry:
    """One registry endpoint (a host, or a mirror URL) and its auth state."""

    def __init__(self, client: "RegistryClient", netloc: str, *, scheme: str | None = None,
                 insecure: bool = False, auth: AuthConfig | None = None,
                 mirror: bool = False, base_path: str = ""):
        self.client = client
        self.netloc = netloc
        self.insecure = insecure
        self.auth = auth
        self.mirror = mirror
        self.base_path = base_path.rstrip("/")
        self._fixed_scheme = scheme
        self.scheme: str | None = None
        self._challenge: Challenge | None = None
        self._pinged = False
        self._lock = threading.Lock()
        self._tokens: dict[tuple, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"Registry({self.scheme or '?'}://{self.netloc})"

    @property
    def verify(self) -> bool:
        return not self.insecure

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.netloc}{self.base_path}{path}"

    # ------------------------------------------------------------------ ping

    def ping(self) -> None:
        """``GET /v2/``: choose the scheme, learn the auth challenge."""
        with self._lock:
            if self._pinged:
                return
            schemes = [self._fixed_scheme] if self._fixed_scheme else (
                ["https", "http"] if self.insecure else ["https"])
            last: Exception | None = None
            for scheme in schemes:
                url = f"{scheme}://{self.netloc}{self.base_path}/v2/"
                try:
                    resp = self.client._send(scheme, self.netloc, self.verify, "GET",
                                             url, {}, None)
                except TransportError as e:
                    last = e
                    continue
                try:
                    resp.read_limited(MAX_ERROR_BODY)
                finally:
                    resp.close()
                if resp.status not in (200, 401) and scheme != schemes[-1]:
                    last = error_from_response(resp.status, resp.reason, resp.headers, b"")
                    continue
                self.scheme = scheme
                self._set_challenge(resp.headers)
                self._pinged = True
                return
            assert last is not None
            raise last

    def _set_challenge(self, headers: Any) -> bool:
        chs = parse_challenges(headers.get_all("WWW-Authenticate") or [])
        for want in ("bearer", "basic"):
            for ch in chs:
                if ch.scheme == want:
                    changed = self._challenge != ch
                    self._challenge = ch
                    return changed
        return False

    # ------------------------------------------------------------------ auth

    def _authorization(self, scopes: tuple[str, ...], fresh: bool = False) -> str | None:
        ch = self._challenge
        auth = self.auth
        if ch is None:
            return None
        if ch.scheme == "basic":
            if auth and auth.has_basic:
                return auth.basic_header()
            return None
        if ch.scheme == "bearer":
            if auth and auth.registry_token:
                return "Bearer " + auth.registry_token
            return "Bearer " + self._token(ch, scopes, fresh)
        return None

    def _token(self, ch: Challenge, scopes: tuple[str, ...], fresh: bool) -> str:
        key = (ch.params.get("realm"), ch.params.get("service"), tuple(sorted(set(scopes))))
        with self._lock:
            hit = self._tokens.get(key)
            if hit and not fresh and hit[1] > time.monotonic():
                return hit[0]
            token, expires_in = self._fetch_token(ch, key[2])
            self._tokens[key] = (token, time.monotonic() + max(expires_in - 5, 1))
            return token

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        realm = ch.params.get("realm")
        if not realm:
            raise RegistryError("bearer auth challenge without realm", status=401,
                                http_status=401, code="FAILED_PRECONDITION")
        service = ch.params.get("service", "")
        auth = self.auth
        if auth and auth.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": auth.identity_token,
                    "client_id": "trioctr", "access_type": "offline"}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            body = urllib.parse.urlencode(form).encode()
            resp = self.client.fetch("POST", realm, {"Content-Type":
                                     "application/x-www-form-urlencoded"}, body)
        else:
            q = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(q) if q else "")
            headers = {}
            if auth and auth.has_basic:
                headers["Authorization"] = auth.basic_header()
            resp = self.client.fetch("GET", url, headers, None)
        with resp:
            data = resp.read_limited(MAX_ERROR_BODY)
            if resp.status != 200:
                err = error_from_response(resp.status, resp.reason, None, data)
                if resp.status in (401, 403) and not err.errors:
                    err = RegistryError("unauthorized: incorrect username or password",
                                        http_status=401, code="FAILED_PRECONDITION",
                                        status=resp.status, registry_code="UNAUTHORIZED")
                raise err
        try:
            doc = json.loads(data)
            token = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError("unable to decode token response") from None
        if not token:
            raise RegistryError("authorization server did not include a token in the response")
        return str(token), expires_in

    # ------------------------------------------------------------------ requests

    def request(self, method: str, path: str, *, scopes: Iterable[str] = (),
                headers: dict | None = None, body: Body = None,
                redirects: bool = True) -> Response:
        """A request to this registry with auth; ``path`` is ``/v2/...`` or an
        absolute URL on this registry (an upload location).  Returns any status
        (the caller checks); 401s are retried once with fresh credentials."""
        self.ping()
        scopes = tuple(scopes)
        url = path if "://" in path else self.url(path)
        # credentials go to this registry only (not to an upload location elsewhere)
        ours = urllib.parse.urlsplit(url).netloc == self.netloc
        sent_auth = None
        for attempt in range(3):
            hdrs = dict(headers or {})
            authz = self._authorization(scopes, fresh=attempt > 0 and sent_auth is not None) \
                if ours else None
            if authz:
                hdrs["Authorization"] = authz
            sent_auth = authz
            resp = self._request_redirecting(method, url, hdrs, body, redirects)
            if resp.status != 401 or attempt == 2:
                return resp
            changed = self._set_challenge(resp.headers)
            if self._challenge is None:
                return resp
            if authz is not None and not changed:
                if self._challenge.scheme != "bearer" or attempt > 0:
                    return resp
            if authz is None and not changed:
                return resp
            resp.read_limited(MAX_ERROR_BODY)
            resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_redirecting(self, method: str, url: str, headers: dict, body: Body,
                             redirects: bool) -> Response:
        for _ in range(MAX_REDIRECTS + 1):
            u = urllib.parse.urlsplit(url)
            same = u.netloc == self.netloc
            verify = self.verify if same else not is_insecure(u.netloc, self.client.insecure)
            resp = self.client._send(u.scheme, u.netloc, verify, method, url, headers, body)
            if not redirects or resp.status not in (301, 302, 303, 307, 308):
                return resp
            loc = resp.headers.get("Location")
            resp.read_limited(MAX_ERROR_BODY)
            resp.close()
            if not loc:
                raise RegistryError(f"{url}: redirect without Location")
            new = urllib.parse.urljoin(url, loc)
            if urllib.parse.urlsplit(new).netloc != u.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if resp.status == 303:
                method, body = "GET", None
            url = new
        raise RegistryError(f"{url}: stopped after {MAX_REDIRECTS} redirects")


def _check(resp: Response, ok: Iterable[int]) -> None:
    if resp.status in ok:
        return
    try:
        body = resp.read_limited(MAX_ERROR_BODY)
    except RegistryError:
        body = b""
    resp.close()
    raise error_from_response(resp.status, resp.reason, resp.headers, body)


# --------------------------------------------------------------------------- repository


class Repository:
    """A repository (``path``, e.g. ``library/busybox``) on a ``Registry``."""

    def __init__(self, registry: Registry, path: str, actions: Iterable[str] = ("pull",)):
        self.registry = registry
        self.path = path
        self.actions = tuple(actions)

    @property
    def scope(self) -> str:
        return f"repository:{self.path}:{','.join(self.actions)}"

    def _req(self, method: str, path: str, *, extra_scopes: Iterable[str] = (),
             **kw: Any) -> Response:
        return self.registry.request(method, path, scopes=(self.scope, *extra_scopes), **kw)

    # ------------------------------------------------------------------ manifests

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """GET a manifest or index by tag or digest: ``(body, media_type, digest)``.
        A digest reference is verified; schema1 and unknown types are refused."""
        resp = self._req("GET", f"/v2/{self.path}/manifests/{reference}",
                         headers={"Accept": mf.ACCEPT})
        _check(resp, (200,))
        with resp:
            body = resp.read_limited(mf.MAX_MANIFEST_SIZE)
        digest = sha256_bytes(body)
        if reference.startswith("sha256:") and digest != reference:
            raise VerificationError(f"manifest verification failed for digest {reference}")
        mt = mf.detect_media_type(body, resp.headers.get("Content-Type"))
        if mt not in mf.MANIFEST_TYPES and mt not in mf.INDEX_TYPES:
            raise mf.unsupported_manifest(mt)
        return body, mt, digest

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        resp = self._req("PUT", f"/v2/{self.path}/manifests/{reference}",
                         headers={"Content-Type": media_type,
                                  "Content-Length": str(len(body))}, body=body)
        _check(resp, (200, 201, 202))
        with resp:
            resp.read_limited(MAX_ERROR_BODY)
        got = resp.headers.get("Docker-Content-Digest")
        digest = sha256_bytes(body)
        if got and got != digest:
            raise VerificationError(f"registry stored the manifest as {got}, expected {digest}")
        return digest

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, digest: str) -> int | None:
        """HEAD a blob: its size, or None when the registry does not have it."""
        resp = self._req("HEAD", f"/v2/{self.path}/blobs/{digest}")
        with resp:
            if resp.status == 404:
                return None
            _check(resp, (200,))
            try:
                return int(resp.headers.get("Content-Length") or 0)
            except ValueError:
                return 0

    def fetch_blob(self, desc: mf.Descriptor, writer: Any,
                   progress: Callable[[int, int], None] | None = None,
                   on_retry: Callable[[int], None] | None = None) -> str:
        """Download a blob into ``writer`` (``ImageStore.blob_writer``) and commit
        it: retried with backoff and resumed with ``Range`` on transport errors
        and 5xx answers, verified by size and digest (``VerificationError``
        otherwise, and the caller's writer leaves nothing in the store).  A
        resumed download that fails verification is fetched once more whole.
        ``on_retry(n)`` hears each second of a backoff: n seconds to go."""
        client = self.registry.client
        attempt = 0
        resumed = restarted = False
        while True:
            client.check_aborted()
            headers = {}
            if writer.offset:
                headers["Range"] = f"bytes={writer.offset}-"
            try:
                resp = self._req("GET", f"/v2/{self.path}/blobs/{desc.digest}",
                                 headers=headers)
                if resp.status == 206 and writer.offset:
                    start = _content_range_start(resp.headers.get("Content-Range"))
                    if start != writer.offset:
                        resp.close()
                        writer.reset()
                        raise TransportError(f"{resp.url}: bad Content-Range on resume")
                    resumed = True
                elif resp.status == 200:
                    if writer.offset:
                        writer.reset()
                else:
                    _check(resp, (200,))
                with resp:
                    while True:
                        b = resp.read(CHUNK)
                        if not b:
                            break
                        try:
                            writer.write(b)
                        except DigestMismatch:
                            raise VerificationError(
                                f"filesystem layer verification failed for digest "
                                f"{desc.digest}: more than {desc.size} bytes") from None
                        if progress:
                            progress(writer.offset, desc.size)
                if writer.offset < desc.size:
                    raise TransportError(f"{resp.url}: unexpected EOF after {writer.offset} "
                                         f"of {desc.size} bytes")
            except TransportError:
                attempt += 1
                if attempt > client.retries:
                    raise
                client.backoff(client.retry_delay * (2 ** (attempt - 1)), on_retry)
                continue
            except VerificationError:
                raise
            except RegistryError as e:
                if e.status in (408, 429, 500, 502, 503, 504) and attempt < client.retries:
                    attempt += 1
                    client.backoff(client.retry_delay * (2 ** (attempt - 1)), on_retry)
                    continue
                raise
            if writer.current_digest() != desc.digest:
                if resumed and not restarted:
                    restarted, resumed = True, False
                    writer.reset()
                    continue
                raise VerificationError(
                    f"filesystem layer verification failed for digest {desc.digest}")
            return writer.commit()

    def open_blob(self, digest: str) -> Response:
        """A streamed GET of a blob (no verification): for small reads."""
        resp = self._req("GET", f"/v2/{self.path}/blobs/{digest}")
        _check(resp, (200,))
        return resp

    def mount_blob(self, digest: str, from_path: str) -> tuple[bool, str | None]:
        """Cross-repository mount: ``(True, None)`` when mounted, else ``(False,
        upload location)`` (the registry opened an upload instead)."""
        q = urllib.parse.urlencode({"mount": digest, "from": from_path})
        resp = self._req("POST", f"/v2/{self.path}/blobs/uploads/?{q}",
                         extra_scopes=(f"repository:{from_path}:pull",),
                         headers={"Content-Length": "0"}, body=b"")
        with resp:
            if resp.status == 201:
                resp.read_limited(MAX_ERROR_BODY)
                return True, None
            if resp.status == 202:
                resp.read_limited(MAX_ERROR_BODY)
                return False, resp.headers.get("Location")
            _check(resp, (201, 202))
        return False, None  # pragma: no cover

    def start_upload(self) -> str:
        resp = self._req("POST", f"/v2/{self.path}/blobs/uploads/",
                         headers={"Content-Length": "0"}, body=b"")
        _check(resp, (202,))
        with resp:
            resp.read_limited(MAX_ERROR_BODY)
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError("registry did not give an upload location")
        return loc

    def upload_blob(self, digest: str, size: int, opener: Callable[[], BinaryIO],
                    progress: Callable[[int, int], None] | None = None,
                    location: str | None = None,
                    on_retry: Callable[[int], None] | None = None) -> None:
        """Upload a blob the registry does not have.  ``opener()`` gives a fresh,
        seekable reader of the blob; ``location`` is an upload already opened
        (by a refused mount), else one is opened (POST).

        Up to ``client.chunk_threshold`` bytes: monolithic (one PUT
        ``?digest=`` with the whole blob).  Bigger: chunked, as the distribution
        spec's PATCH with ``Content-Range: <start>-<end>`` of at most
        ``client.chunk_size`` bytes each, then an empty PUT ``?digest=``; a
        chunk cut by the network is resumed where the registry says the upload
        stands (``GET <location>`` -> ``Range: 0-<last byte>``), or the upload
        starts over when the registry forgot it; a registry that refuses PATCH
        (405, 501, ``UNSUPPORTED``) gets the blob whole.  Transport errors and
        5xx answers are retried with backoff (``client.retries``; ``on_retry``
        as for ``fetch_blob``)."""
        validate_digest(digest)
        client = self.registry.client
        attempt = 0
        loc = location
        chunked = size > client.chunk_threshold
        while True:
            client.check_aborted()
            try:
                if loc is None:
                    loc = self.start_upload()
                if chunked:
                    self._upload_chunked(digest, size, opener, progress, loc, on_retry)
                else:
                    self._upload_monolithic(digest, size, opener, progress, loc)
                return
            except TransportError:
                if attempt >= client.retries:
                    raise
            except RegistryError as e:
                if chunked and (e.status in (405, 501) or e.registry_code == "UNSUPPORTED"):
                    chunked = False  # a registry without PATCH uploads: whole, then
                    loc = None
                    continue
                # a 5xx, or an upload the registry forgot or no longer trusts
                # (its state token went stale with a lost answer): start over
                if (e.status not in (408, 429, 500, 502, 503, 504) and e.registry_code not in
                        ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID")) or \
                        attempt >= client.retries:
                    raise
            attempt += 1
            client.backoff(client.retry_delay * (2 ** (attempt - 1)), on_retry)
            loc = None

    def _upload_url(self, loc: str, query: dict | None = None) -> str:
        url = urllib.parse.urljoin(self.registry.url("/v2/"), loc)
        if query:
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            url += sep + urllib.parse.urlencode(query)
        return url

    def _upload_monolithic(self, digest: str, size: int, opener: Callable[[], BinaryIO],
                           progress: Callable[[int, int], None] | None, loc: str) -> None:
        def body() -> BinaryIO:
            return _ProgressFile(opener(), size, progress)  # type: ignore[return-value]

        resp = self._req("PUT", self._upload_url(loc, {"digest": digest}),
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(size)}, body=body)
        _check(resp, (201, 204))
        with resp:
            resp.read_limited(MAX_ERROR_BODY)

    def upload_status(self, loc: str) -> tuple[int, str] | None:
        """Where an upload stands: ``(bytes received, location)``, or None when
        the registry does not know it (any more)."""
        resp = self._req("GET", self._upload_url(loc))
        with resp:
            resp.read_limited(MAX_ERROR_BODY)
            if resp.status != 204:
                return None
        end = _range_end(resp.headers.get("Range"))
        return (0 if end is None else end), resp.headers.get("Location") or loc

    def _upload_chunked(self, digest: str, size: int, opener: Callable[[], BinaryIO],
                        progress: Callable[[int, int], None] | None, loc: str,
                        on_retry: Callable[[int], None] | None) -> None:
        client = self.registry.client
        chunk = max(1, client.chunk_size)
        offset = 0
        failures = 0
        with opener() as f:
            while offset < size:
                n = min(chunk, size - offset)
                start = offset

                def body(start: int = start, n: int = n) -> BinaryIO:
                    f.seek(start)
                    return _Window(f, n, start, size, progress)  # type: ignore[return-value]

                try:
                    resp = self._req("PATCH", self._upload_url(loc), headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + n - 1}",
                        "Content-Length": str(n)}, body=body)
                    if resp.status == 416:  # not where the registry stands: ask it
                        resp.read_limited(MAX_ERROR_BODY)
                        resp.close()
                        raise TransportError(f"{resp.url}: chunk at {start} refused (416)")
                    _check(resp, (202,))
                    with resp:
                        resp.read_limited(MAX_ERROR_BODY)
                    loc = resp.headers.get("Location") or loc
                    end = _range_end(resp.headers.get("Range"))
                    offset = start + n if end is None else end
                    if offset != start + n:
                        raise TransportError(f"{resp.url}: registry has {offset} bytes "
                                             f"after a chunk up to {start + n}")
                except TransportError:
                    failures += 1
                    if failures > client.retries:
                        raise
                    client.backoff(client.retry_delay * (2 ** (failures - 1)), on_retry)
                    st = self.upload_status(loc)
                    if st is None:
                        raise  # the upload is gone: upload_blob starts a new one
                    offset, loc = st
                    if offset > size:
                        raise
        resp = self._req("PUT", self._upload_url(loc, {"digest": digest}),
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": "0"}, body=b"")
        _check(resp, (201, 204))
        with resp:
            resp.read_limited(MAX_ERROR_BODY)


def _range_end(v: str | None) -> int | None:
    """An upload's ``Range: 0-<last byte>`` -> bytes received.  ``0-0`` is what
    the registry says for an empty upload (and for one byte: a chunk is never
    that small, and a wrong guess is refused with 416 and asked again)."""
    if not v:
        return None
    v = v.strip()
    if v.startswith("bytes="):
        v = v[len("bytes="):]
    try:
        first, _, last = v.partition("-")
        if int(first) != 0:
            return None
        end = int(last)
    except ValueError:
        return None
    return end + 1 if end > 0 else 0


def _content_range_start(v: str | None) -> int | None:
    if not v:
        return None
    try:
        unit, _, rng = v.strip().partition(" ")
        if unit != "bytes":
            return None
        return int(rng.split("-", 1)[0])
    except ValueError:
        return None


class _ProgressFile:
    def __init__(self, f: BinaryIO, total: int, progress: Callable[[int, int], None] | None):
        self._f, self._total, self._progress, self._n = f, total, progress, 0

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        if b:
            self._n += len(b)
            if self._progress:
                self._progress(self._n, self._total)
        return b

    def close(self) -> None:
        self._f.close()


class _Window:
    """``n`` bytes of ``f`` from where it stands (one chunk of an upload);
    ``close()`` leaves ``f`` open for the next chunk."""

    def __init__(self, f: BinaryIO, n: int, start: int, total: int,
                 progress: Callable[[int, int], None] | None):
        self._f, self._left, self._done, self._total = f, n, start, total
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        b = self._f.read(want)
        self._left -= len(b)
        self._done += len(b)
        if b and self._progress:
            self._progress(self._done, self._total)
        return b

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- client


class RegistryClient:
    """Registries for one operation (a pull or a push): connections, pings and
    tokens are shared between its requests.  Thread-safe; ``abort()`` from any
    thread makes every request in flight (and later) raise ``Aborted``.

    ``auth``: an ``AuthConfig`` or the ``X-Registry-Auth`` dict, used for every
    registry of the operation (as Docker's daemon does).  ``insecure``: Docker's
    ``insecure-registries``.  ``mirrors``: ``registry-mirrors`` URLs (for
    ``docker.io`` only)."""

    def __init__(self, *, auth: AuthConfig | dict | None = None,
                 insecure: Iterable[str] = (), mirrors: Iterable[str] = (),
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 5,
                 retry_delay: float = 1.0, user_agent: str = USER_AGENT,
                 chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
                 chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.auth = auth if isinstance(auth, AuthConfig) or auth is None else \
            AuthConfig.from_dict(auth)
        self.insecure = list(insecure or ())
        self.mirrors = [m.rstrip("/") for m in mirrors or ()]
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.user_agent = user_agent
        self.chunk_threshold = chunk_threshold
        self.chunk_size = chunk_size
        self._pool = _Pool(timeout)
        self._abort = threading.Event()
        self._registries: dict[tuple, Registry] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def abort(self) -> None:
        self._abort.set()
        self._pool.abort()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def check_aborted(self) -> None:
        if self._abort.is_set():
            raise Aborted()

    def sleep(self, seconds: float) -> None:
        if self._abort.wait(seconds):
            raise Aborted()

    def backoff(self, seconds: float, notify: Callable[[int], None] | None = None) -> None:
        """Sleep before a retry; ``notify(n)`` each second with the seconds left
        (rounded up), for Docker's ``Retrying in N seconds``."""
        if notify is None:
            self.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            notify(max(1, int(-(-left // 1))))
            self.sleep(min(1.0, left))

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def registry(self, netloc: str, *, mirror_url: str | None = None) -> Registry:
        key = (netloc, mirror_url)
        with self._lock:
            r = self._registries.get(key)
            if r is None:
                if mirror_url:
                    u = urllib.parse.urlsplit(mirror_url if "://" in mirror_url
                                              else "https://" + mirror_url)
                    r = Registry(self, u.netloc, scheme=u.scheme or "https",
                                 insecure=is_insecure(u.netloc, self.insecure),
                                 auth=self.auth, mirror=True, base_path=u.path)
                else:
                    r = Registry(self, netloc, insecure=is_insecure(netloc, self.insecure),
                                 auth=self.auth)
                self._registries[key] = r
            return r

    def endpoints(self, domain: str) -> list[Registry]:
        """Where to look for a repository of ``domain``: mirrors first for
        ``docker.io``, then the registry itself."""
        if domain in ("docker.io", "index.docker.io", DOCKER_HUB_HOST):
            return [self.registry(DOCKER_HUB_HOST, mirror_url=m) for m in self.mirrors] + \
                [self.registry(DOCKER_HUB_HOST)]
        return [self.registry(domain)]

    def repository(self, domain: str, path: str, actions: Iterable[str] = ("pull",),
                   registry: Registry | None = None) -> Repository:
        return Repository(registry or self.endpoints(domain)[-1], path, actions)

    # ------------------------------------------------------------------ raw HTTP

    def fetch(self, method: str, url: str, headers: dict, body: Body) -> Response:
        """A plain request (token endpoints), following redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            u = urllib.parse.urlsplit(url)
            resp = self._send(u.scheme, u.netloc, not is_insecure(u.netloc, self.insecure),
                              method, url, headers, body)
            if resp.status not in (301, 302, 303, 307, 308) or not resp.headers.get("Location"):
                return resp
            resp.read_limited(MAX_ERROR_BODY)
            resp.close()
            new = urllib.parse.urljoin(url, resp.headers["Location"])
            if urllib.parse.urlsplit(new).netloc != u.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = new
        raise RegistryError(f"{url}: stopped after {MAX_REDIRECTS} redirects")

    def _send(self, scheme: str, netloc: str, verify: bool, method: str, url: str,
              headers: dict, body: Body) -> Response:
        if scheme not in ("http", "https"):
            raise RegistryError(f"unsupported URL scheme in {url}")
        self.check_aborted()
        key = (scheme, netloc, verify)
        u = urllib.parse.urlsplit(url)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        hdrs = {"User-Agent": self.user_agent, **headers}
        for attempt in range(2):
            conn = self._pool.get(key)
            reused = conn.sock is not None
            f = None
            try:
                payload: Any = body
                if callable(body):
                    f = payload = body()
                conn.request(method, target, body=payload, headers=hdrs)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self._pool.discard(conn)
                if self._pool.aborted:
                    raise Aborted() from None
                # a keep-alive connection the server closed meanwhile: once more,
                # on a new connection (the other idle ones are suspect too)
                if reused and attempt == 0 and isinstance(
                        e, (http.client.RemoteDisconnected, BrokenPipeError,
                            ConnectionResetError)):
                    self._pool.drop_idle(key)
                    continue
                verb = method.capitalize()
                raise TransportError(f'{verb} "{url}": {_reason(e)}') from None
            finally:
                if f is not None:
                    f.close()
            return Response(self._pool, key, conn, resp, url)
        raise AssertionError("unreachable")  # pragma: no cover


def sha256_stream(f: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    return "sha256:" + h.hexdigest(), n
