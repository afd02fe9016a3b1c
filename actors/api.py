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
from .http import Hijack, HTTPError, Response, Router, StreamResponse, json_response, status_for

log = logging.getLogger("trioctr.api")

MIN_MEMORY = 6 * 1024 * 1024

# HostConfig fields this engine honours; any other field must hold its default
HOSTCONFIG_SUPPORTED = {"Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares",
                        "CpuQuota", "CpuPeriod", "AutoRemove", "Runtime", "NetworkMode",
                        "RestartPolicy", "LogConfig", "ReadonlyRootfs", "CapAdd", "CapDrop",
                        "ConsoleSize", "CgroupnsMode", "IpcMode", "Isolation", "ContainerIDFile",
                        "OomKillDisable", "Init"}
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


def _expect(obj: Any, kind: type, what: str) -> Any:
    if obj is None:
        return kind()
    if not isinstance(obj, kind) or (kind is int and isinstance(obj, bool)):
        raise HTTPError(400, f"json: cannot unmarshal {type(obj).__name__} into {what} of type "
                             f"{ {dict: 'object', list: 'array', str: 'string', int: 'number', bool: 'bool'}[kind]}")
    return obj


def _str_list(obj: Any, what: str) -> list[str] | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return [obj]
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        raise HTTPError(400, f"json: cannot unmarshal into {what} of type []string")
    return obj


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
            "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": ["name=cgroupns"],
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
        sub = daemon.events.subscribe()

        async def gen():
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
                sub.close()

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
        return json_response(out)

    r.add("GET", "/containers/json", list_containers)

    async def inspect(req):
        rec = daemon.find(req.params["id"])
        return json_response(rec)

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
            yield (json.dumps(await done()) + "\n").encode()

        return StreamResponse(gen(), 200, "application/json")

    r.add("POST", "/containers/{id}/wait", wait)

    async def delete(req):
        rec = daemon.find(req.params["id"])
        await remove_container(daemon, rec, force=req.q_bool("force"))
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

        async def gen():
            nonlocal offset
            while True:
                entries, offset = await trio.to_thread.run_sync(L.read_from, path, offset)
                for chunk in L.render(entries, stdout=stdout, stderr=stderr, timestamps=timestamps,
                                      tty=tty, since=since, until=until):
                    yield chunk
                if not follow or not running0:
                    return
                cur = daemon.records.get(cid)
                if cur is None or daemon.exit_seq.get(cid, 0) > seq0 or not cur["State"]["Running"]:
                    entries, offset = L.read_from(path, offset)
                    for chunk in L.render(entries, stdout=stdout, stderr=stderr,
                                          timestamps=timestamps, tty=tty, since=since, until=until):
                        yield chunk
                    return
                await daemon.wait_change(cid, 0.05)

        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        return StreamResponse(gen(), 200, ctype)

    r.add("GET", "/containers/{id}/logs", logs)

    async def attach(req):
        rec = daemon.find(req.params["id"])
        if rec["State"]["Status"] == "exited" or rec["State"]["Status"] == "dead":
            raise HTTPError(409, "You cannot attach to a stopped container, start it first")
        stdout, stderr, stdin = req.q_bool("stdout"), req.q_bool("stderr"), req.q_bool("stdin")
        want_logs, stream = req.q_bool("logs"), req.q_bool("stream")
        if stdin:
            raise HTTPError(501, "attaching stdin is not implemented yet")
        tty = bool(rec["Config"].get("Tty"))
        cid = rec["Id"]
        path = rec["LogPath"]
        seq0 = daemon.exit_seq.get(cid, 0)
        start_offset = 0 if want_logs else L.size(path)

        async def run(conn: trio.abc.Stream, leftover: bytes) -> None:
            daemon.events.publish("container", "attach", cid, daemon.event_attrs(rec))
            offset = start_offset
            gone = trio.Event()

            async def drain_input():
                # stdin is not attached: read and drop whatever the client sends
                try:
                    while await conn.receive_some(65536):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    gone.set()

            async def send(entries):
                for chunk in L.render(entries, stdout=stdout, stderr=stderr, timestamps=False, tty=tty):
                    await conn.send_all(chunk)

            try:
                async with trio.open_nursery() as n:
                    n.start_soon(drain_input)
                    while not gone.is_set():
                        entries, offset = await trio.to_thread.run_sync(L.read_from, path, offset)
                        await send(entries)
                        if not stream:
                            break
                        cur = daemon.records.get(cid)
                        if cur is None or daemon.exit_seq.get(cid, 0) > seq0:
                            entries, offset = L.read_from(path, offset)
                            await send(entries)
                            break
                        await daemon.wait_change(cid, 0.05)
                    n.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                with trio.CancelScope(shield=True):
                    await conn.aclose()

        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        return Hijack(run, ctype)

    r.add("POST", "/containers/{id}/attach", attach)

    from . import api_images

    api_images.add_routes(r, daemon)

    # -- not there yet -----------------------------------------------------------
    async def not_yet(req):
        area = req.path.strip("/").split("/")[0]
        raise HTTPError(501, f"{req.method} {req.path}: {area} are not implemented in trioctr yet")

    # no networks or volumes exist yet: looking one up finds nothing (so that
    # `docker inspect NAME`, which tries every kind of object, says "No such object")
    async def network_inspect(req):
        raise HTTPError(404, f"network {req.params['id']} not found")

    async def volume_inspect(req):
        raise HTTPError(404, f"get {req.params['id']}: no such volume")

    r.add("GET", "/networks/{id}", network_inspect)
    r.add("GET", "/volumes/{id}", volume_inspect)

    for method, pattern in (
        ("GET", "/networks"), ("POST", "/networks/create"),
        ("DELETE", "/networks/{id}"), ("POST", "/networks/prune"),
        ("GET", "/volumes"), ("POST", "/volumes/create"),
        ("DELETE", "/volumes/{id}"), ("POST", "/volumes/prune"),
        ("POST", "/containers/{id}/exec"), ("POST", "/exec/{id}/start"), ("GET", "/exec/{id}/json"),
        ("POST", "/exec/{id}/resize"), ("GET", "/containers/{id}/top"), ("GET", "/containers/{id}/stats"),
        ("POST", "/containers/{id}/pause"), ("POST", "/containers/{id}/unpause"),
        ("POST", "/containers/{id}/rename"), ("POST", "/containers/{id}/update"),
        ("POST", "/containers/{id}/resize"), ("GET", "/containers/{id}/archive"),
        ("PUT", "/containers/{id}/archive"), ("HEAD", "/containers/{id}/archive"),
        ("GET", "/containers/{id}/export"), ("GET", "/containers/{id}/changes"),
        ("POST", "/containers/prune"), ("GET", "/system/df"), ("POST", "/build"),
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
    cfg_in = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    hc = _expect(body.get("HostConfig"), dict, "HostConfig")
    for key, value in hc.items():
        if key == "MemorySwappiness" and value in (None, -1):
            continue  # -1 is the clients' "unset"
        if key not in HOSTCONFIG_SUPPORTED and not _empty(value):
            raise HTTPError(400, f"HostConfig.{key} is not supported by trioctr yet")
    for key in ("Volumes", "MacAddress", "Healthcheck", "OnBuild", "Shell"):
        if not _empty(cfg_in.get(key)):
            raise HTTPError(400, f"Config.{key} is not supported by trioctr yet")
    if cfg_in.get("OpenStdin") or cfg_in.get("AttachStdin"):
        raise HTTPError(400, "interactive containers (-i) are not supported by trioctr yet")
    if cfg_in.get("Tty"):
        raise HTTPError(400, "a TTY (-t) is not supported by trioctr yet")
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
    if hc.get("Init"):
        raise HTTPError(400, "--init is not supported by trioctr yet")
    if hc.get("OomKillDisable"):
        raise HTTPError(400, "--oom-kill-disable is not supported by trioctr yet")
    for key in ("Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod"):
        v = hc.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise HTTPError(400, f"json: cannot unmarshal {type(v).__name__} into HostConfig.{key} of type int64")
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
    if not isinstance(image_ref, str) or not image_ref:
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
            raise HTTPError(400, f"json: cannot unmarshal {type(cfg_in[key]).__name__} into Config.{key} of type string")
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
                "ExposedPorts": cfg_in.get("ExposedPorts") or None}
    merged = merge_config(user_cfg, image.config or {})  # Docker's merge; "No command specified"
    argv = list(merged.get("Entrypoint") or []) + list(merged.get("Cmd") or [])
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
        "User": merged.get("User") or "", "AttachStdin": False,
        "AttachStdout": bool(cfg_in.get("AttachStdout")),
        "AttachStderr": bool(cfg_in.get("AttachStderr")), "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": merged.get("Env") or [], "Cmd": merged.get("Cmd"),
        "Image": image_ref, "Volumes": None, "WorkingDir": merged.get("WorkingDir") or "",
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
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": nm, "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": bool(hc.get("AutoRemove")), "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": hc.get("CapAdd"), "CapDrop": hc.get("CapDrop"), "CgroupnsMode": "private",
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": bool(hc.get("ReadonlyRootfs")),
        "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
        "Runtime": runtime or daemon.config.default_runtime, "Isolation": "",
        "CpuShares": hc.get("CpuShares") or 0, "Memory": mem, "NanoCpus": hc.get("NanoCpus") or 0,
        "CgroupParent": "", "CpuPeriod": hc.get("CpuPeriod") or 0, "CpuQuota": hc.get("CpuQuota") or 0,
        "MemorySwap": swap, "PidsLimit": hc.get("PidsLimit") or None, "OomKillDisable": False,
        "MaskedPaths": None, "ReadonlyPaths": None,
    }
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
        os.makedirs(os.path.join(d, "rootfs", "upper"), mode=0o755)
        os.makedirs(os.path.join(d, "rootfs", "work"), mode=0o700)
        _write_etc_files(rec)
        daemon.records[cid] = rec
        daemon.save(rec)
    except BaseException:
        daemon.names.pop(full_name, None)
        daemon.records.pop(cid, None)
        shutil.rmtree(d, ignore_errors=True)
        raise
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


