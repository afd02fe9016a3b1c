"""The supervisor (containerd's role): container lifecycle through shims.

    python -m actors.supervisor --fd N --exec-root DIR [--runtime NAME=PATH ...]

Spawned by the daemon with one end of a socketpair (fd N).  It starts one
shim per task, forwards lifecycle requests to it over the shim's socket, and
sends the daemon task events (exit, adopted, shim lost).  On start it
re-adopts every shim under ``<exec-root>/shims``: a supervisor restart is
invisible to running containers, and an exit that happened while nobody
listened is reported then.

When its link to the daemon closes it exits; the shims live on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import attrs
import trio

from messages import shim as sh
from messages import supervisor as sup
from messages.errors import ErrorCode, RemoteError
from messages.link import Link, LinkClosed, open_unix_link

from . import shim as shimmod


log = logging.getLogger("trioctr.supervisor")

SHIM_TIMEOUT = 30.0  # a shim must answer a request in this long
# a ReadExecOutput is a long poll: the shim answers it within EXEC_POLL (20 s)
EXEC_READ_TIMEOUT = 60.0
REFILL_WAIT = 1.0  # the next spare is made when a created task starts, or after this long

# daemon requests that go to the task's shim as they are, less the container id
FORWARD: dict[type, type] = {
    sup.ExecTask: sh.ShimExec,
    sup.ReadExecOutput: sh.ShimExecRead,
    sup.WriteExecStdin: sh.ShimExecStdin,
    sup.ResizeExec: sh.ShimExecResize,
    sup.DeleteExec: sh.ShimExecDelete,
    sup.PauseTask: sh.ShimPause,
    sup.ResumeTask: sh.ShimResume,
    sup.UpdateTask: sh.ShimUpdate,
}


def to_shim(msg):
    """The shim's request for a forwarded daemon request."""
    cls = FORWARD[type(msg)]
    return cls(**{f.name: getattr(msg, f.name) for f in attrs.fields(cls)})
VALID_ID = set("0123456789abcdefABCDEF_-.") | set("ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ")


def valid_container_id(cid: str) -> bool:
    return 0 < len(cid) <= 128 and set(cid) <= VALID_ID and not cid.startswith(".")


@attrs.define
class ShimHandle:
    container_id: str
    dir: str
    link: Link | None = None
    info: sup.TaskInfo | None = None
    deleting: bool = False
    deleted: bool = False  # the shim answered ShimDelete
    lost: bool = False
    # its first start was answered (or failed): the time for the next spare
    started: trio.Event = attrs.field(factory=trio.Event)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


