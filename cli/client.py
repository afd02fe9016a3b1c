"""A minimal HTTP/1.1 client for the Docker Engine API over a Unix socket.

Why not http.client: importing it (email, ssl via certifi paths, urllib) costs
about 20 ms, more than everything else ``trioctr ps`` does.  The API needs
little of HTTP: one request per connection, Content-Length or chunked bodies
in both directions, and the 101 Switching Protocols upgrade that attach and
exec use to turn the connection into a raw byte stream.
"""

import _socket

from cli import API_VERSION

DEFAULT_HOST = "unix:///run/trioctr/trioctr.sock"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class DaemonUnavailable(Exception):
    """No daemon listening at the host; the message is the whole user-facing line."""

    def __init__(self, host, reason=None):
        self.host = host
        self.reason = reason
        if isinstance(reason, PermissionError):
            msg = ("permission denied while trying to connect to the trioctr daemon socket at %s"
                   % host)
        else:
            msg = "Cannot connect to the trioctr daemon at %s. Is the trioctr daemon running?" % host
        super().__init__(msg)


class ConnectionLost(Exception):
    pass


class HostError(Exception):
    pass


class APIError(Exception):
    """An error answer from the daemon (status >= 400)."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        super().__init__("Error response from daemon: " + message)

    @property
    def not_found(self):
        return self.status == 404


def select_host(flag_hosts=None, environ=None):
    """-H/--host, else $TRIOCTR_HOST, else $DOCKER_HOST if unix://, else the default."""
    if flag_hosts:
        return flag_hosts[-1]
    if environ is None:
        import os
        environ = os.environ
    h = environ.get("TRIOCTR_HOST")
    if h:
        return h
    h = environ.get("DOCKER_HOST", "")
    if h.startswith("unix://"):
        return h
    return DEFAULT_HOST


def parse_host(host):
    """-> (family, address).  unix:///path, tcp://host:port, http://host:port."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path:
            raise HostError("invalid host: %s" % host)
        return _socket.AF_UNIX, path
    if host.startswith("/"):
        return _socket.AF_UNIX, host
    for prefix in ("tcp://", "http://"):
        if host.startswith(prefix):
            rest = host[len(prefix):].rstrip("/")
            if rest.startswith("["):
                h, _, port = rest[1:].partition("]")
                port = port.lstrip(":")
            else:
                h, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
            try:
                port = int(port or 2375)
            except ValueError:
                raise HostError("invalid host: %s" % host) from None
            return _socket.AF_INET, (h or "127.0.0.1", port)
    raise HostError("invalid host: %s (trioctr supports unix:// and tcp:// hosts)" % host)


def quote(s):
    out = []
    for b in str(s).encode("utf-8"):
        if b in _UNRESERVED:
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def urlencode(query):
    """query: dict or list of pairs; None values are skipped, lists repeat the key."""
    if not query:
        return ""
    items = query.items() if isinstance(query, dict) else query
    parts = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            for x in v:
                parts.append("%s=%s" % (quote(k), quote(x)))
        else:
            if v is True:
                v = "1"
            elif v is False:
                v = "0"
            parts.append("%s=%s" % (quote(k), quote(v)))
    return "&".join(parts)


class Response:
    def __init__(self, sock, status, reason, headers, buf, method, url):
        self.sock = sock
        self.status = status
        self.reason = reason
        self.headers = headers
        self._buf = buf
        self.method = method
        self.url = url
        te = headers.get("transfer-encoding", "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._mode, self._left = "length", 0
        elif "chunked" in te:
            self._mode, self._left = "chunked", 0
        elif "content-length" in headers:
            self._mode, self._left = "length", int(headers["content-length"])
        else:
            self._mode, self._left = "eof", 0
        self._done = False

    # --- raw reading -------------------------------------------------------

    def _recv(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        return data

    def _fill(self):
        data = self._recv()
        if data:
            self._buf += data
        return bool(data)

    def _readline(self):
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            if not self._fill():
                line = bytes(self._buf)
                self._buf.clear()
                return line

    def iter_chunks(self):
        """Yield the body as it arrives (decoded from chunked encoding)."""
        if self._done:
            return
        mode = self._mode
        if mode == "length":
            left = self._left
            while left > 0:
                if not self._buf and not self._fill():
                    self._done = True
                    raise ConnectionLost("unexpected EOF")  # a body cut short (the daemon died)
                piece = bytes(self._buf[:left])
                del self._buf[:len(piece)]
                left -= len(piece)
                yield piece
        elif mode == "eof":
            if self._buf:
                piece = bytes(self._buf)
                self._buf.clear()
                yield piece
            while True:
                data = self._recv()
                if not data:
                    break
                yield data
        else:
            while True:
                line = self._readline()
                if not line:
                    # the connection ended without the last chunk: the daemon
                    # died or dropped us mid-answer (Go's "unexpected EOF")
                    self._done = True
                    raise ConnectionLost("unexpected EOF")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers
                    while True:
                        t = self._readline()
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                left = size
                while left > 0:
                    if not self._buf and not self._fill():
                        self._done = True
                        raise ConnectionLost("unexpected EOF")
                    piece = bytes(self._buf[:left])
                    del self._buf[:len(piece)]
                    left -= len(piece)
                    yield piece
                self._readline()  # CRLF after the chunk
        self._done = True

    def read(self):
        return b"".join(self.iter_chunks())

    def json(self):
        import json
        data = self.read()
        self.close()
        if not data.strip():
            return None
        return json.loads(data)

    def iter_lines(self):
        buf = b""
        for chunk in self.iter_chunks():
            buf += chunk
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    break
                line, buf = buf[:i], buf[i + 1:]
                if line.strip():
                    yield line
        if buf.strip():
            yield buf

    def iter_json(self):
        """Decode a stream of JSON values (newline separated or concatenated)."""
        import json
        dec = json.JSONDecoder()
        buf = ""
        pending = b""
        for chunk in self.iter_chunks():
            pending += chunk
            try:
                text = pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as e:
                text = pending[:e.start].decode("utf-8")
                pending = pending[e.start:]
            buf += text
            while True:
                s = buf.lstrip()
                if not s:
                    buf = ""
                    break
                try:
                    obj, end = dec.raw_decode(s)
                except ValueError:
                    buf = s
                    break
                yield obj
                buf = s[end:]
        s = buf.strip()
        if s:
            yield json.loads(s)

    def leftover(self):
        """Bytes read past the headers (the start of a hijacked stream)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _error_message(resp, body):
    text = body.decode("utf-8", "replace")
    ctype = resp.headers.get("content-type", "")
    if text.strip():
        if "json" in ctype or text.lstrip().startswith("{"):
            try:
                import json
                obj = json.loads(text)
                if isinstance(obj, dict) and "message" in obj:
                    return str(obj["message"])
            except ValueError:
                pass
        return text.strip()
    return ("request returned %s for API route and version %s, check if the server "
            "supports the requested API version" % (resp.reason or resp.status, resp.url))