def spec_for_record(rec: dict, layers: list[str], cgroup_parent: str) -> dict:
    """The OCI runtime config for a container record (its Config is already
    merged with the image's, so the image config given to the builder is it)."""
    from oci.spec import ContainerSpecInput, build_spec

    cfg, hc = rec["Config"], rec["HostConfig"]
    namespaces = None
    if hc.get("NetworkMode") == "host":
        namespaces = {"mount": "", "uts": "", "pid": "", "ipc": "", "cgroup": ""}
    return build_spec(ContainerSpecInput(
        container_id=rec["Id"], image_config={"config": cfg}, user=cfg.get("User") or "",
        hostname=cfg.get("Hostname") or "", domainname=cfg.get("Domainname") or "",
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")), layer_dirs=layers,
        memory=hc.get("Memory") or 0, memory_swap=hc.get("MemorySwap") or 0,
        pids_limit=hc.get("PidsLimit"), nano_cpus=hc.get("NanoCpus") or 0,
        cpu_shares=hc.get("CpuShares") or 0, cpu_quota=hc.get("CpuQuota") or 0,
        cpu_period=hc.get("CpuPeriod") or 0, cgroup_parent=cgroup_parent,
        cap_add=list(hc.get("CapAdd") or []), cap_drop=list(hc.get("CapDrop") or []),
        hostname_path=rec["HostnamePath"], hosts_path=rec["HostsPath"],
        resolv_conf_path=rec["ResolvConfPath"], namespaces=namespaces,
        labels=dict(cfg.get("Labels") or {})))


