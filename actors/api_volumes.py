"""The /volumes routes of trioctrd (Docker Engine API v1.41, local driver),
and the volume side of container create, start and remove.

The store (``actors.volumes.VolumeStore``) is made on first use and kept on
the daemon object.  A volume is in use while any container (whatever its
state) mounts it, or while a container being created holds it (``pending``):
then it cannot be removed or pruned.  Docker's events: volume ``create``,
``destroy``, and ``mount``/``unmount`` when a container that mounts it starts
and stops.
"""

from __future__ import annotations

import logging

import trio

from . import containers as C
from . import volumes as V
from .http import HTTPError, Response, json_response

log = logging.getLogger("trioctr.volumes")


def store(daemon) -> V.VolumeStore:
    st = getattr(daemon, "volumes", None)
    if st is None:
        st = V.VolumeStore(daemon.config.root)
        daemon.volumes = st
        daemon.volume_holds = {}  # volume name -> {container id being created}
        daemon.volume_copy_locks = {}  # volume name -> trio.Lock: one copy-up at a time
    return st


def refs(daemon, name: str) -> list[str]:
    out = [rec["Id"] for rec in sorted(daemon.records.values(), key=lambda r: r["Created"])
           if name in V.volume_names(rec)]
    for cid in sorted(getattr(daemon, "volume_holds", {}).get(name, ())):
        if cid not in out:
            out.append(cid)
    return out


def _http(exc: V.VolumeError) -> HTTPError:
    return HTTPError(exc.status, exc.message)


def create_volume(daemon, name: str, *, labels=None, options=None, driver: str = "") -> dict:
    try:
        vol, created = store(daemon).create(name, labels=labels, options=options, driver=driver)
    except V.VolumeError as exc:
        raise _http(exc) from None
    except OSError as exc:
        raise HTTPError(500, f"create {name}: {exc.strerror or exc}") from None
    if created:
        daemon.events.publish("volume", "create", name, {"driver": vol["Driver"]})
    return vol


async def remove_volume(daemon, name: str, *, force: bool = False) -> None:
    st = store(daemon)
    try:
        vol = st.get(name)
    except V.VolumeError as exc:
        if force:
            return
        raise _http(exc) from None
    using = refs(daemon, name)
    if using:
        raise HTTPError(409, f"remove {name}: volume is in use - [{', '.join(using)}]")
    trash = st.detach(name)
    daemon.volume_copy_locks.pop(name, None)
    await trio.to_thread.run_sync(V.delete_tree, trash)
    daemon.events.publish("volume", "destroy", name, {"driver": vol["Driver"]})


def _filters(req, allowed: set[str]) -> dict[str, list[str]]:
    try:
        return C.parse_filters(req.q_json("filters"), allowed)
    except C.ContainerError as exc:
        raise HTTPError(exc.status, exc.message) from None


def add_routes(r, daemon) -> None:
    store(daemon)
    _hook_mount_events(daemon)

    async def list_volumes(req):
        f = _filters(req, V.VOLUME_FILTERS)
        out = []
        try:
            for name in sorted(store(daemon).volumes):
                vol = store(daemon).volumes[name]
                if V.volume_matches(vol, f, bool(refs(daemon, name))):
                    out.append(vol)
        except V.VolumeError as exc:
            raise _http(exc) from None
        return json_response({"Volumes": out, "Warnings": None})

    r.add("GET", "/volumes", list_volumes)

    async def create(req):
        body = await req.json(allow_empty=True) or {}
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be a VolumeCreateOptions object")
        for key, kind in (("Name", str), ("Driver", str), ("DriverOpts", dict), ("Labels", dict)):
            v = body.get(key)
            if v is not None and not isinstance(v, kind):
                from .api import _json_type

                raise HTTPError(400, f"json: cannot unmarshal {_json_type(v)} into Go struct field "
                                     f"CreateOptions.{key} of type "
                                     f"{'string' if kind is str else 'map[string]string'}")
        labels = body.get("Labels") or None
        if labels and not all(isinstance(v, str) for v in labels.values()):
            raise HTTPError(400, "json: cannot unmarshal into Go struct field CreateOptions.Labels "
                                 "of type string")
        if body.get("ClusterVolumeSpec"):
            raise HTTPError(400, "cluster volumes are not supported by trioctr")
        name = body.get("Name") or ""
        if not name:
            labels = {**(labels or {}), V.ANONYMOUS_LABEL: ""}
            name = V.anonymous_name()
        vol = create_volume(daemon, name, labels=labels, options=body.get("DriverOpts") or None,
                            driver=body.get("Driver") or "")
        return json_response(vol, 201)

    r.add("POST", "/volumes/create", create)

    async def inspect(req):
        try:
            return json_response(store(daemon).get(req.params["id"]))
        except V.VolumeError as exc:
            raise _http(exc) from None

    r.add("GET", "/volumes/{id}", inspect)

    async def delete(req):
        await remove_volume(daemon, req.params["id"], force=req.q_bool("force"))
        return Response(204, b"", None)

    r.add("DELETE", "/volumes/{id}", delete)

    async def prune(req):
        f = _filters(req, V.PRUNE_FILTERS)
        all_ = False
        for v in f.pop("all", []):
            try:
                all_ = all_ or V._truthy(v, "all")
            except V.VolumeError as exc:
                raise _http(exc) from None
        api = tuple(int(x) for x in (req.api_version or "1.41").split("."))
        anonymous_only = api >= (1, 42) and not all_
        deleted, reclaimed = [], 0
        for name in sorted(store(daemon).volumes):
            vol = store(daemon).volumes.get(name)
            if vol is None or refs(daemon, name):
                continue
            if anonymous_only and V.ANONYMOUS_LABEL not in (vol.get("Labels") or {}):
                continue
            if not V.volume_matches(vol, f, False):
                continue
            size = await trio.to_thread.run_sync(V.tree_size, vol["Mountpoint"])
            try:
                await remove_volume(daemon, name)
            except HTTPError as exc:
                log.warning("prune: could not remove volume %s: %s", name, exc.message)
                continue
            deleted.append(name)
            reclaimed += size
        daemon.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})

    r.add("POST", "/volumes/prune", prune)


