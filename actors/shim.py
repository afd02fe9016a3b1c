"""The shim: one detached process per container (containerd-shim's role).

    python -m actors.shim start DIR     (DIR = <exec-root>/shims/<id>)

``start`` forks the shim proper and returns once its socket is listening
(printing the socket path), so the shim is never a child of the supervisor.
The shim:

- becomes a session leader and a child subreaper, so the container's init is
  reparented to it when the runtime exits;
- unshares a private mount namespace (rslave) and mounts the container's
  rootfs there: nothing is mounted in the host namespace, nothing can leak;
- owns the container's stdio and writes the json-file log itself, so no line
  is lost while the daemon or the supervisor is down;
- keeps the exit status (``exit.json``) until a supervisor acknowledges it
  with ShimDelete, then deletes the task, removes DIR and exits;
- serves ``shim.sock`` to any number of supervisors over its lifetime.

The pure part (the task's state machine) is ``TaskState``; the rest is the
trio shell.
"""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
import time

import logging
import socket

import attrs
import trio

from messages import runtime as rt
from messages import shim as sh
from messages import supervisor as sup
from messages.base import Ok, unpack
from messages.errors import ErrorCode, RemoteError
from messages.link import Link
from messages.wire import FrameDecoder

from .containers import rfc3339nano


log = logging.getLogger("trioctr.shim")

# -- files in the shim directory ------------------------------------------
SHIM_JSON = "shim.json"  # written by the supervisor: what to run
SOCKET = "shim.sock"
PID_FILE = "shim.pid"
INIT_PID = "init.pid"
EXIT_JSON = "exit.json"
LOG = "shim.log"
# our own runtime's commands that the shim calls in-process (no hooks; see _in_process)
IN_PROCESS_COMMANDS = frozenset({"create", "start", "kill", "delete", "pause", "resume", "update"})
SWITCH_INTERVAL = 0.0005  # seconds; see _setup_shim
BUNDLE = "bundle"


@attrs.frozen(kw_only=True)
class ShimConfig:
    """shim.json: everything the shim needs, written by the supervisor."""

    id: str
    runtime: str = ""  # path to runc/crun; "" = trioctr's own runtime
    runtime_root: str
    log_path: str = ""  # the container's json-file log
    rootfs: list[dict] = attrs.field(factory=list)  # messages.supervisor.Mount dicts
    stdin: bool = False
    terminal: bool = False


class Status(str, enum.Enum):
    NEW = "new"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DELETED = "deleted"


class StateError(Exception):
    pass


@attrs.define
class TaskState:
    """The shim's task state machine, free of I/O (explicit refusals)."""

    status: Status = Status.NEW
    pid: int = 0
    exit_status: int = 0
    exited_at: int = 0

    def created(self, pid: int) -> None:
        if self.status is not Status.NEW:
            raise StateError(f"cannot create task in {self.status.value} state")
        self.status, self.pid = Status.CREATED, pid

    def check_start(self) -> None:
        if self.status is not Status.CREATED:
            raise StateError(f"cannot start task in {self.status.value} state")

    def started(self) -> None:
        if self.status is Status.STOPPED and self.pid:
            return  # it ran and exited before the runtime's `start` returned
        self.check_start()
        self.status = Status.RUNNING

    def exited(self, status: int, at_ns: int) -> None:
        if self.status in (Status.STOPPED, Status.DELETED):
            return
        self.status, self.exit_status, self.exited_at = Status.STOPPED, status, at_ns

    def check_kill(self) -> None:
        if self.status not in (Status.CREATED, Status.RUNNING, Status.PAUSED):
            raise StateError(f"cannot kill task in {self.status.value} state")

    def check_delete(self) -> None:
        if self.status in (Status.CREATED, Status.RUNNING, Status.PAUSED):
            raise StateError(f"cannot delete task in {self.status.value} state")

    def check_pause(self) -> None:
        if self.status is not Status.RUNNING:
            raise StateError(f"cannot pause task in {self.status.value} state")

    def paused(self) -> None:
        if self.status is Status.RUNNING:
            self.status = Status.PAUSED

    def check_resume(self) -> None:
        if self.status is not Status.PAUSED:
            raise StateError(f"cannot resume task in {self.status.value} state")

    def resumed(self) -> None:
        if self.status is Status.PAUSED:
            self.status = Status.RUNNING

    def check_exec(self) -> None:
        if self.status is not Status.RUNNING:
            raise StateError(f"cannot exec in a {self.status.value} task")

    def check_update(self) -> None:
        if self.status not in (Status.CREATED, Status.RUNNING, Status.PAUSED):
            raise StateError(f"cannot update task in {self.status.value} state")


EXEC_BUFFER = 1 << 20  # output kept per exec until read; then the process waits
EXEC_READ_MAX = 4 << 20  # bytes in one ExecOutput reply, at most
EXEC_POLL = 20.0  # a read with nothing to say is answered after this long
EXEC_MAX = 1024  # execs a shim keeps at once
EXEC_DRAIN = 2.0  # after an exec exited, how long its output may stay open (background children)


class OutputBuffer:
    """An exec's output as one byte sequence across stdout and stderr, kept
    from the last acknowledged offset on: a reader that asks again for the
    same offset (its supervisor died in between) gets the same bytes."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, int, bytes]] = []  # (offset, stream, data)
        self.end = 0  # the offset after the last byte
        self.acked = 0

    def add(self, stream: int, data: bytes) -> None:
        if data:
            self.chunks.append((self.end, stream, data))
            self.end += len(data)

    def ack(self, offset: int) -> None:
        """Everything before ``offset`` was delivered: forget it."""
        offset = min(max(offset, self.acked), self.end)
        self.acked = offset
        while self.chunks and self.chunks[0][0] + len(self.chunks[0][2]) <= offset:
            self.chunks.pop(0)

    @property
    def pending(self) -> int:
        return self.end - self.acked

    def take(self, offset: int, max_bytes: int) -> tuple[list[tuple[int, bytes]], int]:
        """Chunks from ``offset`` on, at most ``max_bytes``, and the offset after them."""
        out: list[tuple[int, bytes]] = []
        pos = max(offset, self.acked)
        size = 0
        for start, stream, data in self.chunks:
            if start + len(data) <= pos:
                continue
            piece = data[pos - start:] if start < pos else data
            piece = piece[:max_bytes - size]
            if not piece:
                break
            if out and out[-1][0] == stream:
                out[-1] = (stream, out[-1][1] + piece)
            else:
                out.append((stream, piece))
            size += len(piece)
            pos += len(piece)
        return out, pos


def close_fd(fd: int) -> None:
    """Close an fd a task may be waiting on (wait_readable/wait_writable):
    trio wakes the waiter with ClosedResourceError first.  Closed without
    telling, the waiter sleeps for ever on an fd number that the next pipe
    or socket reuses."""
    try:
        trio.lowlevel.notify_closing(fd)
    except RuntimeError:  # not in trio
        pass
    os.close(fd)


def wait_status_to_exit_code(status: int) -> int:
    """Docker's convention: the exit code, or 128 + the signal that killed it."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 255


def quick_write(path: str, data: bytes) -> None:
    """Write a whole file or nothing (renamed into place), not synced: every
    file of a shim is in the exec root (a tmpfs in production), which does
    not outlive a reboot anyway."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


# a deleted shim's directory, renamed to <shims>/GONE_PREFIX<id>-<pid> until it
# is removed (by the shim as it exits, else by the next supervisor)
GONE_PREFIX = ".gone-"


def remove_discarded(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def read_exit(shim_dir: str) -> dict | None:
    try:
        with open(os.path.join(shim_dir, EXIT_JSON)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class JsonLogWriter:
    """Docker's json-file log format, one object per line.  Lines longer than
    16 KiB are split (Docker's partial messages), as dockerd does."""

    MAX_LINE = 16 * 1024

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640) if path else -1
        self._partial = {"stdout": b"", "stderr": b""}

    def _emit(self, stream: str, line: bytes) -> None:
        if self.fd < 0:
            return
        rec = {"log": line.decode("utf-8", "replace"), "stream": stream,
               "time": rfc3339nano(time.time_ns())}
        os.write(self.fd, (json.dumps(rec, ensure_ascii=False) + "\n").encode())

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            self._emit(stream, buf[:nl + 1])
            buf = buf[nl + 1:]
        while len(buf) >= self.MAX_LINE:
            self._emit(stream, buf[:self.MAX_LINE])
            buf = buf[self.MAX_LINE:]
        self._partial[stream] = buf

    def flush(self, stream: str) -> None:
        if self._partial[stream]:
            self._emit(stream, self._partial[stream])
            self._partial[stream] = b""

    def close(self) -> None:
        for s in ("stdout", "stderr"):
            self.flush(s)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- start: detach and report readiness -------------------------------------