class Client:
    def __init__(self, host):
        self.host = host
        self.family, self.address = parse_host(host)

    def connect(self):
        s = _socket.socket(self.family, _socket.SOCK_STREAM)
        try:
            s.connect(self.address)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError,
                NotADirectoryError, ConnectionResetError, TimeoutError) as e:
            s.close()
            raise DaemonUnavailable(self.host, e) from None
        except OSError as e:
            s.close()
            raise DaemonUnavailable(self.host, e) from None
        return s

    def _url(self, path, query):
        url = "/v%s%s" % (API_VERSION, path)
        q = urlencode(query)
        return url + "?" + q if q else url

    def send(self, method, path, query=None, body=None, headers=None, content_type=None):
        """Send one request; returns the Response with headers read (body unread)."""
        url = self._url(path, query)
        sock = self.connect()
        lines = ["%s %s HTTP/1.1" % (method, url), "Host: trioctr",
                 "User-Agent: trioctr-cli"]
        hdrs = dict(headers or {})
        chunked_iter = None
        if body is None:
            payload = b""
            if method in ("POST", "PUT"):
                hdrs.setdefault("Content-Length", "0")
        elif isinstance(body, (bytes, bytearray)):
            payload = bytes(body)
            hdrs["Content-Length"] = str(len(payload))
        else:
            payload = b""
            chunked_iter = body
            hdrs["Transfer-Encoding"] = "chunked"
        if content_type:
            hdrs["Content-Type"] = content_type
        for k, v in hdrs.items():
            lines.append("%s: %s" % (k, v))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            sock.sendall(head + payload)
            if chunked_iter is not None:
                for piece in chunked_iter:
                    if piece:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # the daemon may answer (an error) before reading the whole body
            pass
        except OSError as e:
            sock.close()
            raise ConnectionLost("error during connect: %s %s: %s" % (method, url, e)) from None
        return sock, method, url

    def response(self, sent, timeout=None):
        """Read the response head of a request sent with send().  With a
        timeout, return None if nothing arrived within it (try again later)."""
        sock, method, url = sent
        if timeout is not None:
            import select
            try:
                ready, _, _ = select.select([sock], [], [], timeout)
            except (OSError, ValueError):
                ready = [sock]
            if not ready:
                return None
        buf = bytearray()
        try:
            while True:
                i = buf.find(b"\r\n\r\n")
                j = buf.find(b"\n\n")
                if i >= 0 or j >= 0:
                    end = i + 4 if i >= 0 and (j < 0 or i < j) else j + 2
                    break
                data = sock.recv(65536)
                if not data:
                    raise ConnectionLost("error during connect: %s %s: EOF" % (method, url))
                buf += data
        except OSError as e:
            sock.close()
            raise ConnectionLost("error during connect: %s %s: %s" % (method, url, e)) from None
        head = bytes(buf[:end]).decode("latin-1")
        del buf[:end]
        lines = head.replace("\r\n", "\n").split("\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            sock.close()
            raise ConnectionLost("malformed HTTP response %r from %s" % (lines[0], self.host)) from None
        reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        return Response(sock, status, reason, headers, buf, method, url)

    def request(self, method, path, query=None, body=None, headers=None, content_type=None):
        """Send a request and return its Response; raise APIError for status >= 400."""
        resp = self.response(self.send(method, path, query, body, headers, content_type))
        if resp.status >= 400:
            body = resp.read()
            resp.close()
            raise APIError(resp.status, _error_message(resp, body))
        return resp

    def json(self, method, path, query=None, body=None):
        data = None
        ctype = None
        if body is not None:
            import json
            data = json.dumps(body).encode()
            ctype = "application/json"
        return self.request(method, path, query, data, content_type=ctype).json()

    def get(self, path, query=None):
        return self.json("GET", path, query)

    def post(self, path, query=None, body=None):
        return self.json("POST", path, query, body)

    def delete(self, path, query=None):
        return self.json("DELETE", path, query)

    def hijack(self, path, query=None, body=None):
        """POST with Connection: Upgrade; the returned Response's body is the stream."""
        data = None
        ctype = "text/plain"
        if body is not None:
            import json
            data = json.dumps(body).encode()
            ctype = "application/json"
        resp = self.request("POST", path, query, data,
                            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                            content_type=ctype)
        if resp.status == 101 or (resp._mode == "length" and resp._left == 0):
            resp._mode = "eof"  # the rest of the connection is the raw stream
        return resp
