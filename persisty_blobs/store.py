"""``DataStore``: the portable API, over the small ``Driver`` interface that each store implements.

The split is go-cloud's ``blob.Bucket`` over ``driver.Bucket``. ``DataStore`` validates every
argument once, before any I/O; computes size and SHA-256 while streaming; checks preconditions
early (the driver checks them again, race-free, when it commits) and builds the conveniences.
A driver implements only the primitives below, each with its contract in its docstring.
"""

from __future__ import annotations

import builtins
import copy as copy_module
import io
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from .errors import AlreadyExists, NotFound, PreconditionFailed, RangeNotSatisfiable
from .item import DataItem, Flag
from .keys import (
    guess_content_type,
    validate_content_type,
    validate_flags,
    validate_key,
    validate_metadata,
    validate_namespace,
    validate_prefix,
)
from .streams import ItemReader, ItemWriter, feed

__all__ = [
    "DataStore",
    "Driver",
    "DriverWriter",
    "ItemHeader",
    "WriteSpec",
    "check_precondition",
    "clip_range",
    "etag_for",
]

_LIST_PAGE_SIZE = 1000
_READ_BUFFER_SIZE = 64 * 1024


@dataclass(frozen=True)
class ItemHeader:
    """What a new item carries besides its content, known before the content streams (a store
    that must send it first, as S3 does when a multipart upload starts, takes it from here)."""

    content_type: str
    metadata: Mapping[str, str]
    flags: frozenset[Flag]


@dataclass(frozen=True)
class WriteSpec:
    """Everything a driver needs to commit a new item, known once its content has streamed."""

    content_type: str
    metadata: Mapping[str, str]
    flags: frozenset[Flag]
    size: int
    checksum: str
    if_match: str | None
    if_none_match: bool


def check_precondition(
    current: DataItem | None, key: str, store: str, if_match: str | None, if_none_match: bool
) -> None:
    """Raise if the precondition fails against ``current``; drivers call it under their lock."""
    if if_none_match and current is not None:
        raise AlreadyExists("the item exists and if_none_match='*' was given", key=key, store=store)
    if if_match is not None and (current is None or current.etag != if_match):
        found = "is missing" if current is None else f"has etag {current.etag!r}"
        raise PreconditionFailed(
            f"if_match={if_match!r} failed: the item {found}", key=key, store=store
        )


def etag_for(checksum: str) -> str:
    """The etag of content with this checksum: equal content has equal etags on every store."""
    return checksum.removeprefix("sha256:")[:32]


def clip_range(size: int, start: int, end: int | None, key: str, store: str) -> tuple[int, int]:
    """The ``[start, stop)`` slice of an item of ``size`` bytes that a range request covers."""
    if start > size:
        raise RangeNotSatisfiable(
            f"range starts at {start}, past the item's {size} bytes", key=key, store=store
        )
    return start, size if end is None else min(end, size)


class DriverWriter(ABC):
    """Receives one new item's content, then commits it atomically or discards it."""

    @abstractmethod
    def write(self, chunk: memoryview) -> None:
        """Append ``chunk``: exactly the store's ``chunk_size`` bytes, but the last may be shorter.

        The chunk's memory is reused once this returns: copy what must outlive the call.
        """

    @abstractmethod
    def commit(self, spec: WriteSpec) -> DataItem:
        """Make the item visible in one atomic step and return it.

        Check ``spec``'s precondition against the current item race-free (under the same lock
        or transaction as the swap). On any error raise and leave the old item untouched;
        ``abort`` is called next. A new item starts with ``spec.flags``.
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written. Idempotent; never raises."""


