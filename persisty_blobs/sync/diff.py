"""The 3-way diff: each side's listing is compared with the base (the last version both sides
agreed on), never the two sides' etags with each other, and each key gets one action.

====================  ==================  ======================  =====================
a \\ b                 unchanged           changed                 deleted
====================  ==================  ======================  =====================
unchanged             nothing             download                delete on a
changed               upload              equal: adopt, else      the change wins
                                          conflict                (copied back)
deleted               delete on b         the change wins         forget the base
====================  ==================  ======================  =====================

With no base, a key on one side is copied to the other, and a key on both is adopted when the
contents are equal (no transfer) or else is a conflict. A flag-only change (same etag, other
flags) is copied without the content; when both sides changed flags, b's win.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..errors import DecryptionError, IntegrityError, PermissionDenied, TransientError
from ..item import Entry
from ..store import DataStore
from . import _codec
from ._perform import backoff
from ._transfer import checksum_of
from .model import Action, ActionKind, Priority, Status, Version
from .state import BaseRow

__all__ = ["UNREADABLE", "Differ", "is_racy", "merge"]

Policy = Literal["keep-both", "prefer-a", "prefer-b", "newer", "manual"]
Direction = Literal["both", "push", "pull"]
POLICIES: tuple[str, ...] = ("keep-both", "prefer-a", "prefer-b", "newer", "manual")
DIRECTIONS: tuple[str, ...] = ("both", "push", "pull")

_Triple = tuple[str, Entry | None, Entry | None, BaseRow | None]
_QUIET = ("unchanged", "flags")
#: A side whose content cannot be read to compare it: the version is copied from it, and that
#: copy fails alone while the rest of the run goes on.
UNREADABLE = (IntegrityError, DecryptionError, PermissionDenied)
_SETTLED = (None, Status.SYNCED)
#: Longer than any file system clock's tick (FAT's is 2 s): a version listed this long after
#: its last change cannot change again without a new mtime.
SETTLE_SECONDS = 3.0


def is_racy(store: DataStore, checksum: str | None, updated_at: datetime) -> bool:
    """Whether a version of ``store`` seen now is racy (``Version.racy``): its etag does not
    come from its content (no checksum is known without reading it, and its time comes from
    this machine's clock: a file), and it changed moments ago."""
    return (
        checksum is None
        and store.capabilities.local_clock
        and updated_at.timestamp() > time.time() - SETTLE_SECONDS
    )


def merge(a: Iterator[Entry], b: Iterator[Entry], rows: Iterator[BaseRow]) -> Iterator[_Triple]:
    """Walk three key-ordered streams together: (key, a's entry, b's entry, base row)."""
    next_a, next_b, next_row = next(a, None), next(b, None), next(rows, None)
    while next_a is not None or next_b is not None or next_row is not None:
        key = min(item.key for item in (next_a, next_b, next_row) if item is not None)
        entry_a = next_a if next_a is not None and next_a.key == key else None
        entry_b = next_b if next_b is not None and next_b.key == key else None
        row = next_row if next_row is not None and next_row.key == key else None
        yield key, entry_a, entry_b, row
        if entry_a is not None:
            next_a = next(a, None)
        if entry_b is not None:
            next_b = next(b, None)
        if row is not None:
            next_row = next(rows, None)


def _equal(first: str | None, second: str | None) -> bool:
    """Known and equal: an unknown checksum (changed since the listing) matches nothing."""
    return first is not None and first == second


def _flags(entry: Entry) -> frozenset[str] | None:
    return None if entry.flags is None else frozenset(str(flag) for flag in entry.flags)


def _in_sync(a: Entry | None, b: Entry | None, row: BaseRow | None) -> bool:
    """Whether nothing changed on either side since a synced base: most keys of most runs,
    decided without the rules table. A racy base etag (marked) never equals a listed one."""
    return (
        a is not None
        and b is not None
        and row is not None
        and a.etag == row.etag_a
        and b.etag == row.etag_b
        and row.status in _SETTLED
        # A Flag is a str: the sets compare as they are.
        and (a.flags is None or row.flags is None or a.flags == row.flags)
        and (b.flags is None or row.flags is None or b.flags == row.flags)
    )


def _same_content(entry: Entry, row: BaseRow) -> bool:
    """Whether a version whose etag moved holds the base's content, as its listing says (a
    remote's keys rotated, an object copied onto itself with new metadata, the same bytes
    uploaded again): no change, whatever its etag."""
    return entry.size == row.size and _equal(entry.checksum, row.checksum)


def _moved(entry: Entry | None, base_etag: str | None) -> bool:
    return entry is not None and base_etag is not None and entry.etag != base_etag


def _side(entry: Entry | None, base_etag: str | None, row: BaseRow | None) -> str:
    if row is None or not row.has_base:
        return "absent" if entry is None else "new"
    if entry is None:
        return "deleted"
    if entry.etag != base_etag and not _same_content(entry, row):
        return "changed"
    return _quiet(entry, row)


def _quiet(entry: Entry, row: BaseRow) -> str:
    """The state of a version that holds the base's content."""
    flags = _flags(entry)
    if flags is not None and row.flags is not None and flags != row.flags:
        return "flags"
    return "unchanged"


@dataclass
class Differ:
    """Decides each key's action for one namespace of a pair."""

    namespace: str
    a: DataStore
    b: DataStore
    policy: Policy = "keep-both"
    direction: Direction = "both"
    flag: str | None = None
    #: Reads to hash content are tried this often, ``retry_delay`` apart and more, before a
    #: side out of reach stops the plan.
    max_attempts: int = 1
    retry_delay: float = 1.0
    #: The checksums this key's decision had to hash, by side: kept in its versions, so the
    #: base remembers them and no later run hashes that content again.
    _hashed: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def decide(
        self, key: str, a: Entry | None, b: Entry | None, row: BaseRow | None
    ) -> Action | None:
        if self.flag is not None and not self.in_scope(a, b, row):
            return None
        if _in_sync(a, b, row):
            return None
        self._hashed.clear()
        kind, reason = self._kind(key, a, b, row)
        if kind is None or not self._allowed(kind):
            return None
        size = {ActionKind.UPLOAD: a, ActionKind.DOWNLOAD: b, ActionKind.KEEP_BOTH: a}.get(kind)
        moved = 0 if size is None else size.size
        if kind is ActionKind.KEEP_BOTH and b is not None:
            moved += b.size
        return Action(
            kind=kind,
            namespace=self.namespace,
            key=key,
            a=self._version("a", a),
            b=self._version("b", b),
            size=moved,
            priority=row.priority if row is not None else Priority.MEDIUM,
            reason=reason,
        )

    def _version(self, side: str, entry: Entry | None) -> Version | None:
        if entry is None:
            return None
        store = self.a if side == "a" else self.b
        racy = is_racy(store, entry.checksum, entry.updated_at)
        return _codec.version_of(entry, self._hashed.get(side), racy=racy)

    def in_scope(self, a: Entry | None, b: Entry | None, row: BaseRow | None) -> bool:
        """Whether a key is in a ``flag=`` run's scope: carrying the flag somewhere."""
        marks = [_flags(entry) for entry in (a, b) if entry is not None]
        marks.append(row.flags if row is not None else None)
        return any(flags is not None and self.flag in flags for flags in marks)

    def _allowed(self, kind: ActionKind) -> bool:
        if self.direction == "push":
            return not kind.writes_a and kind is not ActionKind.KEEP_BOTH
        if self.direction == "pull":
            return not kind.writes_b and kind is not ActionKind.KEEP_BOTH
        return True

    def _kind(
        self, key: str, a: Entry | None, b: Entry | None, row: BaseRow | None
    ) -> tuple[ActionKind | None, str]:
        if row is not None and row.status is not None and row.status.value == "local_only":
            return (ActionKind.FORGET, "local-only item gone") if a is None else (None, "")
        etag_a, racy_a = _codec.split_base_etag(None if row is None else row.etag_a)
        etag_b, racy_b = _codec.split_base_etag(None if row is None else row.etag_b)
        side_a = self._checked(_side(a, etag_a, row), "a", a, row, racy_a)
        side_b = self._checked(_side(b, etag_b, row), "b", b, row, racy_b)
        kind, reason = self._rule(a, b, row, side_a, side_b)
        if kind is None and (racy_a or racy_b):
            return ActionKind.ADOPT, "content unchanged since a racy listing"
        if kind is None and (_moved(a, etag_a) or _moved(b, etag_b)):
            return ActionKind.ADOPT, "etag moved, content unchanged"
        return kind, reason

    def _checked(
        self, state: str, side: str, entry: Entry | None, row: BaseRow | None, racy: bool
    ) -> str:
        """A side whose listing cannot tell whether its content is the base's is looked at:
        one that looks unchanged by a racy base etag, and one whose etag moved, whose listing
        has no checksum and whose size is the base's (a tree restored or copied elsewhere
        keeps its files' times but not their inodes; an S3 object copied onto itself)."""
        if racy and state in _QUIET:
            assert entry is not None
            assert row is not None
            return state if self._holds_base(side, entry, row) else "changed"
        if (
            state == "changed"
            and entry is not None
            and row is not None
            and entry.checksum is None
            and entry.size == row.size
            and row.checksum is not None
            and self._holds_base(side, entry, row)
        ):
            return _quiet(entry, row)
        return state

    def _holds_base(self, side: str, entry: Entry, row: BaseRow) -> bool:
        try:
            return _equal(self.checksum(side, entry), row.checksum)
        except UNREADABLE:
            return False

    def _rule(
        self, a: Entry | None, b: Entry | None, row: BaseRow | None, side_a: str, side_b: str
    ) -> tuple[ActionKind | None, str]:
        """The rules table."""
        quiet = _QUIET
        if side_a == "absent" and side_b == "absent":
            return ActionKind.FORGET, "on neither side"
        if side_a == "new" and side_b == "absent":
            return ActionKind.UPLOAD, "new on a"
        if side_a == "absent" and side_b == "new":
            return ActionKind.DOWNLOAD, "new on b"
        if side_a in ("new", "changed") and side_b in ("new", "changed"):
            return self._both_present(a, b, row, f"{side_a} on both")
        if side_a == "deleted" and side_b == "deleted":
            return ActionKind.FORGET, "deleted on both"
        if side_a in quiet and side_b in quiet:
            return self._flags_only(a, b, row, side_a, side_b)
        if side_a in quiet:
            if side_b == "changed":
                return ActionKind.DOWNLOAD, "changed on b"
            return ActionKind.DELETE_A, "deleted on b"
        if side_b in quiet:
            if side_a == "changed":
                return ActionKind.UPLOAD, "changed on a"
            return ActionKind.DELETE_B, "deleted on a"
        # One side changed, the other deleted: the change wins unless the policy says otherwise.
        resolution = _resolution(a, b, row)
        if side_a == "changed":
            if resolution == "b" or (resolution is None and self.policy == "prefer-b"):
                return ActionKind.DELETE_A, "changed on a, deleted on b: b preferred"
            if resolution is None and self.policy == "manual":
                return ActionKind.CONFLICT, "changed on a, deleted on b"
            return ActionKind.UPLOAD, "changed on a, deleted on b: the change wins"
        if resolution == "a" or (resolution is None and self.policy == "prefer-a"):
            return ActionKind.DELETE_B, "deleted on a, changed on b: a preferred"
        if resolution is None and self.policy == "manual":
            return ActionKind.CONFLICT, "deleted on a, changed on b"
        return ActionKind.DOWNLOAD, "deleted on a, changed on b: the change wins"

    def _flags_only(
        self, a: Entry | None, b: Entry | None, row: BaseRow | None, side_a: str, side_b: str
    ) -> tuple[ActionKind | None, str]:
        assert a is not None
        assert b is not None
        assert row is not None
        if side_a == "flags" and side_b == "flags":
            if _flags(a) == _flags(b):
                return ActionKind.ADOPT, "same flags set on both"
            return ActionKind.FLAGS_A, "flags changed on both: b's win"
        if side_a == "flags":
            return ActionKind.FLAGS_B, "flags changed on a"
        if side_b == "flags":
            return ActionKind.FLAGS_A, "flags changed on b"
        if row.status is not None and row.status.value != "synced":
            return ActionKind.ADOPT, f"in sync (was {row.status.value})"
        return None, ""

    def _both_present(
        self, a: Entry | None, b: Entry | None, row: BaseRow | None, reason: str
    ) -> tuple[ActionKind | None, str]:
        assert a is not None
        assert b is not None
        same = False
        if a.size == b.size:
            # A side that cannot be read is copied from: that copy fails alone (the rest of
            # the run goes on) and the readable side is never written.
            try:
                checksum_a = self.checksum("a", a)
            except UNREADABLE as error:
                return ActionKind.UPLOAD, f"{reason}, a unreadable: {type(error).__name__}"
            try:
                checksum_b = self.checksum("b", b)
            except UNREADABLE as error:
                return ActionKind.DOWNLOAD, f"{reason}, b unreadable: {type(error).__name__}"
            same = _equal(checksum_a, checksum_b)
        if same:
            flags_a, flags_b = _flags(a), _flags(b)
            if flags_a is not None and flags_b is not None and flags_a != flags_b:
                return ActionKind.FLAGS_A, f"{reason}, equal content: b's flags win"
            return ActionKind.ADOPT, f"{reason}, equal content"
        choice = _resolution(a, b, row) or {"prefer-a": "a", "prefer-b": "b"}.get(self.policy)
        if choice is None and self.policy == "newer":
            choice = "a" if a.updated_at > b.updated_at else "b"
        if choice == "a":
            return ActionKind.UPLOAD, f"conflict ({reason}): a's version kept"
        if choice == "b":
            return ActionKind.DOWNLOAD, f"conflict ({reason}): b's version kept"
        if self.policy == "manual":
            return ActionKind.CONFLICT, f"conflict: {reason}"
        if self.direction == "push":
            return ActionKind.UPLOAD, f"conflict ({reason}): pushed"
        if self.direction == "pull":
            return ActionKind.DOWNLOAD, f"conflict ({reason}): pulled"
        return ActionKind.KEEP_BOTH, f"conflict: {reason}"

    def checksum(self, side: str, entry: Entry) -> str | None:
        """The checksum of ``side``'s entry: from the listing, else the item, else its content
        hashed."""
        if entry.checksum is not None:
            return entry.checksum
        store = self.a if side == "a" else self.b
        attempts = 0
        while True:
            try:
                found = checksum_of(store, entry.key, entry.etag)
                break
            except TransientError:
                attempts += 1
                if attempts >= self.max_attempts:
                    raise
                time.sleep(backoff(self.retry_delay, attempts))
        if found is not None:
            self._hashed[side] = found
        return found


def _resolution(a: Entry | None, b: Entry | None, row: BaseRow | None) -> str | None:
    """The side the caller chose for this conflict, if neither side changed since the
    conflict it chose for: a change it did not see is never overwritten by that choice."""
    if row is None or row.resolution is None:
        return None
    etag_a, etag_b = (None if entry is None else entry.etag for entry in (a, b))
    return _codec.resolution_choice(row.resolution, etag_a, etag_b)