def spawn_detached(shim_dir: str) -> tuple[bool, str]:
    """Fork the shim proper for ``shim_dir``; wait until its socket listens.
    Returns (True, socket path) or (False, one-line error)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            # nothing of our parent's (a zygote's control socket) but stdio
            os.closerange(3, w)
            os.closerange(w + 1, 1 << 20)
            os.setsid()
            if os.fork() != 0:  # the shim is a grandchild: nobody's child but init's
                os._exit(0)
            _become_shim(shim_dir, w)
        except BaseException as exc:  # noqa: BLE001 - report and die
            try:
                os.write(w, f"error: {exc}\n".encode())
            finally:
                os._exit(1)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    try:
        return _read_ready(r, shim_dir)
    finally:
        os.close(r)


def _read_ready(r: int, shim_dir: str) -> tuple[bool, str]:
    """Read the shim's ready pipe to EOF: "ready" or an error line."""
    msg = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        msg += chunk
    text = msg.decode(errors="replace").strip()
    if text.startswith("ready"):
        return True, os.path.join(shim_dir, SOCKET)
    return False, (text or "error: shim exited before it was ready").splitlines()[-1]


def cmd_start(shim_dir: str) -> int:
    ok, text = spawn_detached(shim_dir)
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


# everything our runtime imports lazily, in the commands the shim calls
# in-process (worker threads) and in the ones it forks (create, exec)
RUNTIME_MODULES = ("actors.runtime", "linux.cgroups", "linux.mounts", "linux.caps", "linux.seccomp",
                   "linux.bpf", "linux.net", "linux.syscalls", "oci.units", "json", "_json", "shutil",
                   "subprocess", "socket", "_socket", "fcntl", "struct", "termios", "errno", "copy",
                   "_sha256")


def preload_runtime() -> None:
    """Import our runtime and everything it imports lazily, before any thread
    runs: the shim forks itself (create, exec) while worker threads run the
    runtime's quick commands in-process, and a module lock held by such a
    thread mid-import would be held forever in the forked child, which then
    hangs on its own import of that module (and the shim waits on it,
    shielded, for ever)."""
    import importlib

    for name in RUNTIME_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional piece (it fails the same in the child)
            pass
    # and libseccomp loaded (and asked its version, part of the cache key of
    # compiled programs): every create would dlopen it again otherwise
    try:
        from linux import seccomp

        seccomp.library_version()
    except (ImportError, OSError):
        pass


def warm_messages() -> None:
    """Make the wire converter's code for every message now, in the zygote:
    cattrs generates a class's (un)structure code at its first use, ~1 ms for
    the first hello, and every shim would pay it again on its own first
    hello, create and reply.  Best effort: a message it cannot make up an
    instance of is only half warmed."""
    import typing

    from messages.base import REGISTRY, Kind, converter, pack, unpack

    samples = {str: "", int: 0, bool: False, float: 0.0, bytes: b"", dict: {}, list: []}

    def sample(tp):
        if tp in samples:
            return samples[tp]
        if typing.get_origin(tp) is list:
            return []
        if typing.get_origin(tp) is dict:
            return {}
        if attrs.has(tp):
            attrs.resolve_types(tp)
            return tp(**{f.name: sample(f.type) for f in attrs.fields(tp)
                         if f.default is attrs.NOTHING})
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if args:
            return sample(args[0])
        return None

    for cls in list(REGISTRY.values()):
        try:
            converter.get_structure_hook(cls)
            converter.get_unstructure_hook(cls)
            unpack(pack(Kind.EVENT, 0, sample(cls)))
        except Exception:  # noqa: BLE001 - warming only
            pass


def cmd_zygote(ctl_fd: int, home: str) -> int:
    """A shim factory with everything already imported (trio, the wire, this
    module), serving the supervisor on ``ctl_fd`` (a Unix stream socket), one
    request line at a time:

    - ``spare``: fork a spare shim (see ``fork_spare``) and answer ``spare``
      with the supervisor's end of the spare's link attached (SCM_RIGHTS).
      The supervisor greets it ahead and keeps it until its next create, then
      hands it the shim directory (ShimAssign): no fork, no interpreter, no
      connect on the create's path.
    - a shim directory: hand it to a shim forked now (when no spare was at
      hand), answering ``ok <socket>`` or ``error <text>``.

    Spawning a shim so costs a fork, not an interpreter start-up.  The zygote
    ends with its parent, the supervisor (EOF on ``ctl_fd``; not
    PR_SET_PDEATHSIG, which follows the forking thread, and trio forks from
    worker threads); the shims and spares it made do not: a spare ends with
    its link to the supervisor."""
    preload_runtime()  # imported once here: shims call it in-process and fork it
    warm_messages()
    # what we made so far is for good: the collector of each shim need not
    # walk it (nor touch, and so copy, its pages)
    import gc
    from array import array

    gc.freeze()
    ctl = socket.socket(fileno=ctl_fd)
    for line in ctl.makefile("rb"):
        word = line.decode(errors="replace").strip()
        if word == "spare":
            end = fork_spare(home)
            if end is None:
                ctl.sendall(b"error: cannot fork a spare shim\n")
                continue
            try:
                ctl.sendmsg([b"spare\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                            array("i", [end.fileno()]))])
            finally:
                end.close()
            continue
        shim_dir = word
        if not shim_dir or not os.path.isabs(shim_dir) or not os.path.isdir(shim_dir):
            ok, text = False, f"error: not a shim directory: {shim_dir!r}"
        else:
            ok, text = spawn_detached(shim_dir)
        ctl.sendall(f"{'ok' if ok else 'error'} {text}\n".encode())
    return 0


def fork_spare(home: str) -> socket.socket | None:
    """Fork a spare shim, detached already (setsid, double fork: nobody's
    child but init's), linked to the supervisor by a socket pair: returns the
    supervisor's end (None if the fork failed).  The spare waits in
    ``trio.run`` for its assignment and does nothing container-specific until
    then: no mount, no pid file, no thread (``unshare(CLONE_NEWNS)`` needs a
    single-threaded process).  It holds nothing of the zygote's (the control
    socket), so neither outlives the other's use; its working directory is
    ``home`` (the shims directory of its engine) until it has a task.  The
    end of its link (EOF before an assignment) ends it."""
    try:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        mine.close()
        theirs.close()
        return None
    if pid == 0:
        try:
            fd = mine.detach()
            # let go of the zygote's stdio and control socket, keep the link
            devnull = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(devnull, target)
            os.close(devnull)
            os.closerange(3, fd)
            os.closerange(fd + 1, 1 << 20)
            os.chdir(home)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            trio.run(_spare_main, fd)
        except BaseException:  # noqa: BLE001 - a spare has nobody to tell
            os._exit(1)
        os._exit(0)
    mine.close()
    os.waitpid(pid, 0)
    return theirs


class _Spare:
    """The handler of a spare's link: ShimAssign first, then the shim's own
    requests (the link stays: it is the first supervisor link of the shim)."""

    def __init__(self) -> None:
        self.service: ShimService | None = None
        self.assigned = trio.Event()
        self._assigning = False

    async def handle_request(self, link: Link, msg):
        if self.service is not None:
            return await self.service.handle_request(link, msg)
        if not isinstance(msg, sh.ShimAssign):
            raise RemoteError(ErrorCode.FAILED_PRECONDITION, "this shim has no task yet")
        if self._assigning:
            raise RemoteError(ErrorCode.FAILED_PRECONDITION, "this shim is being assigned")
        self._assigning = True
        if not os.path.isabs(msg.shim_dir) or not os.path.isdir(msg.shim_dir):
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"not a shim directory: {msg.shim_dir!r}")
        try:
            cfg = _setup_shim(msg.shim_dir)
        except Exception as exc:  # noqa: BLE001 - the supervisor is told and lets us go
            raise RemoteError(ErrorCode.INTERNAL, f"failed to start shim: {exc}") from None
        service = ShimService(msg.shim_dir, cfg)
        service.links.add(link)
        self.service = service
        self.assigned.set()
        await service.serving.wait()
        return sh.ShimAssigned(pid=os.getpid())

    async def handle_event(self, link: Link, msg) -> None:
        if self.service is not None:
            await self.service.handle_event(link, msg)


async def _spare_main(fd: int) -> None:
    # (our listening socket, made ahead; bound once we know our directory)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    link = Link(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), role="shim",
                name="supervisor")
    try:
        await link.handshake(timeout=60)
    except Exception:  # noqa: BLE001 - nobody to serve: exit
        await link.aclose()
        return
    spare = _Spare()
    async with trio.open_nursery() as nursery:
        async def first_link() -> None:
            await link.serve(spare)
            service = spare.service
            if service is None or not service.serving.is_set():
                nursery.cancel_scope.cancel()  # let go before it had a task: exit
                return
            service.links.discard(link)
            if service.task.status is Status.DELETED:
                service.done.set()  # the supervisor has our last reply: go

        nursery.start_soon(first_link)
        await spare.assigned.wait()
        assert spare.service is not None
        await spare.service.run(None, listener)
        nursery.cancel_scope.cancel()


