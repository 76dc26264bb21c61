"""``DataStore``: the portable API that users hold, over the small ``Driver`` (``driver.py``)
that each store implements.

The split is go-cloud's ``blob.Bucket`` over ``driver.Bucket``. ``DataStore`` validates every
argument once, before any I/O; computes size and SHA-256 while streaming; checks preconditions
early (the driver checks them again, race-free, when it commits) and builds the conveniences.
"""

from __future__ import annotations

import builtins
import copy as copy_module
import re
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from ._seekable import seekable
from .driver import (
    LIST_PAGE_SIZE,
    Capabilities,
    Driver,
    DriverWriter,
    ItemHeader,
    WriteSpec,
    check_precondition,
)
from .errors import IntegrityError, InvalidArgument, InvalidArgumentType, NotFound
from .item import DataItem, Entry, Flag
from .keys import (
    guess_content_type,
    is_namespace,
    validate_content_type,
    validate_flags,
    validate_key,
    validate_metadata,
    validate_namespace,
    validate_prefix,
)
from .streams import ItemReader, ItemWriter, feed

__all__ = ["DataStore"]

_READ_BUFFER_SIZE = 64 * 1024
_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")


def _offset(value: object, name: str, *, minimum: int = 0, optional: bool = False) -> int | None:
    """``value`` checked as an offset or count: an int (never a bool) of at least ``minimum``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidArgument(f"{name} must be >= {minimum}, not {value}")
    return value


def _small_in_memory(data: Any, limit: int) -> bool:
    """Bytes-like content of at most ``limit`` bytes: sending it costs no more than checking a
    precondition first, so a put of it leaves the check to the commit alone."""
    try:
        with memoryview(data) as view:
            return view.nbytes <= limit
    except TypeError:
        return False


def _one_flag(flag: Flag | str | None) -> Flag | None:
    return None if flag is None else next(iter(validate_flags([flag])))


class DataStore:
    """A store of binary items: the public API of every store and layer."""

    #: Items per listing request; the conformance suite lowers it to page through tens of items.
    list_page_size: int = LIST_PAGE_SIZE

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

    @property
    def capabilities(self) -> Capabilities:
        """What this store can do (``driver.Capabilities``)."""
        return self._driver.capabilities

    @property
    def namespace_name(self) -> str:
        """The namespace this view reads and writes ("" is the default)."""
        return self._namespace

    # Reading -----------------------------------------------------------------------------

    def get(self, key: str) -> DataItem | None:
        return self._driver.stat(self._namespace, validate_key(key))

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def open(self, key: str, start: int = 0, end: int | None = None) -> ItemReader:
        """A streaming reader of bytes ``[start, end)``; ``.item`` is the version being read."""
        validate_key(key)
        _offset(start, "start")
        _offset(end, "end", minimum=start, optional=True)
        item, raw = self._driver.open_range(self._namespace, key, start, end)
        reader = seekable(self._driver, self._namespace, item, raw, start, end)
        # Reads of at least the buffer's size go straight into the caller's memory.
        return ItemReader.over(reader, item, min(self.chunk_size, _READ_BUFFER_SIZE))

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
        flags: Iterable[Flag | str] | None = None,
        checksum: str | None = None,
    ) -> DataItem:
        """Store ``data`` (bytes-like, a binary file or an iterable of bytes) under ``key``,
        with ``flags`` set in the same step. With ``checksum`` (``"sha256:<hex>"``), content
        that does not match it is an ``IntegrityError`` and nothing is written."""
        if isinstance(data, str):
            raise InvalidArgumentType(
                "data must be bytes-like, a binary file or an iterable of bytes, not str"
            )
        checked_flags = frozenset() if flags is None else validate_flags(flags)
        with self._writer(
            key,
            content_type,
            metadata,
            checked_flags,
            if_match,
            if_none_match,
            checksum,
            check_first=not _small_in_memory(data, self.chunk_size),
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
        flags: Iterable[Flag | str] | None = None,
        checksum: str | None = None,
        size: int | None = None,
    ) -> ItemWriter:
        """A writable file, committed as ``key`` on a clean ``with`` exit (then ``.item``);
        ``checksum`` as in ``put``. ``size`` announces how many bytes will be written (content
        of another size is an ``InvalidArgument``, an ``IntegrityError`` if ``checksum`` was
        given, and nothing is written); with ``checksum``
        too, a store may send the content as it comes in one request (S3: one ``PutObject``
        instead of a multipart upload)."""
        checked_flags = frozenset() if flags is None else validate_flags(flags)
        announced = _offset(size, "size", optional=True)
        return self._writer(
            key, content_type, metadata, checked_flags, if_match, if_none_match, checksum,
            announced_size=announced,
        )  # fmt: skip

    def _writer(
        self,
        key: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        flags: frozenset[Flag],
        if_match: str | None,
        if_none_match: str | None,
        expected: str | None = None,
        *,
        check_first: bool = True,
        announced_size: int | None = None,
    ) -> ItemWriter:
        validate_key(key)
        if expected is not None and (
            not isinstance(expected, str) or not _CHECKSUM.fullmatch(expected)
        ):
            raise InvalidArgument(f"checksum is 'sha256:' and 64 lowercase hex, not {expected!r}")
        resolved_type = (
            guess_content_type(key) if content_type is None else validate_content_type(content_type)
        )
        checked_metadata = validate_metadata(metadata)
        if if_none_match is not None and if_none_match != "*":
            raise InvalidArgument(f"if_none_match takes only '*', not {if_none_match!r}")
        if if_match is not None and not isinstance(if_match, str):
            raise InvalidArgumentType(f"if_match takes an etag str, not {type(if_match).__name__}")
        if if_match is not None and if_none_match is not None:
            raise InvalidArgument("if_match and if_none_match cannot be given together")
        create_only = if_none_match == "*"

        def commit(sink: DriverWriter, size: int, sha256_hex: str) -> DataItem:
            if announced_size is not None and size != announced_size:
                # With the checksum announced too, the content is not the one announced.
                mismatch = InvalidArgument if expected is None else IntegrityError
                raise mismatch(
                    f"{size} bytes were written, not the announced {announced_size}",
                    key=key,
                    store=repr(self),
                )
            if expected is not None and expected != f"sha256:{sha256_hex}":
                raise IntegrityError(
                    f"the content's SHA-256 is {sha256_hex}, not the expected {expected}",
                    key=key,
                    store=repr(self),
                )
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

        header = ItemHeader(
            content_type=resolved_type,
            metadata=checked_metadata,
            flags=flags,
            if_match=if_match,
            if_none_match=create_only,
            checksum=expected,
            size=announced_size,
        )
        conditional = create_only or if_match is not None
        if check_first and conditional and not self._driver.precondition_in_request(header):
            # Fail before a large body is consumed; the driver checks again when it commits.
            current = self._driver.stat(self._namespace, key)
            check_precondition(current, key, repr(self), if_match, create_only)
        sink = self._driver.new_writer(self._namespace, key, header)
        return ItemWriter(sink, self.chunk_size, commit)

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; True if it existed. A missing key is not an error."""
        validate_key(key)
        if if_match is not None and not isinstance(if_match, str):
            raise InvalidArgumentType(f"if_match takes an etag str, not {type(if_match).__name__}")
        return self._driver.delete(self._namespace, key, if_match)

    def copy(self, src_key: str, dst_key: str) -> DataItem:
        """Copy content, content type, metadata and flags; overwrites ``dst_key``. Copying an
        item onto itself leaves it as it is and returns it."""
        validate_key(src_key)
        validate_key(dst_key)
        if src_key == dst_key:
            item = self.get(src_key)
            if item is None:
                raise NotFound("no such item to copy", key=src_key, store=repr(self))
            return item
        copied = self._driver.copy(self._namespace, src_key, dst_key)
        if copied is not None:
            return copied
        with self.open(src_key) as reader:
            source = reader.item
            # Checked against the source's checksum where the reader knows it: a source
            # changed in place while it is read is not copied half old, half new.
            with self._writer(
                dst_key,
                source.content_type,
                source.metadata,
                source.flags,
                None,
                None,
                source.checksum,
            ) as writer:
                feed(writer, reader)
        assert writer.item is not None
        return writer.item

    def set_flags(self, key: str, flags: Iterable[Flag | str]) -> None:
        """Replace the item's flags (an empty collection clears them)."""
        validate_key(key)
        if flags is None:
            raise InvalidArgumentType("flags must be a collection of Flag (empty clears), not None")
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
        _offset(limit, "limit", optional=True)
        return self._pages(prefix, after, limit, _one_flag(flag))

    def _pages(
        self, prefix: str, after: str | None, limit: int | None, flag: Flag | None
    ) -> Iterator[DataItem]:
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = self.list_page_size
            size = page_size if remaining is None else min(remaining, page_size)
            page = self._driver.list_page(self._namespace, prefix, after, size, flag)
            self._check_page([item.key for item in page], after)
            yield from page
            if len(page) < size:
                return
            after = page[-1].key
            if remaining is not None:
                remaining -= len(page)

    def scan(self, prefix: str = "", *, after: str | None = None) -> Iterator[Entry]:
        """Every item under ``prefix`` (after ``after``) as an ``Entry``, in ascending key
        order: the cheapest listing the store has (one request per page, no content read)."""
        validate_prefix(prefix)
        if after is not None:
            validate_prefix(after)
        return self._scan_pages(prefix, after)

    def _scan_pages(self, prefix: str, after: str | None) -> Iterator[Entry]:
        size = self.list_page_size
        while True:
            page = self._driver.scan_page(self._namespace, prefix, after, size)
            self._check_page([entry.key for entry in page], after)
            yield from page
            if len(page) < size:
                return
            after = page[-1].key

    def _check_page(self, keys: builtins.list[str], after: str | None) -> None:
        """A page must move past ``after`` in ascending order: a store (or a server) that
        answers otherwise would make a listing loop or skip items."""
        previous = after
        for key in keys:
            if previous is not None and key <= previous:  # code points sort as UTF-8 does
                raise IntegrityError(
                    f"the listing went back from {previous!r} to {key!r}",
                    key=key,
                    store=repr(self),
                )
            previous = key

    def count(self, prefix: str = "", *, flag: Flag | str | None = None) -> int:
        validate_prefix(prefix)
        return self._driver.count(self._namespace, prefix, _one_flag(flag))

    # Namespaces and lifetime -------------------------------------------------------------

    def namespace(self, name: str) -> Self:
        """An isolated view of namespace ``name`` ("" is the default) on the same storage."""
        view = copy_module.copy(self)
        view._namespace = validate_namespace(name)
        view._owns_driver = False
        return view

    def namespaces(self) -> builtins.list[str]:
        # A name the backend holds that no namespace could have (an object another program
        # put under the namespaces' prefix, a folder made by hand) is left out, as keys are.
        return [name for name in self._driver.namespaces() if is_namespace(name)]

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
