"""Errors raised by the ``oci`` package (stdlib only).

Every class carries ``code``: the *name* of the matching
``messages.errors.ErrorCode`` member (``"NOT_FOUND"``, ``"FAILED_PRECONDITION"``,
``"INVALID_ARGUMENT"``, ``"INTERNAL"``) and ``http_status`` (what Docker answers),
so the daemon can map them without this package importing ``messages``::

    except oci.errors.OCIError as e:
        raise RemoteError(ErrorCode[e.code], str(e))

Messages use Docker's wording where Docker has one.
"""

from __future__ import annotations


class OCIError(Exception):
    code = "INTERNAL"
    http_status = 500

    @property
    def message(self) -> str:
        return str(self)


class NotFound(OCIError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(OCIError):
    code = "FAILED_PRECONDITION"
    http_status = 409


class InvalidArgument(OCIError, ValueError):
    code = "INVALID_ARGUMENT"
    http_status = 400


class ImageNotFound(NotFound):
    """``No such image: busybox:latest``."""


class BlobNotFound(NotFound):
    pass


class LayerNotFound(NotFound):
    pass


class DigestMismatch(InvalidArgument):
    """Content did not hash to the digest it was announced with."""


class InvalidReference(InvalidArgument):
    """``invalid reference format`` and friends."""


class InvalidDigest(InvalidArgument):
    pass


class UnsafeLayer(InvalidArgument):
    """A layer tar tried to write outside its directory (or through a symlink)."""


class UnsupportedMediaType(InvalidArgument):
    pass


class ImageConflict(Conflict):
    """``conflict: unable to delete ...`` / ``unable to remove repository reference``."""


class UserNotFound(InvalidArgument):
    """``unable to find user nobody2: no matching entries in passwd file``."""


class InvalidSpec(InvalidArgument):
    """The container configuration cannot be turned into a runtime spec."""
