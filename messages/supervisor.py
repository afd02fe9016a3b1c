"""daemon <-> supervisor: container lifecycle over the daemon's socketpair.

Requests go daemon -> supervisor; the supervisor sends task events back
(exit, adopted, shim lost) as ``evt`` frames.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .base import message


@attrs.frozen(kw_only=True)
class Mount:
    """A rootfs mount for the shim to make before the runtime runs
    (containerd's rootfs mounts): ``mount -t type -o options source target``."""

    type: str
    source: str
    options: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class TaskInfo:
    container_id: str
    pid: int
    status: str  # created | running | paused | stopped | unknown
    exit_status: int = 0
    exited_at: int = 0  # ns since the epoch, 0 while running
    oom_killed: bool = False
    exec_ids: list[str] = attrs.field(factory=list)  # its execs that have not ended


@message
@attrs.frozen(kw_only=True)
class CreateTask:
    """Make a shim for the container and have it create the task (not start)."""

    TYPE: ClassVar[str] = "sup.create"
    container_id: str
    spec: dict[str, Any]  # the OCI runtime config (config.json)
    rootfs: list[Mount] = attrs.field(factory=list)
    log_path: str = ""
    runtime: str = ""  # "" = trioctr's own runtime
    stdin: bool = False
    terminal: bool = False
    # and start it (one round trip less): TaskCreated says whether it did
    start: bool = False


@message
@attrs.frozen(kw_only=True)
class TaskCreated:
    TYPE: ClassVar[str] = "sup.created"
    container_id: str
    pid: int
    started: bool = False  # (asked by CreateTask.start, and done)


@message
@attrs.frozen(kw_only=True)
class StartTask:
    TYPE: ClassVar[str] = "sup.start"
    container_id: str


@message
@attrs.frozen(kw_only=True)
class TaskStarted:
    TYPE: ClassVar[str] = "sup.started"
    container_id: str
    pid: int


@message
@attrs.frozen(kw_only=True)
class KillTask:
    TYPE: ClassVar[str] = "sup.kill"
    container_id: str
    signal: int
    all: bool = False


@message
@attrs.frozen(kw_only=True)
class WriteStdin:
    """Bytes for the container's stdin (in order); ``eof`` closes it."""

    TYPE: ClassVar[str] = "sup.stdin"
    container_id: str
    data: bytes = b""
    eof: bool = False


@message
@attrs.frozen(kw_only=True)
class ResizeTask:
    """Set the container's terminal size (containers with a TTY)."""

    TYPE: ClassVar[str] = "sup.resize"
    container_id: str
    height: int
    width: int


@message
@attrs.frozen(kw_only=True)
class DeleteTask:
    """Acknowledge the exit and remove the task: the shim tears down and goes."""

    TYPE: ClassVar[str] = "sup.delete"
    container_id: str


@message
@attrs.frozen(kw_only=True)
class TaskDeleted:
    TYPE: ClassVar[str] = "sup.deleted"
    container_id: str
    exit_status: int
    exited_at: int


@message
@attrs.frozen(kw_only=True)
class ListTasks:
    TYPE: ClassVar[str] = "sup.list"


@message
@attrs.frozen(kw_only=True)
class TaskList:
    TYPE: ClassVar[str] = "sup.tasks"
    tasks: list[TaskInfo] = attrs.field(factory=list)


# --- events, supervisor -> daemon ------------------------------------------


@message
@attrs.frozen(kw_only=True)
class TaskExit:
    """The container's init exited.  Sent again after a supervisor restart for
    any exit that no daemon acknowledged (the shim keeps it until DeleteTask)."""

    TYPE: ClassVar[str] = "evt.exit"
    container_id: str
    pid: int
    exit_status: int
    exited_at: int
    oom_killed: bool = False


@message
@attrs.frozen(kw_only=True)
class TaskAdopted:
    """A restarted supervisor found this shim alive and took it back."""

    TYPE: ClassVar[str] = "evt.adopted"
    task: TaskInfo


@message
@attrs.frozen(kw_only=True)
class ShimLost:
    """A shim died (or its socket stopped answering); its container was killed."""

    TYPE: ClassVar[str] = "evt.shimlost"
    container_id: str
    reason: str


# --- exec, pause, update: daemon -> supervisor -----------------------------


@attrs.frozen(kw_only=True)
class ExecProcess:
    """The exec's part of an OCI process; the shim takes the rest
    (capabilities, rlimits, no_new_privs, ...) from the container's own."""

    args: list[str]
    env: list[str] = attrs.field(factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = attrs.field(factory=list)
    terminal: bool = False
    height: int = 0  # the terminal's size at start, 0 = the runtime's default
    width: int = 0


@attrs.frozen(kw_only=True)
class OutputChunk:
    stream: int  # Docker's stream ids: 1 stdout, 2 stderr
    data: bytes


@message
@attrs.frozen(kw_only=True)
class ExecTask:
    """Start a process in the running task.  ``capture``: keep its output for
    ReadExecOutput (else it goes to /dev/null: a detached exec)."""

    TYPE: ClassVar[str] = "sup.exec"
    container_id: str
    exec_id: str
    process: ExecProcess
    stdin: bool = False
    capture: bool = True


@message
@attrs.frozen(kw_only=True)
class ExecStarted:
    TYPE: ClassVar[str] = "sup.execstarted"
    container_id: str
    exec_id: str
    pid: int


@message
@attrs.frozen(kw_only=True)
class ReadExecOutput:
    """Long poll: the exec's output from byte ``offset`` on (which also
    acknowledges everything before it: the shim forgets it).  Answered when
    there is output, when the exec is done, or after a while with nothing.
    Asking again with the same offset is safe (after a supervisor restart)."""

    TYPE: ClassVar[str] = "sup.execread"
    container_id: str
    exec_id: str
    offset: int = 0
    max_bytes: int = 1 << 20


@message
@attrs.frozen(kw_only=True)
class ExecOutput:
    """``offset``: where the next read starts.  ``done``: the process exited
    and every byte of its output is in this or an earlier reply."""

    TYPE: ClassVar[str] = "sup.execoutput"
    container_id: str
    exec_id: str
    offset: int
    chunks: list[OutputChunk] = attrs.field(factory=list)
    done: bool = False
    pid: int = 0
    exit_status: int = 0
    exited_at: int = 0


@message
@attrs.frozen(kw_only=True)
class WriteExecStdin:
    """Bytes for the exec's stdin at byte ``offset`` of its input (a repeated
    write is not written twice); ``eof`` closes it."""

    TYPE: ClassVar[str] = "sup.execstdin"
    container_id: str
    exec_id: str
    offset: int = 0
    data: bytes = b""
    eof: bool = False


@message
@attrs.frozen(kw_only=True)
class ResizeExec:
    TYPE: ClassVar[str] = "sup.execresize"
    container_id: str
    exec_id: str
    height: int
    width: int


@message
@attrs.frozen(kw_only=True)
class DeleteExec:
    """The exec's end is known: the shim forgets it.  ``orphan``: nobody will
    read it (a restarted daemon does not know it): its output is dropped from
    now on, its stdin closed, and it is forgotten when it ends."""

    TYPE: ClassVar[str] = "sup.execdelete"
    container_id: str
    exec_id: str
    orphan: bool = False


@message
@attrs.frozen(kw_only=True)
class PauseTask:
    TYPE: ClassVar[str] = "sup.pause"
    container_id: str


@message
@attrs.frozen(kw_only=True)
class ResumeTask:
    TYPE: ClassVar[str] = "sup.resume"
    container_id: str


@message
@attrs.frozen(kw_only=True)
class UpdateTask:
    """New cgroup limits for the running task (OCI LinuxResources)."""

    TYPE: ClassVar[str] = "sup.update"
    container_id: str
    resources: dict[str, Any]
