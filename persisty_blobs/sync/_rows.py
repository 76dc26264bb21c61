"""How the state's rows read: the base as the diff reads it, an action's outcome as it is
written back, and an item's place in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from . import _codec
from .model import ItemState, Priority, Status

__all__ = [
    "BASE_COLUMNS",
    "PRIORITIES",
    "BaseRow",
    "Outcome",
    "base_row",
    "item_state",
    "priority_of",
]


class BaseRow(NamedTuple):
    """A state row as the diff reads it (a tuple: a run reads one per key of a pair)."""

    key: str
    checksum: str | None
    size: int | None
    etag_a: str | None
    etag_b: str | None
    flags: frozenset[str] | None
    status: Status | None
    priority: Priority
    resolution: str | None
    #: A delete the caller asked for (``BlobManager.delete``), not one a diff planned.
    requested: bool = False

    @property
    def has_base(self) -> bool:
        return self.etag_a is not None and self.etag_b is not None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The result of one action, written back in a batch: a new base (or none: forget the
    key), or a failure."""

    namespace: str
    key: str
    checksum: str | None = None
    size: int | None = None
    etag_a: str | None = None
    etag_b: str | None = None
    flags: frozenset[str] | None = None
    forget: bool = False
    failed: Status | None = None
    error: str | None = None
    attempts: int = 0
    status: Status = Status.SYNCED


BASE_COLUMNS = (
    "key",
    "base_checksum",
    "base_size",
    "base_etag_a",
    "base_etag_b",
    "base_flags",
    "status",
    "priority",
    "resolution",
    "requested",
)
STATUSES: dict[str | None, Status | None] = {None: None, **{s.value: s for s in Status}}
PRIORITIES = {priority.value: priority for priority in Priority}


def priority_of(value: int) -> Priority:
    """A row's priority; one this library does not know (a row edited by hand) is MEDIUM."""
    return PRIORITIES.get(value, Priority.MEDIUM)


def base_row(
    key: str,
    checksum: str | None,
    size: int | None,
    etag_a: str | None,
    etag_b: str | None,
    flags: str | None,
    status: str | None,
    priority: int,
    resolution: str | None,
    requested: bool,
) -> BaseRow:
    # Enum lookups by dict: a run reads one row per key, and Enum's call costs the most here.
    return BaseRow(
        key,
        checksum,
        size,
        etag_a,
        etag_b,
        _codec.decode_flags(flags),
        # A status or priority this library does not know (a row edited by hand): none, and
        # the default; the diff decides from the base alone.
        STATUSES.get(status),
        priority_of(priority),
        resolution,
        bool(requested),
    )


def item_state(row: Any) -> ItemState:
    return ItemState(
        namespace=row["namespace"],
        key=row["key"],
        status=Status(row["status"]),  # rows without one are never read as items
        priority=priority_of(row["priority"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        checksum=row["base_checksum"],
        size=row["base_size"],
    )
