"""Part buffers, and a body read from them: what the writer holds of content not yet sent."""

from __future__ import annotations

import io
from typing import Any

from ...streams import page_aligned_buffer

__all__ = ["Joined", "Part"]


class Part:
    """One part's buffer, mapped outside the heap: untouched pages cost no memory (a small put
    holds what it has), and the whole of it goes back to the system once the part is sent,
    instead of staying in a thread's malloc arena."""

    def __init__(self, size: int) -> None:
        self.buffer = page_aligned_buffer(size)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == len(self.buffer)

    def append(self, data: memoryview) -> int:
        """Copy what fits of ``data``; how many bytes that was."""
        count = min(len(data), len(self.buffer) - self.filled)
        self.buffer[self.filled : self.filled + count] = data[:count]
        self.filled += count
        return count


class Joined(io.RawIOBase):
    """Parts read as one seekable body: botocore reads it (to sign it, then to send it)
    without a joined copy of the content."""

    def __init__(self, parts: list[Part]) -> None:
        super().__init__()
        self._parts = parts
        self._size = sum(part.filled for part in parts)
        self._position = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as target:
            done, skip = 0, self._position
            for part in self._parts:
                if skip >= part.filled:
                    skip -= part.filled
                    continue
                count = min(part.filled - skip, len(target) - done)
                target[done : done + count] = part.buffer[skip : skip + count]
                done += count
                skip = 0
                if done == len(target):
                    break
        self._position += done
        return done
