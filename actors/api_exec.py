"""Task operations of the Docker Engine API: exec (create, start, inspect,
resize), pause and unpause, and update (resources and restart policy).

Exec state lives in the daemon's memory (``daemon.execs``), as in dockerd:
a daemon restart forgets it.  Starting an exec hands it to a runner task
owned by the daemon's nursery, not by the HTTP connection: the runner
long-polls the exec's output from its shim (``ReadExecOutput``, with byte
offsets, so a supervisor restart loses and repeats nothing), feeds it to
the attached client if there is one, and records the exit code when the
shim says the exec is done.  A client that goes away does not stop the
exec, as in Docker.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from typing import Any

import attrs
import trio

from messages import supervisor as sup
from messages.errors import ErrorCode, RemoteError

from . import containers as C
from .http import Hijack, HTTPError, Response, json_response, status_for
from cli.escape import DEFAULT_KEYS, EscapeProxy, KeysError, to_bytes as keys_to_bytes

log = logging.getLogger("trioctr.api")

EXEC_OUT_QUEUE = 1  # output chunks buffered between the runner and a slow client
EXEC_READ_BYTES = 256 * 1024  # output asked of the shim at once
MIN_MEMORY = 6 * 1024 * 1024
EXEC_KEEP = 256  # finished execs kept per container for inspect (dockerd keeps them too)


@attrs.define(eq=False)
class ExecInstance:
    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    tty: bool = False
    privileged: bool = False
    user: str = ""
    working_dir: str = ""
    env: list[str] = attrs.field(factory=list)
    open_stdin: bool = False
    open_stdout: bool = False
    open_stderr: bool = False
    detach_keys: str = ""
    console_size: list[int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    done: trio.Event = attrs.field(factory=trio.Event)
    created_ns: int = attrs.field(factory=time.time_ns)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": self.tty, "entrypoint": self.entrypoint,
                              "arguments": list(self.args), "privileged": self.privileged,
                              "user": self.user},
            "OpenStdin": self.open_stdin, "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout, "CanRemove": False,
            "ContainerID": self.container_id, "DetachKeys": self.detach_keys_json(), "Pid": self.pid,
        }

    def detach_keys_json(self) -> str:
        """dockerd's ExecInspect.DetachKeys is the parsed []byte: base64 in JSON."""
        import base64

        return base64.b64encode(keys_to_bytes(self.detach_keys) if self.detach_keys else b"").decode()

    @property
    def command(self) -> str:
        return " ".join([self.entrypoint, *self.args])


def running_exec_ids(daemon, cid: str) -> list[str] | None:
    ids = [e.id for e in daemon.execs.values() if e.container_id == cid and e.running]
    return ids or None


def forget_execs(daemon, cid: str) -> None:
    """The container is gone: so are its execs."""
    for eid in [e.id for e in daemon.execs.values() if e.container_id == cid]:
        daemon.execs.pop(eid, None)


def _json_type(v: Any) -> str:
    from .api import _json_type as go_kind

    return go_kind(v)


def _frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, size(4, big endian)] + data."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def _active(daemon, ref: str) -> dict:
    """A running, not paused container (dockerd's getActiveContainer)."""
    rec = daemon.find(ref)
    st = rec["State"]
    if not st["Running"]:
        raise HTTPError(409, f"Container {rec['Id']} is not running")
    if st.get("Paused"):
        raise HTTPError(409, f"Container {ref} is paused, unpause the container before exec")
    if st.get("Restarting"):
        raise HTTPError(409, f"Container {rec['Id']} is restarting, wait until the container is running")
    return rec


def _exec_of(daemon, eid: str) -> ExecInstance:
    ex = daemon.execs.get(eid)
    if ex is None:
        raise HTTPError(404, f"No such exec instance: {eid}")
    return ex


def _check_bool(body: dict, key: str) -> bool:
    v = body.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise HTTPError(400, f"json: cannot unmarshal {_json_type(v)} into Go struct field "
                             f"ExecConfig.{key} of type bool")
    return v


