"""The closed set of error classes that cross the wire.

Every failure an actor reports to another is one of these codes plus a
one-line message.  The daemon maps them one-to-one onto HTTP status codes.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    NOT_FOUND = 1
    ALREADY_EXISTS = 2
    INVALID_ARGUMENT = 3
    FAILED_PRECONDITION = 4
    UNAVAILABLE = 5
    UNIMPLEMENTED = 6
    INTERNAL = 7
    PROTOCOL = 8  # the peer sent something that is not a valid message
    # the container's command cannot be run; the message is Docker's, and the
    # exit code (126 or 127) rides in RemoteError.exit_code
    EXEC_FAILED = 9
    DEADLINE = 10


class ProtocolError(Exception):
    """Bytes or frames that do not form a valid message (the remote's fault)."""


class RemoteError(Exception):
    """An error reply from a peer actor: a code and a one-line message."""

    def __init__(self, code: ErrorCode, message: str, exit_code: int = 0):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"RemoteError({self.code.name}, {self.message!r})"


class NotFound(RemoteError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.NOT_FOUND, message)


class Conflict(RemoteError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.FAILED_PRECONDITION, message)


class InvalidArgument(RemoteError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.INVALID_ARGUMENT, message)


def remote_error(code: int, message: str, exit_code: int = 0) -> RemoteError:
    """Rebuild the most specific RemoteError subclass for a wire code."""
    try:
        code = ErrorCode(code)
    except ValueError:
        code = ErrorCode.INTERNAL
    if code is ErrorCode.NOT_FOUND:
        return NotFound(message)
    if code is ErrorCode.FAILED_PRECONDITION:
        return Conflict(message)
    if code is ErrorCode.INVALID_ARGUMENT:
        return InvalidArgument(message)
    return RemoteError(code, message, exit_code)
