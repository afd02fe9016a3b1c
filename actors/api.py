"""The Docker Engine API v1.41 routes of trioctrd (the subset that exists
so far; the rest answers 501 with a clear message)."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal as signal_mod
import socket
import sys
import time
from typing import Any

import trio

from messages import supervisor as sup
from messages.errors import ErrorCode, RemoteError

from . import containers as C
from . import logs as L
from .events import EVENT_FILTERS, event_matches, parse_time
from .api_images import get_image
from .http import Final, Hijack, HTTPError, Response, Router, StreamResponse, json_response, status_for
from cli.escape import DEFAULT_KEYS, EscapeProxy, KeysError, to_bytes as keys_to_bytes

log = logging.getLogger("trioctr.api")

MIN_MEMORY = 6 * 1024 * 1024

# HostConfig fields this engine honours; any other field must hold its default
HOSTCONFIG_SUPPORTED = {"SecurityOpt", "Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares",
                        "CpuQuota", "CpuPeriod", "AutoRemove", "Runtime", "NetworkMode",
                        "RestartPolicy", "LogConfig", "ReadonlyRootfs", "CapAdd", "CapDrop",
                        "ConsoleSize", "CgroupnsMode", "IpcMode", "Isolation", "ContainerIDFile",
                        "OomKillDisable", "Init", "Binds", "Mounts", "Tmpfs", "VolumeDriver"}
# every HostConfig field of API v1.41: one of these that is not supported must
# hold its default; a field that is not even in the API is ignored (Go's JSON
# decoding in dockerd ignores unknown fields too)
HOSTCONFIG_KNOWN = {
    "AutoRemove", "Binds", "BlkioDeviceReadBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteBps",
    "BlkioDeviceWriteIOps", "BlkioWeight", "BlkioWeightDevice", "CapAdd", "CapDrop", "Cgroup",
    "CgroupParent", "CgroupnsMode", "ConsoleSize", "ContainerIDFile", "CpuCount", "CpuPercent",
    "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuShares", "CpusetCpus",
    "CpusetMems", "DeviceCgroupRules", "DeviceRequests", "Devices", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "GroupAdd", "IOMaximumBandwidth", "IOMaximumIOps", "Init", "IpcMode", "Isolation",
    "KernelMemory", "KernelMemoryTCP", "Links", "LogConfig", "MaskedPaths", "Memory",
    "MemoryReservation", "MemorySwap", "MemorySwappiness", "Mounts", "NanoCpus", "NetworkMode",
    "OomKillDisable", "OomScoreAdj", "PidMode", "PidsLimit", "PortBindings", "Privileged",
    "PublishAllPorts", "ReadonlyPaths", "ReadonlyRootfs", "RestartPolicy", "Runtime", "SecurityOpt",
    "ShmSize", "StorageOpt", "Sysctls", "Tmpfs", "UTSMode", "Ulimits", "UsernsMode", "VolumeDriver",
    "VolumesFrom"}
CONFIG_SUPPORTED = {"Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                    "AttachStderr", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Entrypoint",
                    "Image", "WorkingDir", "Labels", "StopSignal", "StopTimeout", "ExposedPorts",
                    "ArgsEscaped", "NetworkDisabled", "OnBuild", "Shell", "Volumes", "MacAddress",
                    "Healthcheck", "HostConfig", "NetworkingConfig"}


def _empty(v: Any) -> bool:
    if v in (None, 0, "", False):
        return True
    if isinstance(v, (list, tuple)):
        return all(_empty(x) for x in v)
    if isinstance(v, dict):
        return all(_empty(x) for x in v.values())
    return False


def parse_signal(value: str | int | None, default: int = signal_mod.SIGKILL) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int):
        num = value
    else:
        v = value.strip().upper()
        if v.isdigit():
            num = int(v)
        else:
            name = v if v.startswith("SIG") else "SIG" + v
            try:
                num = int(signal_mod.Signals[name])
            except KeyError:
                raise HTTPError(400, f"Invalid signal: {value}") from None
    if not 0 < num < 65:
        raise HTTPError(400, f"Invalid signal: {value}")
    return num


def _json_type(v: Any) -> str:
    """The JSON kind of a decoded value, in Go's words ("cannot unmarshal number ...")."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _expect(obj: Any, kind: type, what: str) -> Any:
    if obj is None:
        return kind()
    if not isinstance(obj, kind) or (kind is int and isinstance(obj, bool)):
        raise HTTPError(400, f"json: cannot unmarshal {_json_type(obj)} into {what} of type "
                             f"{ {dict: 'object', list: 'array', str: 'string', int: 'number', bool: 'bool'}[kind]}")
    return obj


# the JSON types of ContainerConfig and HostConfig (API v1.41), checked as
# dockerd's Go decoder does: null is always fine (the zero value)
_STR, _BOOL, _INT, _STRS, _STRS_OR_STR, _INTS, _OBJ, _OBJS = (
    "string", "bool", "int64", "[]string", "strslice", "[]int", "object", "[]object")
