"""The file objects a store hands out, and the streaming that feeds a write.

``ItemWriter`` cuts whatever it is given into chunks of exactly the store's chunk size (the
last one may be shorter), hashes them and passes them to the store's driver. SHA-256 runs
about as fast as a disk takes data, so large chunks are hashed on a pool thread, up to
``_RING_BYTES`` behind the writes: a stall of the disk does not stall the hash, nor the hash
the disk, and a put runs at the speed of the slower of the two rather than of their sum. Both
release the GIL.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._sha256 import Sha256Pipeline
from .errors import InvalidArgumentType, Unsupported

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from .driver import DriverWriter
    from .item import DataItem

__all__ = [
    "BytesRangeRaw",
    "HandsOutBytes",
    "ItemReader",
    "ItemWriter",
    "feed",
    "page_aligned_buffer",
    "read_fully",
    "readinto_fully",
]

_RING_BYTES = 8 * 1024 * 1024  # written but not yet hashed: the slack between disk and hash
_RING_MAX_SLOTS = 16
_READ_BLOCK_BYTES = 1024 * 1024  # for sources with read() but no readinto()
_PASS_THROUGH_MIN_BYTES = 16 * 1024  # smaller reads are cheaper from the buffer
#: Counts the forks that led to this process: an object made before a fork can tell.
_process_generation = [0]


def _forked() -> None:
    global _kept_lock
    _process_generation[0] += 1
    _kept_buffers.clear()  # the parent's writers may still be filling them
    _kept_lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)


def page_aligned_buffer(size: int) -> mmap.mmap:
    """A writable buffer of ``size`` zero bytes that starts on a page boundary, for file reads
    of whole chunks. malloc places a large bytearray 16 bytes past a page boundary; on the AMD
    EPYC we measured, the kernel copied page-cache pages to such an address at 2 GB/s, against
    10-11 GB/s at every other offset we tried (0, 32, 64, ... 4080). Private: a forked
    child's writes to it are its own."""
    return mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)


#: Chunk buffers that writers gave back, by size, for the next writers: mapping one and
#: unmapping it again for every write costs more than writing a small item.
_kept_buffers: dict[int, list[mmap.mmap]] = {}
_kept_lock = threading.Lock()
_KEPT_PER_SIZE = 16
_KEPT_MAX_BYTES = 1024 * 1024


def _take_buffer(size: int) -> mmap.mmap:
    with _kept_lock:
        kept = _kept_buffers.get(size)
        if kept:
            return kept.pop()
    return page_aligned_buffer(size)


def _give_back(buffers: list[mmap.mmap], size: int) -> None:
    """Keep ``buffers`` (every reader of their content is done) for the next writers."""
    if size > _KEPT_MAX_BYTES:
        return
    with _kept_lock:
        kept = _kept_buffers.setdefault(size, [])
        kept.extend(buffers[: _KEPT_PER_SIZE - len(kept)])


