"""Carrying out one planned action and saying what the base becomes."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable
from datetime import UTC, datetime

from ..errors import (
    AlreadyExists,
    BlobError,
    DecryptionError,
    IntegrityError,
    PreconditionFailed,
    TransientError,
)
from ..item import DataItem
from ..store import DataStore
from . import _codec
from ._transfer import (
    Trash,
    checksum_of,
    conflict_key,
    copy_version,
    delete_version,
    set_flags_version,
)
from .model import Action, ActionKind, Status, Version
from .state import Outcome

#: How many conflict names from one second a keep-both tries before it fails.
_CONFLICT_NAMES = 100

__all__ = ["backoff", "failure_status", "marked", "perform", "retry_limit"]

#: A download that fails authentication or its checksum is tried this often, then left failed.
INTEGRITY_ATTEMPTS = 3
_MAX_DELAY = 30.0


def backoff(retry_delay: float, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure: exponential, with jitter."""
    return min(_MAX_DELAY, retry_delay * 2.0 ** (attempts - 1)) * random.uniform(0.5, 1.0)


def _flags(item: DataItem) -> frozenset[str]:
    return frozenset(str(flag) for flag in item.flags)


def _base(action: Action, a: DataItem, b: DataItem, key: str | None = None) -> Outcome:
    return Outcome(
        namespace=action.namespace,
        key=key or action.key,
        checksum=a.checksum or b.checksum,
        size=a.size,
        etag_a=a.etag,
        etag_b=b.etag,
        flags=_flags(b),
    )


def marked(action: Action, outcome: Outcome) -> Outcome:
    """``outcome`` of ``action`` with the base etag of each side whose version was racy
    (``Version.racy``) marked, so the next run checks that side's content first."""
    if outcome.key != action.key or outcome.forget or outcome.failed is not None:
        return outcome  # a conflict copy is a version a run wrote itself

    def kept(etag: str | None, version: Version | None) -> str | None:
        if etag is None or version is None or not version.racy or etag != version.etag:
            return etag
        return _codec.base_etag(etag, racy=True)

    etag_a, etag_b = kept(outcome.etag_a, action.a), kept(outcome.etag_b, action.b)
    if (etag_a, etag_b) == (outcome.etag_a, outcome.etag_b):
        return outcome
    return dataclasses.replace(outcome, etag_a=etag_a, etag_b=etag_b)


def perform(
    action: Action,
    a: DataStore,
    b: DataStore,
    trash: Trash | None,
    on_bytes: Callable[[int], None],
) -> list[Outcome]:
    """Do ``action`` (``a`` and ``b`` are the namespace's views) and return the new bases."""
    kind, key = action.kind, action.key
    if kind is ActionKind.UPLOAD:
        assert action.a is not None
        keep = functools.partial(_keep, trash, b, action, action.b)
        source, copy = _copy(a, b, key, action.a, action.b, on_bytes, keep_replaced=keep)
        return [_base(action, source, copy)]
    if kind is ActionKind.DOWNLOAD:
        assert action.b is not None
        keep = functools.partial(_keep, trash, a, action, action.a)
        source, copy = _copy(b, a, key, action.b, action.a, on_bytes, keep_replaced=keep)
        return [_base(action, copy, source)]
    if kind in (ActionKind.DELETE_A, ActionKind.DELETE_B):
        side, version = (a, action.a) if kind is ActionKind.DELETE_A else (b, action.b)
        assert version is not None
        _keep(trash, side, action, version)
        delete_version(side, key, version)
        return [Outcome(namespace=action.namespace, key=key, forget=True)]
    if kind in (ActionKind.FLAGS_A, ActionKind.FLAGS_B):
        return [_flags_outcome(action, a, b)]
    if kind is ActionKind.KEEP_BOTH:
        return _keep_both(action, a, b, on_bytes)
    if kind is ActionKind.ADOPT:
        assert action.a is not None
        assert action.b is not None
        return [
            Outcome(
                namespace=action.namespace,
                key=key,
                checksum=action.a.checksum or action.b.checksum,
                size=action.a.size,
                etag_a=action.a.etag,
                etag_b=action.b.etag,
                flags=action.b.flags if action.b.flags is not None else action.a.flags,
            )
        ]
    assert kind is ActionKind.FORGET, "CONFLICT rows are never claimed"
    return [Outcome(namespace=action.namespace, key=key, forget=True)]


def _keep(trash: Trash | None, side: DataStore, action: Action, version: Version | None) -> None:
    if trash is not None and version is not None:
        trash.keep(side, action.namespace, action.key, version)