CONFIG_TYPES = {
    **dict.fromkeys(("Hostname", "Domainname", "User", "Image", "WorkingDir", "StopSignal",
                     "MacAddress"), _STR),
    **dict.fromkeys(("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
                     "ArgsEscaped", "NetworkDisabled"), _BOOL),
    "StopTimeout": _INT, "Env": _STRS, "OnBuild": _STRS, "Shell": _STRS,
    "Cmd": _STRS_OR_STR, "Entrypoint": _STRS_OR_STR,
    **dict.fromkeys(("Labels", "ExposedPorts", "Volumes", "Healthcheck", "HostConfig",
                     "NetworkingConfig"), _OBJ),
}
HOSTCONFIG_TYPES = {
    **dict.fromkeys(("Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "CpuQuota",
                     "CpuPeriod", "ShmSize", "MemorySwappiness", "OomScoreAdj", "BlkioWeight",
                     "CpuCount", "CpuPercent", "CpuRealtimePeriod", "CpuRealtimeRuntime",
                     "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "IOMaximumBandwidth",
                     "IOMaximumIOps"), _INT),
    **dict.fromkeys(("AutoRemove", "ReadonlyRootfs", "OomKillDisable", "Init", "Privileged",
                     "PublishAllPorts"), _BOOL),
    **dict.fromkeys(("Runtime", "NetworkMode", "CgroupnsMode", "IpcMode", "Isolation",
                     "ContainerIDFile", "Cgroup", "CgroupParent", "PidMode", "UTSMode", "UsernsMode",
                     "VolumeDriver", "CpusetCpus", "CpusetMems"), _STR),
    **dict.fromkeys(("CapAdd", "CapDrop", "Binds", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
                     "GroupAdd", "Links", "SecurityOpt", "VolumesFrom", "DeviceCgroupRules",
                     "MaskedPaths", "ReadonlyPaths"), _STRS),
    "ConsoleSize": _INTS,
    **dict.fromkeys(("RestartPolicy", "LogConfig", "PortBindings", "StorageOpt", "Sysctls", "Tmpfs"), _OBJ),
    **dict.fromkeys(("Ulimits", "Devices", "Mounts", "DeviceRequests", "BlkioWeightDevice",
                     "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                     "BlkioDeviceWriteIOps"), _OBJS),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


def check_types(obj: dict, types: dict[str, str], prefix: str) -> None:
    """400 with Go's wording for a field whose JSON type is wrong."""
    for key, kind in types.items():
        v = obj.get(key)
        if v is None:
            continue
        ok = {
            _STR: lambda: isinstance(v, str),
            _BOOL: lambda: isinstance(v, bool),
            _INT: lambda: _is_int(v),
            _STRS: lambda: isinstance(v, list) and all(isinstance(x, str) for x in v),
            _STRS_OR_STR: lambda: isinstance(v, str) or isinstance(v, list) and all(isinstance(x, str) for x in v),
            _INTS: lambda: isinstance(v, list) and all(_is_int(x) for x in v),
            _OBJ: lambda: isinstance(v, dict),
            _OBJS: lambda: isinstance(v, list) and all(isinstance(x, (dict, type(None))) for x in v),
        }[kind]()
        if not ok:
            shown = v
            if isinstance(v, list):
                bad = [x for x in v if not (isinstance(x, str) if kind in (_STRS, _STRS_OR_STR) else
                                            _is_int(x) if kind == _INTS else isinstance(x, dict))]
                shown = bad[0] if bad else v
                element = {_STRS: _STR, _STRS_OR_STR: _STR, _INTS: "int", _OBJS: _OBJ}.get(kind)
                if bad and element:
                    raise HTTPError(400, f"json: cannot unmarshal {_json_type(shown)} into Go struct field "
                                         f"{prefix}.{key} of type {element}")
            what = _json_type(shown)
            if what == "number" and isinstance(shown, float) and kind == _INT:
                what = f"number {shown}"
            raise HTTPError(400, f"json: cannot unmarshal {what} into Go struct field {prefix}.{key} "
                                 f"of type {kind if kind != _STRS_OR_STR else '[]string'}")


def _str_list(obj: Any, what: str) -> list[str] | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return [obj]
    if not isinstance(obj, list):
        raise HTTPError(400, f"json: cannot unmarshal {_json_type(obj)} into {what} of type []string")
    for x in obj:
        if not isinstance(x, str):
            raise HTTPError(400, f"json: cannot unmarshal {_json_type(x)} into {what} of type string")
    return obj


def attach_detach_keys(text: str) -> bytes:
    """The attach's detachKeys -> bytes (b"" = the default); dockerd's 400 if bad."""
    if not text:
        return b""
    try:
        return keys_to_bytes(text)
    except KeysError:
        raise HTTPError(400, f"Invalid detach keys ({text}) provided") from None


def make_router(daemon) -> Router:
    from .daemon import API_VERSION, MIN_API_VERSION, VERSION

    r = Router(api_version=API_VERSION, min_api_version=MIN_API_VERSION)

    # -- system --------------------------------------------------------------------
    async def ping(req):
        return Response(200, b"OK", "text/plain; charset=utf-8",
                        [("Cache-Control", "no-cache, no-store, must-revalidate"),
                         ("Pragma", "no-cache"), ("Builder-Version", "1")])

    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)

    def version_info() -> dict:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        comp = {"Name": "Engine", "Version": VERSION,
                "Details": {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "",
                            "Experimental": "false", "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
                            "KernelVersion": platform.release(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}}
        return {"Platform": {"Name": "trioctr"}, "Components": [comp], "Version": VERSION,
                "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
                "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": arch,
                "KernelVersion": platform.release(), "BuildTime": ""}

    async def version(req):
        return json_response(version_info())

    r.add("GET", "/version", version)

    async def info(req):
        from linux.cgroups import detect_version

        recs = list(daemon.records.values())
        running = sum(1 for x in recs if x["State"]["Running"] and not x["State"]["Paused"])
        paused = sum(1 for x in recs if x["State"]["Paused"])
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            mem = 0
        try:
            images = len(await trio.to_thread.run_sync(daemon.images.list))
        except Exception:
            images = 0
        cgv = str(detect_version())
        runtimes = {"trioctr": {"path": f"{sys.executable} -m actors.runtime"}}
        runtimes.update({k: {"path": v} for k, v in daemon.config.runtimes.items()})
        return json_response({
            "ID": daemon.id, "Containers": len(recs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(recs) - running - paused,
            "Images": images, "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
            "DockerRootDir": daemon.config.root, "SystemStatus": None, "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "CpuCfsPeriod": True,
            "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
            "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False,
            "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True,
            "NGoroutines": len(trio.lowlevel.current_root_task().child_nurseries) if False else 0,
            "SystemTime": C.rfc3339nano(time.time_ns()), "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": cgv, "NEventsListener": len(daemon.events._subs),
            "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSVersion": "",
            "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "GenericResources": None,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(),
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": VERSION,
            "Runtimes": runtimes, "DefaultRuntime": daemon.config.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
            "Warnings": [], "ExecRoot": daemon.config.exec_root,
            "SupervisorRestarts": daemon.sup_restarts,
        })

    r.add("GET", "/info", info)

    # -- events ----------------------------------------------------------------------
    async def events(req):
        try:
            since = parse_time(req.q("since"))
            until = parse_time(req.q("until"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        try:
            filters = C.parse_filters(req.q_json("filters"), EVENT_FILTERS)
        except C.ContainerError as exc:
            raise HTTPError(400, exc.message) from None
        async def gen():
            # subscribed when the stream starts (a stream never started holds nothing)
            sub = daemon.events.subscribe()
            last = 0
            try:
                if since is not None:
                    for ev in daemon.events.since(since, until):
                        last = ev.time_nano
                        if event_matches(ev, filters):
                            yield (json.dumps(ev.to_docker()) + "\n").encode()
                if until is not None and until <= time.time_ns():
                    return
                deadline = (until - time.time_ns()) / 1e9 if until is not None else None
                with trio.move_on_after(deadline if deadline is not None else float("inf")):
                    async for ev in sub:
                        if ev.time_nano <= last:
                            continue
                        if until is not None and ev.time_nano > until:
                            break
                        if event_matches(ev, filters):
                            yield (json.dumps(ev.to_docker()) + "\n").encode()
            finally:
                daemon.events.unsubscribe(sub)

        return StreamResponse(gen(), 200, "application/json")

    r.add("GET", "/events", events)

    # -- containers --------------------------------------------------------------
    async def create(req):
        name = req.q("name") or ""
        body = await req.json(allow_empty=False)
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be a ContainerConfig object")
        rec = await create_container(daemon, body, name)
        return json_response({"Id": rec["Id"], "Warnings": []}, 201)

    r.add("POST", "/containers/create", create)

    async def list_containers(req):
        all_ = req.q_bool("all")
        limit = req.q_int("limit", -1)
        try:
            filters = C.parse_filters(req.q_json("filters"), C.CONTAINER_FILTERS)
        except C.ContainerError as exc:
            raise HTTPError(exc.status, exc.message) from None
        recs = sorted(daemon.records.values(), key=lambda x: x["Created"], reverse=True)
        if not all_ and not limit > 0 and "status" not in filters and "exited" not in filters:
            recs = [x for x in recs if x["State"]["Running"]]

        def lookup(ref):
            try:
                return daemon.find(ref)
            except RemoteError:
                return None

        try:
            out = [C.summary(x) for x in recs if C.matches(x, filters, lookup=lookup)]
        except C.ContainerError as exc:
            raise HTTPError(exc.status, exc.message) from None
        if limit and limit > 0:
            out = out[:limit]
        if req.q_bool("size"):
            for item in out:
                rec = daemon.records.get(item["Id"])
                if rec is not None:
                    item.update(await _sizes(daemon, rec))
        return json_response(out)

    r.add("GET", "/containers/json", list_containers)

    async def inspect(req):
        from .api_exec import running_exec_ids

        rec = daemon.find(req.params["id"])
        live = {"ExecIDs": running_exec_ids(daemon, rec["Id"])}
        if req.q_bool("size"):
            return json_response({**rec, **live, **await _sizes(daemon, rec)})
        return json_response({**rec, **live})

    r.add("GET", "/containers/{id}/json", inspect)

    async def start(req):
        rec = daemon.find(req.params["id"])
        if rec["State"]["Running"]:
            return Response(304, b"", None)
        await start_container(daemon, rec)
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/start", start)

    async def stop(req):
        rec = daemon.find(req.params["id"])
        t = req.q_int("t", None)
        sig = req.q("signal")
        if not rec["State"]["Running"]:
            return Response(304, b"", None)
        await stop_container(daemon, rec, t, parse_signal(sig, 0) if sig else None)
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/stop", stop)

    async def restart(req):
        rec = daemon.find(req.params["id"])
        t = req.q_int("t", None)
        if rec["State"]["Running"]:
            await stop_container(daemon, rec, t, None)
        await start_container(daemon, rec)
        daemon.events.publish("container", "restart", rec["Id"], daemon.event_attrs(rec))
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/restart", restart)

    async def kill(req):
        ref = req.params["id"]
        try:
            sig = parse_signal(req.q("signal"), signal_mod.SIGKILL)
            rec = daemon.find(ref)
            await kill_container(daemon, rec, sig)
        except (HTTPError, RemoteError) as exc:
            # dockerd: errors.Wrapf(err, "cannot kill container: %s", name)
            status, message = status_for(exc)
            raise HTTPError(status, f"cannot kill container: {ref}: {message}") from None
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/kill", kill)

    async def wait(req):
        rec = daemon.find(req.params["id"])
        cond = req.q("condition") or "not-running"
        if cond not in ("not-running", "next-exit", "removed"):
            raise HTTPError(400, f"invalid condition: {cond}")
        cid = rec["Id"]
        seq0 = daemon.exit_seq.get(cid, 0)

        async def done() -> dict:
            while True:
                current = daemon.records.get(cid)
                if cond == "removed":
                    if current is None:
                        code = daemon.removed_exit.get(cid, rec["State"].get("ExitCode", 0))
                        return {"StatusCode": code, "Error": None}
                elif current is None:
                    code = daemon.removed_exit.get(cid, rec["State"].get("ExitCode", 0))
                    return {"StatusCode": code, "Error": None}
                elif cond == "next-exit":
                    if daemon.exit_seq.get(cid, 0) > seq0:
                        return _wait_result(current)
                elif not current["State"]["Running"]:
                    return _wait_result(current)
                await daemon.wait_change(cid, 1.0)

        async def gen():
            # headers go out at once (clients start the container after them)
            yield b""
            yield Final((json.dumps(await done()) + "\n").encode())

        return StreamResponse(gen(), 200, "application/json")

    r.add("POST", "/containers/{id}/wait", wait)

    async def delete(req):
        rec = daemon.find(req.params["id"])
        await remove_container(daemon, rec, force=req.q_bool("force"), volumes=req.q_bool("v"))
        return Response(204, b"", None)

    r.add("DELETE", "/containers/{id}", delete)

    async def logs(req):
        rec = daemon.find(req.params["id"])
        stdout, stderr = req.q_bool("stdout"), req.q_bool("stderr")
        if not (stdout or stderr):
            raise HTTPError(400, "Bad parameters: you must choose at least one stream")
        follow = req.q_bool("follow")
        timestamps = req.q_bool("timestamps")
        tail = req.q("tail", "all") or "all"
        try:
            since = float(req.q("since") or 0)
            until = float(req.q("until")) if req.q("until") not in (None, "", "0") else None
        except ValueError:
            raise HTTPError(400, "invalid since or until value") from None
        tty = bool(rec["Config"].get("Tty"))
        path = rec["LogPath"]
        cid = rec["Id"]
        if tail == "all":
            offset = 0
        else:
            try:
                n = int(tail)
            except ValueError:
                raise HTTPError(400, f"invalid value for tail: {tail!r}") from None
            offset = L.tail_offset(path, n) if n >= 0 else 0
        seq0 = daemon.exit_seq.get(cid, 0)
        running0 = rec["State"]["Running"]

        reader = L.Follower(path, offset)

        async def follow_entries():
            while True:
                yield await trio.to_thread.run_sync(reader.read)
                if not follow or not running0:
                    return
                cur = daemon.records.get(cid)
                if cur is None or daemon.exit_seq.get(cid, 0) > seq0 or not cur["State"]["Running"]:
                    yield reader.read()
                    return
                await daemon.wait_change(cid, 0.05)

        async def gen():
            try:
                async for entries in follow_entries():
                    for chunk in L.render(entries, stdout=stdout, stderr=stderr, timestamps=timestamps,
                                          tty=tty, since=since, until=until):
                        yield chunk
            finally:
                reader.close()

        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        return StreamResponse(gen(), 200, ctype)

    r.add("GET", "/containers/{id}/logs", logs)

    async def attach(req):
        keys = attach_detach_keys(req.q("detachKeys") or "")  # checked first, as dockerd does
        rec = daemon.find(req.params["id"])
        # dockerd lets a client attach to a stopped container: the streams follow
        # its next run (`docker start -a` attaches first, then starts); refusing
        # is the docker CLI's own check for `docker attach`
        if rec["State"].get("Paused"):
            raise HTTPError(409, "container is paused, unpause the container before attaching")
        stdout, stderr, stdin = req.q_bool("stdout"), req.q_bool("stderr"), req.q_bool("stdin")
        want_logs, stream = req.q_bool("logs"), req.q_bool("stream")
        stdin = stdin and bool(rec["Config"].get("OpenStdin"))  # else dockerd ignores it
        stdin_once = bool(rec["Config"].get("StdinOnce"))
        tty = bool(rec["Config"].get("Tty"))
        cid = rec["Id"]
        path = rec["LogPath"]
        seq0 = daemon.exit_seq.get(cid, 0)
        # the log is held open from now on: a `run --rm` container is removed,
        # log and all, right after it exits; its last lines must still come
        reader = L.Follower(path, 0 if want_logs else L.size(path))

        async def run(conn: trio.abc.Stream, leftover: bytes) -> None:
            daemon.events.publish("container", "attach", cid, daemon.event_attrs(rec))
            gone = trio.Event()

            async def task_up() -> bool:
                # `run -i` attaches before start: stdin waits for the task
                while True:
                    cur = daemon.records.get(cid)
                    if cur is None or daemon.exit_seq.get(cid, 0) > seq0:
                        return False
                    if cur["State"]["Running"]:
                        return True
                    await daemon.wait_change(cid, 0.05)

            async def forward(data: bytes, eof: bool) -> None:
                if await task_up():
                    try:
                        await daemon.sup_request(sup.WriteStdin(container_id=cid, data=data, eof=eof))
                    except RemoteError:
                        pass  # the container closed its stdin or is gone

            # with a TTY, dockerd watches stdin for the detach keys (moby/term's
            # EscapeProxy): a prefix is held back, a broken one passed on, the
            # whole sequence ends this attach (event `detach`), the container runs on
            proxy = EscapeProxy(keys or DEFAULT_KEYS) if stdin and tty else None

            async def pump_input():
                # with stdin attached, the client's bytes go to the container in
                # order; its half-close closes the container's stdin (StdinOnce),
                # except with a TTY: then, as in dockerd, it ends the attach and
                # the container's stdin stays open.  Without, they are read and dropped.
                try:
                    data = leftover
                    while True:
                        if data and stdin:
                            detached = False
                            if proxy is not None:
                                data, detached = proxy.feed(data)
                            if data:
                                await forward(data, False)
                            if detached:
                                daemon.events.publish("container", "detach", cid, daemon.event_attrs(rec))
                                break
                        data = await conn.receive_some(65536)
                        if not data:
                            if stdin and stdin_once and not tty:
                                await forward(b"", True)
                            if not (stdin and tty):
                                return
                            break
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                gone.set()
                n.cancel_scope.cancel()

            async def send(entries):
                for chunk in L.render(entries, stdout=stdout, stderr=stderr, timestamps=False, tty=tty):
                    await conn.send_all(chunk)

            try:
                async with trio.open_nursery() as n:
                    n.start_soon(pump_input)
                    while not gone.is_set():
                        await send(await trio.to_thread.run_sync(reader.read))
                        if not stream:
                            break
                        cur = daemon.records.get(cid)
                        if cur is None or daemon.exit_seq.get(cid, 0) > seq0:
                            await send(reader.read())
                            break
                        await daemon.wait_change(cid, 0.05)
                    n.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                reader.close()
                with trio.CancelScope(shield=True):
                    await conn.aclose()

        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        return Hijack(run, ctype)

    r.add("POST", "/containers/{id}/attach", attach)

    async def resize(req):
        rec = daemon.find(req.params["id"])
        h, w = req.q_int("h", 0), req.q_int("w", 0)
        if not rec["State"]["Running"]:
            raise HTTPError(409, f"Container {rec['Id']} is not running")
        if not rec["Config"].get("Tty"):
            return Response(200, b"", None)  # dockerd ignores a resize without a TTY
        await daemon.sup_request(sup.ResizeTask(container_id=rec["Id"], height=h, width=w))
        return Response(200, b"", None)

    r.add("POST", "/containers/{id}/resize", resize)

    # -- rename, top, stats, prune --------------------------------------------------
    async def rename(req):
        new_name = req.q("name") or ""
        if not new_name:
            raise HTTPError(400, "Neither old nor new names may be empty")
        rec = daemon.find(req.params["id"])
        cid = rec["Id"]
        async with daemon.lock(cid):
            if cid not in daemon.records:
                raise HTTPError(404, f"No such container: {req.params['id']}")
            try:
                full = C.rename_check(rec, new_name, daemon.names)
            except C.ContainerError as exc:
                raise HTTPError(exc.status, exc.message) from None
            old = rec["Name"]
            daemon.names[full] = cid  # claimed before anything can fail
            rec["Name"] = full
            try:
                daemon.save(rec)
            except BaseException:
                rec["Name"] = old
                daemon.names.pop(full, None)
                raise
            if daemon.names.get(old) == cid:
                daemon.names.pop(old, None)
        daemon.events.publish("container", "rename", cid, daemon.event_attrs(rec, oldName=old))
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/rename", rename)

    async def top(req):
        rec = daemon.find(req.params["id"])
        ps_args = req.q("ps_args") or ""
        if not rec["State"]["Running"]:
            raise HTTPError(409, f"Container {rec['Id']} is not running")
        try:
            C.ps_columns(ps_args)  # bad arguments fail before any work
            body = await trio.to_thread.run_sync(_top, daemon, rec, ps_args)
        except C.ContainerError as exc:
            raise HTTPError(exc.status, exc.message) from None
        return json_response(body)

    r.add("GET", "/containers/{id}/top", top)

    async def stats(req):
        rec = daemon.find(req.params["id"])
        stream = req.q_bool("stream", True)
        one_shot = req.q_bool("one-shot")
        if one_shot and stream:
            raise HTTPError(400, "cannot have stream=true and one-shot=true")
        cid = rec["Id"]

        async def sample_of(current: dict) -> tuple[dict | None, int]:
            if not current["State"]["Running"]:
                return None, 0
            return await trio.to_thread.run_sync(_stats_sample, daemon, current), time.time_ns()

        if not stream:
            first, first_ns = await sample_of(rec)
            if first is None:
                return json_response(C.empty_stats(rec))
            if one_shot:
                return json_response(C.stats_json(rec, first, None, first_ns, 0))
            await trio.sleep(STATS_INTERVAL)  # dockerd primes the cpu stats with a first frame
            second, second_ns = await sample_of(rec)
            if second is None:
                return json_response(C.empty_stats(rec))
            return json_response(C.stats_json(rec, second, first, second_ns, first_ns))

        async def gen():
            pre, pre_ns = None, 0
            while True:
                current = daemon.records.get(cid)
                if current is None:
                    return  # removed: the stream ends
                cur, cur_ns = await sample_of(current)
                if cur is None:
                    yield (json.dumps(C.empty_stats(current)) + "\n").encode()
                    pre = None
                else:
                    yield (json.dumps(C.stats_json(current, cur, pre, cur_ns, pre_ns)) + "\n").encode()
                    pre, pre_ns = cur, cur_ns
                await trio.sleep(STATS_INTERVAL)

        return StreamResponse(gen(), 200, "application/json")

    r.add("GET", "/containers/{id}/stats", stats)

    async def prune(req):
        try:
            filters = C.parse_filters(req.q_json("filters"), {"until", "label", "label!"})
            until = _prune_until(filters.get("until", []))
        except C.ContainerError as exc:
            raise HTTPError(exc.status, exc.message) from None
        deleted, reclaimed = [], 0
        for rec in sorted(daemon.records.values(), key=lambda x: x["Created"]):
            st = rec["State"]
            if st["Running"] or st["Paused"] or st["Restarting"] or st["Status"] == "removing":
                continue
            labels = rec["Config"].get("Labels") or {}
            if "label" in filters and not C.labels_match(labels, filters["label"]):
                continue
            if "label!" in filters and any(C.labels_match(labels, [w]) for w in filters["label!"]):
                continue
            if until is not None and C.parse_rfc3339(rec["Created"]) >= until:
                continue
            size = await trio.to_thread.run_sync(_du, rec["GraphDriver"]["Data"]["UpperDir"])
            try:
                await remove_container(daemon, rec, force=False)
            except (HTTPError, RemoteError) as exc:
                log.warning("prune: could not remove %s: %s", rec["Id"][:12], exc)
                continue
            deleted.append(rec["Id"])
            reclaimed += size
        daemon.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        # dockerd's nil slice: null when nothing was deleted
        return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})

    r.add("POST", "/containers/prune", prune)

    async def system_df(req):
        imgs = await trio.to_thread.run_sync(daemon.images.list)
        counts: dict[str, int] = {}
        for rec in daemon.records.values():
            counts[rec.get("Image", "")] = counts.get(rec.get("Image", ""), 0) + 1
        images = []
        for img in imgs:
            item = img.to_docker_summary()
            item["Containers"] = counts.get(item["Id"], 0)
            item.setdefault("SharedSize", 0)
            images.append(item)
        sizes = {i["Id"]: i.get("Size", 0) for i in images}
        containers = []
        for rec in sorted(daemon.records.values(), key=lambda x: x["Created"], reverse=True):
            item = C.summary(rec)
            item["SizeRw"] = await trio.to_thread.run_sync(_du, rec["GraphDriver"]["Data"]["UpperDir"])
            item["SizeRootFs"] = item["SizeRw"] + sizes.get(rec.get("Image", ""), 0)
            containers.append(item)
        return json_response({"LayersSize": sum(sizes.values()), "Images": images,
                              "Containers": containers, "BuildCache": [],
                              "Volumes": await api_volumes.df_volumes(daemon)})

    r.add("GET", "/system/df", system_df)

    from . import api_files, api_images, api_volumes

    api_files.add_routes(r, daemon)
    api_images.add_routes(r, daemon)
    api_volumes.add_routes(r, daemon)

    from . import api_exec

    api_exec.add_routes(r, daemon)

    # -- not there yet -----------------------------------------------------------
    async def not_yet(req):
        area = req.path.strip("/").split("/")[0]
        raise HTTPError(501, f"{req.method} {req.path}: {area} are not implemented in trioctr yet")

    # no networks exist yet: looking one up finds nothing (so that
    # `docker inspect NAME`, which tries every kind of object, says "No such object")
    async def network_inspect(req):
        raise HTTPError(404, f"network {req.params['id']} not found")

    r.add("GET", "/networks/{id}", network_inspect)

    for method, pattern in (
        ("GET", "/networks"), ("POST", "/networks/create"),
        ("DELETE", "/networks/{id}"), ("POST", "/networks/prune"),
        ("POST", "/build"),
    ):
        r.add(method, pattern, not_yet)
    return r


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _wait_result(rec: dict) -> dict:
    st = rec["State"]
    err = {"Message": st["Error"]} if st.get("Error") else None
    return {"StatusCode": st.get("ExitCode", 0), "Error": err}


# -- container operations (shared by routes and the daemon) ------------------------
async def create_container(daemon, body: dict, name: str) -> dict:
    check_types(body, CONFIG_TYPES, "ContainerConfigWrapper")
    cfg_in = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    hc = _expect(body.get("HostConfig"), dict, "HostConfig")
    check_types(hc, HOSTCONFIG_TYPES, "HostConfig")
    for key in ("Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod"):
        if isinstance(hc.get(key), float):
            hc[key] = int(hc[key])  # 1e9 is a number JSON writers send for an int64
    for key, value in hc.items():
        if key == "MemorySwappiness" and value in (None, -1):
            continue  # -1 is the clients' "unset"
        if key not in HOSTCONFIG_SUPPORTED and key in HOSTCONFIG_KNOWN and not _empty(value):
            raise HTTPError(400, f"HostConfig.{key} is not supported by trioctr yet")
    for key in ("MacAddress", "Healthcheck", "OnBuild", "Shell"):
        if not _empty(cfg_in.get(key)):
            raise HTTPError(400, f"Config.{key} is not supported by trioctr yet")
    rp = _expect(hc.get("RestartPolicy"), dict, "RestartPolicy")
    if rp.get("Name") not in (None, "", "no"):
        raise HTTPError(400, f"restart policy {rp.get('Name')!r} is not supported by trioctr yet")
    lc = _expect(hc.get("LogConfig"), dict, "LogConfig")
    if lc.get("Type") not in (None, "", "json-file"):
        raise HTTPError(400, f"logging driver {lc.get('Type')!r} is not supported by trioctr yet")
    nm = hc.get("NetworkMode") or "default"
    if not isinstance(nm, str) or nm not in ("default", "bridge", "none", "host"):
        raise HTTPError(400, f"network mode {nm!r} is not supported by trioctr yet")
    for key in ("CgroupnsMode",):
        if hc.get(key) not in (None, "", "private"):
            raise HTTPError(400, f"HostConfig.{key}={hc[key]!r} is not supported by trioctr yet")
    if hc.get("IpcMode") not in (None, "", "private", "shareable"):
        raise HTTPError(400, f"IPC mode {hc['IpcMode']!r} is not supported by trioctr yet")
    security_options(hc.get("SecurityOpt") or [], list(hc.get("CapAdd") or []),
                     list(hc.get("CapDrop") or []))
    if hc.get("Init"):
        raise HTTPError(400, "--init is not supported by trioctr yet")
    if hc.get("OomKillDisable"):
        raise HTTPError(400, "--oom-kill-disable is not supported by trioctr yet")
    for key in ("Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod"):
        v = hc.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise HTTPError(400, f"json: cannot unmarshal {_json_type(v)} into HostConfig.{key} of type int64")
    mem = hc.get("Memory") or 0
    if mem and mem < MIN_MEMORY:
        raise HTTPError(400, "Minimum memory limit allowed is 6MB")
    swap = hc.get("MemorySwap") or 0
    if swap > 0 and mem and swap < mem:
        raise HTTPError(400, "Minimum memoryswap limit should be larger than memory limit, see usage")
    if swap > 0 and not mem:
        raise HTTPError(400, "You should always set the Memory limit when using Memoryswap limit, see usage")
    if (hc.get("NanoCpus") or 0) < 0:
        raise HTTPError(400, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
    ncpu = os.cpu_count() or 1
    if (hc.get("NanoCpus") or 0) > ncpu * 10**9:
        raise HTTPError(400, f"Range of CPUs is from 0.01 to {ncpu:.2f}, as there are only {ncpu} CPUs available")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise HTTPError(400, "Conflicting options: Nano CPUs and CPU Period cannot both be set")
    runtime = hc.get("Runtime") or ""
    if runtime and runtime != "trioctr" and runtime not in daemon.config.runtimes:
        raise HTTPError(400, f"unknown or invalid runtime name: {runtime}")
    image_ref = cfg_in.get("Image")
    if image_ref is not None and not isinstance(image_ref, str):
        raise HTTPError(400, f"json: cannot unmarshal {_json_type(image_ref)} into Config.Image of type string")
    if not image_ref:
        raise HTTPError(400, "No image was specified")
    cmd = _str_list(cfg_in.get("Cmd"), "Config.Cmd")
    entrypoint = _str_list(cfg_in.get("Entrypoint"), "Config.Entrypoint")
    env = _str_list(cfg_in.get("Env"), "Config.Env") or []
    for item in env:
        if item.startswith("="):
            raise HTTPError(400, f"invalid environment variable: {item}")
    labels = _expect(cfg_in.get("Labels"), dict, "Config.Labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise HTTPError(400, "json: cannot unmarshal into Config.Labels of type map[string]string")
    for key in ("User", "WorkingDir", "Hostname", "Domainname", "StopSignal"):
        if cfg_in.get(key) is not None and not isinstance(cfg_in.get(key), str):
            raise HTTPError(400, f"json: cannot unmarshal {_json_type(cfg_in[key])} into Config.{key} of type string")
    wd = cfg_in.get("WorkingDir") or ""
    if wd and not wd.startswith("/"):
        raise HTTPError(400, f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    if name:
        try:
            full_name = C.validate_name(name)
        except C.ContainerError as exc:
            raise HTTPError(400, exc.message) from None
    image = await get_image(daemon, image_ref)
    from oci.spec import merge_config

    user_cfg = {"Cmd": cmd, "Entrypoint": entrypoint, "Env": env, "Labels": labels,
                "WorkingDir": wd, "User": cfg_in.get("User") or "",
                "StopSignal": cfg_in.get("StopSignal") or "",
                "ExposedPorts": cfg_in.get("ExposedPorts") or None,
                "Volumes": cfg_in.get("Volumes") or None}
    merged = merge_config(user_cfg, image.config or {})  # Docker's merge; "No command specified"
    argv = list(merged.get("Entrypoint") or []) + list(merged.get("Cmd") or [])
    from . import api_volumes

    mount_points = api_volumes.plan(hc, merged.get("Volumes"))  # 400s before anything is made
    if hc.get("CapAdd") or hc.get("CapDrop"):
        from oci.spec import capabilities

        capabilities(list(hc.get("CapAdd") or []), list(hc.get("CapDrop") or []))
    cid = C.new_id()
    if name:
        if full_name in daemon.names:
            other = daemon.names[full_name]
            raise HTTPError(409, f'Conflict. The container name "{full_name}" is already in use by container '
                                 f'"{other}". You have to remove (or rename) that container to be able to reuse that name.')
    else:
        full_name = C.generate_name(set(daemon.names))
    d = daemon.container_dir(cid)
    cfg = {
        "Hostname": cfg_in.get("Hostname") or cid[:12], "Domainname": cfg_in.get("Domainname") or "",
        "User": merged.get("User") or "", "AttachStdin": bool(cfg_in.get("AttachStdin")),
        "AttachStdout": bool(cfg_in.get("AttachStdout")),
        "AttachStderr": bool(cfg_in.get("AttachStderr")), "Tty": bool(cfg_in.get("Tty")),
        "OpenStdin": bool(cfg_in.get("OpenStdin")), "StdinOnce": bool(cfg_in.get("StdinOnce")), "Env": merged.get("Env") or [], "Cmd": merged.get("Cmd"),
        "Image": image_ref, "Volumes": merged.get("Volumes") or None,
        "WorkingDir": merged.get("WorkingDir") or "",
        "Entrypoint": merged.get("Entrypoint"), "OnBuild": None, "Labels": merged.get("Labels") or {},
    }
    if merged.get("StopSignal"):
        cfg["StopSignal"] = merged["StopSignal"]
        parse_signal(cfg["StopSignal"])
    if cfg_in.get("StopTimeout") is not None:
        cfg["StopTimeout"] = cfg_in["StopTimeout"]
    if merged.get("ExposedPorts"):
        cfg["ExposedPorts"] = merged["ExposedPorts"]
    host_config = {
        "Binds": hc.get("Binds") or None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": nm, "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": bool(hc.get("AutoRemove")), "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": hc.get("CapAdd"), "CapDrop": hc.get("CapDrop"), "CgroupnsMode": "private",
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": bool(hc.get("ReadonlyRootfs")),
        "SecurityOpt": list(hc.get("SecurityOpt") or []) or None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 67108864,
        "Runtime": runtime or daemon.config.default_runtime, "Isolation": "",
        "CpuShares": hc.get("CpuShares") or 0, "Memory": mem, "NanoCpus": hc.get("NanoCpus") or 0,
        "CgroupParent": "", "CpuPeriod": hc.get("CpuPeriod") or 0, "CpuQuota": hc.get("CpuQuota") or 0,
        "MemorySwap": swap, "PidsLimit": hc.get("PidsLimit") or None, "OomKillDisable": False,
        "MaskedPaths": None, "ReadonlyPaths": None,
    }
    for key in ("Mounts", "Tmpfs"):  # omitempty in dockerd
        if hc.get(key):
            host_config[key] = hc[key]
    now = time.time_ns()
    rec = {
        "Id": cid, "Created": C.rfc3339nano(now), "Path": argv[0], "Args": argv[1:],
        "State": C.new_state(), "Image": image.id,
        "ResolvConfPath": os.path.join(d, "resolv.conf"), "HostnamePath": os.path.join(d, "hostname"),
        "HostsPath": os.path.join(d, "hosts"), "LogPath": os.path.join(d, f"{cid}-json.log"),
        "Name": full_name, "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": os.path.join(d, "rootfs", "upper"), "WorkDir": os.path.join(d, "rootfs", "work"),
            "MergedDir": os.path.join(daemon.config.exec_root, "shims", cid, "bundle", "rootfs")}},
        "Mounts": [], "Config": cfg,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": {},
                            "SandboxKey": "", "Networks": {}},
    }
    # claim the name before any await: two racing creates cannot both win
    daemon.names[full_name] = cid
    try:
        if mount_points:
            layers = await trio.to_thread.run_sync(daemon.images.layer_dirs, image)
            await api_volumes.attach(daemon, rec, mount_points, layers)
        os.makedirs(os.path.join(d, "rootfs", "upper"), mode=0o755)
        os.makedirs(os.path.join(d, "rootfs", "work"), mode=0o700)
        _write_etc_files(rec)
        # the json-file log exists from the start (the shim appends to it), so
        # that an attach made before the start holds it open (see L.Follower)
        os.close(os.open(rec["LogPath"], os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
        daemon.records[cid] = rec
        daemon.save(rec)
    except BaseException:
        daemon.names.pop(full_name, None)
        daemon.records.pop(cid, None)
        shutil.rmtree(d, ignore_errors=True)
        with trio.CancelScope(shield=True):
            api_volumes.release_holds(daemon, cid)
            await api_volumes.remove_anonymous(daemon, rec)
        raise
    finally:
        api_volumes.release_holds(daemon, cid)
    daemon.events.publish("container", "create", cid, daemon.event_attrs(rec))
    return rec


def _write_etc_files(rec: dict) -> None:
    cfg = rec["Config"]
    hostname = cfg["Hostname"]
    with open(rec["HostnamePath"], "w") as f:
        f.write(hostname + "\n")
    with open(rec["HostsPath"], "w") as f:
        f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                f"ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n")
    lines = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                # loopback resolvers of the host do not work from a container's netns
                if parts and parts[0] == "nameserver" and len(parts) > 1 and (
                        parts[1].startswith("127.") or parts[1] == "::1"):
                    continue
                lines.append(line.rstrip("\n"))
    except OSError:
        pass
    with open(rec["ResolvConfPath"], "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def security_options(opts: list, cap_add: list[str], cap_drop: list[str]) -> tuple[dict | None, bool]:
    """HostConfig.SecurityOpt as dockerd reads it -> (linux.seccomp or None
    for unconfined, no_new_privileges).  Without a seccomp option: Docker's
    default profile for the container's capabilities.  Raises HTTPError(400)
    with dockerd's wording for what it refuses, and refuses what it would
    apply but this engine cannot (AppArmor profiles, SELinux labels)."""
    from linux.seccomp import check as check_seccomp
    from oci.seccomp import default_seccomp_for, from_profile
    from oci.spec import capabilities

    seccomp_opt = None
    nnp = False
    for opt in opts:
        if not isinstance(opt, str):
            raise HTTPError(400, f"invalid --security-opt 1: {opt!r}")
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            continue  # (SELinux labels off: there are none)
        if opt == "systempaths=unconfined":
            raise HTTPError(400, "--security-opt systempaths=unconfined is not supported by trioctr yet")
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise HTTPError(400, f'invalid --security-opt 1: "{opt}"')
        key, value = opt.split(sep, 1)
        if key == "seccomp":
            seccomp_opt = value
        elif key == "no-new-privileges":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise HTTPError(400, f'invalid --security-opt 2: "{opt}"')
            nnp = value.lower() in ("1", "t", "true")
        elif key == "apparmor":
            if value != "unconfined":
                raise HTTPError(400, f"AppArmor profile {value!r} is not supported by trioctr "
                                     "(no AppArmor): use apparmor=unconfined or leave it out")
        elif key == "label":
            if value not in ("disable", "disabled"):
                raise HTTPError(400, f"SELinux label option {value!r} is not supported by trioctr "
                                     "(no SELinux): use label=disable or leave it out")
        else:
            raise HTTPError(400, f'invalid --security-opt 2: "{opt}"')
    caps = capabilities(cap_add, cap_drop)
    if seccomp_opt in (None, "", "builtin"):
        return default_seccomp_for(tuple(caps)), nnp
    if seccomp_opt == "unconfined":
        return None, nnp
    try:
        profile = json.loads(seccomp_opt)
        if not isinstance(profile, dict):
            raise ValueError("the profile must be a JSON object")
        if not profile.get("defaultAction"):
            raise ValueError("the profile has no defaultAction")
        seccomp = from_profile(profile, caps)
        check_seccomp(seccomp)
        return seccomp, nnp
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HTTPError(400, f"Decoding seccomp profile failed: {exc}") from None


def spec_for_record(rec: dict, layers: list[str], cgroup_parent: str) -> dict:
    """The OCI runtime config for a container record (its Config is already
    merged with the image's, so the image config given to the builder is it)."""
    from oci.spec import ContainerSpecInput, build_spec
    from .volumes import oci_mounts

    cfg, hc = rec["Config"], rec["HostConfig"]
    seccomp, nnp = security_options(hc.get("SecurityOpt") or [], list(hc.get("CapAdd") or []),
                                    list(hc.get("CapDrop") or []))
    namespaces = None
    if hc.get("NetworkMode") == "host":
        namespaces = {"mount": "", "uts": "", "pid": "", "ipc": "", "cgroup": ""}
    spec = build_spec(ContainerSpecInput(
        container_id=rec["Id"], image_config={"config": cfg}, user=cfg.get("User") or "",
        hostname=cfg.get("Hostname") or "", domainname=cfg.get("Domainname") or "",
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")), layer_dirs=layers,
        tty=bool(cfg.get("Tty")), open_stdin=bool(cfg.get("OpenStdin")),
        memory=hc.get("Memory") or 0, memory_swap=hc.get("MemorySwap") or 0,
        pids_limit=hc.get("PidsLimit"), nano_cpus=hc.get("NanoCpus") or 0,
        cpu_shares=hc.get("CpuShares") or 0, cpu_quota=hc.get("CpuQuota") or 0,
        cpu_period=hc.get("CpuPeriod") or 0, cgroup_parent=cgroup_parent,
        memory_reservation=hc.get("MemoryReservation") or 0,
        cpuset_cpus=hc.get("CpusetCpus") or "", cpuset_mems=hc.get("CpusetMems") or "",
        cap_add=list(hc.get("CapAdd") or []), cap_drop=list(hc.get("CapDrop") or []),
        seccomp=seccomp, no_new_privileges=nnp,
        hostname_path=rec["HostnamePath"], hosts_path=rec["HostsPath"],
        resolv_conf_path=rec["ResolvConfPath"], namespaces=namespaces,
        labels=dict(cfg.get("Labels") or {}), mounts=oci_mounts(rec)))
    if hc.get("BlkioWeight"):  # set by an update
        spec["linux"].setdefault("resources", {})["blockIO"] = {"weight": int(hc["BlkioWeight"])}
    return spec


async def start_container(daemon, rec: dict) -> None:
    cid = rec["Id"]
    async with daemon.lock(cid):
        if cid not in daemon.records:
            raise RemoteError(ErrorCode.NOT_FOUND, f"No such container: {cid}")
        if rec["State"]["Running"]:
            return
        try:
            image = await get_image(daemon, rec["Image"])
            layers = await trio.to_thread.run_sync(daemon.images.layer_dirs, image)
        except HTTPError as exc:
            # its image was force-removed: the layers were kept for it
            layers = daemon.images.pinned_layer_dirs(cid)
            if exc.status != 404 or layers is None:
                raise
        spec = await trio.to_thread.run_sync(spec_for_record, rec, layers, daemon.config.cgroup_parent)
        lower = ":".join(reversed(layers))
        gd = rec["GraphDriver"]["Data"]
        gd["LowerDir"] = lower
        mounts = [sup.Mount(type="overlay", source="overlay", options=[
            f"lowerdir={lower}", f"upperdir={gd['UpperDir']}", f"workdir={gd['WorkDir']}"])]
        runtime = rec["HostConfig"].get("Runtime") or ""
        if runtime == "trioctr":
            runtime = ""
        create = sup.CreateTask(container_id=cid, spec=spec, rootfs=mounts, log_path=rec["LogPath"],
                                runtime=runtime, stdin=bool(rec["Config"].get("OpenStdin")),
                                terminal=bool(rec["Config"].get("Tty")), start=True)
        try:
            await _previous_task_gone(daemon, cid)
            created = await _create_task(daemon, create)
        except RemoteError as exc:
            if exc.code is ErrorCode.EXEC_FAILED:
                msg = ("failed to create task for container: OCI runtime create failed: "
                       f"unable to start container process: {exc.message}: unknown")
                C.mark_start_failed(rec, exc.exit_code or 128, msg)
                daemon.save(rec)
                _auto_remove_later(daemon, rec)
                raise HTTPError(400, msg) from None
            C.mark_start_failed(rec, 128, f"failed to create task for container: {exc.message}")
            daemon.save(rec)
            _auto_remove_later(daemon, rec)
            raise
        try:
            started = created if created.started else await _start_task(daemon, cid)
        except RemoteError:
            try:
                await sup_call(daemon, sup.KillTask(container_id=cid, signal=signal_mod.SIGKILL, all=True))
            except RemoteError:
                pass
            raise
        C.mark_started(rec, started.pid or created.pid, time.time_ns())
        daemon.save_soon(rec)
        daemon.events.publish("container", "start", cid, daemon.event_attrs(rec))


def _link_broke(exc: RemoteError) -> bool:
    return exc.code is ErrorCode.UNAVAILABLE


SUP_ATTEMPTS = 8  # a request survives this many supervisor deaths in a row


async def _link_settled(daemon, timeout: float = 5.0) -> None:
    """After a request failed because the supervisor link broke: wait until
    the daemon has noticed (it drops the dead link and waits for a new
    supervisor, which ``sup_request`` then waits for)."""
    with trio.move_on_after(timeout):
        while daemon.sup_link is not None and daemon.sup_link.closed:
            await trio.sleep(0.02)


async def sup_call(daemon, msg, *, timeout: float = 60.0):
    """A request to the supervisor that survives a supervisor restart.

    When the link breaks while the request is in flight (the supervisor died
    and the daemon is starting a new one), the request is asked again of the
    new supervisor.  Only for requests that may be repeated: kill, delete,
    list."""
    for attempt in range(SUP_ATTEMPTS):
        try:
            return await daemon.sup_request(msg, timeout=timeout)
        except RemoteError as exc:
            if not _link_broke(exc) or attempt == SUP_ATTEMPTS - 1:
                raise
            log.warning("supervisor link broke during %s (%s); asking again", type(msg).__name__, exc.message)
            await _link_settled(daemon)


async def _find_task(daemon, cid: str):
    reply = await sup_call(daemon, sup.ListTasks())
    for task in reply.tasks:
        if task.container_id == cid:
            return task
    return None


async def _create_task(daemon, create: "sup.CreateTask"):
    cid = create.container_id
    try:
        return await daemon.sup_request(create)
    except RemoteError as exc:
        if exc.code is ErrorCode.ALREADY_EXISTS:
            # the previous run's task is still there (its exit is being
            # acknowledged): delete it ourselves and try once more
            await _delete_task_quietly(daemon, cid)
            await _previous_task_gone(daemon, cid)
            return await daemon.sup_request(create)
        if not _link_broke(exc):
            raise
    # the supervisor went away during the create: the new one has either
    # re-adopted the created task (use it) or never saw it (create again)
    for attempt in range(SUP_ATTEMPTS):
        log.warning("supervisor link broke while creating the task of %s; recovering", cid[:12])
        await _link_settled(daemon)
        task = await _find_task(daemon, cid)
        if task is not None and task.status == "created":
            return sup.TaskCreated(container_id=cid, pid=task.pid)
        if task is not None and create.start and task.status in ("running", "paused", "stopped"):
            # the create and its start went through (a stopped one has exited
            # since: its exit event follows)
            return sup.TaskCreated(container_id=cid, pid=task.pid, started=True)
        if task is not None:
            await _delete_task_quietly(daemon, cid)
            await _previous_task_gone(daemon, cid)
        try:
            return await daemon.sup_request(create)
        except RemoteError as exc:
            if not _link_broke(exc) or attempt == SUP_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _start_task(daemon, cid: str):
    try:
        return await daemon.sup_request(sup.StartTask(container_id=cid))
    except RemoteError as exc:
        if not _link_broke(exc):
            raise
    for attempt in range(SUP_ATTEMPTS):
        log.warning("supervisor link broke while starting the task of %s; recovering", cid[:12])
        await _link_settled(daemon)
        task = await _find_task(daemon, cid)
        if task is not None and task.status in ("running", "stopped"):
            return task  # it did start (and maybe already exited: its exit event follows)
        try:
            return await daemon.sup_request(sup.StartTask(container_id=cid))
        except RemoteError as exc:
            if not _link_broke(exc):
                # the first start may have gone through after all (the shim
                # finishes a runtime command whoever is listening): then this
                # one is refused as a second start, and the task is running
                task = await _find_task(daemon, cid)
                if task is not None and task.status in ("running", "stopped"):
                    return task
                raise
            if attempt == SUP_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _shim_dir(daemon, cid: str) -> str:
    return os.path.join(daemon.config.exec_root, "shims", cid)


async def _delete_task_quietly(daemon, cid: str) -> None:
    try:
        await sup_call(daemon, sup.DeleteTask(container_id=cid), timeout=30)
    except RemoteError:
        pass


async def _previous_task_gone(daemon, cid: str, timeout: float = 5.0) -> None:
    """Before a task is created again (start after stop, restart): the previous
    run's shim must be gone.  Its exit is acknowledged (DeleteTask) by the
    daemon after the record says 'exited', and the shim removes its directory
    just after it answered the delete; a new shim started in between would
    lose its directory to the old one."""
    path = _shim_dir(daemon, cid)
    with trio.move_on_after(timeout):
        while os.path.lexists(path):
            await trio.sleep(0.02)
        return
    # nobody acknowledged that exit (the supervisor was away): do it now
    await _delete_task_quietly(daemon, cid)
    with trio.move_on_after(timeout):
        while os.path.lexists(path):
            await trio.sleep(0.02)


def _auto_remove_later(daemon, rec: dict) -> None:
    """A --rm container that could not start is removed, as Docker does."""
    if rec["HostConfig"].get("AutoRemove"):
        async def later():
            try:
                await remove_container(daemon, rec, force=True, auto=True)
            except (RemoteError, HTTPError):
                pass
        daemon.nursery.start_soon(later)


async def kill_container(daemon, rec: dict, sig: int) -> None:
    cid = rec["Id"]
    if not rec["State"]["Running"]:
        raise HTTPError(409, f"Container {cid} is not running")
    daemon.events.publish("container", "kill", cid, daemon.event_attrs(rec, signal=str(sig)))
    paused = bool(rec["State"].get("Paused"))
    try:
        await sup_call(daemon, sup.KillTask(container_id=cid, signal=sig, all=False))
    except RemoteError as exc:
        if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.FAILED_PRECONDITION):
            raise HTTPError(409, f"Container {cid} is not running") from None
        raise
    if paused:
        # as dockerd: the signal is delivered once the container is thawed
        from .api_exec import unpause_container

        try:
            await unpause_container(daemon, rec, quiet=True)
        except HTTPError as exc:
            log.warning("could not unpause %s after kill: %s", cid[:12], exc.message)


async def _wait_not_running(daemon, cid: str, timeout: float | None) -> bool:
    with trio.move_on_after(timeout if timeout is not None else float("inf")):
        while True:
            rec = daemon.records.get(cid)
            if rec is None or not rec["State"]["Running"]:
                return True
            await daemon.wait_change(cid, 0.5)
    return False


async def stop_container(daemon, rec: dict, t: int | None, sig: int | None) -> None:
    cid = rec["Id"]
    if t is None:
        t = rec["Config"].get("StopTimeout")
        if t is None:
            t = 10
    if sig is None:
        sig = parse_signal(rec["Config"].get("StopSignal") or "SIGTERM")
    if rec["State"]["Running"]:
        try:
            await kill_container(daemon, rec, sig)
        except HTTPError:
            pass
        if t < 0 or not await _wait_not_running(daemon, cid, t if t >= 0 else None):
            if rec["State"]["Running"]:
                try:
                    await kill_container(daemon, rec, signal_mod.SIGKILL)
                except HTTPError:
                    pass
                await _wait_not_running(daemon, cid, None)
    daemon.events.publish("container", "stop", cid, daemon.event_attrs(rec))


async def remove_container(daemon, rec: dict, *, force: bool, auto: bool = False,
                           volumes: bool = False, exited: bool = False) -> None:
    """``exited``: the auto-removal of a container whose task just exited: its
    record goes first (a `wait` for its removal is answered at once), then
    its task (the shim unmounts its root), then its directory."""
    cid = rec["Id"]
    if rec["State"]["Running"]:
        if not force:
            raise HTTPError(409, f'cannot remove container "{rec["Name"]}": container is running: '
                                 "stop the container before removing or force remove")
        try:
            await kill_container(daemon, rec, signal_mod.SIGKILL)
        except HTTPError:
            pass  # it exited in the meantime
        await _wait_not_running(daemon, cid, None)
    async with daemon.lock(cid):
        if cid not in daemon.records:
            return
        early = exited and not rec["State"]["Running"]
        rec["State"]["Status"] = "removing"
        if early:
            _forget_record(daemon, rec)
            daemon.notify(cid)
        # a task that never ran (create failed half-way) may still have a shim
        try:
            await sup_call(daemon, sup.DeleteTask(container_id=cid), timeout=30)
        except RemoteError as exc:
            if exc.code is ErrorCode.FAILED_PRECONDITION and not early:
                rec["State"]["Status"] = "running" if rec["State"]["Running"] else "exited"
                raise HTTPError(409, f"container {cid} is still running") from None
            if exc.code is not ErrorCode.NOT_FOUND:
                log.warning("delete of the task of %s failed: %s", cid[:12], exc.message)
        if not early:
            _forget_record(daemon, rec)
        await daemon.discard_dir(daemon.container_dir(cid))
        if daemon.images.has_pins(cid):
            # it was the last user of layers whose image was force-removed:
            # they go now (dockerd's layers are reference-counted the same way)
            from .api_images import container_uses

            container_uses(daemon)
            await trio.to_thread.run_sync(daemon.images.collect)
    daemon.events.publish("container", "destroy", cid, daemon.event_attrs(rec))
    daemon.notify(cid)
    if volumes or auto:  # `rm -v`, and --rm as dockerd's autoremove: the anonymous volumes
        from .api_volumes import remove_anonymous

        await remove_anonymous(daemon, rec)


def _forget_record(daemon, rec: dict) -> None:
    from .api_exec import forget_execs

    cid = rec["Id"]
    daemon.removed_exit[cid] = rec["State"].get("ExitCode", 0)
    daemon.records.pop(cid, None)
    forget_execs(daemon, cid)
    if daemon.names.get(rec["Name"]) == cid:
        daemon.names.pop(rec["Name"], None)


# -- top and stats: /proc and the container's cgroup ---------------------------------
STATS_INTERVAL = 1.0  # dockerd's stats collector samples once a second


def _container_cgroup(daemon, rec: dict):
    from linux.cgroups import open_cgroup
    from oci.spec import cgroups_path

    return open_cgroup(cgroups_path(daemon.config.cgroup_parent, rec["Id"]))


def _read_proc(pid: int) -> dict | None:
    """One process as `ps` sees it, from /proc/PID/{stat,status,cmdline}."""
    import pwd

    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None  # gone meanwhile
    lp, rp = stat.index("("), stat.rindex(")")
    comm = stat[lp + 1:rp]
    f = stat[rp + 2:].split()  # f[0] is field 3 (state)
    uid = 0
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[2])  # the effective uid, as ps -f shows
            break
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0")]
    while args and args[-1] == "":
        args.pop()
    return {"pid": pid, "ppid": int(f[1]), "uid": uid, "user": user, "state": f[0], "comm": comm,
            "args": args, "tty": int(f[4]), "utime": int(f[11]), "stime": int(f[12]),
            "nlwp": int(f[17]), "start": int(f[19]), "vsz": int(f[20]), "rss": int(f[21])}


def _proc_ctx() -> dict:
    boot = 0.0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                boot = float(line.split()[1])
                break
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"now": time.time(), "boot": boot, "hz": os.sysconf("SC_CLK_TCK"),
            "page": os.sysconf("SC_PAGE_SIZE"), "mem": mem}


def _top(daemon, rec: dict, ps_args: str) -> dict:
    """The processes in the container's cgroup (host pids, as dockerd shows)."""
    pids = _container_cgroup(daemon, rec).pids()
    procs = [p for p in (_read_proc(pid) for pid in pids) if p is not None]
    return C.ps_table(procs, ps_args, _proc_ctx())


def _read_text(directory: str | None, name: str) -> str | None:
    if not directory:
        return None
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read()
    except OSError:
        return None


def _read_int(directory: str | None, name: str) -> int | None:
    text = _read_text(directory, name)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _system_cpu_ns() -> int:
    """/proc/stat's cpu line in ns, as dockerd's system_cpu_usage."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def _machine_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def _stats_sample(daemon, rec: dict) -> dict | None:
    """CPU, memory, pids and block I/O of the container's cgroup (v1 or v2), in
    the pieces of dockerd's StatsJSON."""
    cg = _container_cgroup(daemon, rec)
    online = os.cpu_count() or 1
    hz = os.sysconf("SC_CLK_TCK")
    machine = _machine_memory()
    throttling = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    if cg.version == 2:
        d = cg.path
        cpu = _kv(_read_text(d, "cpu.stat"))
        throttling = {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                      "throttled_time": cpu.get("throttled_usec", 0) * 1000}
        cpu_stats = {"cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000,
                                   "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                                   "usage_in_usermode": cpu.get("user_usec", 0) * 1000},
                     "system_cpu_usage": _system_cpu_ns(), "online_cpus": online,
                     "throttling_data": throttling}
        usage = _read_int(d, "memory.current")
        if usage is None and not os.path.isdir(d):
            return None
        limit = _read_int(d, "memory.max") or machine
        memory = {"usage": usage or 0, "stats": _kv(_read_text(d, "memory.stat")),
                  "limit": min(limit, machine) if machine else limit}
        pids = {"current": _read_int(d, "pids.current") or 0}
        pmax = _read_int(d, "pids.max")
        if pmax:
            pids["limit"] = pmax
        blkio = []
        for line in (_read_text(d, "io.stat") or "").splitlines():
            dev, *pairs = line.split()
            major, _, minor = dev.partition(":")
            kv = dict(p.split("=", 1) for p in pairs if "=" in p)
            for op, key in (("read", "rbytes"), ("write", "wbytes")):
                if key in kv:
                    blkio.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
        return {"cpu": cpu_stats, "memory": memory, "pids": pids, "blkio": blkio}
    dirs = cg.dirs
    acct = dirs.get("cpuacct")
    total = _read_int(acct, "cpuacct.usage")
    if total is None:
        return None  # the cgroup is gone: the container stopped
    percpu = [int(x) for x in (_read_text(acct, "cpuacct.usage_percpu") or "").split() if x.isdigit()]
    st = _kv(_read_text(acct, "cpuacct.stat"))
    cpu = _kv(_read_text(dirs.get("cpu"), "cpu.stat"))
    if cpu:
        throttling = {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                      "throttled_time": cpu.get("throttled_time", 0)}
    cpu_stats = {"cpu_usage": {"total_usage": total, "percpu_usage": percpu,
                               "usage_in_kernelmode": st.get("system", 0) * 1_000_000_000 // hz,
                               "usage_in_usermode": st.get("user", 0) * 1_000_000_000 // hz},
                 "system_cpu_usage": _system_cpu_ns(), "online_cpus": online,
                 "throttling_data": throttling}
    md = dirs.get("memory")
    limit = _read_int(md, "memory.limit_in_bytes") or 0
    if machine and (not limit or limit > machine):
        limit = machine  # no limit: the machine's memory, as dockerd says
    memory = {"usage": _read_int(md, "memory.usage_in_bytes") or 0,
              "max_usage": _read_int(md, "memory.max_usage_in_bytes") or 0,
              "stats": _kv(_read_text(md, "memory.stat")),
              "failcnt": _read_int(md, "memory.failcnt") or 0, "limit": limit}
    pd = dirs.get("pids")
    pids = {"current": _read_int(pd, "pids.current") or 0}
    pmax = _read_int(pd, "pids.max")
    if pmax:
        pids["limit"] = pmax
    blkio = []
    for line in (_read_text(dirs.get("blkio"), "blkio.throttle.io_service_bytes_recursive") or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            blkio.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return {"cpu": cpu_stats, "memory": memory, "pids": pids, "blkio": blkio or None}


async def _sizes(daemon, rec: dict) -> dict[str, int]:
    """SizeRw (the container's own layer) and SizeRootFs (with its image's)."""
    rw = await trio.to_thread.run_sync(_du, rec["GraphDriver"]["Data"]["UpperDir"])
    try:
        image = await get_image(daemon, rec["Image"])
        base = image.to_docker_summary().get("Size", 0)
    except HTTPError:
        base = 0
    return {"SizeRw": rw, "SizeRootFs": rw + base}


def _du(path: str) -> int:
    """Bytes in the regular files under ``path`` (never following links)."""
    total = 0
    stack = [path]
    seen: set[tuple[int, int]] = set()
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        if st.st_nlink > 1:
                            key = (st.st_dev, st.st_ino)
                            if key in seen:
                                continue
                            seen.add(key)
                        total += st.st_size
        except OSError:
            continue
    return total


def _prune_until(values: list[str]) -> float | None:
    """The `until` filter of prune: unix time, RFC 3339, or a Go duration ago."""
    import re

    if not values:
        return None
    if len(values) > 1:
        raise C.ContainerError("more than one until filter specified")
    v = values[0].strip()
    try:
        return float(v)
    except ValueError:
        pass
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms|us|ns))+)", v)
    if m:
        units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
        secs = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", v))
        return time.time() - secs
    t = C.parse_rfc3339(v if "T" in v else v + "T00:00:00Z")
    if t:
        return t
    raise C.ContainerError(f"invalid until filter value: {v}")