def _check_strs(body: dict, key: str) -> list[str]:
    v = body.get(key)
    if v is None:
        return []
    if isinstance(v, str) and key == "Cmd":
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise HTTPError(400, f"json: cannot unmarshal into Go struct field ExecConfig.{key} of type []string")
    return v


def _go_key(body: dict, key: str) -> str:
    """Go's encoding/json matches field names case-insensitively when there is no
    exact match (docker-py sends exec create's "detachKeys" so)."""
    if key not in body:
        for k in body:
            if k.lower() == key.lower():
                return k
    return key


def _check_str(body: dict, key: str) -> str:
    v = body.get(_go_key(body, key))
    if v is None:
        return ""
    if not isinstance(v, str):
        raise HTTPError(400, f"json: cannot unmarshal into Go struct field ExecConfig.{key} of type string")
    return v


def _console_size(v: Any, what: str) -> list[int] | None:
    if v is None:
        return None
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 65536 for x in v)):
        raise HTTPError(400, f"{what}: ConsoleSize must be [height, width]")
    return [int(v[0]), int(v[1])] if v[0] and v[1] else None


# -- the exec's process -----------------------------------------------------------
async def _exec_process(daemon, rec: dict, ex: ExecInstance, size: list[int] | None) -> sup.ExecProcess:
    """Docker's exec process: the container's environment with the exec's
    over it (TERM=xterm with a TTY), its user (resolved in the container's
    /etc/passwd) and working directory."""
    from oci.spec import container_env, merge_env, resolve_user, UserNotFound
    from oci.changes import env_dict

    from .api_images import get_image

    cfg = rec["Config"]
    user_spec = ex.user or cfg.get("User") or ""
    image = await get_image(daemon, rec["Image"])
    layers = list(await trio.to_thread.run_sync(daemon.images.layer_dirs, image))
    upper = rec.get("GraphDriver", {}).get("Data", {}).get("UpperDir")
    if upper:
        layers.append(upper)  # the container's own changes to /etc/passwd count
    try:
        eu = await trio.to_thread.run_sync(resolve_user, user_spec, layers)
    except UserNotFound as exc:
        raise HTTPError(400, str(exc)) from None
    hostname = cfg.get("Hostname") or rec["Id"][:12]
    env = container_env(merge_env(cfg.get("Env") or [], ex.env), hostname, ex.tty)
    if "HOME" not in env_dict(env):
        env.append(f"HOME={eu.home or '/'}")
    cwd = ex.working_dir or cfg.get("WorkingDir") or "/"
    h, w = (size or ex.console_size or [0, 0])
    return sup.ExecProcess(args=[ex.entrypoint, *ex.args], env=env, cwd=cwd, uid=eu.uid, gid=eu.gid,
                           additional_gids=list(eu.additional_gids or []), terminal=ex.tty,
                           height=h if ex.tty else 0, width=w if ex.tty else 0)


def _start_error(exc: RemoteError) -> tuple[int, str]:
    """dockerd's wording and exit code for an exec that could not start."""
    if exc.code is ErrorCode.EXEC_FAILED:
        msg = exc.message
        if not msg.startswith("exec failed:") and not msg.startswith("OCI runtime"):
            msg = f"exec failed: unable to start container process: {msg}"
        if not msg.startswith("OCI runtime"):
            msg = f"OCI runtime exec failed: {msg}: unknown"
        return exc.exit_code or 126, msg
    return 126, exc.message