def _setup_shim(shim_dir: str) -> ShimConfig:
    """The container-specific start of a shim, in a detached process with no
    thread: our stdio to shim.log, child subreaper, a private mount
    namespace with the rootfs mounted in it, the pid file."""
    from linux import syscalls as sc

    with open(os.path.join(shim_dir, SHIM_JSON)) as f:
        cfg = ShimConfig(**json.load(f))
    # our own stdio goes to shim.log; the container's stdio is separate pipes
    logfd = os.open(os.path.join(shim_dir, LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.close(logfd)
    os.close(devnull)
    sc.set_child_subreaper()
    # a private mount namespace: the rootfs mount lives and dies with us
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE, None)
    rootfs = os.path.join(shim_dir, BUNDLE, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    for m in cfg.rootfs:
        sc.mount(m["source"], rootfs, m["type"], 0, ",".join(m.get("options", [])))
    quick_write(os.path.join(shim_dir, PID_FILE), str(os.getpid()).encode())
    # our worker threads run Python (the runtime's create, cgroup set-up)
    # while the trio loop must answer the supervisor: a thread that wants the
    # GIL gets it within this long (the default, 5 ms, was seen holding an
    # answer back by as much)
    sys.setswitchinterval(SWITCH_INTERVAL)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s shim %(levelname)s %(message)s")
    return cfg


def _become_shim(shim_dir: str, ready_fd: int) -> None:
    cfg = _setup_shim(shim_dir)
    preload_runtime()  # (the zygote did it already; `shim start DIR` did not)
    trio.run(_serve, shim_dir, cfg, ready_fd)


async def _serve(shim_dir: str, cfg: ShimConfig, ready_fd: int, sock=None) -> None:
    service = ShimService(shim_dir, cfg)
    await service.run(ready_fd, sock)


class Reaper:
    """We are a subreaper: every orphan of the container ends up our child.
    One SIGCHLD loop reaps them all and hands each exit to whoever waits on
    that pid (the runtime process, the container init)."""

    def __init__(self) -> None:
        self.exits: dict[int, int] = {}  # pid -> wait status, unclaimed
        self._waiters: dict[int, trio.Event] = {}
        self._forgotten: set[int] = set()  # children whose exit nobody will claim

    def forget(self, pid: int) -> None:
        """Nobody will wait for this child: drop its exit when it comes."""
        if self.exits.pop(pid, None) is None:
            self._forgotten.add(pid)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self._forgotten:
                self._forgotten.discard(pid)
                continue
            self.exits[pid] = status
            ev = self._waiters.pop(pid, None)
            if ev:
                ev.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGCHLD) as sigs:
            task_status.started()
            self.reap()
            async for _ in sigs:
                self.reap()

    async def wait(self, pid: int) -> int:
        while pid not in self.exits:
            ev = self._waiters.setdefault(pid, trio.Event())
            # a signal may have been coalesced: reap once more before sleeping
            self.reap()
            if pid in self.exits:
                break
            with trio.move_on_after(1.0):
                await ev.wait()
        return self.exits.pop(pid)


class ShimService:
    def __init__(self, shim_dir: str, cfg: ShimConfig):
        self.execs: dict[str, ExecProc] = {}
        self.dir = shim_dir
        self.cfg = cfg
        self.bundle = os.path.join(shim_dir, BUNDLE)
        self.task = TaskState()
        self.reaper = Reaper()
        self.links: set = set()
        self.exited = trio.Event()
        self.done = trio.Event()
        self.log = JsonLogWriter(cfg.log_path)
        self.stdin_w: int | None = None
        self._io_done = trio.Event()
        self._lock = trio.Lock()
        self._stdin_lock = trio.Lock()
        self.master = -1  # the pty master, for containers with a TTY
        self.init_reaped = False
        self._console_ready = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._has_hooks: bool | None = None  # read from the bundle at the first runtime call
        self._config: dict | None = None  # the bundle's config.json (see _bundle_config)
        self._sigkilled = False  # a SIGKILL was sent to the task
        self._cgroup_made = trio.Event()  # (see _warm_migrations)
        self.serving = trio.Event()  # set once requests can be served
        self._sync_reply = None  # our runtime's answer to the last create
        self._precreated = None  # the cgroup made ahead, until a create takes it
        self.discarded = ""  # our directory, renamed at delete; removed as we exit
        # an exit kept from an earlier life of this shim is impossible (one
        # shim per task), but a stale exit.json from a crashed start is removed
        try:
            os.unlink(os.path.join(shim_dir, EXIT_JSON))
        except FileNotFoundError:
            pass

    # -- the trio shell -----------------------------------------------------
    async def run(self, ready_fd: int | None, sock=None) -> None:
        sock_path = os.path.join(self.dir, SOCKET)
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # bind relative to our directory: exec-root/shims/<64-hex id>/shim.sock can
        # be longer than sun_path's 108 bytes
        os.chdir(self.dir)
        # (synchronously: trio binds a unix socket in a worker thread, ~1 ms
        # for a path in our own directory)
        sock.bind(SOCKET)
        os.chmod(sock_path, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.reaper.run)
            nursery.start_soon(self._accept, listener)
            if ready_fd is not None:
                os.write(ready_fd, b"ready\n")
                os.close(ready_fd)
            self.serving.set()
            nursery.start_soon(self._warm_migrations)
            await self.done.wait()
            nursery.cancel_scope.cancel()
        if self.task.status is not Status.DELETED:
            # (after a delete our directory is gone already, and the path may
            # belong to the next shim of the same container by now)
            try:
                os.unlink(sock_path)
            except OSError:
                pass
        if self.discarded:
            remove_discarded(self.discarded)

    async def _warm_migrations(self) -> None:
        """Make the container's cgroup directories now, in a worker thread,
        while the supervisor still asks for the create: for our own runtime
        (what its create would make: it finds them and goes on; they are
        removed with the cgroup, or here if the create does not take them).

        And where the runtime moves the container's init by pid (runc, crun,
        and ours on cgroup v2), take the kernel's first-migration wait (an
        RCU grace period, ~15 ms) now rather than in the runtime's create
        (see linux.cgroups.warm_migrations, Cgroup.open_self_join).  That wait
        holds the cgroup mutex, which every cgroup mkdir needs too: the
        directories are made first (measured: the runtime's cgroup step
        7.2 -> 1.9 ms, p50)."""
        from linux import cgroups

        if self.task.status is not Status.NEW:
            self._cgroup_made.set()
            return

        def work() -> None:
            try:
                if not self.cfg.runtime:
                    self._precreated = self._make_cgroup_dirs()
            finally:
                trio.from_thread.run_sync(self._cgroup_made.set)
            if self.cfg.runtime or cgroups.detect_version() == 2:
                cgroups.warm_migrations(cgroups.own_procs_file())

        await trio.to_thread.run_sync(work)

    def _make_cgroup_dirs(self):
        """The container's cgroup directories, made ahead (None if there is
        nothing to make or it fails: the runtime then makes them and says why)."""
        from linux import cgroups

        try:
            linux = self._bundle_config().get("linux") or {}
            path = linux.get("cgroupsPath") or self.cfg.id
            cg = cgroups.open_cgroup(path)
            if cg.exists():
                return None  # not ours to make (nor to remove)
            cg.create()
            return cg
        except Exception as exc:  # noqa: BLE001 - an optimisation only
            log.info("cgroup not made ahead: %s", exc)
            return None

    async def _unmake_cgroup_dirs(self) -> None:
        """Remove the cgroup directories made ahead when no runtime took them."""
        cg, self._precreated = self._precreated, None
        if cg is not None:
            def remove() -> None:
                try:
                    cg.remove(timeout=0.5)
                except OSError:
                    pass
            await trio.to_thread.run_sync(remove)

    async def _accept(self, listener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(self._serve_link, stream)

    async def _serve_link(self, stream) -> None:
        link = Link(stream, role="shim", name=f"supervisor@{self.cfg.id[:12]}")
        try:
            await link.handshake()
        except Exception as exc:
            log.warning("handshake failed: %s", exc)
            await link.aclose()
            return
        self.links.add(link)
        try:
            await link.serve(self)
        finally:
            self.links.discard(link)
            if self.task.status is Status.DELETED:
                self.done.set()  # the supervisor has our last reply: go

    async def handle_event(self, link: Link, msg) -> None:
        log.warning("unexpected event %s", type(msg).TYPE)

    async def handle_request(self, link: Link, msg):
        try:
            if isinstance(msg, sh.ShimCreate):
                # seen through whoever listens (the console wait included): the
                # task's state must say what the runtime did
                with trio.CancelScope(shield=True):
                    created = await self._create()
                    if msg.start:
                        return await self._start_after_create(created)
                    return created
            if isinstance(msg, sh.ShimStart):
                return await self._start()
            if isinstance(msg, sh.ShimKill):
                return await self._kill(msg.signal, msg.all)
            if isinstance(msg, sh.ShimState):
                return sh.ShimStateReply(task=self._info())
            if isinstance(msg, sh.ShimStdin):
                return await self._stdin(msg.data, msg.eof)
            if isinstance(msg, sh.ShimResize):
                return self._resize(msg.height, msg.width)
            if isinstance(msg, sh.ShimDelete):
                return await self._delete()
            if isinstance(msg, sh.ShimExec):
                return await self._exec(msg)
            if isinstance(msg, sh.ShimExecRead):
                return await self._exec_read(msg.exec_id, msg.offset, msg.max_bytes)
            if isinstance(msg, sh.ShimExecStdin):
                return await self._exec_stdin(msg)
            if isinstance(msg, sh.ShimExecResize):
                ex = self._get_exec(msg.exec_id)
                if ex.master < 0:
                    raise RemoteError(ErrorCode.FAILED_PRECONDITION, "the exec has no TTY")
                _set_winsize(ex.master, msg.height, msg.width)
                return Ok()
            if isinstance(msg, sh.ShimExecDelete):
                return self._exec_delete(msg.exec_id, msg.orphan)
            if isinstance(msg, sh.ShimPause):
                return await self._pause()
            if isinstance(msg, sh.ShimResume):
                return await self._resume()
            if isinstance(msg, sh.ShimUpdate):
                return await self._update(msg.resources)
        except StateError as exc:
            raise RemoteError(ErrorCode.FAILED_PRECONDITION, str(exc)) from None
        raise RemoteError(ErrorCode.UNIMPLEMENTED, f"shim does not handle {type(msg).TYPE}")

    def _info(self) -> sup.TaskInfo:
        t = self.task
        return sup.TaskInfo(container_id=self.cfg.id, pid=t.pid, status=t.status.value,
                            exit_status=t.exit_status, exited_at=t.exited_at,
                            exec_ids=sorted(e.id for e in self.execs.values() if not e.orphan))

    # -- runtime invocations ------------------------------------------------
    def _runtime_argv(self, *args: str, log_file: str = "") -> list[str]:
        log_file = log_file or os.path.join(self.dir, "runtime.log")
        if self.cfg.runtime:
            base = [self.cfg.runtime]
        else:
            # -S: no site processing (.pth files, editable finders) at each of
            # the runtime's start-ups; _runtime_env puts site-packages on the path
            base = [sys.executable, "-S", "-m", "actors.runtime"]
        return [*base, "--root", self.cfg.runtime_root, "--log", log_file,
                "--log-format", "json", *args]

    def _runtime_env(self) -> dict[str, str]:
        import site

        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [root, *site.getsitepackages()]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def _in_process(self, command: str) -> bool:
        """Whether a runtime command can run in this process: our own runtime
        (not runc/crun), a command that forks nothing of its own (but create,
        whose one child is waited for through our reaper: see _create_here),
        and no OCI hooks (they are child processes, and our reaper owns
        waitpid)."""
        if self.cfg.runtime or command not in IN_PROCESS_COMMANDS:
            return False
        if self._has_hooks is None:
            try:
                self._has_hooks = bool(self._bundle_config().get("hooks"))
            except (OSError, ValueError):
                self._has_hooks = True  # when in doubt, the separate process
        return not self._has_hooks

    def _bundle_config(self) -> dict:
        """The bundle's config.json, read once: it does not change while we
        live (an update's resources go to a file of their own).  Shared by
        every caller: copy what you change."""
        if self._config is None:
            with open(os.path.join(self.bundle, "config.json"), "rb") as f:
                cfg = json.loads(f.read())
            if not isinstance(cfg, dict):
                raise ValueError("config.json is not an object")
            self._config = cfg
        return self._config

    async def _run_runtime(self, *args: str, stdio: tuple[int, int, int] | None = None,
                           pass_fds: tuple[int, ...] = (), tag: str = "",
                           sync: tuple[int, int] | None = None) -> tuple[int, str]:
        """Run a runtime command; return (wait status, error text).  ``tag``
        names its own error and log files (concurrent execs).  ``sync``: our
        runtime's (--sync-fd) socketpair, (our end, its end: closed here once
        it is forked); its answer is kept in ``_sync_reply``, and a create it
        reports done is not waited for (see _answer_or_exit)."""
        import subprocess

        errfile = os.path.join(self.dir, f"{tag}.err" if tag else "runtime.err")
        log_file = os.path.join(self.dir, f"{tag}.log" if tag else "runtime.log")
        if stdio is None and not pass_fds and self._in_process(args[0]):
            # our runtime's quick commands (start, kill, delete, ...) as a call
            # in a worker thread, not a new interpreter (~50-100 ms each);
            # like the process, it is seen through whoever is listening
            return await trio.to_thread.run_sync(self._runtime_call, args, log_file)
        with open(errfile, "wb") as err:
            if not self.cfg.runtime:
                # our own runtime is already imported here (the zygote did it):
                # a fork that runs it costs no interpreter start-up
                try:
                    pid = self._fork_runtime(self._runtime_argv(*args, log_file=log_file)[4:],
                                             stdio or (-1, -1, err.fileno()), pass_fds)
                finally:
                    if sync is not None:
                        os.close(sync[1])  # (the runtime's: EOF on ours when it exits)
            else:
                stdin, stdout, stderr = stdio if stdio else (subprocess.DEVNULL, subprocess.DEVNULL, err.fileno())
                proc = subprocess.Popen(self._runtime_argv(*args, log_file=log_file), stdin=stdin, stdout=stdout,
                                        stderr=stderr, pass_fds=pass_fds, cwd=self.bundle,
                                        env=self._runtime_env(), close_fds=True)
                # the reaper owns waitpid for all our children; Popen must not
                proc.returncode = 0
                pid = proc.pid
        # a runtime command that was started is seen through, even when the
        # requester goes away (a supervisor killed mid-start): the task's state
        # must follow what the runtime really did
        with trio.CancelScope(shield=True):
            if sync is not None and not self.cfg.runtime:
                if await self._answer_or_exit(pid, sync[0]):
                    return 0, ""
            status = await self.reaper.wait(pid)
        text = ""
        try:
            with open(errfile, "rb") as f:
                text = f.read().decode(errors="replace").strip()
        except OSError:
            pass
        if not text:
            text = _last_runtime_log_error(log_file)
        if tag:
            for path in (errfile, log_file):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return status, text

    async def _answer_or_exit(self, pid: int, fd: int) -> bool:
        """Read our runtime's answer on the sync socket (kept in _sync_reply).
        True if it reports the container created: its pid file and state are
        written before it answers and it has nothing left to do but exit, so
        the create goes on at once (the reaper reaps it meanwhile; waiting for
        the exit of a fork of this process costs 2-5 ms).  False (a failure,
        or no answer: it died) -> the caller waits for its exit status."""
        self._sync_reply = reply = await _receive_sync_reply(fd)
        if isinstance(reply, rt.ContainerCreated):
            assert self._nursery is not None
            self._nursery.start_soon(self.reaper.wait, pid)
            return True
        return False

    def _fork_runtime(self, argv: list[str], stdio: tuple[int, int, int], pass_fds: tuple[int, ...]) -> int:
        """Fork a child that runs our runtime's command line ``argv`` and exits:
        what ``subprocess.Popen([python, -m, actors.runtime, *argv], close_fds=True,
        pass_fds=...)`` would make, without the ~20 ms of a new interpreter and
        its imports.  ``stdio`` fds become 0, 1, 2 (-1: /dev/null)."""
        from . import runtime as runtime_cli

        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:  # the child: nothing of trio or the shim may run here
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            devnull = os.open(os.devnull, os.O_RDWR)
            fds = [fd if fd >= 0 else devnull for fd in stdio]
            # dup first (a target may be one of the sources), then place
            fds = [os.dup(fd) for fd in fds]
            for target, fd in enumerate(fds):
                os.dup2(fd, target, inheritable=True)
            keep = sorted(set(pass_fds))
            low = 3
            for fd in keep + [1 << 20]:
                if fd > low:
                    os.closerange(low, fd)
                low = fd + 1
            for fd in keep:
                os.set_inheritable(fd, True)
            os.chdir(self.bundle)
            # fresh stdio objects: a worker thread of the shim (an in-process
            # runtime call flushing them, a log line) may have held the old
            # ones' buffer locks at the fork, and they stay held here
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            code = runtime_cli._main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException as exc:  # noqa: BLE001 - say it on stderr and fail
            try:
                os.write(2, f"trioctr-runtime: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code & 0xFF)

    async def _create_here(self, pid_file: str, stdio: tuple[int, int, int],
                           console_socket: str | None) -> tuple[int, str]:
        """Our runtime's create in a worker thread of this process (see
        actors.runtime.create_in_host); its report is kept in _sync_reply as
        if it had come on the sync socket.  Seen through whoever listens."""
        from . import runtime as runtime_cli

        def wait_child(pid: int) -> int:
            return trio.from_thread.run(self.reaper.wait, pid)

        def release_child(pid: int) -> None:
            trio.from_thread.run_sync(self.reaper.forget, pid)

        def work():
            try:
                pid = runtime_cli.create_in_host(
                    self.cfg.runtime_root, self.cfg.id, self.bundle, pid_file=pid_file, stdio=stdio,
                    wait_child=wait_child, release_child=release_child,
                    log_path=os.path.join(self.dir, "runtime.log"),
                    console_socket=console_socket)
            except runtime_cli.Failure as exc:
                return rt.CreateFailed(message=exc.message, exit_code=exc.exit_code)
            except Exception as exc:  # noqa: BLE001 - a runtime bug is this create's failure
                log.exception("runtime create failed")
                return rt.CreateFailed(message=f"create: {exc}", exit_code=128)
            return rt.ContainerCreated(pid=pid)

        with trio.CancelScope(shield=True):
            self._sync_reply = reply = await trio.to_thread.run_sync(work)
        return (0, "") if isinstance(reply, rt.ContainerCreated) else (1 << 8, reply.message)

    def _runtime_call(self, args: tuple[str, ...], log_file: str) -> tuple[int, str]:
        from . import runtime as runtime_cli

        argv = ["--root", self.cfg.runtime_root, "--log", log_file, "--log-format", "json", *args]
        try:
            code = runtime_cli.main(argv)
        except Exception as exc:  # noqa: BLE001 - a runtime bug is this command's failure
            log.exception("runtime %s failed", args[0])
            return 1 << 8, f"{args[0]}: {exc}"
        return (code & 0xFF) << 8, (_last_runtime_log_error(log_file) if code else "")

    async def _create(self):
        try:
            reply = await self._create_task()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._unmake_cgroup_dirs()
            raise
        self._precreated = None  # the runtime's now: it removes it at delete
        return reply

    async def _create_task(self):
        async with self._lock:
            if self.task.status is not Status.NEW:
                raise StateError(f"cannot create task in {self.task.status.value} state")
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if self.cfg.stdin:
                in_r, in_w = os.pipe()
                os.set_blocking(in_w, False)
                self.stdin_w = in_w
            else:
                in_r = os.open(os.devnull, os.O_RDONLY)
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
            pid_file = os.path.join(self.dir, INIT_PID)
            sync_parent = sync_child = -1
            pass_fds: tuple[int, ...] = ()
            args = ["create", "--bundle", self.bundle, "--pid-file", pid_file]
            here = self._in_process("create")
            if not self.cfg.runtime and not here:
                sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                sync_parent, sync_child = sync_parent.detach(), sync_child.detach()
                os.set_inheritable(sync_child, True)
                pass_fds = (sync_child,)
                args += ["--sync-fd", str(sync_child)]
            console = None
            if self.cfg.terminal:
                console = self._console_listener()
                args += ["--console-socket", console[0]]
            args.append(self.cfg.id)
            sync = (sync_parent, sync_child) if sync_parent >= 0 else None
            self._sync_reply = None
            if not self.cfg.runtime:
                with trio.move_on_after(2):  # (made as we started: ready long ago)
                    await self._cgroup_made.wait()

            async def run_create() -> tuple[int, str]:
                if here:
                    return await self._create_here(pid_file, (in_r, out_w, err_w),
                                                   console[0] if console else None)
                return await self._run_runtime(*args, stdio=(in_r, out_w, err_w),
                                               pass_fds=pass_fds, sync=sync)

            try:
                if console is not None:
                    async with trio.open_nursery() as n:
                        n.start_soon(self._receive_console, console[1])
                        status, text = await run_create()
                        if status == 0:  # the master was sent before create returned
                            with trio.move_on_after(10):
                                await self._console_ready.wait()
                        n.cancel_scope.cancel()
                else:
                    status, text = await run_create()
            finally:
                if console is not None:
                    console[1].close()
                    try:
                        os.unlink(console[0])
                    except OSError:
                        pass
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            reply = self._sync_reply if sync_parent >= 0 or here else None
            if sync_parent >= 0:
                os.close(sync_parent)
            if isinstance(reply, rt.CreateFailed):
                os.close(out_r)
                os.close(err_r)
                raise RemoteError(ErrorCode.EXEC_FAILED, reply.message, reply.exit_code)
            if status != 0:
                os.close(out_r)
                os.close(err_r)
                exec_failure = classify_exec_failure(text)
                if exec_failure:
                    raise RemoteError(ErrorCode.EXEC_FAILED, exec_failure[1], exec_failure[0])
                raise RemoteError(ErrorCode.INTERNAL,
                                  f"runtime create failed: {text or 'exit status %d' % wait_status_to_exit_code(status)}")
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError) as exc:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime wrote no pid file: {exc}") from None
            if self.cfg.terminal and self.master < 0:
                os.close(out_r)
                os.close(err_r)
                raise RemoteError(ErrorCode.INTERNAL, "the runtime sent no terminal on the console socket")
            self.task.created(pid)
            assert self._nursery is not None
            self._nursery.start_soon(self._pump_output, out_r, err_r)
            self._nursery.start_soon(self._wait_init, pid)
            return sup.TaskCreated(container_id=self.cfg.id, pid=pid)

    async def _pump_output(self, out_r: int, err_r: int) -> None:
        async def pump(fd: int, stream: str) -> None:
            try:
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        break
                    self.log.write(stream, data)
            except (OSError, trio.ClosedResourceError):
                pass
            finally:
                self.log.flush(stream)
                os.close(fd)

        async with trio.open_nursery() as n:
            n.start_soon(pump, out_r, "stdout")
            n.start_soon(pump, err_r, "stderr")
            if self.master >= 0:
                # with a TTY everything the container writes comes out of the
                # master; EIO once the last slave holder is gone
                n.start_soon(pump, os.dup(self.master), "stdout")
        self._io_done.set()

    async def _wait_init(self, pid: int) -> None:
        status = await self.reaper.wait(pid)
        self.init_reaped = True  # its pid may be anybody's now: signal it no more
        at = time.time_ns()
        # every process of the container is gone with its init (pid namespace):
        # the pipes reach EOF; drain them so the log holds every line first
        with trio.move_on_after(2.0):
            await self._io_done.wait()
        code = wait_status_to_exit_code(status)
        self.task.exited(code, at)
        quick_write(os.path.join(self.dir, EXIT_JSON), json.dumps(
            {"pid": pid, "exit_status": code, "exited_at": at}).encode())
        self.exited.set()
        event = sup.TaskExit(container_id=self.cfg.id, pid=pid, exit_status=code, exited_at=at)
        for link in list(self.links):
            try:
                await link.send_event(event)
            except Exception:
                pass

    async def _start_after_create(self, created: sup.TaskCreated) -> sup.TaskCreated:
        """ShimCreate(start=True): the start follows at once.  If it fails the
        task stays created and the answer says so: the StartTask the daemon
        sends then tries again and reports the error."""
        try:
            await self._start()
        except (RemoteError, StateError) as exc:
            log.warning("start right after create failed: %s", exc)
            return created
        return sup.TaskCreated(container_id=created.container_id, pid=created.pid, started=True)

    async def _start(self):
        async with self._lock:
            self.task.check_start()
            status, text = await self._run_runtime("start", self.cfg.id)
            if status != 0:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime start failed: {text}")
            self.task.started()
            return sup.TaskStarted(container_id=self.cfg.id, pid=self.task.pid)

    def _console_listener(self, name: str = "") -> tuple[str, socket.socket]:
        """A listening socket for the runtime's --console-socket, at a path
        short enough for sun_path: <exec-root>/c/<id prefix>[-name].sock."""
        d = os.path.join(os.path.dirname(os.path.dirname(self.dir)), "c")
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, self.cfg.id[:16] + (f"-{name}" if name else "") + ".sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        os.chmod(path, 0o600)
        lsock.listen(1)
        lsock.setblocking(False)
        return path, lsock

    async def _receive_console(self, lsock: socket.socket) -> None:
        """Accept the runtime's connection and take the pty master it sends
        (SCM_RIGHTS, as runc's --console-socket protocol)."""
        fd = await _accept_console(lsock)
        if fd >= 0:
            self.master = fd
            os.set_blocking(self.master, False)
            if self.cfg.stdin:
                self.stdin_w = os.dup(self.master)
                os.set_blocking(self.stdin_w, False)
            self._console_ready.set()

    def _resize(self, height: int, width: int):
        if self.master < 0:
            raise RemoteError(ErrorCode.FAILED_PRECONDITION, "the container has no TTY")
        _set_winsize(self.master, height, width)
        return Ok()

    # -- exec ----------------------------------------------------------------
    def _get_exec(self, exec_id: str) -> "ExecProc":
        ex = self.execs.get(exec_id)
        if ex is None:
            raise RemoteError(ErrorCode.NOT_FOUND, f"exec {exec_id} not found")
        return ex

    def _exec_spec(self, p: sup.ExecProcess) -> dict:
        """The container's own process (capabilities, rlimits, ...) with the
        exec's command, environment, directory, user and terminal."""
        process = dict(self._bundle_config().get("process") or {})
        process["args"] = list(p.args)
        process["env"] = list(p.env)
        process["cwd"] = p.cwd or "/"
        process["terminal"] = p.terminal
        user = {"uid": p.uid, "gid": p.gid}
        if p.additional_gids:
            user["additionalGids"] = list(p.additional_gids)
        process["user"] = user
        process.pop("consoleSize", None)
        if p.terminal and p.height > 0 and p.width > 0:
            process["consoleSize"] = {"height": p.height, "width": p.width}
        return process

    async def _exec(self, msg: sh.ShimExec):
        eid = msg.exec_id
        if not (0 < len(eid) <= 64 and eid.isascii() and eid.isalnum()):
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"invalid exec id {eid!r}")
        if not msg.process.args or not all(msg.process.args):
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, "exec: no command given")
        if not (0 <= msg.process.height < 65536 and 0 <= msg.process.width < 65536):
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, "exec: invalid terminal size")
        self.task.check_exec()
        if eid in self.execs:
            raise RemoteError(ErrorCode.ALREADY_EXISTS, f"exec {eid} already exists")
        if len(self.execs) >= EXEC_MAX:
            raise RemoteError(ErrorCode.FAILED_PRECONDITION, f"too many execs in this container ({EXEC_MAX})")
        try:
            process = self._exec_spec(msg.process)
        except (OSError, ValueError) as exc:
            raise RemoteError(ErrorCode.INTERNAL, f"exec: the container's config: {exc}") from None
        ex = ExecProc(eid, terminal=msg.process.terminal, capture=msg.capture)
        self.execs[eid] = ex
        # seen through even if the requester goes away (a supervisor killed,
        # a link dropped for garbage): the daemon asks the next supervisor
        # again, and must find this exec (ALREADY_EXISTS), not run it twice.
        # Bounded: the runtime's own timeouts, 10 s for the console.
        with trio.CancelScope(shield=True):
            try:
                pid, fds = await self._start_exec(ex, process, msg.stdin)
            except BaseException:
                self.execs.pop(eid, None)
                ex.close()
                raise
            ex.pid = pid
            assert self._nursery is not None
            self._nursery.start_soon(self._run_exec, ex, fds)
        return sup.ExecStarted(container_id=self.cfg.id, exec_id=eid, pid=pid)

    async def _start_exec(self, ex: "ExecProc", process: dict, stdin: bool):
        """``runtime exec --process F --detach --pid-file P`` (as containerd's
        shim drives runc): the process is reparented to us, its reaper.
        Returns its pid and the (fd, stream) pairs of its output."""
        tag = f"exec-{ex.id}"
        spec_file = os.path.join(self.dir, tag + ".json")
        pid_file = os.path.join(self.dir, tag + ".pid")
        quick_write(spec_file, json.dumps(process).encode())
        child: list[int] = []  # the runtime's (the process's) ends: closed here after it ran
        mine: list[tuple[int, int]] = []  # our read ends, (fd, stream)
        devnull = os.open(os.devnull, os.O_RDWR)
        child.append(devnull)
        in_r = out_w = err_w = devnull
        if stdin and not ex.terminal:
            in_r, in_w = os.pipe()
            child.append(in_r)
            os.set_blocking(in_w, False)
            ex.stdin_w = in_w
        if ex.capture and not ex.terminal:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            child += [out_w, err_w]
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
            mine = [(out_r, 1), (err_r, 2)]
        args = ["exec", "--process", spec_file, "--detach", "--pid-file", pid_file]
        sync_parent = sync_child = -1
        pass_fds: tuple[int, ...] = ()
        if not self.cfg.runtime:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            sync_parent, sync_child = a.detach(), b.detach()
            os.set_inheritable(sync_child, True)
            pass_fds = (sync_child,)
            args += ["--sync-fd", str(sync_child)]
        console = self._console_listener(ex.id[:12]) if ex.terminal else None
        if console is not None:
            args += ["--console-socket", console[0]]
        args.append(self.cfg.id)
        master = -1
        ok = False
        try:
            async with trio.open_nursery() as n:
                if console is not None:
                    async def take_console() -> None:
                        nonlocal master
                        master = await _accept_console(console[1])

                    n.start_soon(take_console)
                status, text = await self._run_runtime(
                    *args, stdio=(in_r, out_w, err_w), pass_fds=pass_fds, tag=tag)
                if console is not None and status == 0:
                    with trio.move_on_after(10):  # sent before the runtime returned
                        while master < 0:
                            await trio.sleep(0.005)
                n.cancel_scope.cancel()
            for fd in child:
                os.close(fd)
            child = []
            if sync_child >= 0:
                os.close(sync_child)
                sync_child = -1
            # (it has exited: the report is there, or EOF)
            reply = (await _receive_sync_reply(sync_parent, wait=False)
                     if sync_parent >= 0 else None)
            if isinstance(reply, rt.CreateFailed):
                # 127: not found, 126: cannot be run, and dockerd's 126 for the rest
                code = reply.exit_code if reply.exit_code in (126, 127) else 126
                raise RemoteError(ErrorCode.EXEC_FAILED, reply.message, code)
            if status != 0:
                failure = classify_exec_failure(text) or _classify_exec_text(text)
                if failure:
                    raise RemoteError(ErrorCode.EXEC_FAILED, failure[1], failure[0])
                raise RemoteError(ErrorCode.EXEC_FAILED, text or "exit status %d" % wait_status_to_exit_code(status), 126)
            pid = reply.pid if isinstance(reply, rt.ContainerCreated) else 0
            if not pid:
                try:
                    with open(pid_file) as f:
                        pid = int(f.read().strip())
                except (OSError, ValueError) as exc:
                    raise RemoteError(ErrorCode.INTERNAL, f"runtime wrote no pid file: {exc}") from None
            if console is not None:
                if master < 0:
                    raise RemoteError(ErrorCode.INTERNAL, "the runtime sent no terminal on the console socket")
                os.set_blocking(master, False)
                ex.master = master
                if stdin:
                    ex.stdin_w = os.dup(master)
                    os.set_blocking(ex.stdin_w, False)
                # read even when nobody listens (a detached exec): a pty whose
                # output is not read blocks its writer
                mine = [(os.dup(master), 1)]
                master = -1
            ok = True
            return pid, mine
        finally:
            for fd in child:
                os.close(fd)
            for fd in (sync_child, sync_parent, master):
                if fd >= 0:
                    os.close(fd)
            if not ok:
                for fd, _ in mine:
                    os.close(fd)
            if console is not None:
                console[1].close()
                try:
                    os.unlink(console[0])
                except OSError:
                    pass
            for path in (spec_file, pid_file):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    async def _run_exec(self, ex: "ExecProc", fds: list[tuple[int, int]]) -> None:
        """Pump the exec's output, reap it, and say it is done once its
        output is drained (or its pipes outlived it by EXEC_DRAIN)."""
        async def pump(fd: int, stream: int) -> None:
            try:
                while True:
                    while ex.out.pending >= EXEC_BUFFER and ex.capture:
                        await ex.wait_changed()
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:  # EIO: the last holder of the pty slave is gone
                        break
                    if not data:
                        break
                    if ex.capture:
                        ex.out.add(stream, data)
                        ex.wake()
            finally:
                os.close(fd)

        async def pumps() -> None:
            async with trio.open_nursery() as pn:
                for fd, stream in fds:
                    pn.start_soon(pump, fd, stream)
            ex.io_done.set()

        try:
            async with trio.open_nursery() as n:
                n.start_soon(pumps)
                status = await self.reaper.wait(ex.pid)
                ex.exit_status = wait_status_to_exit_code(status)
                ex.exited_at = time.time_ns()
                while not ex.io_done.is_set():
                    with trio.move_on_after(EXEC_DRAIN):
                        await ex.io_done.wait()
                    # a reader that is behind keeps the output open; a
                    # background child holding the pipes does not
                    if ex.out.pending < EXEC_BUFFER:
                        break
                n.cancel_scope.cancel()
        finally:
            ex.close()
            ex.done = True
            ex.wake()
            if ex.orphan:
                self.execs.pop(ex.id, None)

    async def _exec_read(self, exec_id: str, offset: int, max_bytes: int):
        ex = self._get_exec(exec_id)
        if offset < 0 or offset > ex.out.end:
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"exec {exec_id}: bad offset {offset}")
        ex.out.ack(offset)
        ex.wake()  # room for the pumps
        with trio.move_on_after(EXEC_POLL):
            while ex.out.end <= offset and not ex.done:
                await ex.wait_changed()
        chunks, end = ex.out.take(offset, min(max(max_bytes, 1), EXEC_READ_MAX))
        return sup.ExecOutput(
            container_id=self.cfg.id, exec_id=exec_id, offset=end,
            chunks=[sup.OutputChunk(stream=st, data=d) for st, d in chunks],
            done=ex.done and end >= ex.out.end, pid=ex.pid,
            exit_status=ex.exit_status if ex.done else 0, exited_at=ex.exited_at if ex.done else 0)

    async def _exec_stdin(self, msg: sh.ShimExecStdin):
        ex = self._get_exec(msg.exec_id)
        async with ex.stdin_lock:  # writes reach the pipe in order, once
            if msg.offset < 0 or msg.offset > ex.stdin_written:
                raise RemoteError(ErrorCode.INVALID_ARGUMENT,
                                  f"exec {msg.exec_id}: stdin offset {msg.offset}, {ex.stdin_written} written")
            data = msg.data[ex.stdin_written - msg.offset:]
            eof = msg.eof
            if ex.stdin_w is None:
                if data:
                    raise RemoteError(ErrorCode.FAILED_PRECONDITION, "the exec's stdin is closed")
                return Ok()
            view = memoryview(data)
            try:
                while view:
                    await trio.lowlevel.wait_writable(ex.stdin_w)
                    if ex.stdin_w is None:  # closed meanwhile (the exec ended)
                        break
                    try:
                        n = os.write(ex.stdin_w, view)
                    except BlockingIOError:
                        continue
                    view = view[n:]
                    ex.stdin_written += n
            except (OSError, trio.ClosedResourceError):
                eof = True  # the process closed its stdin, or the exec ended
            if eof and ex.stdin_w is not None:
                close_fd(ex.stdin_w)
                ex.stdin_w = None
            return Ok()

    def _exec_delete(self, exec_id: str, orphan: bool = False):
        ex = self._get_exec(exec_id)
        if not ex.done:
            if not orphan:
                raise RemoteError(ErrorCode.FAILED_PRECONDITION, f"exec {exec_id} is running")
            # as a process whose dockerd went away: it runs on, unheard
            ex.capture = False
            ex.orphan = True
            ex.out.ack(ex.out.end)
            if ex.stdin_w is not None:
                close_fd(ex.stdin_w)
                ex.stdin_w = None
            ex.wake()
            return Ok()
        self.execs.pop(exec_id, None)
        return Ok()

    # -- pause, resume, update ---------------------------------------------------
    async def _pause(self):
        async with self._lock:
            self.task.check_pause()
            status, text = await self._run_runtime("pause", self.cfg.id)
            if status != 0:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime pause failed: {text}")
            if self._sigkilled:
                # a SIGKILL came while the freeze was on its way: the freezer
                # would hold it for ever (cgroup v1 holds even SIGKILL); the
                # task is meant to die, so it is thawed again at once
                status, text = await self._run_runtime("resume", self.cfg.id)
                if status != 0:
                    log.warning("could not thaw the killed task: %s", text)
                return Ok()
            self.task.paused()
            return Ok()

    async def _resume(self):
        async with self._lock:
            self.task.check_resume()
            status, text = await self._run_runtime("resume", self.cfg.id)
            if status != 0:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime resume failed: {text}")
            self.task.resumed()
            return Ok()

    async def _update(self, resources: dict):
        async with self._lock:
            self.task.check_update()
            path = os.path.join(self.dir, "update.json")
            quick_write(path, json.dumps(resources).encode())
            try:
                status, text = await self._run_runtime("update", "--resources", path, self.cfg.id)
            finally:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if status != 0:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime update failed: {text}")
            return Ok()

    async def _stdin(self, data: bytes, eof: bool):
        async with self._stdin_lock:  # writes reach the pipe in the order they came
            if self.stdin_w is None:
                if data:
                    raise RemoteError(ErrorCode.FAILED_PRECONDITION, "the container's stdin is closed")
                return Ok()
            view = memoryview(data)
            try:
                while view:
                    await trio.lowlevel.wait_writable(self.stdin_w)
                    if self.stdin_w is None:  # closed meanwhile (a delete)
                        break
                    try:
                        n = os.write(self.stdin_w, view)
                    except BlockingIOError:
                        continue
                    view = view[n:]
            except (OSError, trio.ClosedResourceError):
                eof = True  # the container closed its stdin: nothing more can go in
            if eof and self.stdin_w is not None:
                close_fd(self.stdin_w)
                self.stdin_w = None
            return Ok()

    async def _kill(self, signum: int, all_: bool):
        self.task.check_kill()
        if not 0 < signum < 65:
            raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"invalid signal {signum}")
        if signum == signal.SIGKILL:
            self._sigkilled = True  # (a pause on its way must not freeze a dying task)
        if all_:
            status, text = await self._run_runtime("kill", "--all", self.cfg.id, str(signum))
            if status != 0 and self.task.status is not Status.STOPPED:
                raise RemoteError(ErrorCode.INTERNAL, f"runtime kill failed: {text}")
        else:
            # we are the init's parent: its pid cannot be reused until we reap
            # it (and once reaped, its exit is being recorded: nothing to kill)
            if not self.init_reaped and self.task.pid not in self.reaper.exits:
                try:
                    os.kill(self.task.pid, signum)
                except ProcessLookupError:
                    pass
        if signum == signal.SIGKILL and self.task.status is Status.PAUSED:
            # a frozen task dies only once thawed (the cgroup v1 freezer holds
            # even SIGKILL): whoever kills it means it to go
            try:
                await self._resume()
            except (RemoteError, StateError) as exc:
                log.warning("could not thaw the killed task: %s", exc)
        return Ok()

    async def _delete(self):
        async with self._lock:
            if self.task.status is Status.NEW:
                self.task.status = Status.STOPPED
                await self._unmake_cgroup_dirs()
            self.task.check_delete()
            await self._run_runtime("delete", "--force", self.cfg.id)
            self.log.close()
            if self.master >= 0:
                close_fd(self.master)
                self.master = -1
            if self.stdin_w is not None:
                close_fd(self.stdin_w)
                self.stdin_w = None
            reply = sup.TaskDeleted(container_id=self.cfg.id, exit_status=self.task.exit_status,
                                    exited_at=self.task.exited_at)
            self.task.status = Status.DELETED
            self._discard_dir()
            assert self._nursery is not None
            self._nursery.start_soon(self._exit_soon)
            return reply

    def _discard_dir(self) -> None:
        """Our directory leaves its place before we answer the delete: the next
        shim of the same container may take the name at once.  It is renamed
        to a dot-name beside it (GONE_PREFIX: no supervisor adopts it), and
        removed as we exit, after the reply (``remove_discarded``)."""
        from linux import syscalls as sc

        # the rootfs is a mount point in our namespace: unmount it (rmtree
        # could not remove bundle/rootfs otherwise).  The socket file goes
        # with the directory; the open connection that carries our reply
        # does not need it.
        try:
            sc.umount2(os.path.join(self.bundle, "rootfs"), sc.MNT_DETACH)
        except OSError:
            pass
        gone = os.path.join(os.path.dirname(self.dir), f"{GONE_PREFIX}{self.cfg.id}-{os.getpid()}")
        try:
            os.rename(self.dir, gone)
        except OSError:
            remove_discarded(self.dir)
            return
        self.discarded = gone

    async def _exit_soon(self) -> None:
        # normally the supervisor closes its link once it has our reply, and
        # _serve_link ends us then; this is the fallback
        await trio.sleep(2.0)
        self.done.set()