class Driver(ABC):
    """The primitives a store implements. Arguments arrive validated; ``namespace`` "" is the
    default namespace. Errors are raised as ``persisty_blobs.errors`` classes."""

    #: How a store names itself in error messages, e.g. ``DirectoryStore('/srv/blobs')``.
    name: str
    #: The size of the chunks ``DriverWriter.write`` receives and reads are buffered in.
    chunk_size: int

    @abstractmethod
    def stat(self, namespace: str, key: str) -> DataItem | None:
        """The item, or None if it does not exist."""

    @abstractmethod
    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        """One version of the item and a reader of its bytes ``[start, min(end, size))``.

        ``0 <= start`` and ``end is None or start <= end``. Raise ``NotFound`` if missing and
        ``RangeNotSatisfiable`` if ``start > size`` (``clip_range`` does both checks). The item
        returned is the version being read, even if the key is overwritten meanwhile.
        """

    @abstractmethod
    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        """A writer for a new version of ``key``, invisible until committed. ``header`` comes
        again in the ``WriteSpec`` of ``commit``."""

    @abstractmethod
    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        """Delete the item; False if it did not exist. Check ``if_match`` race-free."""

    @abstractmethod
    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        """Up to ``limit`` items whose key starts with ``prefix``, is greater than ``after``
        and (if given) has ``flag``, in ascending key order. Fewer than ``limit`` means the end."""

    @abstractmethod
    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        """Replace the item's flags without touching its content; ``NotFound`` if missing."""

    @abstractmethod
    def namespaces(self) -> list[str]:
        """Sorted names of the namespaces that hold items ("" when the default one does)."""

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem | None:
        """Copy inside the store, or return None to let ``DataStore`` stream it."""
        return None

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        """The number of items ``list_page`` would return in all."""
        total, after = 0, None
        while page := self.list_page(namespace, prefix, after, _LIST_PAGE_SIZE, flag):
            total += len(page)
            after = page[-1].key
        return total

    def close(self) -> None:  # noqa: B027 (an optional hook: most drivers hold nothing)
        """Release what the driver holds."""


