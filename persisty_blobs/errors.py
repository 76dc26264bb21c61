"""The error tree of persisty-blobs.

Every error a store raises derives from ``BlobError``; no boto3, SQLAlchemy or OS exception
escapes the public API. Catch the class that matches what you can act on::

    BlobError
    ├── NotFound                (also KeyError)
    ├── AlreadyExists
    ├── PreconditionFailed
    ├── InvalidKey              (also ValueError)
    ├── InvalidMetadata         (also ValueError)
    ├── InvalidFlags            (also ValueError)
    ├── InvalidArgument         (also ValueError) a bad range, limit, precondition or option
    ├── InvalidArgumentType     (also TypeError) an argument of the wrong type
    ├── RangeNotSatisfiable
    ├── TooLarge
    ├── ContentTypeNotAllowed
    ├── PermissionDenied
    ├── QuotaExceeded
    ├── IntegrityError          content failed its checksum or authentication
    ├── DecryptionError         the keyring lacks the item's key
    ├── Unsupported             the store cannot do this (or a missing optional dependency)
    └── TransientError          worth a retry: timeouts, 5xx, throttling, a locked database

Messages name the key and the store; both are also attributes, for logs and retries.
"""

from __future__ import annotations

import errno

__all__ = [
    "AlreadyExists",
    "BlobError",
    "ContentTypeNotAllowed",
    "DecryptionError",
    "IntegrityError",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidFlags",
    "InvalidKey",
    "InvalidMetadata",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "QuotaExceeded",
    "RangeNotSatisfiable",
    "TooLarge",
    "TransientError",
    "Unsupported",
    "from_os_error",
]


class BlobError(Exception):
    """Base of every error raised by persisty-blobs."""

    def __init__(self, message: str, *, key: str | None = None, store: str | None = None) -> None:
        details = [part for part in (_quoted("key", key), _quoted("store", store)) if part]
        super().__init__(f"{message} ({', '.join(details)})" if details else message)
        #: The message without the key and store (a server sends this one to its clients).
        self.message = message
        self.key = key
        self.store = store

    def __str__(self) -> str:
        # KeyError (a base of NotFound) would otherwise print the message as a repr.
        return str(self.args[0]) if self.args else ""


def _quoted(label: str, value: str | None) -> str:
    return "" if value is None else f"{label} {value!r}"


class NotFound(BlobError, KeyError):
    """The item (or store) does not exist."""


class AlreadyExists(BlobError):
    """``if_none_match="*"`` was given and the item exists."""


class PreconditionFailed(BlobError):
    """``if_match`` named an etag that is not the item's current one."""


class InvalidKey(BlobError, ValueError):
    """A key or namespace name breaks the key rules."""


class InvalidMetadata(BlobError, ValueError):
    """Metadata or a content type breaks the metadata rules."""


class InvalidFlags(BlobError, ValueError):
    """A flag that is not a ``Flag``."""


class InvalidArgument(BlobError, ValueError):
    """An argument out of its range: a negative offset, ``end < start``, a bad ``limit``, a
    precondition that is not an etag, an option a store cannot take."""


class InvalidArgumentType(BlobError, TypeError):
    """An argument of the wrong type (``True`` is not an offset)."""


class RangeNotSatisfiable(BlobError):
    """A range starts past the end of the item."""


class TooLarge(BlobError):
    """Content larger than the store or an upload form allows."""


class ContentTypeNotAllowed(BlobError):
    """A content type an upload form does not allow."""


class PermissionDenied(BlobError):
    """Refused: by the backend, by an authorizer, or a path that leaves the store's root."""


class QuotaExceeded(BlobError):
    """No space left, or over a quota."""


class IntegrityError(BlobError):
    """Content failed its checksum or authentication."""


class DecryptionError(BlobError):
    """The keyring lacks the key an item was encrypted with (anything else that fails to
    authenticate is an ``IntegrityError``)."""


class Unsupported(BlobError):
    """The store cannot do this, or an optional dependency is missing."""


class TransientError(BlobError):
    """A failure worth retrying: timeouts, 5xx, throttling, a locked database."""


_ERRNO_CLASSES: dict[int, type[BlobError]] = {
    errno.ENOENT: NotFound,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
    errno.ENOSPC: QuotaExceeded,
    errno.EDQUOT: QuotaExceeded,
    errno.EFBIG: TooLarge,
    errno.ENAMETOOLONG: InvalidKey,
    errno.EAGAIN: TransientError,
    errno.EINTR: TransientError,
    errno.EBUSY: TransientError,
    errno.ETIMEDOUT: TransientError,
}


def from_os_error(exc: OSError, *, key: str | None = None, store: str | None = None) -> BlobError:
    """Map an ``OSError`` onto the tree; the caller raises it ``from exc``."""
    error_class = _ERRNO_CLASSES.get(exc.errno or 0, BlobError)
    return error_class(exc.strerror or str(exc), key=key, store=store)