class ExecProc:
    """One exec of the shim: its process, stdio and output buffer."""

    def __init__(self, exec_id: str, *, terminal: bool, capture: bool):
        self.id = exec_id
        self.terminal = terminal
        self.capture = capture
        self.pid = 0
        self.master = -1
        self.stdin_w: int | None = None
        self.stdin_written = 0
        self.stdin_lock = trio.Lock()
        self.out = OutputBuffer()
        self.io_done = trio.Event()
        self._changed = trio.Event()
        self.done = False
        self.orphan = False
        self.exit_status = 0
        self.exited_at = 0

    def wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def close(self) -> None:
        if self.stdin_w is not None:
            close_fd(self.stdin_w)
            self.stdin_w = None
        if self.master >= 0:
            close_fd(self.master)
            self.master = -1


def _set_winsize(fd: int, height: int, width: int) -> None:
    import fcntl
    import struct
    import termios

    if not (0 < height < 65536 and 0 < width < 65536):
        raise RemoteError(ErrorCode.INVALID_ARGUMENT, f"invalid terminal size {height}x{width}")
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _accept_console(lsock: socket.socket) -> int:
    """Accept the runtime's connection on a --console-socket listener and
    take the pty master it sends (SCM_RIGHTS, runc's protocol); -1 if none."""
    tsock = trio.socket.from_stdlib_socket(lsock.dup())
    try:
        conn, _ = await tsock.accept()
        with conn, socket.socket(fileno=os.dup(conn.fileno())) as std:
            std.setblocking(False)
            while True:
                await trio.lowlevel.wait_readable(std)
                try:
                    _msg, fds, _flags, _addr = socket.recv_fds(std, 4096, 4)
                except BlockingIOError:
                    continue
                break
        for extra in fds[1:]:
            os.close(extra)
        return fds[0] if fds else -1
    finally:
        tsock.close()


