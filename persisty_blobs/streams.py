"""The file objects a store hands out, and the streaming that feeds a write.

``ItemWriter`` cuts whatever it is given into chunks of exactly the store's chunk size (the
last one may be shorter), hashes them and passes them to the store's driver. Large chunks are
hashed on a helper thread while the driver writes them: SHA-256 and the write each release the
GIL, so a put runs at the speed of the slower of the two rather than of their sum.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from .item import DataItem
    from .store import DriverWriter

__all__ = ["BytesRangeRaw", "ItemReader", "ItemWriter", "feed"]

_OVERLAP_MIN_BYTES = 256 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _forget_hash_pool_in_child() -> None:
    # A forked child has none of the pool's threads: a submit would wait forever.
    global _hash_pool, _hash_pool_lock
    _hash_pool = None
    _hash_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_hash_pool_in_child)


def _hash_executor() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="persisty-hash")
        return _hash_pool


class ItemReader(io.BufferedReader):
    """A buffered binary reader over one version of an item; ``item`` describes that version."""

    def __init__(self, raw: io.RawIOBase, item: DataItem, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.item = item


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
        self._chunk = bytearray(chunk_size)
        self._filled = 0
        self._size = 0
        self._sha256 = hashlib.sha256()
        self._hashing: Future[None] | None = None
        self._finished = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size

    def write(self, data: ReadableBuffer) -> int:
        if self._finished:
            raise ValueError("write to a closed ItemWriter")
        if isinstance(data, str):
            raise TypeError("ItemWriter takes bytes-like data, not str")
        view = memoryview(data).cast("B")
        written = len(view)
        chunk_size = len(self._chunk)
        try:
            while view:
                if self._filled == 0 and len(view) >= chunk_size:
                    self._forward(view[:chunk_size])
                    view = view[chunk_size:]
                    continue
                count = min(chunk_size - self._filled, len(view))
                self._chunk[self._filled : self._filled + count] = view[:count]
                self._filled += count
                view = view[count:]
                if self._filled == chunk_size:
                    self._forward_filled()
        except BaseException:
            self.abort()
            raise
        return written

    def _forward_filled(self) -> None:
        with memoryview(self._chunk) as whole:
            self._forward(whole[: self._filled])
        self._filled = 0

    def write_rotating(self, chunk: memoryview) -> None:
        """Like ``write``, but return while ``chunk`` is still being hashed: the caller rotates
        two buffers and refills this one only after the next call returns."""
        if self._finished:
            raise ValueError("write to a closed ItemWriter")
        if self._filled or len(chunk) != len(self._chunk):
            self.write(chunk)
            return
        try:
            self._forward(chunk, wait=False)
        except BaseException:
            self.abort()
            raise

    def _forward(self, chunk: memoryview, *, wait: bool = True) -> None:
        self._size += len(chunk)
        self._await_hash()  # updates run in order, and the previous buffer becomes free
        if len(chunk) < _OVERLAP_MIN_BYTES:
            self._sha256.update(chunk)
            self._sink.write(chunk)
            return
        self._hashing = _hash_executor().submit(self._sha256.update, chunk)
        try:
            self._sink.write(chunk)
        finally:
            if wait:
                self._await_hash()

    def _await_hash(self) -> None:
        if self._hashing is not None:
            hashing, self._hashing = self._hashing, None
            hashing.result()

    def close(self) -> None:
        """Commit the item (once); on any failure nothing is left and the error is raised."""
        if self._finished:
            return
        try:
            if self._filled:
                self._forward_filled()
            self._await_hash()
            self.item = self._commit(self._sink, self._size, self._sha256.hexdigest())
        except BaseException:
            self.abort()
            raise
        self._finished = True
        super().close()

    def abort(self) -> None:
        """Discard what was written; the key keeps whatever it held before."""
        if not self._finished:
            self._finished = True
            with contextlib.suppress(BaseException):
                self._await_hash()
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


def feed(writer: ItemWriter, data: Any, chunk_size: int) -> None:
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
        # Two buffers: the next chunk is read while the last one is still being hashed.
        buffers = (bytearray(chunk_size), bytearray(chunk_size))
        turn = 0
        while count := data.readinto(buffers[turn]):
            with memoryview(buffers[turn]) as whole:
                writer.write_rotating(whole[:count])
            turn ^= 1
    elif hasattr(data, "read"):
        while block := data.read(chunk_size):
            writer.write(block)
    else:
        try:
            blocks = iter(data)
        except TypeError:
            raise TypeError(
                f"data must be bytes-like, a binary file or an iterable of bytes, "
                f"not {type(data).__name__}"
            ) from None
        for block in blocks:
            writer.write(block)
