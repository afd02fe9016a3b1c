"""shim <-> runtime, and runtime parent <-> container init.

When trioctr's own runtime is started by the shim it gets the shim's end of a
socketpair (``--sync-fd``) and reports the result of ``create`` on it with a
structured error, so the exit code of an un-runnable command (126/127) and
Docker's message travel intact.  runc and crun are driven by exit status and
stderr instead.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from .base import message


@message
@attrs.frozen(kw_only=True)
class ContainerCreated:
    TYPE: ClassVar[str] = "rt.created"
    pid: int


@message
@attrs.frozen(kw_only=True)
class CreateFailed:
    """``exit_code`` is what Docker reports for it: 127 for a command that is
    not found, 126 for one that cannot be executed, 128 otherwise."""

    TYPE: ClassVar[str] = "rt.failed"
    message: str
    exit_code: int = 128


@message
@attrs.frozen(kw_only=True)
class InitReady:
    """init -> runtime parent: namespaces, mounts and pivot_root are done and
    the command resolved; the init now blocks until ``start``."""

    TYPE: ClassVar[str] = "rt.ready"


@message
@attrs.frozen(kw_only=True)
class CgroupJoined:
    """runtime parent -> init: you are in the container's cgroup; go on."""

    TYPE: ClassVar[str] = "rt.cgjoined"


@message
@attrs.frozen(kw_only=True)
class RunCreateRuntimeHooks:
    """init -> runtime parent: namespaces and mounts are ready, pivot_root is
    next; run the prestart and createRuntime hooks now."""

    TYPE: ClassVar[str] = "rt.hooks"


@message
@attrs.frozen(kw_only=True)
class HooksDone:
    """runtime parent -> init: the hooks ran; go on."""

    TYPE: ClassVar[str] = "rt.hooksdone"
