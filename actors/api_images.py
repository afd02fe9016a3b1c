"""Image routes of the Docker Engine API: import, pull, push, auth, list (with
filters), inspect, tag, remove, save, load, history, prune (search answers 501).

The pure pieces (``parse_image_filters``, ``filter_images``, ``go_path_match``)
are unit-tested on their own; the store work runs in threads."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading

import trio

from .http import HTTPError, Response, StreamResponse, json_response

log = logging.getLogger(__name__)


def add_routes(r, daemon) -> None:
    async def images_create(req):
        from_src = req.q("fromSrc")
        from_image = req.q("fromImage")
        if from_src is None and not from_image:
            raise HTTPError(400, "fromImage or fromSrc is required")
        if from_image:
            from . import images_pull

            auth = images_pull.registry_auth(req.headers.get("x-registry-auth"))
            ref = images_pull.pull_reference(from_image, req.q("tag"))
            cfg = daemon.config

            def on_message(msg: dict) -> None:
                if str(msg.get("status", "")).startswith("Status: "):
                    daemon.events.publish("image", "pull", _familiar(ref), {"name": _familiar(ref)})

            chunks = await images_pull.start(
                images_pull.pull(daemon.images, ref, platform=req.q("platform") or None, auth=auth,
                                 insecure=cfg.insecure_registries, mirrors=cfg.registry_mirrors),
                on_message=on_message)
            return StreamResponse(chunks, 200, "application/json")
        if from_src != "-":
            raise HTTPError(400, "importing from a URL is not supported: send the tar in the body (fromSrc=-)")
        repo = req.q("repo") or ""
        tag = req.q("tag") or ""
        if repo and not tag and ":" in repo.rsplit("/", 1)[-1]:
            repo, tag = repo.rsplit(":", 1)  # the docker CLI sends repo=NAME:TAG
        ref = None
        if repo:
            ref = repo if not tag else f"{repo}:{tag}"
        changes = req.query.get("changes", [])
        message = req.q("message") or ""
        img_root = daemon.images.root
        fd, tmp = tempfile.mkstemp(prefix="import-", dir=img_root)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in req.iter_body():
                    await trio.to_thread.run_sync(f.write, chunk)
            image = await trio.to_thread.run_sync(_import, daemon, tmp, ref, changes, message)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        daemon.events.publish("image", "import", image.id, {"name": image.id})
        if ref:
            daemon.events.publish("image", "tag", image.id, {"name": _familiar(ref)})
        return json_response({"status": image.id})

    r.add("POST", "/images/create", images_create)

    async def images_list(req):
        filters = parse_image_filters(req.q_json("filters"))
        all_ = req.q_bool("all")
        bounds = await trio.to_thread.run_sync(_filter_bounds, daemon, filters)
        imgs = await trio.to_thread.run_sync(daemon.images.list)
        out = filter_images(imgs, filters, all_=all_, **bounds)
        counts: dict[str, int] = {}
        for rec in daemon.records.values():
            counts[rec.get("Image", "")] = counts.get(rec.get("Image", ""), 0) + 1
        for item in out:
            item["Containers"] = counts.get(item["Id"], 0)
        out.sort(key=lambda x: x.get("Created", 0), reverse=True)
        return json_response(out)

    r.add("GET", "/images/json", images_list)

    async def images_inspect(req):
        img = await get_image(daemon, req.params["name"])
        return json_response(img.to_docker_inspect())

    r.add("GET", "/images/{name:.*}/json", images_inspect)

    async def images_delete(req):
        name = req.params["name"]
        force = req.q_bool("force")
        img = await get_image(daemon, name)
        users = container_uses(daemon)

        def remove():
            res = daemon.images.remove(name, force=force, in_use=users)
            daemon.images.collect()
            return res

        result = await trio.to_thread.run_sync(remove)
        for item in result:
            if "Untagged" in item:
                daemon.events.publish("image", "untag", img.id, {"name": item["Untagged"]})
            if "Deleted" in item:
                daemon.events.publish("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        return json_response(result)

    r.add("DELETE", "/images/{name:.*}", images_delete)

    async def images_tag(req):
        img = await get_image(daemon, req.params["name"])
        repo = req.q("repo") or ""
        tag = req.q("tag") or "latest"
        if not repo:
            raise HTTPError(400, "repository name must have at least one component")
        ref = f"{repo}:{tag}"
        await trio.to_thread.run_sync(daemon.images.tag, img.id, ref)
        daemon.events.publish("image", "tag", img.id, {"name": _familiar(ref)})
        return Response(201, b"", None)

    r.add("POST", "/images/{name:.*}/tag", images_tag)


    async def images_push(req):
        from . import images_pull

        name = req.params["name"]
        auth = images_pull.registry_auth(req.headers.get("x-registry-auth"))
        ref = name if not req.q("tag") else f"{name}:{req.q('tag')}"
        chunks = await images_pull.start(images_pull.push(
            daemon.images, ref, auth, insecure=daemon.config.insecure_registries))
        daemon.events.publish("image", "push", _familiar(ref), {"name": _familiar(ref)})
        return StreamResponse(chunks, 200, "application/json")

    r.add("POST", "/images/{name:.*}/push", images_push)

    async def auth_route(req):
        from . import images_pull

        body = await req.json(allow_empty=False)
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be an AuthConfig object")
        return json_response(await images_pull.login(body, insecure=daemon.config.insecure_registries))

    r.add("POST", "/auth", auth_route)

    async def images_save(req):
        names = [req.params["name"]] if "name" in req.params else list(req.query.get("names", []))
        from oci import tarexport

        # errors (no such image, a layer that cannot be exported) answer a status
        # before the first byte; the archive itself is streamed as it is written
        ids = await trio.to_thread.run_sync(tarexport.resolve_save_names, daemon.images, names)
        await trio.to_thread.run_sync(tarexport.check_exportable, daemon.images, list(ids))
        token = trio.lowlevel.current_trio_token()
        send, recv = trio.open_memory_channel(4)

        def work() -> None:
            out = _ChannelWriter(send, token)
            try:
                saved = tarexport.save(daemon.images, names, out)
                out.flush()
                for image_id in saved:
                    _from_thread(token, daemon.events.publish, "image", "save", image_id,
                                 {"name": image_id})
            except _ClientGone:
                pass
            except Exception:  # noqa: BLE001 - the stream ends short, as dockerd's does
                log.exception("image save failed")
            finally:
                _from_thread(token, send.close)

        threading.Thread(target=work, name="image-save", daemon=True).start()

        async def chunks():
            async with recv:
                async for data in recv:
                    yield data

        return StreamResponse(chunks(), 200, "application/x-tar")

    r.add("GET", "/images/get", images_save)
    r.add("GET", "/images/{name:.*}/get", images_save)

    async def images_load(req):
        from oci import tarexport

        quiet = req.q_bool("quiet")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-load-", dir=daemon.images.root)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in req.iter_body():
                    await trio.to_thread.run_sync(f.write, chunk)
        except BaseException:
            os.unlink(tmp)
            raise
        container_uses(daemon)  # the layers containers use are never collected
        token = trio.lowlevel.current_trio_token()
        send, recv = trio.open_memory_channel(64)

        def emit(msg: dict) -> None:
            try:
                _from_thread_blocking(token, send.send, msg)
            except _ClientGone:
                pass  # the client left: the load still completes

        def work() -> None:
            try:
                results = tarexport.load(daemon.images, tmp, emit, quiet=quiet)
                for res in results:
                    _from_thread(token, daemon.events.publish, "image", "load", res["id"],
                                 {"name": res["id"]})
            except (ValueError, OSError, LookupError) as exc:  # oci's errors are ValueErrors
                emit({"errorDetail": {"message": str(exc)}, "error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - reported in the stream, as dockerd does
                log.exception("image load failed")
                emit({"errorDetail": {"message": str(exc)}, "error": str(exc)})
            finally:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                _from_thread(token, send.close)

        threading.Thread(target=work, name="image-load", daemon=True).start()

        async def chunks():
            async with recv:
                async for msg in recv:
                    yield (json.dumps(msg) + "\r\n").encode()

        return StreamResponse(chunks(), 200, "application/json")

    r.add("POST", "/images/load", images_load)

    async def images_history(req):
        await get_image(daemon, req.params["name"])
        return json_response(await trio.to_thread.run_sync(daemon.images.history, req.params["name"]))

    r.add("GET", "/images/{name:.*}/history", images_history)

    pruning = [False]

    async def images_prune(req):
        f = parse_prune_filters(req.q_json("filters"))
        if pruning[0]:
            raise HTTPError(409, "a prune operation is already running")
        pruning[0] = True
        try:
            users = container_uses(daemon)
            rep = await trio.to_thread.run_sync(lambda: daemon.images.prune(in_use=users, **f))
        finally:
            pruning[0] = False
        for action, image_id, name in rep.pop("_events", ()):
            daemon.events.publish("image", action, image_id, {"name": name})
        daemon.events.publish("image", "prune", "", {"reclaimed": str(rep["SpaceReclaimed"])})
        return json_response(rep)

    r.add("POST", "/images/prune", images_prune)

    async def not_yet(req):
        raise HTTPError(501, f"{req.method} {req.path}: not implemented in trioctr yet")

    r.add("GET", "/images/search", not_yet)


class _ClientGone(Exception):
    """The reader of a streamed response went away."""


def _from_thread(token, fn, *args) -> None:
    """Run a quick synchronous ``fn`` in the trio thread; never raises."""
    try:
        trio.from_thread.run_sync(fn, *args, trio_token=token)
    except Exception:  # noqa: BLE001 - the daemon is stopping or the channel is gone
        pass


def _from_thread_blocking(token, afn, *args) -> None:
    """``await afn(*args)`` in the trio thread (backpressure); ``_ClientGone``
    when the receiving side is closed or the daemon is stopping."""
    try:
        trio.from_thread.run(afn, *args, trio_token=token)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError,
            trio.Cancelled):
        raise _ClientGone() from None


class _ChannelWriter:
    """A file-like sink for a worker thread: bytes go to a trio memory channel
    in chunks of about 1 MiB, waiting while the channel is full."""

    def __init__(self, send, token, chunk: int = 1 << 20):
        self._send = send
        self._token = token
        self._chunk = chunk
        self._buf = bytearray()

    def write(self, b) -> int:
        self._buf += b
        if len(self._buf) >= self._chunk:
            self.flush()
        return len(b)

    def flush(self) -> None:
        if self._buf:
            data, self._buf = bytes(self._buf), bytearray()
            _from_thread_blocking(self._token, self._send.send, data)


def _familiar(ref: str) -> str:
    try:
        from oci.reference import familiar

        return familiar(ref)
    except Exception:
        return ref


def _import(daemon, path: str, ref: str | None, changes: list[str], message: str):
    with open(path, "rb") as f:
        return daemon.images.import_tar(f, ref, changes=changes, message=message)


async def get_image(daemon, ref: str):
    from oci.errors import ImageNotFound

    try:
        return await trio.to_thread.run_sync(daemon.images.get, ref)
    except ImageNotFound as exc:
        raise HTTPError(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPError(400, str(exc)) from None


def container_uses(daemon) -> list:
    """The containers' uses of images (for rmi/prune conflicts), and tell the
    store which layers containers use so that no collection takes them."""
    from oci.store import ContainerUse

    recs = list(daemon.records.values())
    keep: list[str] = []
    for rec in recs:
        keep += daemon.images.image_layers(rec.get("Image") or "")
        lower = ((rec.get("GraphDriver") or {}).get("Data") or {}).get("LowerDir") or ""
        keep += [p for p in lower.split(":") if p]
    daemon.images.set_container_layers(keep, containers=[rec["Id"] for rec in recs])
    return [ContainerUse(id=rec["Id"], image_id=rec.get("Image") or "",
                         running=bool(rec["State"]["Running"])) for rec in recs]


# --------------------------------------------------------------------------- filters (pure)

IMAGE_FILTERS = {"dangling", "label", "label!", "before", "since", "reference", "until"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _parse(raw, allowed: set[str]) -> dict[str, list[str]]:
    from . import containers as C

    try:
        return C.parse_filters(raw, allowed)
    except C.ContainerError as exc:
        raise HTTPError(400, exc.message) from None


def _invalid(key: str, values: list[str]) -> HTTPError:
    return HTTPError(400, f"invalid filter '{key}=[{' '.join(values)}]'")


def parse_image_filters(raw) -> dict[str, list[str]]:
    """GET /images/json's filters, validated as dockerd does."""
    f = _parse(raw, IMAGE_FILTERS)
    d = f.get("dangling")
    if d and not (d == ["true"] or d == ["false"] or set(d) <= {"true", "false"} and len(set(d)) == 1):
        raise _invalid("dangling", d)
    for pattern in f.get("reference", []):
        try:
            go_path_match(pattern, "")
        except ValueError:
            raise HTTPError(400, "syntax error in pattern") from None
    return f


