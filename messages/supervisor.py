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


@message
@attrs.frozen(kw_only=True)
class TaskCreated:
    TYPE: ClassVar[str] = "sup.created"
    container_id: str
    pid: int


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