def _flags_outcome(action: Action, a: DataStore, b: DataStore) -> Outcome:
    assert action.a is not None
    assert action.b is not None
    if action.kind is ActionKind.FLAGS_A:
        flags = action.b.flags if action.b.flags is not None else frozenset()
        after_a = set_flags_version(a, action.key, action.a, flags)
        etag_a, etag_b = after_a.etag, action.b.etag
    else:
        flags = action.a.flags if action.a.flags is not None else frozenset()
        after_b = set_flags_version(b, action.key, action.b, flags)
        etag_a, etag_b = action.a.etag, after_b.etag
    return Outcome(
        namespace=action.namespace,
        key=action.key,
        checksum=action.a.checksum or action.b.checksum,
        size=action.a.size,
        etag_a=etag_a,
        etag_b=etag_b,
        flags=flags,
    )


def _keep_both(
    action: Action, a: DataStore, b: DataStore, on_bytes: Callable[[int], None]
) -> list[Outcome]:
    """a's version is kept as ``<key>.conflict-a-<time>`` on both sides; b's takes the key.
    Each step a cut-short attempt made is found done by the next: the name comes from the
    version's time, so a retry names it the same."""
    assert action.a is not None
    assert action.b is not None
    loser = _loser_key(action, a, b)
    _, kept_b = _copy(a, b, action.key, action.a, None, on_bytes, dst_key=loser)
    _, copy_a = _copy(a, a, action.key, action.a, None, None, dst_key=loser)  # moves nothing
    source_b, replaced = _copy(b, a, action.key, action.b, action.a, on_bytes)
    return [
        _base(action, replaced, source_b),
        _base(action, copy_a, kept_b, key=loser),
    ]


def _loser_key(action: Action, a: DataStore, b: DataStore) -> str:
    """The first conflict name from a's version's second under which neither side holds
    anything but that version: a retry finds its own copies, and a name another conflict of
    the same second took (or a file of the user's) is passed over."""
    version = action.a
    assert version is not None
    when = version.updated_at or datetime.now(UTC)
    # Known, or a retry would not know its own copies (sizes that differ decide a conflict
    # without hashing).
    checksum = version.checksum or checksum_of(a, action.key, version.etag)
    for number in range(1, _CONFLICT_NAMES + 1):
        name = conflict_key(action.key, "a", when, number)
        if all(_free_for(side.get(name), checksum, version.flags) for side in (a, b)):
            return name
    raise BlobError(
        f"{_CONFLICT_NAMES} conflict copies from this version's second hold other content",
        key=action.key,
    )


def _free_for(item: DataItem | None, checksum: str | None, flags: frozenset[str] | None) -> bool:
    return item is None or (
        checksum is not None
        and item.checksum == checksum
        and (flags is None or item.flags == flags)
    )


def _copy(
    source: DataStore,
    target: DataStore,
    key: str,
    version: Version,
    replaces: Version | None,
    on_bytes: Callable[[int], None] | None,
    dst_key: str | None = None,
    keep_replaced: Callable[[], None] | None = None,
) -> tuple[DataItem, DataItem]:
    """``copy_version`` (``keep_replaced`` first: the trash's copy); a target that
    already holds this content (written by an attempt cut short after its write, by a process
    that died before it recorded it, or by another action of the run) is a copy done."""
    try:
        if keep_replaced is not None:
            keep_replaced()  # fails if the version to replace is gone
        return copy_version(
            source, target, key, version, replaces, dst_key=dst_key, on_bytes=on_bytes
        )
    except (AlreadyExists, PreconditionFailed):
        item = source.get(key)
        if item is None or item.etag != version.etag:
            raise
        copied = _holding(target, dst_key or key, item)
        if copied is None:
            raise
        return item, copied


def _holding(side: DataStore, key: str, wanted: DataItem) -> DataItem | None:
    """``side``'s item ``key`` if it holds ``wanted``'s content and flags (flags another
    writer set are a change of theirs: the next run decides)."""
    item = side.get(key)
    if item is None or wanted.checksum is None or item.checksum != wanted.checksum:
        return None
    return item if item.flags == wanted.flags else None


def failure_status(kind: ActionKind) -> Status:
    if kind in (ActionKind.DELETE_A, ActionKind.DELETE_B):
        return Status.PENDING_DELETE
    if kind in (ActionKind.UPLOAD, ActionKind.FLAGS_B):
        return Status.FAILED_UPLOAD
    return Status.FAILED_DOWNLOAD


def retry_limit(error: BaseException, kind: ActionKind, max_attempts: int) -> int:
    """How many attempts in all an action that raised ``error`` gets in one run: what a retry
    can fix gets ``max_attempts``; a failed authentication on a download, 3; the rest, 1."""
    if isinstance(error, IntegrityError | DecryptionError) and kind is not ActionKind.UPLOAD:
        return INTEGRITY_ATTEMPTS
    if isinstance(error, PreconditionFailed | AlreadyExists):
        return 1  # changed meanwhile: the next run plans it again, as a conflict if need be
    if isinstance(error, TransientError):
        return max_attempts
    return 1
