"""supervisor <-> shim: over the shim's Unix socket (exec-root/shims/<id>/shim.sock).

The socket can be re-opened by a restarted supervisor.  The shim answers the
requests below and pushes ``TaskExit`` (messages.supervisor) as an event to
every connected supervisor when the init exits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .base import message
from .supervisor import ExecProcess, TaskInfo


@message
@attrs.frozen(kw_only=True)
class ShimAssign:
    """To a spare shim (forked ahead, its link to the supervisor open and
    greeted): become the shim of this directory (``shim_dir``), as
    ``shim start DIR`` would make one; answered with ShimAssigned once it
    serves as that shim (its socket listening for later supervisors too)."""

    TYPE: ClassVar[str] = "shim.assign"
    shim_dir: str


@message
@attrs.frozen(kw_only=True)
class ShimAssigned:
    TYPE: ClassVar[str] = "shim.assigned"
    pid: int


@message
@attrs.frozen(kw_only=True)
class ShimCreate:
    """Run the runtime's create for the bundle the shim was started with;
    ``start``: and then its start (answered TaskCreated with ``started``; a
    start that fails there is left for a StartTask to try and report)."""

    TYPE: ClassVar[str] = "shim.create"
    start: bool = False


@message
@attrs.frozen(kw_only=True)
class ShimStart:
    TYPE: ClassVar[str] = "shim.start"


@message
@attrs.frozen(kw_only=True)
class ShimKill:
    TYPE: ClassVar[str] = "shim.kill"
    signal: int
    all: bool = False


@message
@attrs.frozen(kw_only=True)
class ShimStdin:
    """Bytes for the container's stdin; ``eof`` closes it (docker's StdinOnce)."""

    TYPE: ClassVar[str] = "shim.stdin"
    data: bytes = b""
    eof: bool = False


@message
@attrs.frozen(kw_only=True)
class ShimResize:
    TYPE: ClassVar[str] = "shim.resize"
    height: int
    width: int


@message
@attrs.frozen(kw_only=True)
class ShimState:
    TYPE: ClassVar[str] = "shim.state"


@message
@attrs.frozen(kw_only=True)
class ShimStateReply:
    TYPE: ClassVar[str] = "shim.statereply"
    task: TaskInfo


@message
@attrs.frozen(kw_only=True)
class ShimDelete:
    """The exit is acknowledged: delete the task, clean up, and exit the shim."""

    TYPE: ClassVar[str] = "shim.delete"


# --- exec, pause, update (see the supervisor's messages of the same names;
# the shim answers with ExecStarted, ExecOutput and Ok) ----------------------


@message
@attrs.frozen(kw_only=True)
class ShimExec:
    TYPE: ClassVar[str] = "shim.exec"
    exec_id: str
    process: ExecProcess
    stdin: bool = False
    capture: bool = True


@message
@attrs.frozen(kw_only=True)
class ShimExecRead:
    TYPE: ClassVar[str] = "shim.execread"
    exec_id: str
    offset: int = 0
    max_bytes: int = 1 << 20


@message
@attrs.frozen(kw_only=True)
class ShimExecStdin:
    TYPE: ClassVar[str] = "shim.execstdin"
    exec_id: str
    offset: int = 0
    data: bytes = b""
    eof: bool = False


@message
@attrs.frozen(kw_only=True)
class ShimExecResize:
    TYPE: ClassVar[str] = "shim.execresize"
    exec_id: str
    height: int
    width: int


@message
@attrs.frozen(kw_only=True)
class ShimExecDelete:
    TYPE: ClassVar[str] = "shim.execdelete"
    exec_id: str
    orphan: bool = False


@message
@attrs.frozen(kw_only=True)
class ShimPause:
    TYPE: ClassVar[str] = "shim.pause"


@message
@attrs.frozen(kw_only=True)
class ShimResume:
    TYPE: ClassVar[str] = "shim.resume"


@message
@attrs.frozen(kw_only=True)
class ShimUpdate:
    TYPE: ClassVar[str] = "shim.update"
    resources: dict[str, Any]
