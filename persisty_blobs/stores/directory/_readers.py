"""The raw readers ``open_range`` hands out: errors of the file system arrive as ``BlobError``."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from ...errors import PreconditionFailed, from_os_error

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["FileRangeRaw", "ForeignFileRaw", "WholeFileRaw"]


class WholeFileRaw(io.FileIO):
    """A whole-file reader on C's ``FileIO`` (faster than a Python raw reader); owns ``fd``."""

    def __init__(self, fd: int, key: str, store: str) -> None:
        super().__init__(fd, "rb", closefd=True)
        self._key = key
        self._store = store

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            return super().readinto(buffer)
        except OSError as exc:
            raise from_os_error(exc, key=self._key, store=self._store) from exc

    def readall(self) -> bytes:
        try:
            return super().readall()
        except OSError as exc:
            raise from_os_error(exc, key=self._key, store=self._store) from exc


class FileRangeRaw(io.RawIOBase):
    """A raw reader of bytes ``[start, stop)`` of an open file; owns and closes ``fd``."""

    def __init__(self, fd: int, start: int, stop: int, key: str, store: str) -> None:
        super().__init__()
        self._fd = fd
        self._offset = start
        self._stop = stop
        self._key = key
        self._store = store

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            return self._readinto(buffer)
        except OSError as exc:
            raise from_os_error(exc, key=self._key, store=self._store) from exc

    def _readinto(self, buffer: WriteableBuffer) -> int:
        # Called once per buffer-full: the common case (a whole byte buffer that the range
        # can fill) goes straight to preadv without building views.
        remaining = self._stop - self._offset
        if remaining <= 0:
            return 0
        with memoryview(buffer) as view:
            if view.nbytes <= remaining and view.format in ("B", "b", "c"):
                count = os.preadv(self._fd, [view], self._offset)
            else:
                with view.cast("B") as target:
                    count = os.preadv(self._fd, [target[:remaining]], self._offset)
        self._offset += count
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ForeignFileRaw(FileRangeRaw):
    """A reader of bytes ``[start, stop)`` of a file another program wrote, which that program
    may edit in place while it is read: once the range is read, the file must still have the
    size and mtime it had when opened, else the read fails rather than hand out two versions
    mixed."""

    def __init__(
        self, fd: int, opened: os.stat_result, start: int, stop: int, key: str, store: str
    ) -> None:
        super().__init__(fd, start, stop, key, store)
        self._opened = opened
        self._checked = False

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = super().readinto(buffer)
        ended = self._offset >= self._stop or (count == 0 and memoryview(buffer).nbytes > 0)
        if ended and not self._checked:
            self._check_unchanged()
            self._checked = True
        return count

    def _check_unchanged(self) -> None:
        try:
            now = os.fstat(self._fd)
        except OSError as exc:
            raise from_os_error(exc, key=self._key, store=self._store) from exc
        if (
            self._offset != self._stop
            or now.st_size != self._opened.st_size
            or now.st_mtime_ns != self._opened.st_mtime_ns
        ):
            raise PreconditionFailed(
                "the file was changed by another program while it was being read",
                key=self._key,
                store=self._store,
            )