async def _start_exec(daemon, rec: dict, ex: ExecInstance, size: list[int] | None,
                      capture: bool) -> None:
    """Ask the supervisor to start the exec; raise RemoteError/HTTPError on failure
    (the exec's exit code is then set, as dockerd does)."""
    from .api import sup_call

    try:
        process = await _exec_process(daemon, rec, ex, size)
        msg = sup.ExecTask(container_id=rec["Id"], exec_id=ex.id, process=process,
                           stdin=ex.open_stdin, capture=capture)
        try:
            started = await daemon.sup_request(msg)
        except RemoteError as exc:
            if exc.code is not ErrorCode.UNAVAILABLE:
                raise
            # the supervisor died under the request: the new one either has it
            # running (its shim says it exists) or never saw it
            from .api import _link_settled

            await _link_settled(daemon)
            try:
                started = await sup_call(daemon, msg)
            except RemoteError as again:
                if again.code is not ErrorCode.ALREADY_EXISTS:
                    raise
                started = sup.ExecStarted(container_id=rec["Id"], exec_id=ex.id, pid=0)
    except (RemoteError, HTTPError) as exc:
        ex.running = False
        if isinstance(exc, RemoteError):
            if exc.code is ErrorCode.NOT_FOUND:  # no task: the container stopped
                exc = HTTPError(409, f"Container {rec['Id']} is not running")
            elif exc.code is ErrorCode.FAILED_PRECONDITION and "paused" in exc.message:
                exc = HTTPError(409, f"Container {rec['Id']} is paused, unpause the container before exec")
        if isinstance(exc, RemoteError):
            code, text = _start_error(exc)
            ex.exit_code = code
            ex.done.set()
            raise HTTPError(400 if exc.code is ErrorCode.EXEC_FAILED else status_for(exc)[0], text) from None
        ex.exit_code = 126
        ex.done.set()
        raise exc from None
    ex.pid = started.pid
    ex.running = True


