"""The values the sync engine speaks in: statuses, priorities, planned actions, item states,
progress events and the report of a run."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import BlobError, InvalidArgument, InvalidArgumentType

__all__ = [
    "Action",
    "ActionKind",
    "ItemState",
    "Priority",
    "ProgressEvent",
    "Status",
    "SyncAborted",
    "SyncReport",
]


class SyncAborted(BlobError):
    """A safety check stopped the run before it changed either side: too many deletes, an
    empty listing of a side that had items, or a state kept for two other stores."""


class Status(enum.StrEnum):
    """Where an item stands between the two sides (LEAP Soledad's statuses, plus two)."""

    SYNCED = "synced"
    PENDING_UPLOAD = "pending_upload"
    PENDING_DOWNLOAD = "pending_download"
    PENDING_DELETE = "pending_delete"
    FAILED_UPLOAD = "failed_upload"
    FAILED_DOWNLOAD = "failed_download"
    LOCAL_ONLY = "local_only"
    CONFLICT = "conflict"

    @classmethod
    def of(cls, value: Status | str) -> Status:
        """A status from itself or its value."""
        if not isinstance(value, str):
            raise InvalidArgumentType(f"a status is a Status or its value, not {value!r}")
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise InvalidArgument(f"unknown status {value!r} (one of: {names})") from None


class Priority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4

    @classmethod
    def of(cls, value: Priority | str | int) -> Priority:
        """A priority from itself, its name (any case) or its number."""
        if isinstance(value, bool):
            raise InvalidArgumentType("a priority is a Priority, a name or an int, not a bool")
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                names = ", ".join(member.name.lower() for member in cls)
                raise InvalidArgument(f"unknown priority {value!r} (one of: {names})") from None
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise InvalidArgument(f"a priority is 1 to 4, not {value}") from None
        raise InvalidArgumentType(f"a priority is a Priority, a name or an int, not {value!r}")


class ActionKind(enum.StrEnum):
    """What a run does to one key. "a" is the local side, "b" the remote."""

    UPLOAD = "upload"  # a's version onto b
    DOWNLOAD = "download"  # b's version onto a
    DELETE_A = "delete_a"
    DELETE_B = "delete_b"
    FLAGS_A = "flags_a"  # b's flags onto a, content untouched
    FLAGS_B = "flags_b"
    ADOPT = "adopt"  # equal on both sides: record the base, move nothing
    FORGET = "forget"  # gone from both sides: drop the base
    KEEP_BOTH = "keep_both"  # a's version kept as a conflict copy on both sides, b's takes the key
    CONFLICT = "conflict"  # left for the caller (policy "manual")

    @property
    def writes_a(self) -> bool:
        return self in (ActionKind.DOWNLOAD, ActionKind.DELETE_A, ActionKind.FLAGS_A)

    @property
    def writes_b(self) -> bool:
        return self in (ActionKind.UPLOAD, ActionKind.DELETE_B, ActionKind.FLAGS_B)

    @property
    def is_delete(self) -> bool:
        return self in (ActionKind.DELETE_A, ActionKind.DELETE_B)

    @property
    def status(self) -> Status:
        """The queue status an item has while this action is pending."""
        return _PENDING_STATUS[self]


_PENDING_STATUS = {
    ActionKind.UPLOAD: Status.PENDING_UPLOAD,
    ActionKind.FLAGS_B: Status.PENDING_UPLOAD,
    ActionKind.DOWNLOAD: Status.PENDING_DOWNLOAD,
    ActionKind.FLAGS_A: Status.PENDING_DOWNLOAD,
    ActionKind.KEEP_BOTH: Status.PENDING_DOWNLOAD,
    ActionKind.ADOPT: Status.PENDING_DOWNLOAD,
    ActionKind.FORGET: Status.PENDING_DELETE,
    ActionKind.DELETE_A: Status.PENDING_DELETE,
    ActionKind.DELETE_B: Status.PENDING_DELETE,
    ActionKind.CONFLICT: Status.CONFLICT,
}


@dataclass(frozen=True, kw_only=True)
class Version:
    """One side's version of an item as the plan saw it: the write that acts on it is
    conditional on this etag, so a change made meanwhile is never overwritten."""

    etag: str
    size: int
    checksum: str | None
    flags: frozenset[str] | None
    updated_at: datetime | None = None
    #: Listed moments after a change, with an etag that does not come from the content (a
    #: file another program wrote: inode, size, mtime). A change within the same tick of a
    #: coarse file system clock would keep that etag, so the base marks it, and the next run
    #: checks the content before it trusts the etag (git's "racily clean" files).
    racy: bool = False


@dataclass(frozen=True, kw_only=True)
class Action:
    """One step of a plan."""

    kind: ActionKind
    namespace: str
    key: str
    #: Each side's version when planned (None: absent there).
    a: Version | None
    b: Version | None
    #: The bytes the action moves (0 for deletes, flags and bookkeeping).
    size: int = 0
    priority: Priority = Priority.MEDIUM
    #: Why: "new on a", "changed on b", "conflict: changed on both", ...
    reason: str = ""

    def __str__(self) -> str:
        where = f"{self.namespace}:" if self.namespace else ""
        return f"{self.kind.value} {where}{self.key} ({self.reason})"


@dataclass(frozen=True, kw_only=True)
class ItemState:
    """What the state database holds for one key of a pair."""

    namespace: str
    key: str
    status: Status
    priority: Priority
    attempts: int
    last_error: str | None
    #: The last version both sides agreed on (None: never synced).
    checksum: str | None
    size: int | None


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """Sent to a run's ``progress`` callback. ``kind``: "planned" (``items`` and ``bytes``
    are the totals of the actions the run carries out), "bytes" (``bytes`` more moved for
    ``key``), "done", "retry" (an attempt failed and is tried again: the ``bytes`` it moved
    no longer count), "failed" (for good, the ``bytes`` of its last attempt taken back)."""

    kind: str
    namespace: str = ""
    key: str = ""
    action: ActionKind | None = None
    items: int = 0
    bytes: int = 0
    error: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(kw_only=True)
class SyncReport:
    """What one ``Replicator.run`` did."""

    #: Actions carried out, per kind.
    done: dict[ActionKind, int] = field(default_factory=dict)
    #: (namespace, key, action, error) of every item that failed in this run.
    failures: list[tuple[str, str, ActionKind, str]] = field(default_factory=list)
    #: Keys left in CONFLICT for the caller (policy "manual").
    conflicts: int = 0
    #: Deletes not carried out because a transfer failed in this run.
    deletes_skipped: int = 0
    #: Content moved by the transfers that succeeded.
    bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, kind: ActionKind) -> int:
        return self.done.get(kind, 0)
