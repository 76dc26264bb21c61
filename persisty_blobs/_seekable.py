"""Seekable readers: ``DataStore.open`` returns a reader that ``zipfile``, ``tarfile`` and Pillow
can seek in. A seek drops the driver's reader and opens the new position with a range read of
the same version; if the item changed meanwhile, the read fails rather than mix two versions."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from .errors import PreconditionFailed
from .item import DataItem
from .streams import HandsOutBytes

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .driver import Driver

__all__ = ["seekable"]


class _Seekable:
    """The position bookkeeping both seekable raw readers share. Positions count from the
    range's start: the reader is a file of the bytes ``[start, end)``."""

    _raw: io.RawIOBase | None

    def _setup(
        self,
        driver: Driver,
        namespace: str,
        item: DataItem,
        raw: io.RawIOBase,
        start: int,
        end: int | None,
    ) -> None:
        self._driver = driver
        self._namespace = namespace
        self._item = item
        self._raw = raw
        self._start = start
        stop = item.size if end is None else min(end, item.size)
        self._length = max(0, stop - start)
        self._end = end
        self._position = 0

    def _current(self) -> io.RawIOBase | None:
        """The driver's reader at the current position, opened after a seek; None at the end."""
        if self._raw is None and self._position < self._length:
            item, raw = self._driver.open_range(
                self._namespace, self._item.key, self._start + self._position, self._end
            )
            if item.etag != self._item.etag:
                raw.close()
                raise PreconditionFailed(
                    "the item changed while it was being read",
                    key=self._item.key,
                    store=self._driver.name,
                )
            self._raw = raw
        return self._raw

    def _moved(self, count: int) -> int:
        self._position += count
        return count

    def _seek_to(self, offset: int, whence: int) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._position:
            self._drop()
            self._position = target
        return self._position

    def _drop(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    # The file methods both readers share (this class comes first in their bases).

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._seek_to(offset, whence)


class _SeekableRaw(_Seekable, io.RawIOBase):
    def readinto(self, buffer: WriteableBuffer) -> int:
        raw = self._current()
        return 0 if raw is None else self._moved(raw.readinto(buffer) or 0)

    def close(self) -> None:
        self._drop()
        super().close()


class _SeekablePassingRaw(_Seekable, HandsOutBytes):
    """The same over a ``HandsOutBytes`` reader, keeping its cheap ``read``."""

    def read(self, size: int = -1) -> bytes:
        raw = self._current()
        if raw is None:
            return b""
        return self._moved_bytes(raw.read(size) or b"")

    def _moved_bytes(self, data: bytes) -> bytes:
        self._position += len(data)
        return data

    def close(self) -> None:
        self._drop()
        super().close()


def seekable(
    driver: Driver, namespace: str, item: DataItem, raw: io.RawIOBase, start: int, end: int | None
) -> io.RawIOBase:
    """``raw`` (the driver's reader of ``[start, end)`` of ``item``), made seekable."""
    wrapper: _SeekableRaw | _SeekablePassingRaw
    wrapper = _SeekablePassingRaw() if isinstance(raw, HandsOutBytes) else _SeekableRaw()
    wrapper._setup(driver, namespace, item, raw, start, end)
    return wrapper
