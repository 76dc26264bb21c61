"""The driver interface: the few primitives a store implements, each with its contract.

``DataStore`` (``store.py``) is the portable type users hold; it validates every argument once,
computes checksums while streaming and builds the conveniences over these primitives (go-cloud's
``blob.Bucket`` over ``driver.Bucket``). A layer (``layer.py``) is a driver over another store.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import AlreadyExists, PreconditionFailed, RangeNotSatisfiable
from .item import DataItem, Entry, Flag

__all__ = [
    "Capabilities",
    "Driver",
    "DriverWriter",
    "ItemHeader",
    "WriteSpec",
    "check_precondition",
    "clip_range",
    "etag_for",
    "utc_now",
]

LIST_PAGE_SIZE = 1000


def utc_now() -> datetime:
    """The clock stores stamp ``updated_at`` with. Tests replace it (``monkeypatch.setattr(
    persisty_blobs.driver, "utc_now", ...)``) to step time back; drivers call it through the
    module so the replacement reaches them."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a driver can do, declared once: callers and the conformance suite read it instead
    of guessing (OpenDAL's ``Capability``)."""

    #: A key may be both an item and a prefix of others (``a`` and ``a/b``).
    nested_keys: bool = True
    #: ``DataStoreFactory`` URLs and forms go straight to the backend.
    presign: bool = False
    #: ``copy`` runs inside the backend, without the content passing through this process.
    server_side_copy: bool = False
    #: ``scan`` returns flags without a request per item.
    flags_in_listing: bool = True
    #: ``scan`` returns checksums for every item this library wrote.
    checksums_in_listing: bool = True
    #: Content lives in this process's memory (no bounded-memory promise).
    content_in_process: bool = False
    #: ``updated_at`` comes from this process's ``utc_now`` (not a server's clock).
    local_clock: bool = True
    #: The store keeps working in a child after ``os.fork()`` (a store in memory does not
    #: share its items with the child).
    shared_across_processes: bool = True
    #: ... also in a child forked while other threads of the parent were using it. SQLite's
    #: rule is that it cannot: its record of the locks this process holds, copied into the
    #: child, counts the parent's locks as the child's, and the child's writes wait for
    #: them forever. Fork from a quiet moment, or use a database server.
    forks_while_busy: bool = True
    #: A read waits on something outside this process (a network round trip), so reads on
    #: several threads overlap. False where reading is this process's own work (memory, a
    #: local file system): under Python's GIL, two at once only add thread switches.
    reads_wait: bool = True
    #: The same for writes (a network round trip, or the disk flushing an fsync). A sync
    #: moves small items one at a time where neither its reads nor its writes wait.
    writes_wait: bool = True
    #: A large write goes out in one request as it streams only when its checksum and size
    #: are announced first (``writer(checksum=…, size=…)``), else in parts: a copy from a
    #: source that learns its checksum only by reading (another program's file) does better
    #: to hash the source first.
    writes_want_checksum: bool = False


@dataclass(frozen=True)
class ItemHeader:
    """What a new item carries besides its content, known before the content streams (a store
    that must send it first, as S3 does when a multipart upload starts, takes it from here).
    The precondition comes again in ``WriteSpec``; a store whose backend checks it when the
    upload starts (an HTTP PUT) sends it from here."""

    content_type: str
    metadata: Mapping[str, str]
    flags: frozenset[Flag]
    if_match: str | None = None
    if_none_match: bool = False
    #: The SHA-256 the caller expects (``checksum=``): the content is checked against it
    #: before ``commit`` is called, so a store may record it before the content streams.
    checksum: str | None = None
    #: The size the caller announced (``size=``): content of another size is refused before
    #: ``commit`` is called, so a store may send it as it comes with its length up front.
    size: int | None = None


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
    #: What the driver can do.
    capabilities: Capabilities = Capabilities()

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

    def precondition_in_request(self, header: ItemHeader) -> bool:
        """Whether a write of ``header`` goes out as one request that carries its precondition
        (S3's streamed ``PutObject`` with ``If-Match``). The store then does not look the item
        up first to fail before the content streams: a round trip a sync pays on every copy."""
        return False

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

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        """Like ``list_page`` without a flag, as ``Entry`` values: a driver whose listing can
        give less than a whole ``DataItem`` per request overrides it, and must not read
        content or make a request per item."""
        return [Entry.of(item) for item in self.list_page(namespace, prefix, after, limit, None)]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        """The number of items ``list_page`` would return in all."""
        total, after = 0, None
        while page := self.list_page(namespace, prefix, after, LIST_PAGE_SIZE, flag):
            total += len(page)
            after = page[-1].key
        return total

    def close(self) -> None:  # noqa: B027 (an optional hook: most drivers hold nothing)
        """Release what the driver holds."""
