"""shim <-> runtime.

When trioctr's own runtime is started by the shim it gets the shim's end of a
socketpair (``--sync-fd``) and reports the result of ``create`` (and ``exec``)
on it with a structured error, so the exit code of an un-runnable command
(126/127) and Docker's message travel intact.  runc and crun are driven by
exit status and stderr instead.

The runtime writes this envelope by hand (``actors.runtime.sync_envelope``:
it must start without msgpack or attrs); a change here must be made there
too (tests/runtime/test_runtime_unit.py checks the two agree).  The runtime's
own parent <-> init handshake is private to actors/runtime.py.
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
