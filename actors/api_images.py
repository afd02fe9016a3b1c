"""Image routes of the Docker Engine API: import, pull, push, auth, list,
inspect, tag, remove (save, load, history and prune answer 501 for now)."""

from __future__ import annotations

import os
import tempfile

import trio

from .http import HTTPError, Response, StreamResponse, json_response


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
        imgs = await trio.to_thread.run_sync(daemon.images.list)
        out = [i.to_docker_summary() for i in imgs]
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

    r.add("GET", "/images/{name}/json", images_inspect)

    async def images_delete(req):
        name = req.params["name"]
        force = req.q_bool("force")
        img = await get_image(daemon, name)
        from oci.store import ContainerUse

        users = [ContainerUse(id=rec["Id"], image_id=rec["Image"], running=rec["State"]["Running"])
                 for rec in daemon.records.values()]
        result = await trio.to_thread.run_sync(lambda: daemon.images.remove(name, force=force, in_use=users))
        for item in result:
            if "Untagged" in item:
                daemon.events.publish("image", "untag", img.id, {"name": item["Untagged"]})
            if "Deleted" in item:
                daemon.events.publish("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        return json_response(result)

    r.add("DELETE", "/images/{name}", images_delete)

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

    r.add("POST", "/images/{name}/tag", images_tag)


    async def images_push(req):
        from . import images_pull

        name = req.params["name"]
        auth = images_pull.registry_auth(req.headers.get("x-registry-auth"))
        ref = name if not req.q("tag") else f"{name}:{req.q('tag')}"
        chunks = await images_pull.start(images_pull.push(
            daemon.images, ref, auth, insecure=daemon.config.insecure_registries))
        daemon.events.publish("image", "push", _familiar(ref), {"name": _familiar(ref)})
        return StreamResponse(chunks, 200, "application/json")

    r.add("POST", "/images/{name}/push", images_push)

    async def auth_route(req):
        from . import images_pull

        body = await req.json(allow_empty=False)
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be an AuthConfig object")
        return json_response(await images_pull.login(body, insecure=daemon.config.insecure_registries))

    r.add("POST", "/auth", auth_route)

    async def not_yet(req):
        raise HTTPError(501, f"{req.method} {req.path}: not implemented in trioctr yet")

    for method, pattern in (("GET", "/images/{name}/get"),
                            ("GET", "/images/get"), ("POST", "/images/load"),
                            ("GET", "/images/{name}/history"), ("POST", "/images/prune"),
                            ("GET", "/images/search")):
        r.add(method, pattern, not_yet)


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