def parse_prune_filters(raw) -> dict:
    """POST /images/prune's filters -> keyword arguments of ``ImageStore.prune``."""
    f = _parse(raw, PRUNE_FILTERS)
    dangling = True
    if f.get("dangling"):
        v = f["dangling"][0]
        if v not in _GO_BOOLS:
            raise _invalid("dangling", f["dangling"])
        dangling = _GO_BOOLS[v]
    until_ns = None
    if f.get("until"):
        until_ns = _until_ns(f["until"])
    return {"dangling_only": dangling, "until_ns": until_ns,
            "labels": f.get("label", []), "not_labels": f.get("label!", [])}


def _until_ns(values: list[str]) -> int:
    from . import containers as C
    from .api import _prune_until

    try:
        t = _prune_until(values)
    except C.ContainerError as exc:
        raise HTTPError(400, exc.message) from None
    return int((t or 0) * 1_000_000_000)


def _filter_bounds(daemon, f: dict[str, list[str]]) -> dict:
    """The times of the before/since images and of until (ns), resolved once."""
    from oci.store import parse_rfc3339_ns

    out: dict = {"before": None, "since": None, "until": None}
    for key in ("before", "since"):
        for v in f.get(key, []):
            img = daemon.images.get(v)  # ImageNotFound: 404 "No such image: ..."
            out[key] = parse_rfc3339_ns(img.created)
    if f.get("until"):
        out["until"] = _until_ns(f["until"])
    return out