async def start_container(daemon, rec: dict) -> None:
    cid = rec["Id"]
    async with daemon.lock(cid):
        if cid not in daemon.records:
            raise RemoteError(ErrorCode.NOT_FOUND, f"No such container: {cid}")
        if rec["State"]["Running"]:
            return
        image = await get_image(daemon, rec["Image"])
        layers = await trio.to_thread.run_sync(daemon.images.layer_dirs, image)
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
                                runtime=runtime, stdin=False, terminal=False)
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
            started = await _start_task(daemon, cid)
        except RemoteError:
            try:
                await sup_call(daemon, sup.KillTask(container_id=cid, signal=signal_mod.SIGKILL, all=True))
            except RemoteError:
                pass
            raise
        C.mark_started(rec, started.pid or created.pid, time.time_ns())
        daemon.save(rec)
        daemon.events.publish("container", "start", cid, daemon.event_attrs(rec))


def _link_broke(exc: RemoteError) -> bool:
    return exc.code is ErrorCode.UNAVAILABLE


async def sup_call(daemon, msg, *, timeout: float = 60.0):
    """A request to the supervisor that survives a supervisor restart.

    When the link breaks while the request is in flight (the supervisor died
    and the daemon is starting a new one), the request is asked again of the
    new supervisor (``sup_request`` waits for it).  Only for requests that may
    be repeated: kill, delete, state."""
    try:
        return await daemon.sup_request(msg, timeout=timeout)
    except RemoteError as exc:
        if not _link_broke(exc):
            raise
        log.warning("supervisor link broke during %s (%s); asking again", type(msg).__name__, exc.message)
    return await daemon.sup_request(msg, timeout=timeout)


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
    log.warning("supervisor link broke while creating the task of %s; recovering", cid[:12])
    task = await _find_task(daemon, cid)
    if task is not None and task.status == "created":
        return task
    if task is not None:
        await _delete_task_quietly(daemon, cid)
        await _previous_task_gone(daemon, cid)
    return await daemon.sup_request(create)