class Supervisor:
    def __init__(self, exec_root: str, runtimes: dict[str, str]):
        self.exec_root = exec_root
        self.shims_dir = os.path.join(exec_root, "shims")
        self.runtime_root = os.path.join(exec_root, "runtime")
        self.runtimes = runtimes
        self.shims: dict[str, ShimHandle] = {}
        self.daemon: Link | None = None
        self._nursery: trio.Nursery | None = None
        self._early_events: list = []
        self.zygote = ShimZygote(self.shims_dir)
        os.makedirs(self.shims_dir, exist_ok=True)
        os.makedirs(self.runtime_root, exist_ok=True)

    # -- main -----------------------------------------------------------------
    async def run(self, daemon_stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._warm_zygote)
            for ev in await self.adopt_all():
                await self._to_daemon(ev)
            link = Link(daemon_stream, role="supervisor", name="daemon")
            await link.handshake()
            self.daemon = link
            # what happened before the daemon was there to hear it
            pending, self._early_events = self._early_events, []
            for ev in pending:
                await self._to_daemon(ev)
            why = await self.daemon.serve(self)
            log.info("daemon link ended (%s): exiting, shims live on", why)
            nursery.cancel_scope.cancel()

    async def _warm_zygote(self) -> None:
        await self.zygote.refill()

    async def _to_daemon(self, event) -> None:
        if self.daemon is None:
            self._early_events.append(event)
            return
        try:
            await self.daemon.send_event(event)
        except LinkClosed:
            pass

    # -- adoption -----------------------------------------------------------------
    async def adopt_all(self) -> list:
        """Connect to every shim left by an earlier supervisor."""
        events: list = []
        try:
            names = sorted(os.listdir(self.shims_dir))
        except FileNotFoundError:
            return events

        async def adopt(cid: str) -> None:
            d = os.path.join(self.shims_dir, cid)
            handle = ShimHandle(cid, d)
            try:
                with trio.fail_after(5):
                    handle.link = await open_unix_link(os.path.join(d, shimmod.SOCKET),
                                                       role="supervisor", name=f"shim {cid[:12]}")
            except (OSError, RemoteError, trio.TooSlowError) as exc:
                events.extend(self._shim_lost(handle, f"shim did not answer: {exc}"))
                return
            self.shims[cid] = handle
            assert self._nursery is not None
            # serve the link first: the reply to ShimState is read by serve()
            self._nursery.start_soon(self._watch_shim, handle)
            try:
                reply = await handle.link.request(sh.ShimState(), timeout=5)
            except RemoteError:
                await handle.link.aclose()  # _watch_shim reports the loss
                return
            handle.info = reply.task
            events.append(sup.TaskAdopted(task=reply.task))
            if reply.task.status == "stopped":
                t = reply.task
                events.append(sup.TaskExit(container_id=cid, pid=t.pid, exit_status=t.exit_status,
                                           exited_at=t.exited_at))

        async with trio.open_nursery() as n:
            for cid in names:
                if valid_container_id(cid) and os.path.isdir(os.path.join(self.shims_dir, cid)):
                    n.start_soon(adopt, cid)
                elif cid.startswith(shimmod.GONE_PREFIX):
                    # a deleted shim's directory that its shim did not live to
                    # remove (it removes it as it exits: racing it is harmless)
                    n.start_soon(trio.to_thread.run_sync, shimmod.remove_discarded,
                                 os.path.join(self.shims_dir, cid))
        return events

    def _shim_lost(self, handle: ShimHandle, reason: str) -> list:
        """The shim is gone: kill what is left of its container, clean up, and
        report a stand-in exit so every subscriber sees a terminal event."""
        handle.lost = True
        shim_pid = read_int(os.path.join(handle.dir, shimmod.PID_FILE))
        if pid_alive(shim_pid):
            try:
                os.kill(shim_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        init_pid = read_int(os.path.join(handle.dir, shimmod.INIT_PID))
        kept = shimmod.read_exit(handle.dir)
        events: list = []
        if kept:  # it had exited and the shim recorded it before dying
            status, at = kept["exit_status"], kept["exited_at"]
        else:
            if pid_alive(init_pid):
                try:
                    os.kill(init_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            status, at = 137 if init_pid else 255, _now_ns()
        self._runtime_delete(handle.container_id)
        self._remove_cgroup_made_ahead(handle)
        shutil.rmtree(handle.dir, ignore_errors=True)
        if self.shims.get(handle.container_id) is handle:
            del self.shims[handle.container_id]
        events.append(sup.ShimLost(container_id=handle.container_id, reason=reason))
        events.append(sup.TaskExit(container_id=handle.container_id, pid=init_pid,
                                   exit_status=status, exited_at=at))
        return events

    def _remove_cgroup_made_ahead(self, handle: ShimHandle) -> None:
        """A shim makes its container's cgroup directories as it starts (see
        ShimService._warm_migrations); one lost before the runtime's create
        took them (the runtime's delete removes those it did) leaves them:
        remove them if they are there and empty (a cgroup with processes in
        it is not removed: rmdir refuses)."""
        from linux import cgroups

        try:
            with open(os.path.join(handle.dir, shimmod.BUNDLE, "config.json"), "rb") as f:
                linux = json.loads(f.read()).get("linux") or {}
            cg = cgroups.open_cgroup(linux.get("cgroupsPath") or handle.container_id)
            if cg.exists():
                cg.remove(timeout=0)
        except (OSError, ValueError, AttributeError) as exc:
            log.info("cgroup of lost shim %s not removed: %s", handle.container_id[:12], exc)

    def _runtime_delete(self, cid: str) -> None:
        """Best-effort `runtime delete --force` for a task whose shim is gone."""
        import subprocess

        cfg_path = os.path.join(self.shims_dir, cid, shimmod.SHIM_JSON)
        runtime = ""
        try:
            with open(cfg_path) as f:
                runtime = json.load(f).get("runtime", "")
        except (OSError, ValueError):
            pass
        argv = [runtime] if runtime else [sys.executable, "-m", "actors.runtime"]
        try:
            subprocess.run([*argv, "--root", self.runtime_root, "delete", "--force", cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10, env=child_env())
        except (OSError, subprocess.TimeoutExpired):
            pass

    async def _watch_shim(self, handle: ShimHandle) -> None:
        """Serve the shim's link (its exit events); if it breaks unasked,
        the shim is lost."""
        link = handle.link
        assert link is not None
        why = await link.serve(self)
        if handle.deleted or handle.lost or handle.link is not link:
            return  # (a spare's link that failed its assignment was replaced)
        if handle.deleting:
            # the shim went away in the middle of a delete (killed, or it
            # answered after the request timed out and exited): let the task
            # go as a lost one, or the dead handle would keep the container
            # id (ALREADY_EXISTS on every create, UNAVAILABLE on every delete)
            await trio.sleep(0.2)  # (a delete that did complete sets `deleted` meanwhile)
            if handle.deleted or handle.lost or self.shims.get(handle.container_id) is not handle:
                return
            self._shim_lost(handle, f"shim link closed during delete: {why}")
            return
        # give a dying shim's pid a moment to disappear
        shim_pid = read_int(os.path.join(handle.dir, shimmod.PID_FILE))
        for _ in range(20):
            if not pid_alive(shim_pid):
                break
            await trio.sleep(0.05)
        if handle.deleting:
            return
        for ev in self._shim_lost(handle, f"shim link closed: {why}"):
            await self._to_daemon(ev)

    # -- daemon requests ---------------------------------------------------------
    async def handle_event(self, link: Link, msg) -> None:
        if isinstance(msg, sup.TaskExit):  # from a shim
            handle = self.shims.get(msg.container_id)
            if handle:
                handle.info = sup.TaskInfo(container_id=msg.container_id, pid=msg.pid,
                                           status="stopped", exit_status=msg.exit_status,
                                           exited_at=msg.exited_at)
            await self._to_daemon(msg)
        else:
            log.warning("unexpected event %s from %s", type(msg).TYPE, link.name)

    async def handle_request(self, link: Link, msg):
        if link is not self.daemon:
            raise RemoteError(ErrorCode.UNIMPLEMENTED, "the supervisor takes no requests from shims")
        if isinstance(msg, sup.CreateTask):
            return await self.create(msg)
        if isinstance(msg, sup.ListTasks):
            return await self.list_tasks()
        cid = getattr(msg, "container_id", None)
        handle = self.shims.get(cid) if isinstance(cid, str) else None
        if isinstance(msg, (sup.StartTask, sup.KillTask, sup.DeleteTask, sup.WriteStdin,
                            sup.ResizeTask, *FORWARD)) and handle is None:
            raise RemoteError(ErrorCode.NOT_FOUND, f"task {cid} not found")
        if type(msg) in FORWARD:
            timeout = EXEC_READ_TIMEOUT if isinstance(msg, sup.ReadExecOutput) else SHIM_TIMEOUT
            return await self._shim_request(handle, to_shim(msg), timeout=timeout)
        if isinstance(msg, sup.StartTask):
            try:
                return await self._shim_request(handle, sh.ShimStart())
            finally:
                handle.started.set()
        if isinstance(msg, sup.KillTask):
            return await self._shim_request(handle, sh.ShimKill(signal=msg.signal, all=msg.all))
        if isinstance(msg, sup.DeleteTask):
            return await self.delete(handle)
        if isinstance(msg, sup.ResizeTask):
            return await self._shim_request(handle, sh.ShimResize(height=msg.height, width=msg.width))
        if isinstance(msg, sup.WriteStdin):
            return await self._shim_request(handle, sh.ShimStdin(data=msg.data, eof=msg.eof))
        raise RemoteError(ErrorCode.UNIMPLEMENTED, f"supervisor does not handle {type(msg).TYPE}")

    async def _shim_request(self, handle: ShimHandle, msg, timeout: float = SHIM_TIMEOUT):
        if handle.link is None or handle.link.closed:
            raise RemoteError(ErrorCode.UNAVAILABLE, f"shim of {handle.container_id[:12]} is not reachable")
        return await handle.link.request(msg, timeout=timeout)

    async def create(self, msg: sup.CreateTask) -> sup.TaskCreated:
        cid = msg.container_id
        if not valid_container_id(cid):
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"invalid container id {cid!r}")
        if cid in self.shims:
            raise RemoteError(ErrorCode.ALREADY_EXISTS, f"task {cid} already exists")
        runtime = ""
        if msg.runtime:
            runtime = self.runtimes.get(msg.runtime, "")
            if not runtime:
                raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"unknown or invalid runtime name: {msg.runtime}")
        d = os.path.join(self.shims_dir, cid)
        handle = ShimHandle(cid, d)
        self.shims[cid] = handle  # reserve the id while we work
        try:
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(os.path.join(d, shimmod.BUNDLE, "rootfs"), mode=0o711)
            # (no fsync: the exec root does not outlive a reboot, and a dir
            # left by a crash here has no shim to adopt: it is cleaned up)
            shimmod.quick_write(os.path.join(d, shimmod.BUNDLE, "config.json"),
                                json.dumps(msg.spec).encode())
            cfg = {"id": cid, "runtime": runtime, "runtime_root": self.runtime_root,
                   "log_path": msg.log_path, "stdin": msg.stdin, "terminal": msg.terminal,
                   "rootfs": [{"type": m.type, "source": m.source, "options": list(m.options)}
                              for m in msg.rootfs]}
            shimmod.quick_write(os.path.join(d, shimmod.SHIM_JSON), json.dumps(cfg).encode())
            assert self._nursery is not None
            if not await self._assign_spare(handle):
                await self.zygote.spawn(d)
                handle.link = await open_unix_link(os.path.join(d, shimmod.SOCKET),
                                                   role="supervisor", name=f"shim {cid[:12]}")
                self._nursery.start_soon(self._watch_shim, handle)
            reply = await self._shim_request(handle, sh.ShimCreate(start=msg.start))
        except BaseException:
            handle.started.set()  # (no start comes: refill now)
            await self._abandon(handle)
            raise
        finally:
            # the next spare is made once this task is started (the daemon
            # starts it right after the create): its start-up (a fork, ~6 ms
            # of CPU and a handshake on our loop) would compete with both
            self._nursery.start_soon(self._refill_after, handle.started)
        handle.info = sup.TaskInfo(container_id=cid, pid=reply.pid,
                                   status="running" if reply.started else "created")
        if reply.started:
            handle.started.set()
        return reply

    async def _refill_after(self, started: trio.Event) -> None:
        with trio.move_on_after(REFILL_WAIT):
            await started.wait()
        await self.zygote.refill()

    async def _assign_spare(self, handle: ShimHandle) -> bool:
        """Make the zygote's spare shim (linked and greeted ahead) this task's
        shim.  False if there was none, or it was gone: the caller spawns one.
        A spare that refuses the directory fails the create."""
        assert self._nursery is not None
        link = self.zygote.take_spare()
        if link is None:
            return False
        link.name = f"shim {handle.container_id[:12]}"
        handle.link = link
        self._nursery.start_soon(self._watch_shim, handle)
        try:
            await link.request(sh.ShimAssign(shim_dir=handle.dir), timeout=SHIM_TIMEOUT)
        except LinkClosed as exc:
            log.warning("the spare shim was gone (%s); spawning one", exc.message)
            handle.link = None
            await link.aclose()
            return False
        return True

    async def _abandon(self, handle: ShimHandle) -> None:
        """Undo a failed create: tell the shim to go, or clean up after it."""
        handle.deleting = True
        handle.deleted = True  # (the clean-up is ours, here: not _watch_shim's)
        with trio.CancelScope(shield=True):
            if handle.link is not None and not handle.link.closed:
                try:
                    await handle.link.request(sh.ShimDelete(), timeout=10)
                except RemoteError:
                    pass
                await handle.link.aclose()
            shim_pid = read_int(os.path.join(handle.dir, shimmod.PID_FILE))
            for _ in range(40):
                if not pid_alive(shim_pid):
                    break
                await trio.sleep(0.05)
            else:
                self._shim_lost(handle, "abandoned")
            shutil.rmtree(handle.dir, ignore_errors=True)
            self.shims.pop(handle.container_id, None)

    async def delete(self, handle: ShimHandle) -> sup.TaskDeleted:
        handle.deleting = True
        try:
            reply = await self._shim_request(handle, sh.ShimDelete())
        except RemoteError as exc:
            if exc.code is ErrorCode.FAILED_PRECONDITION:
                handle.deleting = False
            elif handle.link is None or handle.link.closed:
                # the shim died under the delete: clean up after it (as for a
                # lost shim) and answer with the exit it kept, if any
                if handle.lost or self.shims.get(handle.container_id) is not handle:
                    raise
                events = self._shim_lost(handle, f"shim link closed during delete: {exc.message}")
                ex = next(e for e in events if isinstance(e, sup.TaskExit))
                return sup.TaskDeleted(container_id=handle.container_id, exit_status=ex.exit_status,
                                       exited_at=ex.exited_at)
            raise
        handle.deleted = True
        assert handle.link is not None
        await handle.link.aclose()
        # the shim removed its mount and the runtime's state and moved its
        # directory out of the way before replying, and touches nothing shared
        # after it (it exits when this link closes, removing that directory):
        # a new task of the same container can start now
        self.shims.pop(handle.container_id, None)
        return reply

    async def list_tasks(self) -> sup.TaskList:
        tasks = []
        for handle in list(self.shims.values()):
            if handle.link is None or handle.link.closed:
                continue
            try:
                reply = await self._shim_request(handle, sh.ShimState(), timeout=5)
                handle.info = reply.task
                tasks.append(reply.task)
            except RemoteError:
                if handle.info:
                    tasks.append(handle.info)
        return sup.TaskList(tasks=tasks)


class ShimZygote:
    """The supervisor's shim factory (``python -m actors.shim zygote``), a
    child process kept warm, on a Unix socket; restarted when it dies.  It
    keeps one spare shim in hand here (``spare``: its link greeted ahead),
    which the next create assigns.  If the zygote cannot run, shims are
    started the slow way (``python -m actors.shim start DIR``)."""

    def __init__(self, home: str) -> None:
        self.home = home  # the shims directory (the spares' working directory)
        self.proc: trio.Process | None = None
        self.sock: trio.socket.SocketType | None = None
        self.spare: Link | None = None
        self._buf = b""
        self._fds: list[int] = []
        self._lock = trio.Lock()
        self._refilling = False

    async def _ensure(self) -> None:
        if self.proc is None or self.proc.returncode is not None or self.sock is None:
            await self._close_proc()
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.proc = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "actors.shim", "zygote", "--fd", str(child.fileno()),
                     "--home", self.home],
                    pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=child_env())
            except BaseException:
                parent.close()
                raise
            finally:
                child.close()
            self.sock = trio.socket.from_stdlib_socket(parent)

    async def _send(self, data: bytes) -> None:
        assert self.sock is not None
        view = memoryview(data)
        while view:
            n = await self.sock.send(view)
            view = view[n:]

    async def _readline(self) -> str:
        """A line from the zygote; fds that came with it are put in _fds."""
        from array import array

        assert self.sock is not None
        while b"\n" not in self._buf:
            data, anc, _flags, _addr = await self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array("i")
                    fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
                    self._fds.extend(fds)
            if not data:
                raise trio.BrokenResourceError("zygote exited")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace")

    async def _ask(self, request: bytes) -> tuple[str, list[int]]:
        """One request line -> (answer line, fds attached); restarts a dead
        zygote once.  Raises OSError if it cannot be had."""
        for _attempt in range(2):
            try:
                await self._ensure()
                await self._send(request)
                with trio.fail_after(30):
                    line = await self._readline()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                    trio.TooSlowError) as exc:
                log.warning("shim zygote failed (%s); restarting it", exc)
                await self._close_proc()
                continue
            fds, self._fds = self._fds, []
            return line, fds
        raise OSError("the shim zygote does not run")

    async def spawn(self, shim_dir: str) -> str:
        async with self._lock:
            try:
                line, fds = await self._ask(shim_dir.encode() + b"\n")
            except OSError:
                line = ""
            else:
                for fd in fds:
                    os.close(fd)
                word, _, text = line.partition(" ")
                if word == "ok":
                    return text
                raise RemoteError(ErrorCode.INTERNAL, f"failed to start shim: {text}")
        # the zygote cannot run: start the shim the slow way
        proc = await trio.run_process([sys.executable, "-m", "actors.shim", "start", shim_dir],
                                      capture_stdout=True, capture_stderr=True, check=False,
                                      env=child_env())
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RemoteError(ErrorCode.INTERNAL,
                              f"failed to start shim: {err[-1] if err else proc.returncode}")
        return proc.stdout.decode().strip()

    def take_spare(self) -> Link | None:
        """The spare's link (greeted), or None; the caller asks for a refill."""
        link, self.spare = self.spare, None
        return link if link is not None and not link.closed else None

    async def refill(self) -> None:
        """Have a spare in hand (asking the zygote for one if there is none)."""
        if self._refilling or (self.spare is not None and not self.spare.closed):
            return
        self._refilling = True
        try:
            async with self._lock:
                try:
                    line, fds = await self._ask(b"spare\n")
                except OSError as exc:
                    log.warning("no spare shim: %s", exc)
                    return
            if line != "spare" or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                log.warning("no spare shim: %s", line or "no link")
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fds[0])
            link = Link(trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                        role="supervisor", name="spare shim")
            try:
                await link.handshake(timeout=30)
            except (RemoteError, trio.TooSlowError, OSError) as exc:
                log.warning("the spare shim did not greet: %s", exc)
                await link.aclose()
                return
            self.spare = link
        finally:
            self._refilling = False

    async def _close_proc(self) -> None:
        proc, self.proc = self.proc, None
        sock, self.sock = self.sock, None
        self._buf = b""
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        with trio.CancelScope(shield=True):
            if sock is not None:
                sock.close()
            if proc is not None:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()

    async def aclose(self) -> None:
        spare, self.spare = self.spare, None
        with trio.CancelScope(shield=True):
            if spare is not None:
                await spare.aclose()
        await self._close_proc()


def _now_ns() -> int:
    import time

    return time.time_ns()


def child_env() -> dict[str, str]:
    """Our environment with this checkout first on PYTHONPATH, for the actors
    we start as `python -m actors.X`."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


async def amain(args: argparse.Namespace) -> None:
    runtimes = {}
    for item in args.runtime or []:
        name, _, path = item.partition("=")
        runtimes[name] = path
    sock = socket.socket(fileno=args.fd)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    await Supervisor(args.exec_root, runtimes).run(stream)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trioctr-supervisor")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--exec-root", required=True)
    p.add_argument("--runtime", action="append", help="NAME=PATH of an extra OCI runtime")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s supervisor %(levelname)s %(message)s")
    # No PR_SET_PDEATHSIG: it fires when the *thread* that forked us exits,
    # and trio forks from worker threads that retire after 10 s idle.  EOF on
    # the daemon's socketpair is what ends us when the daemon dies.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    trio.run(amain, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