async def _run_exec(daemon, rec: dict, ex: ExecInstance,
                    out: trio.MemorySendChannel | None) -> None:
    """Owned by the daemon's nursery: read the exec's output until it is done,
    give it to ``out`` (while someone listens), record the exit code."""
    from .api import sup_call

    cid = rec["Id"]
    offset = 0
    code = 137  # its container went away with it
    try:
        while True:
            try:
                reply = await sup_call(daemon, sup.ReadExecOutput(
                    container_id=cid, exec_id=ex.id, offset=offset, max_bytes=EXEC_READ_BYTES))
            except RemoteError as exc:
                if exc.code is ErrorCode.NOT_FOUND:
                    break  # the task (or the exec) is gone
                cur = daemon.records.get(cid)
                if cur is None or not cur["State"]["Running"]:
                    break
                log.warning("exec %s: reading its output failed: %s", ex.id[:12], exc)
                await trio.sleep(0.5)
                continue
            offset = reply.offset
            if reply.pid and not ex.pid:
                ex.pid = reply.pid
            if out is not None:
                for chunk in reply.chunks:
                    if (chunk.stream == 2 and not ex.open_stderr) or (chunk.stream != 2 and not ex.open_stdout):
                        continue
                    try:
                        await out.send(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        out = None  # the client left; the exec goes on
                        break
            if reply.done:
                code = reply.exit_status
                break
    except trio.Cancelled:
        # the daemon is shutting down: the exec runs on, its end unknown here
        if out is not None:
            out.close()
        raise
    except Exception:  # one exec's failure must not take the daemon down
        log.exception("exec %s of %s: its runner failed", ex.id[:12], cid[:12])
        _exec_ended(daemon, rec, ex, code, out)
    else:
        _exec_ended(daemon, rec, ex, code, out)
        with trio.CancelScope(shield=True):
            try:
                # asked again of the next supervisor if this one dies under it:
                # a done exec left in the shim counts against its EXEC_MAX
                await sup_call(daemon, sup.DeleteExec(container_id=cid, exec_id=ex.id), timeout=10)
            except RemoteError:
                pass
            _trim_execs(daemon, cid)


def _exec_ended(daemon, rec: dict, ex: ExecInstance, code: int, out) -> None:
    """Record the exec's end (before its client's stream ends: the CLI asks
    for the exit code right after) and say so on the event bus."""
    cid = rec["Id"]
    ex.exit_code = code
    ex.running = False
    ex.done.set()
    if out is not None:
        out.close()
    daemon.events.publish("container", "exec_die", cid,
                          daemon.event_attrs(rec, execID=ex.id, exitCode=str(code)))


def _trim_execs(daemon, cid: str) -> None:
    done = sorted((e for e in daemon.execs.values() if e.container_id == cid and e.done.is_set()),
                  key=lambda e: e.created_ns)
    for e in done[:-EXEC_KEEP] if len(done) > EXEC_KEEP else []:
        daemon.execs.pop(e.id, None)


def add_routes(r, daemon) -> None:
    # -- exec ------------------------------------------------------------------------
    async def exec_create(req):
        ref = req.params["id"]
        body = await req.json(allow_empty=False)
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be an ExecConfig object")
        rec = daemon.find(ref)
        cmd = _check_strs(body, "Cmd")
        tty = _check_bool(body, "Tty")
        ex = ExecInstance(
            id=C.new_id(), container_id=rec["Id"], entrypoint=cmd[0] if cmd else "", args=cmd[1:],
            tty=tty, privileged=_check_bool(body, "Privileged"), user=_check_str(body, "User"),
            working_dir=_check_str(body, "WorkingDir"), env=_check_strs(body, "Env"),
            open_stdin=_check_bool(body, "AttachStdin"), open_stdout=_check_bool(body, "AttachStdout"),
            open_stderr=_check_bool(body, "AttachStderr"), detach_keys=_check_str(body, "DetachKeys"),
            console_size=_console_size(body.get("ConsoleSize"), "exec"))
        _active(daemon, ref)
        if not cmd:
            raise HTTPError(400, "No exec command specified")
        if ex.privileged:
            raise HTTPError(400, "Privileged exec is not supported by trioctr yet")
        if ex.working_dir and not ex.working_dir.startswith("/"):
            raise HTTPError(400, f"the working directory '{ex.working_dir}' is invalid, it needs to be an absolute path")
        for item in ex.env:
            if item.startswith("="):
                raise HTTPError(400, f"invalid environment variable: {item}")
        if ex.user:
            from oci.spec import resolve_user, UserNotFound

            from .api_images import get_image

            image = await get_image(daemon, rec["Image"])
            layers = list(await trio.to_thread.run_sync(daemon.images.layer_dirs, image))
            upper = rec.get("GraphDriver", {}).get("Data", {}).get("UpperDir")
            if upper:
                layers.append(upper)
            try:
                await trio.to_thread.run_sync(resolve_user, ex.user, layers)
            except UserNotFound as exc:
                raise HTTPError(400, str(exc)) from None
        if ex.detach_keys:
            try:
                keys_to_bytes(ex.detach_keys)
            except KeysError:
                # dockerd: a plain error (500), worded "escape" here, "detach" for attach
                raise HTTPError(500, f"Invalid escape keys ({ex.detach_keys}) provided") from None
        daemon.execs[ex.id] = ex
        daemon.events.publish("container", f"exec_create: {ex.command}", rec["Id"],
                              daemon.event_attrs(rec, execID=ex.id))
        return json_response({"Id": ex.id}, 201)

    r.add("POST", "/containers/{id}/exec", exec_create)

    async def exec_start(req):
        eid = req.params["id"]
        body = await req.json(allow_empty=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be an ExecStartConfig object")
        detach = _check_bool(body, "Detach")
        size = _console_size(body.get("ConsoleSize"), "exec start")
        ex = _exec_of(daemon, eid)
        rec = daemon.records.get(ex.container_id)
        if rec is None:
            raise HTTPError(404, f"No such container: {ex.container_id}")
        if not rec["State"]["Running"]:
            raise HTTPError(409, f"Container {rec['Id']} is not running")
        if rec["State"].get("Paused"):
            raise HTTPError(409, f"Container {rec['Id']} is paused, unpause the container before exec")
        if ex.exit_code is not None:
            raise HTTPError(409, f"exec command {ex.id} has already run")
        if ex.started:
            raise HTTPError(409, f"exec command {ex.id} is already running")
        ex.started = ex.running = True
        daemon.events.publish("container", f"exec_start: {ex.command}", rec["Id"],
                              daemon.event_attrs(rec, execID=ex.id))
        if detach:
            await _start_exec(daemon, rec, ex, size, capture=False)
            daemon.nursery.start_soon(_run_exec, daemon, rec, ex, None)
            return Response(200, b"", None)

        async def run(conn: trio.abc.Stream, leftover: bytes) -> None:
            def encode(stream: int, data: bytes) -> bytes:
                return data if ex.tty else _frame(stream, data)

            try:
                try:
                    await _start_exec(daemon, rec, ex, size, capture=True)
                except HTTPError as exc:
                    # dockerd writes the error into the stream (as stdout) and ends it
                    await conn.send_all(encode(1, (exc.message + "\r\n").encode()))
                    return
                send, recv = trio.open_memory_channel(EXEC_OUT_QUEUE)
                daemon.nursery.start_soon(_run_exec, daemon, rec, ex, send)
                async with trio.open_nursery() as n:
                    async def pump() -> None:
                        if await _pump_stdin(daemon, ex, conn, leftover):
                            n.cancel_scope.cancel()  # detached, or a TTY's stdin ended

                    n.start_soon(pump)
                    async with recv:
                        async for chunk in recv:
                            await conn.send_all(encode(chunk.stream, chunk.data))
                    n.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                with trio.CancelScope(shield=True):
                    await conn.aclose()

        ctype = "application/vnd.docker.raw-stream" if ex.tty else "application/vnd.docker.multiplexed-stream"
        return Hijack(run, ctype)

    r.add("POST", "/exec/{id}/start", exec_start)

    async def exec_inspect(req):
        return json_response(_exec_of(daemon, req.params["id"]).inspect())

    r.add("GET", "/exec/{id}/json", exec_inspect)

    async def exec_resize(req):
        ex = _exec_of(daemon, req.params["id"])
        h, w = req.q_int("h", 0), req.q_int("w", 0)
        rec = daemon.records.get(ex.container_id)
        if rec is None or not rec["State"]["Running"]:
            raise HTTPError(409, f"Container {ex.container_id} is not running")
        # dockerd waits for the exec to have started (the CLI resizes right away)
        with trio.move_on_after(10):
            while not ex.pid and not ex.done.is_set():
                await trio.sleep(0.02)
        if not ex.tty or ex.done.is_set():
            return Response(200, b"", None)
        if not ex.pid:
            raise HTTPError(500, "timeout waiting for exec session ready")
        try:
            await daemon.sup_request(sup.ResizeExec(container_id=ex.container_id, exec_id=ex.id,
                                                    height=h, width=w))
        except RemoteError as exc:
            if exc.code is ErrorCode.INVALID_ARGUMENT:
                raise HTTPError(400, exc.message) from None
            if exc.code is not ErrorCode.NOT_FOUND:
                raise
        return Response(200, b"", None)

    r.add("POST", "/exec/{id}/resize", exec_resize)

    # -- pause, unpause ----------------------------------------------------------------
    async def pause(req):
        rec = daemon.find(req.params["id"])
        await pause_container(daemon, rec)
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/pause", pause)

    async def unpause(req):
        rec = daemon.find(req.params["id"])
        await unpause_container(daemon, rec)
        return Response(204, b"", None)

    r.add("POST", "/containers/{id}/unpause", unpause)

    # -- update --------------------------------------------------------------------------
    async def update(req):
        rec = daemon.find(req.params["id"])
        body = await req.json(allow_empty=False)
        if not isinstance(body, dict):
            raise HTTPError(400, "invalid JSON: the body must be an UpdateConfig object")
        warnings = await update_container(daemon, rec, body)
        return json_response({"Warnings": warnings})

    r.add("POST", "/containers/{id}/update", update)


async def _pump_stdin(daemon, ex: ExecInstance, conn: trio.abc.Stream, leftover: bytes) -> bool:
    """The client's bytes to the exec's stdin (in order; the offset makes a
    request repeated after a supervisor restart harmless); its half-close
    closes the exec's stdin.  Without AttachStdin they are read and dropped.

    With a TTY, as in dockerd: the detach keys (ExecConfig.DetachKeys, default
    ctrl-p,ctrl-q) end the session (event `exec_detach`, the exec runs on), and
    so does the half-close, which then leaves the exec's stdin open.  Returns
    True when the session is to end."""
    from .api import sup_call

    offset = 0

    async def forward(data: bytes, eof: bool) -> bool:
        nonlocal offset
        while not ex.pid and not ex.done.is_set():
            await trio.sleep(0.01)
        if ex.done.is_set():
            return False
        try:
            await sup_call(daemon, sup.WriteExecStdin(container_id=ex.container_id, exec_id=ex.id,
                                                      offset=offset, data=data, eof=eof))
        except RemoteError:
            return False  # the exec closed its stdin or is gone
        offset += len(data)
        return True

    stdin = ex.open_stdin
    proxy = None
    if ex.open_stdin and ex.tty:
        proxy = EscapeProxy(keys_to_bytes(ex.detach_keys) if ex.detach_keys else DEFAULT_KEYS)
    try:
        data = leftover
        while True:
            if data and proxy is not None:
                data, detached = proxy.feed(data)
                if data and stdin:
                    stdin = await forward(data, False)
                if detached:
                    rec = daemon.records.get(ex.container_id)
                    if rec is not None:
                        daemon.events.publish("container", "exec_detach", ex.container_id,
                                              daemon.event_attrs(rec, execID=ex.id))
                    return True
            elif data and stdin:
                stdin = await forward(data, False)
            data = await conn.receive_some(65536)
            if not data:
                break
        if proxy is not None:
            return True
        if stdin:
            await forward(b"", True)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return False


# -- pause / unpause ---------------------------------------------------------------------
async def pause_container(daemon, rec: dict) -> None:
    cid = rec["Id"]
    async with daemon.lock(cid):
        st = rec["State"]
        if not st["Running"]:
            raise HTTPError(409, f"Container {cid} is not running")
        if st.get("Paused"):
            raise HTTPError(409, f"Container {cid} is already paused")
        if st.get("Restarting"):
            raise HTTPError(409, f"Container {cid} is restarting, wait until the container is running")
        try:
            await daemon.sup_request(sup.PauseTask(container_id=cid))
        except RemoteError as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                raise HTTPError(409, f"Container {cid} is not running") from None
            raise HTTPError(status_for(exc)[0], f"Cannot pause container {cid}: {exc.message}") from None
        st.update(Paused=True, Status="paused")
        daemon.save(rec)
    daemon.events.publish("container", "pause", cid, daemon.event_attrs(rec))


async def unpause_container(daemon, rec: dict, *, quiet: bool = False) -> None:
    cid = rec["Id"]
    async with daemon.lock(cid):
        st = rec["State"]
        if not st.get("Paused"):
            if quiet:
                return
            raise HTTPError(409, f"Container {cid} is not paused")
        try:
            await daemon.sup_request(sup.ResumeTask(container_id=cid))
        except RemoteError as exc:
            # the task is not frozen (anymore): the shim thawed it for a
            # SIGKILL, or it is gone
            if exc.code is not ErrorCode.NOT_FOUND and not (
                    exc.code is ErrorCode.FAILED_PRECONDITION and (quiet or "running" in exc.message)):
                raise HTTPError(status_for(exc)[0], f"Cannot unpause container {cid}: {exc.message}") from None
        if st.get("Paused"):
            st.update(Paused=False, Status="running" if st["Running"] else st["Status"])
            daemon.save(rec)
    daemon.events.publish("container", "unpause", cid, daemon.event_attrs(rec))


# -- update --------------------------------------------------------------------------------
UPDATE_INT_FIELDS = ("Memory", "MemorySwap", "MemoryReservation", "CpuShares", "CpuPeriod",
                     "CpuQuota", "NanoCpus", "PidsLimit", "BlkioWeight")
UPDATE_STR_FIELDS = ("CpusetCpus", "CpusetMems")
UPDATE_SUPPORTED = set(UPDATE_INT_FIELDS) | set(UPDATE_STR_FIELDS) | {"RestartPolicy"}
# UpdateConfig fields this engine cannot apply: they must hold their zero value
UPDATE_KNOWN = {"BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod",
                "CpuRealtimeRuntime", "Devices", "DeviceCgroupRules", "DeviceRequests",
                "KernelMemory", "KernelMemoryTCP", "MemorySwappiness", "OomKillDisable",
                "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
                "CgroupParent"}


def _parse_cpuset(text: str) -> set[int] | None:
    """Linux's list format ("0-3,5"); None if malformed."""
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            return None
        out.update(range(a, b + 1))
    return out


def _available(path: str) -> set[int]:
    try:
        with open(path) as f:
            return _parse_cpuset(f.read().strip()) or set()
    except OSError:
        return set()


def validate_update(body: dict, hc: dict) -> dict:
    """dockerd's checks of an update (verifyPlatformContainerResources with
    update=true, then Container.UpdateContainer); returns the fields to set.
    HTTPError(400) with Docker's wording."""
    for key, value in body.items():
        if key in UPDATE_KNOWN and value not in (None, 0, "", [], {}, False, -1 if key == "MemorySwappiness" else 0):
            raise HTTPError(400, f"{key} cannot be updated by trioctr yet")
    new: dict[str, Any] = {}
    for key in UPDATE_INT_FIELDS:
        v = body.get(key)
        if v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise HTTPError(400, f"json: cannot unmarshal {_json_type(v)} into Go struct field "
                                 f"UpdateConfig.{key} of type int64")
        new[key] = v
    for key in UPDATE_STR_FIELDS:
        v = body.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise HTTPError(400, f"json: cannot unmarshal into Go struct field UpdateConfig.{key} of type string")
        new[key] = v
    mem, swap = new.get("Memory", 0), new.get("MemorySwap", 0)
    res = new.get("MemoryReservation", 0)
    if mem and mem < MIN_MEMORY:
        raise HTTPError(400, "Minimum memory limit allowed is 6MB")
    if swap > 0 and mem > 0 and swap < mem:
        raise HTTPError(400, "Minimum memoryswap limit should be larger than memory limit, see usage")
    if res and res < MIN_MEMORY:
        raise HTTPError(400, "Minimum memory reservation allowed is 6MB")
    if mem > 0 and res > 0 and mem < res:
        raise HTTPError(400, "Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, period, quota = new.get("NanoCpus", 0), new.get("CpuPeriod", 0), new.get("CpuQuota", 0)
    if nano > 0 and period > 0:
        raise HTTPError(400, "Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise HTTPError(400, "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano < 0 or nano > ncpu * 10**9:
        raise HTTPError(400, f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period and (period < 1000 or period > 1000000):
        raise HTTPError(400, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise HTTPError(400, "CPU cfs quota can not be less than 1ms (i.e. 1000)")
    w = new.get("BlkioWeight", 0)
    if w and (w < 10 or w > 1000):
        raise HTTPError(400, "Range of blkio weight is from 10 to 1000")
    for key, what, path in (("CpusetCpus", "cpuset cpus", "/sys/devices/system/cpu/online"),
                            ("CpusetMems", "cpuset mems", "/sys/devices/system/node/online")):
        v = new.get(key)
        if not v:
            continue
        wanted = _parse_cpuset(v)
        if wanted is None:
            raise HTTPError(400, f"Invalid value {v} for {what}")
        avail = _available(path) or ({0} if key == "CpusetMems" else set(range(ncpu)))
        if not wanted <= avail:
            kind = "CPUs" if key == "CpusetCpus" else "memory nodes"
            with open(path) if os.path.exists(path) else open(os.devnull) as f:
                shown = f.read().strip() or "0"
            raise HTTPError(400, f"Requested {kind} are not available - requested {v}, available: {shown}")
    rp = body.get("RestartPolicy")
    if rp is not None:
        if not isinstance(rp, dict):
            raise HTTPError(400, "json: cannot unmarshal into Go struct field UpdateConfig.RestartPolicy of type container.RestartPolicy")
        name = rp.get("Name") or ""
        if name not in ("", "no"):
            raise HTTPError(400, f"restart policy {name!r} is not supported by trioctr yet")
    # Container.UpdateContainer: against what is already set
    cid_err = "Cannot update container {cid}: "
    if nano > 0 and hc.get("CpuPeriod"):
        raise HTTPError(400, cid_err + "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and hc.get("CpuQuota"):
        raise HTTPError(400, cid_err + "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if period > 0 and hc.get("NanoCpus"):
        raise HTTPError(400, cid_err + "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if quota > 0 and hc.get("NanoCpus"):
        raise HTTPError(400, cid_err + "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    cur_swap = hc.get("MemorySwap") or 0
    if mem and cur_swap > 0 and mem > cur_swap and not swap:
        raise HTTPError(400, cid_err + "Memory limit should be smaller than already set memoryswap limit, "
                                       "update the memoryswap at the same time")
    out = {k: v for k, v in new.items() if v or k == "PidsLimit"}
    if "PidsLimit" in out and out["PidsLimit"] <= 0:
        out["PidsLimit"] = None  # 0 and -1: unlimited
    if rp is not None and rp.get("Name"):
        out["RestartPolicy"] = {"Name": rp.get("Name") or "no",
                                "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
    return out


def linux_resources(hc: dict) -> dict:
    """The OCI LinuxResources of a HostConfig (what `runtime update` takes)."""
    from oci.spec import ContainerSpecInput, resources

    res = resources(ContainerSpecInput(
        container_id="x", memory=hc.get("Memory") or 0, memory_swap=hc.get("MemorySwap") or 0,
        memory_reservation=hc.get("MemoryReservation") or 0, pids_limit=hc.get("PidsLimit"),
        nano_cpus=hc.get("NanoCpus") or 0, cpu_shares=hc.get("CpuShares") or 0,
        cpu_quota=hc.get("CpuQuota") or 0, cpu_period=hc.get("CpuPeriod") or 0,
        cpuset_cpus=hc.get("CpusetCpus") or "", cpuset_mems=hc.get("CpusetMems") or ""))
    res.pop("devices", None)
    if hc.get("BlkioWeight"):
        res["blockIO"] = {"weight": int(hc["BlkioWeight"])}
    if "PidsLimit" in hc and not (hc.get("PidsLimit") or 0) > 0:
        res["pids"] = {"limit": -1}
    return res


async def update_container(daemon, rec: dict, body: dict) -> list[str]:
    cid = rec["Id"]
    async with daemon.lock(cid):
        if cid not in daemon.records:
            raise HTTPError(404, f"No such container: {cid}")
        hc = rec["HostConfig"]
        try:
            new = validate_update(body, hc)
        except HTTPError as exc:
            raise HTTPError(exc.status, exc.message.replace("{cid}", cid)) from None
        if "RestartPolicy" in new and hc.get("AutoRemove") and new["RestartPolicy"]["Name"] not in ("", "no"):
            raise HTTPError(400, f"Cannot update container {cid}: Restart policy cannot be updated "
                                 "because AutoRemove is enabled for the container")
        warnings = []
        if new.get("BlkioWeight") and not _blkio_weight_supported():
            # dockerd's verifyPlatformContainerResources: warn and discard
            warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                            "mounted. Weight discarded.")
            del new["BlkioWeight"]
        before = dict(hc)
        for key in ("MemoryReservation", "CpusetCpus", "CpusetMems", "BlkioWeight"):
            hc.setdefault(key, "" if key.startswith("Cpuset") else 0)
        hc.update(new)
        if rec["State"]["Running"]:
            try:
                await daemon.sup_request(sup.UpdateTask(container_id=cid, resources=linux_resources(hc)))
            except RemoteError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:
                    rec["HostConfig"] = before
                    raise HTTPError(500, f"Cannot update container {cid}: {exc.message}") from None
        daemon.save(rec)
    daemon.events.publish("container", "update", cid, daemon.event_attrs(rec))
    return warnings


def _blkio_weight_supported() -> bool:
    base = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(base, "cgroup.controllers")):  # v2
        return os.path.exists(os.path.join(base, "io.weight")) or \
            os.path.exists(os.path.join(base, "io.bfq.weight")) or _v2_io_child(base)
    return os.path.exists(os.path.join(base, "blkio", "blkio.weight"))


def _v2_io_child(base: str) -> bool:
    # the root cgroup has no io.weight: look for it one level down
    try:
        for name in os.listdir(base):
            d = os.path.join(base, name)
            if os.path.isdir(d) and (os.path.exists(os.path.join(d, "io.weight"))
                                     or os.path.exists(os.path.join(d, "io.bfq.weight"))):
                return True
    except OSError:
        pass
    return False