async def df_volumes(daemon) -> list[dict]:
    """The Volumes of GET /system/df (with UsageData)."""
    out = []
    for name in sorted(store(daemon).volumes):
        vol = store(daemon).volumes[name]
        size = await trio.to_thread.run_sync(V.tree_size, vol["Mountpoint"])
        out.append({**vol, "UsageData": {"Size": size, "RefCount": len(refs(daemon, name))}})
    return out


# -- containers ---------------------------------------------------------------------


def plan(hc: dict, config_volumes: dict | None) -> list[dict]:
    """Validate a container's mounts (400 in dockerd's words)."""
    try:
        return V.plan_mounts(hc, config_volumes)
    except V.VolumeError as exc:
        raise _http(exc) from None


async def attach(daemon, rec: dict, points: list[dict], layers: list[str]) -> None:
    """Create the volumes a new container mounts (named ones on the fly,
    anonymous ones), copy the image's content into the empty ones, and fill
    the record's Mounts as it goes (so that a failure half-way can undo it).
    The volumes are held for the container until ``release_holds``."""
    holds = daemon.volume_holds
    cid = rec["Id"]
    rec["Mounts"] = []
    for mp in points:
        if mp["Type"] == "volume":
            vol = create_volume(daemon, mp["Name"], labels=mp.get("_labels"))
            holds.setdefault(mp["Name"], set()).add(cid)
            mp = {**mp, "Source": vol["Mountpoint"]}
            rec["Mounts"].append(V.inspect_entry(mp))
            if mp["_copy"] and layers:
                # two containers made at once with the same new volume: one copies,
                # the other then finds it not empty
                lock = daemon.volume_copy_locks.setdefault(mp["Name"], trio.Lock())
                try:
                    async with lock:
                        await trio.to_thread.run_sync(V.copy_up, layers, mp["Destination"],
                                                      mp["Source"])
                except V.VolumeError as exc:
                    raise _http(exc) from None
                except OSError as exc:
                    raise HTTPError(500, f"copying image data to volume {mp['Name']}: "
                                         f"{exc.strerror or exc}") from None
        else:
            rec["Mounts"].append(V.inspect_entry(mp))


def release_holds(daemon, cid: str) -> None:
    for name in list(daemon.volume_holds):
        daemon.volume_holds[name].discard(cid)
        if not daemon.volume_holds[name]:
            del daemon.volume_holds[name]


async def remove_anonymous(daemon, rec: dict) -> None:
    """After a container was removed with -v (or --rm): its anonymous volumes
    go, unless another container uses them (dockerd ignores that error)."""
    named = V.named_sources(rec.get("HostConfig") or {})
    for name in V.volume_names(rec):
        if name in named:
            continue
        vol = store(daemon).volumes.get(name)
        if vol is None or V.ANONYMOUS_LABEL not in (vol.get("Labels") or {}):
            continue
        try:
            await remove_volume(daemon, name)
        except HTTPError as exc:
            log.info("anonymous volume %s of %s kept: %s", name, rec["Id"][:12], exc.message)


def _hook_mount_events(daemon) -> None:
    """volume mount/unmount events around the containers' start and die, as
    dockerd publishes them: a start is preceded by the mounts of its volumes,
    a die followed by their unmounts."""

    def volume_mounts(cid):
        rec = daemon.records.get(cid)
        return rec, [m for m in (rec or {}).get("Mounts") or [] if m.get("Type") == "volume"]

    def mounts(cid):
        rec, vols = volume_mounts(cid)
        for m in vols:
            daemon.events.publish("volume", "mount", m["Name"], {
                "container": rec["Id"], "destination": m["Destination"],
                "driver": m.get("Driver") or V.DEFAULT_DRIVER,
                "propagation": m.get("Propagation") or "",
                "read/write": "true" if m.get("RW") else "false"})

    def unmounts(cid):
        rec, vols = volume_mounts(cid)
        for m in vols:
            daemon.events.publish("volume", "unmount", m["Name"], {
                "container": rec["Id"], "driver": m.get("Driver") or V.DEFAULT_DRIVER})

    daemon.events.around("container", "start", before=mounts)
    daemon.events.around("container", "die", after=unmounts)