class DataStore:
    """A store of binary items: the public API of every store and layer."""

    def __init__(self, driver: Driver, namespace: str = "") -> None:
        self._driver = driver
        self._namespace = validate_namespace(namespace)
        self._owns_driver = True

    def __repr__(self) -> str:
        suffix = f".namespace({self._namespace!r})" if self._namespace else ""
        return f"{self._driver.name}{suffix}"

    @property
    def chunk_size(self) -> int:
        """The size in which this store moves content."""
        return self._driver.chunk_size

    # Reading -----------------------------------------------------------------------------

    def get(self, key: str) -> DataItem | None:
        return self._driver.stat(self._namespace, validate_key(key))

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def open(self, key: str, start: int = 0, end: int | None = None) -> ItemReader:
        """A streaming reader of bytes ``[start, end)``; ``.item`` is the version being read."""
        validate_key(key)
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an int >= 0, not {start!r}")
        if end is not None and (not isinstance(end, int) or end < start):
            raise ValueError(f"end must be None or an int >= start ({start}), not {end!r}")
        item, raw = self._driver.open_range(self._namespace, key, start, end)
        # Reads of at least the buffer's size go straight into the caller's memory.
        return ItemReader.over(raw, item, min(self.chunk_size, _READ_BUFFER_SIZE))

    def read_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with self.open(key, start, end) as reader:
            return reader.read()

    def get_flags(self, key: str) -> frozenset[Flag]:
        item = self.get(key)
        if item is None:
            raise NotFound("no such item", key=key, store=repr(self))
        return item.flags

    # Writing -----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> DataItem:
        """Store ``data`` (bytes-like, a binary file or an iterable of bytes) under ``key``."""
        if isinstance(data, str):
            raise TypeError("data must be bytes-like, a binary file or an iterable of bytes")
        with self.writer(
            key,
            content_type=content_type,
            metadata=metadata,
            if_match=if_match,
            if_none_match=if_none_match,
        ) as writer:
            feed(writer, data)
        assert writer.item is not None
        return writer.item

    def writer(
        self,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> ItemWriter:
        """A writable file, committed as ``key`` on a clean ``with`` exit (then ``.item``)."""
        return self._writer(key, content_type, metadata, frozenset(), if_match, if_none_match)

    def _writer(
        self,
        key: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        flags: frozenset[Flag],
        if_match: str | None,
        if_none_match: str | None,
    ) -> ItemWriter:
        validate_key(key)
        resolved_type = (
            guess_content_type(key) if content_type is None else validate_content_type(content_type)
        )
        checked_metadata = validate_metadata(metadata)
        if if_none_match not in (None, "*"):
            raise ValueError(f"if_none_match takes only '*', not {if_none_match!r}")
        if if_match is not None and (not isinstance(if_match, str) or if_none_match):
            raise ValueError("if_match takes one etag str, and not together with if_none_match")
        create_only = if_none_match == "*"
        if create_only or if_match is not None:
            # Fail before a large body is consumed; the driver checks again when it commits.
            current = self._driver.stat(self._namespace, key)
            check_precondition(current, key, repr(self), if_match, create_only)

        def commit(sink: DriverWriter, size: int, sha256_hex: str) -> DataItem:
            spec = WriteSpec(
                content_type=resolved_type,
                metadata=checked_metadata,
                flags=flags,
                size=size,
                checksum=f"sha256:{sha256_hex}",
                if_match=if_match,
                if_none_match=create_only,
            )
            return sink.commit(spec)

        header = ItemHeader(content_type=resolved_type, metadata=checked_metadata, flags=flags)
        sink = self._driver.new_writer(self._namespace, key, header)
        return ItemWriter(sink, self.chunk_size, commit)

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; True if it existed. A missing key is not an error."""
        return self._driver.delete(self._namespace, validate_key(key), if_match)

    def copy(self, src_key: str, dst_key: str) -> DataItem:
        """Copy content, content type, metadata and flags; overwrites ``dst_key``."""
        validate_key(src_key)
        validate_key(dst_key)
        copied = self._driver.copy(self._namespace, src_key, dst_key)
        if copied is not None:
            return copied
        with self.open(src_key) as reader:
            source = reader.item
            with self._writer(
                dst_key, source.content_type, source.metadata, source.flags, None, None
            ) as writer:
                feed(writer, reader)
        assert writer.item is not None
        return writer.item

    def set_flags(self, key: str, flags: Iterable[Flag | str]) -> None:
        """Replace the item's flags (an empty collection clears them)."""
        validate_key(key)
        self._driver.set_flags(self._namespace, key, validate_flags(flags))

    # Listing -----------------------------------------------------------------------------

    def list(
        self,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int | None = None,
        flag: Flag | str | None = None,
    ) -> Iterator[DataItem]:
        """Items in ascending key order (UTF-8 byte order), paging internally."""
        validate_prefix(prefix)
        if after is not None:
            validate_prefix(after)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
        wanted = None if flag is None else next(iter(validate_flags([flag])))
        return self._pages(prefix, after, limit, wanted)

    def _pages(
        self, prefix: str, after: str | None, limit: int | None, flag: Flag | None
    ) -> Iterator[DataItem]:
        remaining = limit
        while remaining is None or remaining > 0:
            size = _LIST_PAGE_SIZE if remaining is None else min(remaining, _LIST_PAGE_SIZE)
            page = self._driver.list_page(self._namespace, prefix, after, size, flag)
            yield from page
            if len(page) < size:
                return
            after = page[-1].key
            if remaining is not None:
                remaining -= len(page)

    def count(self, prefix: str = "", *, flag: Flag | str | None = None) -> int:
        validate_prefix(prefix)
        wanted = None if flag is None else next(iter(validate_flags([flag])))
        return self._driver.count(self._namespace, prefix, wanted)

    # Namespaces and lifetime -------------------------------------------------------------

    def namespace(self, name: str) -> Self:
        """An isolated view of namespace ``name`` ("" is the default) on the same storage."""
        view = copy_module.copy(self)
        view._namespace = validate_namespace(name)
        view._owns_driver = False
        return view

    def namespaces(self) -> builtins.list[str]:
        return self._driver.namespaces()

    def close(self) -> None:
        """Release the store's resources; a namespace view leaves them to its store."""
        if self._owns_driver:
            self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
