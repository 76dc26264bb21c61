"""The writes a run makes to one side: each conditional on the version the plan saw, each copy
streamed and checked against the source's checksum before it is committed."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import NotFound, PreconditionFailed
from ..item import DataItem
from ..keys import MAX_KEY_BYTES
from ..store import DataStore
from ..streams import ItemReader
from .model import Version

__all__ = [
    "Trash",
    "checksum_of",
    "conflict_key",
    "copy_version",
    "delete_version",
    "set_flags_version",
]

_BLOCK = 1024 * 1024
#: The longest file name most file systems take.
_SEGMENT_BYTES = 255


def fitted(key: str, suffix: str = "", prefix: str = "") -> str:
    """``prefix + key + suffix`` within the key rules: when that is too long for a key (1024
    bytes) or its last segment for a file name (255), the last segment is cut and a hash of
    the whole key keeps it apart from others; its extension stays."""
    whole = prefix + key + suffix
    head, _, last = whole.rpartition("/")
    if len(whole.encode()) <= MAX_KEY_BYTES and len(last.encode()) <= _SEGMENT_BYTES:
        return whole
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem, dot, extension = key.rpartition("/")[2].rpartition(".")
    extension = f".{extension}" if dot and len(extension) <= 16 else ""
    room = max(1, _SEGMENT_BYTES - len(f"~{tag}{extension}{suffix}".encode()) - 8)
    room = min(room, MAX_KEY_BYTES - len((prefix + head + "/").encode()) - 64)
    short = (stem or key).encode()[: max(room, 1)].decode("utf-8", "ignore") or "x"
    folder = (prefix + key).rpartition("/")[0]
    if len(folder.encode()) > MAX_KEY_BYTES // 2:
        folder = prefix.rstrip("/")
    name = f"{short}~{tag}{extension}{suffix}"
    return f"{folder}/{name}" if folder else name


def conflict_key(key: str, side: str, when: datetime, number: int = 1) -> str:
    """Where the losing version of ``key`` is kept: named from the time of that version, so
    a run interrupted and run again names it the same; the ``number``-th such name from the
    second, where the first ones hold other content."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return fitted(key, f".conflict-{side}-{stamp}" + (f"-{number}" if number > 1 else ""))


@dataclass(frozen=True)
class Trash:
    """Where a run keeps what it deletes or overwrites on a side (rclone's ``--backup-dir``):
    the key ``<UTC time>/@<namespace>/<key>`` in the side's namespace ``name``."""

    name: str

    def keep(self, side: DataStore, namespace: str, key: str, version: Version) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = side.namespace(self.name)
        prefix = f"{stamp}/{_namespace_segment(namespace)}/"
        copy_version(side, target, key, version, None, dst_key=fitted(key, prefix=prefix))


def _namespace_segment(namespace: str) -> str:
    """``@<namespace>``, cut (a hash keeping it apart) where it is too long for a file name."""
    segment = f"@{namespace}"
    if len(segment.encode()) <= _SEGMENT_BYTES:
        return segment
    tag = hashlib.sha256(namespace.encode()).hexdigest()[:16]
    return f"@{namespace.encode()[:200].decode('utf-8', 'ignore')}~{tag}"


