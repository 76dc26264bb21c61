"""What a plan adds up to, per namespace and in all: for the delete guards and the progress
totals."""

from __future__ import annotations

from collections.abc import Iterator

from ..item import Entry
from .model import Action, ActionKind, Status
from .state import BaseRow

__all__ = ["Counts", "Tally"]


class Counts:
    """One namespace's share of a plan."""

    def __init__(self) -> None:
        self.base = 0
        self.requested = 0
        self.listed = {"a": 0, "b": 0}
        self.deletes = {"a": 0, "b": 0}

    def add(self, other: Counts) -> None:
        self.base += other.base
        self.requested += other.requested
        for side in ("a", "b"):
            self.listed[side] += other.listed[side]
            self.deletes[side] += other.deletes[side]


class Tally:
    """What a plan adds up to, for the guards and the progress totals."""

    def __init__(self) -> None:
        self.items = 0
        self.bytes = 0
        self.largest = 0
        self.conflicts = 0
        self.namespaces: dict[str, Counts] = {}

    def begin(self, namespace: str) -> Counts:
        return self.namespaces.setdefault(namespace, Counts())

    def count(self, counts: Counts, side: str, entries: Iterator[Entry]) -> Iterator[Entry]:
        for entry in entries:
            counts.listed[side] += 1
            yield entry

    def add(self, counts: Counts, action: Action, row: BaseRow | None) -> None:
        if action.kind is not ActionKind.CONFLICT:  # left for the caller, never carried out
            self.items += 1
            self.bytes += action.size
            self.largest = max(self.largest, action.size)
        if row is not None and row.status is Status.PENDING_DELETE and row.requested:
            # A delete the caller asked for (BlobManager.delete). One a plan queued and a run
            # held back or dropped is weighed again, with what was deleted since.
            counts.requested += 1
        elif action.kind is ActionKind.DELETE_A:
            counts.deletes["a"] += 1
        elif action.kind is ActionKind.DELETE_B:
            counts.deletes["b"] += 1
        elif action.kind is ActionKind.CONFLICT:
            self.conflicts += 1
