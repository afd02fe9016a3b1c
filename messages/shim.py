"""supervisor <-> shim: over the shim's Unix socket (exec-root/shims/<id>/shim.sock).

The socket can be re-opened by a restarted supervisor.  The shim answers the
requests below and pushes ``TaskExit`` (messages.supervisor) as an event to
every connected supervisor when the init exits.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from .base import message
from .supervisor import TaskInfo


@message
@attrs.frozen(kw_only=True)
class ShimCreate:
    """Run the runtime's create for the bundle the shim was started with."""

    TYPE: ClassVar[str] = "shim.create"


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