async def _start_task(daemon, cid: str):
    try:
        return await daemon.sup_request(sup.StartTask(container_id=cid))
    except RemoteError as exc:
        if not _link_broke(exc):
            raise
    log.warning("supervisor link broke while starting the task of %s; recovering", cid[:12])
    task = await _find_task(daemon, cid)
    if task is not None and task.status in ("running", "stopped"):
        return task  # it did start (and maybe already exited: its exit event follows)
    return await daemon.sup_request(sup.StartTask(container_id=cid))


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
    try:
        await sup_call(daemon, sup.KillTask(container_id=cid, signal=sig, all=False))
    except RemoteError as exc:
        if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.FAILED_PRECONDITION):
            raise HTTPError(409, f"Container {cid} is not running") from None
        raise


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


async def remove_container(daemon, rec: dict, *, force: bool, auto: bool = False) -> None:
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
        rec["State"]["Status"] = "removing"
        # a task that never ran (create failed half-way) may still have a shim
        try:
            await sup_call(daemon, sup.DeleteTask(container_id=cid), timeout=30)
        except RemoteError as exc:
            if exc.code not in (ErrorCode.NOT_FOUND,):
                if exc.code is ErrorCode.FAILED_PRECONDITION:
                    rec["State"]["Status"] = "running" if rec["State"]["Running"] else "exited"
                    raise HTTPError(409, f"container {cid} is still running") from None
        daemon.removed_exit[cid] = rec["State"].get("ExitCode", 0)
        daemon.records.pop(cid, None)
        if daemon.names.get(rec["Name"]) == cid:
            daemon.names.pop(rec["Name"], None)
        await trio.to_thread.run_sync(shutil.rmtree, daemon.container_dir(cid), True)
    daemon.events.publish("container", "destroy", cid, daemon.event_attrs(rec))
    daemon.notify(cid)