def _classify_exec_text(text: str) -> tuple[int, str] | None:
    """crun's (and others') wording for a command that cannot be run."""
    low = text.lower()
    if "executable file" in low and "not found" in low or "no such file or directory" in low:
        return 127, text
    if "permission denied" in low:
        return 126, text
    return None


def classify_exec_failure(text: str) -> tuple[int, str] | None:
    """A runc/crun create error that means "the command cannot be run", as
    (Docker's exit code, the message from "exec: ..." on) — or None."""
    marker = "unable to start container process: "
    i = text.find(marker)
    if i < 0 or "exec" not in text[i:]:
        return None
    msg = text[i + len(marker):].strip()
    if "executable file not found" in msg or "no such file or directory" in msg:
        return 127, msg
    if "permission denied" in msg:
        return 126, msg
    return None


async def _receive_sync_reply(fd: int, *, wait: bool = True):
    """The runtime's one-envelope report on the sync socketpair, as soon as it
    is whole (None at EOF without one, or if it is garbage).  ``wait=False``
    (the runtime has exited): what is there now, and None if nothing is."""
    dec = FrameDecoder(max_frame=1 << 20)
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            if not wait:
                return None
            await trio.lowlevel.wait_readable(fd)
            continue
        except OSError:
            return None
        if not data:
            return None
        try:
            frames = dec.feed(data)
        except Exception:  # noqa: BLE001 - garbage: no report
            return None
        if frames:
            try:
                return unpack(frames[0]).msg
            except Exception:  # noqa: BLE001
                return None


def _last_runtime_log_error(path: str) -> str:
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            return line.strip()
        if rec.get("level") == "error":
            return str(rec.get("msg", ""))
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "start":
        return cmd_start(os.path.abspath(argv[1]))
    if len(argv) == 5 and argv[0] == "zygote" and argv[1] == "--fd" and argv[3] == "--home":
        return cmd_zygote(int(argv[2]), argv[4])
    print("usage: python -m actors.shim start SHIM_DIR | zygote --fd FD --home SHIMS_DIR",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