def _familiar_name(ref: str) -> str:
    from oci.reference import parse_normalized

    try:
        return parse_normalized(ref).familiar_name
    except Exception:
        return ref


def _reference_match(patterns: list[str], ref: str) -> bool:
    """Docker's ``reference.FamiliarMatch`` over several patterns."""
    for p in patterns:
        if go_path_match(p, ref) or go_path_match(p, _familiar_name(ref)):
            return True
    return False


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def filter_images(images, f: dict[str, list[str]], *, all_: bool = False, before: int | None = None,
                  since: int | None = None, until: int | None = None) -> list[dict]:
    """dockerd's ``Images``: ImageSummary dicts of ``images`` (``oci.store.Image``)
    that pass the filters; ``reference`` also narrows RepoTags/RepoDigests, and
    untagged images show ``<none>:<none>`` (API < 1.43)."""
    from oci.store import parse_rfc3339_ns

    dangling_only = f.get("dangling", [""])[0] == "true"
    parents = {i.parent for i in images if i.parent}
    out = []
    for img in images:
        created = parse_rfc3339_ns(img.created) if img.created else None
        has_children = img.id in parents
        if dangling_only and has_children:
            continue
        if before is not None and (created is None or not created < before):
            continue
        if since is not None and (created is None or not created > since):
            continue
        if until is not None and (created is None or created > until):
            continue
        labels = img.container_config.get("Labels") or {}
        if "label" in f and not _labels_match(labels, f["label"]):
            continue
        if "label!" in f and _labels_match(labels, f["label!"]):
            continue
        item = img.to_docker_summary(legacy_none=False)
        if "reference" in f:
            item["RepoTags"] = [r for r in item["RepoTags"] if _reference_match(f["reference"], r)]
            item["RepoDigests"] = [r for r in item["RepoDigests"]
                                   if _reference_match(f["reference"], r)]
        if not item["RepoTags"] and not item["RepoDigests"]:
            if not (all_ or not has_children):
                continue
            if "dangling" in f and not dangling_only:
                continue
            if "reference" in f:
                continue
            item["RepoTags"], item["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
        elif dangling_only and item["RepoTags"]:
            continue
        out.append(item)
    return out


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match ``/``; ``[...]`` classes
    with ``^`` negation and ranges; ``\\`` escapes.  ``ValueError`` on a bad pattern."""
    return _go_pattern(pattern).fullmatch(name) is not None


_PATTERNS: dict[str, "re.Pattern[str]"] = {}


def _go_pattern(pattern: str):
    cached = _PATTERNS.get(pattern)
    if cached is not None:
        return cached
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise ValueError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            neg = i < n and pattern[i] == "^"
            if neg:
                i += 1
            items = []
            first = True
            while True:
                if i >= n:
                    raise ValueError("syntax error in pattern")
                if pattern[i] == "]" and not first:
                    break
                first = False
                lo, i = _class_char(pattern, i)
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi < lo:
                        raise ValueError("syntax error in pattern")
                    items.append(re.escape(lo) + "-" + re.escape(hi))
                else:
                    items.append(re.escape(lo))
            out.append("[" + ("^/" if neg else "") + "".join(items) + "]")
        else:
            out.append(re.escape(c))
        i += 1
    compiled = re.compile("".join(out), re.S)
    if len(_PATTERNS) < 256:
        _PATTERNS[pattern] = compiled
    return compiled


def _class_char(p: str, i: int) -> tuple[str, int]:
    if i >= len(p) or p[i] in "-]":
        raise ValueError("syntax error in pattern")
    if p[i] == "\\":
        i += 1
        if i >= len(p):
            raise ValueError("syntax error in pattern")
    return p[i], i + 1