def copy_version(
    source: DataStore,
    target: DataStore,
    key: str,
    version: Version,
    replaces: Version | None,
    *,
    dst_key: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[DataItem, DataItem]:
    """Stream ``version`` of ``source[key]`` onto ``target[dst_key or key]``, written only if
    the target still holds ``replaces`` (None: only if absent). The target's writer checks the
    copy against the source's checksum as it hashes it, and keeps nothing that differs.
    Returns (source item, new target item)."""
    with source.open(key) as reader:
        item = reader.item
        if item.etag != version.etag:
            raise PreconditionFailed(
                "changed since the plan; the next run decides", key=key, store=repr(source)
            )
        options: dict[str, Any] = {
            "content_type": item.content_type,
            "metadata": item.metadata,
            "flags": item.flags,
            "if_match": None if replaces is None else replaces.etag,
            "if_none_match": "*" if replaces is None else None,
            "checksum": item.checksum,
        }
        small = item.size <= min(target.chunk_size, _BLOCK)
        if item.checksum is None and not small and _hash_first(source, target):
            options["checksum"] = _checksum_first(source, key, item)
        if small:
            # Read whole and put in one call: a put of content in memory leaves the
            # precondition to the commit, instead of asking the target once more first.
            content = reader.read()
            if on_bytes is not None:
                on_bytes(len(content))  # before the write, as for a streamed copy: it may cancel
            copy = target.put(dst_key or key, content, **options)
        else:
            # The size announced: a store may then send the content as it comes, in one
            # request. Read straight into the writer's buffers: a block read into bytes of its
            # own costs an allocation and a copy more per block.
            with target.writer(dst_key or key, size=item.size, **options) as writer:
                writer.write_from(reader if on_bytes is None else _Counted(reader, on_bytes))
            assert writer.item is not None
            copy = writer.item
    if item.checksum is None:
        # The reader read exactly this version (a store whose reader cannot tell fails the
        # read), and the target hashed what it read.
        item = dataclasses.replace(item, checksum=copy.checksum)
    return item, copy


class _Counted:
    """A reader whose reads are reported to ``on_bytes`` as they come (which may cancel)."""

    def __init__(self, reader: ItemReader, on_bytes: Callable[[int], None]) -> None:
        self._reader = reader
        self._on_bytes = on_bytes

    def readinto(self, buffer: memoryview) -> int:
        count = self._reader.readinto(buffer)
        if count:
            self._on_bytes(count)
        return count


def _hash_first(source: DataStore, target: DataStore) -> bool:
    """Whether to learn an unknown checksum before the copy: only where the target then
    takes it in one request, and reading the source twice costs no round trip."""
    return target.capabilities.writes_want_checksum and not source.capabilities.reads_wait


def checksum_of(store: DataStore, key: str, etag: str) -> str | None:
    """The checksum of ``store``'s version ``etag`` of ``key``: the item's, else its content
    hashed; None if that version is gone (the next run sees what replaced it)."""
    item = store.get(key)
    if item is None:
        return None
    if item.etag == etag and item.checksum is not None:
        return item.checksum
    digest = hashlib.sha256()
    try:
        with store.open(key) as reader:
            if reader.item.etag != etag:
                return None
            while block := reader.read(1024 * 1024):
                digest.update(block)
    except NotFound:
        return None
    return f"sha256:{digest.hexdigest()}"


def _checksum_first(source: DataStore, key: str, opened: DataItem) -> str | None:
    """The checksum of ``opened`` (a version whose reader did not know it) from ``get``, which
    hashes the content if it must: the target can then take the copy in one request."""
    item = source.get(key)
    if item is None or item.etag != opened.etag:
        raise PreconditionFailed(
            "changed since the plan; the next run decides", key=key, store=repr(source)
        )
    return item.checksum


def delete_version(side: DataStore, key: str, version: Version) -> None:
    """Delete ``key`` if it still holds ``version``; already gone is done."""
    side.delete(key, if_match=version.etag)


def set_flags_version(
    side: DataStore, key: str, version: Version, flags: frozenset[str]
) -> DataItem:
    """Set ``flags`` on ``key`` if it still holds ``version``; returns the item after."""
    current = side.get(key)
    if current is None or current.etag != version.etag:
        raise PreconditionFailed(
            "changed since the plan; the next run decides", key=key, store=repr(side)
        )
    side.set_flags(key, flags)
    # A store sets flags without a condition: content written meanwhile keeps them, and is
    # left for the next run to copy, never recorded as the version both sides agreed on.
    after = side.get(key)
    if after is None or after.etag != version.etag:
        raise PreconditionFailed(
            "changed while its flags were set; the next run decides", key=key, store=repr(side)
        )
    return after
