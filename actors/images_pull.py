"""Pull and push from trio: Docker's JSON progress messages as async iterators.

The work itself is ``oci.distribution`` (synchronous, thread-parallel layers).
Here it runs in one worker thread per operation, owned by the async generator:
messages cross to trio through a bounded memory channel (a slow API client
slows the pull down instead of piling messages up), and leaving the generator
early (``aclose()``, cancellation, the API client went away) aborts the
registry client, whose sockets are shut down at once, and waits for the thread:
no thread outlives its generator, and a failed or abandoned pull leaves the
store as it was.

For the daemon (``POST /images/create?fromImage=`` and ``POST
/images/{name}/push``)::

    auth = images_pull.registry_auth(req.headers.get("x-registry-auth"))  # 400 if bad
    ref = images_pull.pull_reference(from_image, tag)  # "busybox" + "latest" -> "busybox:latest"
    chunks = await images_pull.start(images_pull.pull(
        daemon.images, ref, platform=req.q("platform") or None, auth=auth,
        insecure=config.insecure_registries, mirrors=config.registry_mirrors))
    return StreamResponse(chunks)   # an error before the first message raised above

``start`` waits for the first message: an error there raises its ``OCIError``
(with Docker's ``http_status``: 404 ``manifest for busybox:nope not found:
manifest unknown: manifest unknown``, 401, 500, ...) so the handler answers
a plain JSON error as dockerd does; later errors are the stream's last line,
``{"errorDetail": {"message": m}, "error": m}``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from typing import Any, AsyncIterator, Callable, Iterable

import trio

from oci import distribution
from oci.errors import OCIError
from oci.registry import Aborted, RegistryClient, decode_registry_auth

__all__ = ["pull", "push", "login", "start", "registry_auth", "pull_reference", "ErrorMessage"]

CHANNEL_SIZE = 64


class ErrorMessage(dict):
    """The stream's error line, ``{"errorDetail": {"message": m}, "error": m}``
    (a plain dict for ``json.dumps``), carrying the exception and its HTTP status."""

    def __init__(self, exc: BaseException):
        m = str(exc) or type(exc).__name__
        super().__init__(errorDetail={"message": m}, error=m)
        self.exception = exc
        status = getattr(exc, "http_status", None)
        self.http_status = status if isinstance(status, int) else 500


def registry_auth(header: str | None) -> dict | None:
    """Decode ``X-Registry-Auth`` (base64url JSON ``{"username", "password",
    "serveraddress"}`` or ``{"identitytoken"}``); None when absent.  Raises
    ``InvalidArgument`` (HTTP 400) when unreadable."""
    return decode_registry_auth(header)


def pull_reference(from_image: str, tag: str | None = None) -> str:
    """``fromImage`` + ``tag`` as dockerd combines them: the tag may be a digest;
    a name without tag gets ``latest``."""
    from oci.digest import is_digest
    from oci.reference import parse_normalized
    ref = parse_normalized(from_image)
    if tag:
        if is_digest(tag):
            ref = ref.trim().with_digest(tag)
        else:
            ref = ref.with_tag(tag)
    return ref.with_default_tag().string()


async def _run(work: Callable[[Callable[[dict], None], RegistryClient], Any],
               client: RegistryClient) -> AsyncIterator[dict]:
    """Run ``work(emit, client)`` in a worker thread; yield what it emits."""
    send, recv = trio.open_memory_channel(CHANNEL_SIZE)
    token = trio.lowlevel.current_trio_token()
    done = threading.Event()
    failure: list[BaseException] = []

    def emit(msg: dict) -> None:
        if client.aborted:
            raise Aborted()
        try:
            trio.from_thread.run(send.send, msg, trio_token=token)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError,
                trio.Cancelled):
            client.abort()
            raise Aborted() from None

    def worker() -> None:
        try:
            work(emit, client)
        except Aborted:
            pass
        except BaseException as e:  # handed to the generator, raised or reported there
            failure.append(e)
        finally:
            client.close()
            done.set()
            try:
                trio.from_thread.run_sync(send.close, trio_token=token)
            except trio.RunFinishedError:
                pass

    thread = threading.Thread(target=worker, name="trioctr-registry", daemon=True)
    thread.start()
    try:
        async with recv:
            async for msg in recv:
                yield msg
        if failure:
            e = failure[0]
            if isinstance(e, (OCIError, OSError)):
                yield ErrorMessage(e)
            else:
                raise e
    finally:
        if not done.is_set():
            client.abort()
        recv.close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)


def _client(auth: dict | None, insecure: Iterable[str], mirrors: Iterable[str],
            options: dict | None) -> RegistryClient:
    return RegistryClient(auth=auth, insecure=list(insecure or ()),
                          mirrors=list(mirrors or ()), **(options or {}))


async def pull(store: Any, ref: str, *, platform: str | None = None,
               auth: dict | None = None, insecure: Iterable[str] = (),
               mirrors: Iterable[str] = (), max_concurrent: int = 3,
               client_options: dict | None = None) -> AsyncIterator[dict]:
    """``docker pull``: yields Docker's progress messages, e.g.
    ``{"status": "Pulling from library/busybox", "id": "latest"}``,
    ``{"status": "Downloading", "progressDetail": {"current": n, "total": m},
    "progress": "[==>  ] ...", "id": "<12 hex>"}``, ``Pull complete``,
    ``{"status": "Digest: sha256:..."}``, ``{"status": "Status: Downloaded newer
    image for busybox:latest"}``; a failure is the last message, an
    ``ErrorMessage``.  The image lands in ``store`` with its tag and RepoDigest.

    ``platform``: ``os/arch[/variant]`` (default: the host's).  ``auth``: the
    decoded ``X-Registry-Auth``.  ``insecure``: Docker's ``insecure-registries``
    (plain HTTP is always allowed for localhost and 127.0.0.0/8).  ``mirrors``:
    ``registry-mirrors`` URLs, for docker.io.  ``client_options``: more
    ``RegistryClient`` arguments (``timeout``, ``retries``, ``retry_delay``,
    ``chunk_threshold`` and ``chunk_size`` for pushes)."""
    client = _client(auth, insecure, mirrors, client_options)

    def work(emit: Callable[[dict], None], c: RegistryClient) -> None:
        distribution.pull(store, ref, client=c, emit=emit, platform=platform,
                          max_concurrent=max_concurrent)

    async with contextlib.aclosing(_run(work, client)) as messages:
        async for msg in messages:
            yield msg


async def push(store: Any, ref: str, auth: dict | None = None, *,
               insecure: Iterable[str] = (), max_concurrent: int = 3,
               client_options: dict | None = None) -> AsyncIterator[dict]:
    """``docker push``: yields ``The push refers to repository [...]``, per layer
    ``Preparing`` / ``Waiting`` / ``Pushing`` (progress) / ``Pushed`` or ``Layer
    already exists`` or ``Mounted from <repo>``, then ``<tag>: digest: <d> size:
    <n>`` and ``{"progressDetail": {}, "aux": {"Tag", "Digest", "Size"}}``; a
    failure is the last message, an ``ErrorMessage``.  ``ref`` without a tag
    pushes every tag of the repository."""
    client = _client(auth, insecure, (), client_options)

    def work(emit: Callable[[dict], None], c: RegistryClient) -> None:
        distribution.push(store, ref, client=c, emit=emit, max_concurrent=max_concurrent)

    async with contextlib.aclosing(_run(work, client)) as messages:
        async for msg in messages:
            yield msg


async def login(auth: dict | None, *, insecure: Iterable[str] = (),
                client_options: dict | None = None) -> dict:
    """``POST /auth``: ``{"Status": "Login Succeeded", "IdentityToken": ""}`` or a
    ``RegistryError`` (HTTP 401 for wrong credentials)."""
    return await trio.to_thread.run_sync(functools.partial(
        distribution.login, auth, insecure=list(insecure or ()), **(client_options or {})))


async def start(messages: AsyncIterator[dict],
                on_message: Callable[[dict], None] | None = None) -> AsyncIterator[bytes]:
    """Wait for the first message of ``pull``/``push``.  If it is an error, close
    the operation and raise its exception (the handler answers a plain JSON
    error with its ``http_status``).  Else return the stream as JSON lines
    (``\\r\\n``-terminated, as dockerd writes them) for a ``StreamResponse``.
    ``on_message(msg)`` sees every message as it goes (e.g. to publish the
    ``pull`` event on ``Status: ...``, or the ``push`` event on ``aux``)."""
    it = messages.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        first = None
    if isinstance(first, ErrorMessage):
        await it.aclose()  # type: ignore[attr-defined]
        raise first.exception

    async def lines() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                if on_message:
                    on_message(first)
                yield (json.dumps(first) + "\r\n").encode()
            async for msg in it:
                if on_message:
                    on_message(msg)
                yield (json.dumps(msg) + "\r\n").encode()
        finally:
            await it.aclose()  # type: ignore[attr-defined]

    return lines()
