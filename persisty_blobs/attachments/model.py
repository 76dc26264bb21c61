"""The values the attachment queue speaks in: PowerSync's queue states, Soledad's document
flags, and the ``Attachment`` a caller sees."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Attachment", "AttachmentFlags", "AttachmentState", "ErrorHandler"]


class AttachmentState(enum.StrEnum):
    """Where an attachment stands in the queue (PowerSync's states, plus ``FAILED``)."""

    QUEUED_UPLOAD = "queued_upload"
    QUEUED_DOWNLOAD = "queued_download"
    QUEUED_DELETE = "queued_delete"
    SYNCED = "synced"
    #: No longer referenced by the app's documents: kept locally until the cache evicts it.
    ARCHIVED = "archived"
    #: Given up on (``on_error`` said so); an upload's content is kept locally.
    FAILED = "failed"

    @property
    def queued(self) -> bool:
        return self in _QUEUED


_QUEUED = frozenset(
    {AttachmentState.QUEUED_UPLOAD, AttachmentState.QUEUED_DOWNLOAD, AttachmentState.QUEUED_DELETE}
)


class AttachmentFlags(enum.IntFlag):
    """LEAP Soledad's view of a document's attachment: where its content is."""

    NONE = 0
    LOCAL = 1
    REMOTE = 2
    SYNCED = LOCAL | REMOTE


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """One attachment's record. ``media_type``, ``size`` and ``checksum`` are None while a
    download the app asked for (``watch``) has not run yet."""

    id: str
    media_type: str | None
    size: int | None
    checksum: str | None
    state: AttachmentState
    created: datetime
    last_error: str | None = None
    attempts: int = 0


#: ``on_error(attachment, error)``: True retries later (with backoff), False gives up (FAILED).
ErrorHandler = Callable[[Attachment, BaseException], bool]