class ItemReader(io.BufferedReader):
    """A buffered binary reader over one version of an item; ``item`` describes that version."""

    def __init__(self, raw: io.RawIOBase, item: DataItem, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.item = item

    @staticmethod
    def over(raw: io.RawIOBase, item: DataItem, buffer_size: int) -> ItemReader:
        """The reader for ``raw``: one that passes a database driver's bytes through for
        ``HandsOutBytes``, the plain buffered one (with C's ``read``) for any other."""
        if isinstance(raw, HandsOutBytes):
            return _PassingItemReader(raw, item, buffer_size)
        return ItemReader(raw, item, buffer_size)


class _PassingItemReader(ItemReader):
    def __init__(self, raw: HandsOutBytes, item: DataItem, buffer_size: int) -> None:
        super().__init__(raw, item, buffer_size)
        self._hands_out = raw
        self._pass_from = min(buffer_size, _PASS_THROUGH_MIN_BYTES)

    def read(self, size: int | None = -1) -> bytes:
        # The raw reader produces fresh bytes anyway: a read of a block or more takes them as
        # they are, instead of BufferedReader copying them into its buffer and out again. Only
        # while the buffer has never been filled, since its bytes come before the raw reader's.
        if size is not None and size >= self._pass_from and not self._hands_out.filled_a_buffer:
            return read_fully(self._hands_out, size)
        return super().read(size)


def readinto_fully(raw: io.RawIOBase | io.BufferedIOBase, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``raw``; fewer bytes only at its end. Returns the count."""
    count = 0
    while count < len(buffer) and (got := raw.readinto(buffer[count:])):
        count += got
    return count


def read_fully(raw: io.RawIOBase | io.BufferedIOBase, size: int) -> bytes:
    """``size`` bytes of ``raw``, fewer only at its end. A raw reader's ``read`` makes new
    bytes anyway: when one call returns them all (the usual case), they are not copied again."""
    first = raw.read(size) or b""
    if len(first) == size or not first:
        return first
    parts, count = [first], len(first)
    while count < size and (more := raw.read(size - count)):
        parts.append(more)
        count += len(more)
    return b"".join(parts)


class HandsOutBytes(io.RawIOBase):
    """A raw reader whose ``read(n)`` is its cheapest way to make ``n`` bytes: bytes a
    database driver returns anyway, or one copy out of the reader's own buffer. A subclass
    implements ``read``; ``readinto`` copies from it.

    ``readinto`` sets ``filled_a_buffer`` (an override must too): once a buffered reader has
    filled its buffer from it, that buffer's bytes come before the raw reader's next ones.
    """

    filled_a_buffer = False

    def readinto(self, buffer: WriteableBuffer) -> int:
        self.filled_a_buffer = True
        with memoryview(buffer) as view, view.cast("B") as target:
            data = self.read(len(target)) or b""
            target[: len(data)] = data
        return len(data)


class BytesRangeRaw(io.RawIOBase):
    """A raw reader over an in-memory byte string, without copying it first."""

    def __init__(self, data: bytes, start: int, stop: int) -> None:
        super().__init__()
        self._view = memoryview(data)[start:stop]
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._view) - self._position)
        target[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count

    def close(self) -> None:
        self._view.release()
        super().close()


class ItemWriter(io.BufferedIOBase):
    """A writable binary file that becomes an item when closed without error.

    Use it as a context manager (``store.writer(...)``): a clean exit commits and sets
    ``item``; an exception, ``abort()`` or dropping the writer unclosed discards everything.
    """

    def __init__(
        self,
        sink: DriverWriter,
        chunk_size: int,
        commit: Callable[[DriverWriter, int, str], DataItem],
    ) -> None:
        super().__init__()
        self.item: DataItem | None = None
        self._sink = sink
        self._commit = commit
        self._chunk_size = chunk_size
        # Chunks are filled in a ring of buffers, allocated as a stream grows into them; a slot
        # is refilled only when the hash has consumed its last chunk (its ticket).
        self._max_slots = max(2, min(_RING_MAX_SLOTS, _RING_BYTES // chunk_size))
        self._ring: list[mmap.mmap] = []
        self._tickets: list[int] = []
        self._slot = 0
        self._filled = 0
        self._size = 0
        self._sha256 = Sha256Pipeline()
        self._finished = False
        self._process = _process_generation[0]

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size + self._filled

    def write(self, data: ReadableBuffer) -> int:
        self._check_open()
        if isinstance(data, str):
            raise InvalidArgumentType("an item's content is bytes-like data, not str")
        try:
            given = memoryview(data)
        except TypeError:
            raise InvalidArgumentType(
                f"an item's content is bytes-like data, not {type(data).__name__}"
            ) from None
        with given, given.cast("B") as view:
            position = 0

            def copy(free: memoryview) -> int:
                nonlocal position
                count = min(len(free), len(view) - position)
                free[:count] = view[position : position + count]
                position += count
                return count

            self._fill(copy)
            return len(view)

    def write_from(self, source: Any) -> None:
        """Read a binary file (anything with ``readinto``) to its end straight into the
        writer's buffers, without an intermediate copy."""
        self._check_open()
        self._fill(source.readinto)

    def _fill(self, fill: Callable[[memoryview], int | None]) -> None:
        """Call ``fill(free space of the current chunk)`` until it returns 0 (or None),
        forwarding each chunk it completes. Any error aborts the whole write."""
        try:
            while True:
                buffer = self._free_buffer()
                with memoryview(buffer) as whole:
                    count = fill(whole[self._filled :])
                if not count:
                    return
                self._filled += count
                if self._filled == self._chunk_size:
                    self._forward()
        except BaseException:
            self.abort()
            raise

    def _check_open(self) -> None:
        if self._finished:
            raise ValueError("write to a closed ItemWriter")
        self._check_process()

    def _check_process(self) -> None:
        # The hash and the upload run on threads of the process that opened the writer; a
        # forked child would wait for them forever, and its cleanup would undo the parent's.
        if self._process != _process_generation[0]:
            raise Unsupported("a writer opened before a fork cannot be used in the child")

    def _free_buffer(self) -> mmap.mmap:
        if self._filled == 0:
            if self._slot == len(self._ring):
                self._ring.append(_take_buffer(self._chunk_size))
                self._tickets.append(0)
            self._sha256.wait(self._tickets[self._slot])
        return self._ring[self._slot]

    def _forward(self) -> None:
        chunk = memoryview(self._ring[self._slot])[: self._filled]
        self._tickets[self._slot] = self._sha256.add(chunk)
        self._sink.write(chunk)
        self._size += self._filled
        self._filled = 0
        self._slot = (self._slot + 1) % self._max_slots

    def close(self) -> None:
        """Commit the item (once); on any failure nothing is left and the error is raised."""
        if self._finished:
            return
        self._check_process()
        try:
            if self._filled:
                self._forward()
            self.item = self._commit(self._sink, self._size, self._sha256.hexdigest())
        except BaseException:
            self.abort()
            raise
        self._finished = True
        # Committed: the store and the hash are done with every chunk (after an abort a
        # pool thread may still be hashing one, so those buffers are not kept).
        _give_back(self._ring, self._chunk_size)
        self._ring = []
        super().close()

    def abort(self) -> None:
        """Discard what was written; the key keeps whatever it held before."""
        if not self._finished and self._process == _process_generation[0]:
            self._finished = True
            self._sha256.cancel()
            self._sink.abort()
        super().close()

    def __enter__(self) -> ItemWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # io's finalizer would call close() and commit a half-written item.
        if not self._finished:
            self.abort()


def feed(writer: ItemWriter, data: Any) -> None:
    """Write ``data`` (bytes-like, binary file or iterable of bytes) into ``writer``."""
    try:
        view = memoryview(data)
    except TypeError:
        pass
    else:
        with view:
            writer.write(view)
        return
    if hasattr(data, "readinto"):
        writer.write_from(data)
    elif hasattr(data, "read"):
        while block := data.read(_READ_BLOCK_BYTES):
            writer.write(block)
    else:
        try:
            blocks = iter(data)
        except TypeError:
            raise InvalidArgumentType(
                f"data must be bytes-like, a binary file or an iterable of bytes, "
                f"not {type(data).__name__}"
            ) from None
        for block in blocks:
            writer.write(block)
