"""Reading a streamed response of the hosting app: the bytes as they come, checked against
the item's length (and a whole item's checksum), and a ``Content-Range`` checked against the
range asked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from ...errors import IntegrityError, TransientError
from ...streams import HandsOutBytes
from ._client import CHUNK, httpx

__all__ = ["ResponseRaw", "range_total"]


def range_total(content_range: str, start: int, end: int | None) -> int | None:
    """The item's size from a ``Content-Range`` answering ``[start, end)``, or None if it
    answers another range (or is not one)."""
    match = re.fullmatch(r"bytes (\d{1,18})-(\d{1,18})/(\d{1,18})", content_range.strip())
    if match is None:
        return None
    first, last, total = (int(group) for group in match.groups())
    wanted_last = total - 1 if end is None else min(end, total) - 1
    return total if first == start and last == wanted_last else None


class ResponseRaw(HandsOutBytes):
    """The body of a streamed response, read as the server sends it: a body longer or
    shorter than the item's range, or a whole item whose bytes do not hash to its checksum,
    ends in an ``IntegrityError`` (at its end, as a streamed read cannot take back what it
    handed out: ``read_bytes`` returns nothing)."""

    def __init__(
        self, response: Any, store: str, key: str, expected: int, checksum: str | None = None
    ) -> None:
        super().__init__()
        self._response = response
        self._expected = expected
        self._received = 0
        self._checksum = checksum if checksum and checksum.startswith("sha256:") else None
        self._digest = hashlib.sha256() if self._checksum else None
        self._chunks: Iterator[bytes] = response.iter_raw(CHUNK)
        self._left = b""
        self._store, self._key = store, key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._left:
            self._left = self._next()
        if size < 0 or size >= len(self._left):
            data, self._left = self._left, b""
            return data
        data, self._left = self._left[:size], self._left[size:]
        return data

    def _next(self) -> bytes:
        try:
            chunk = next(self._chunks, b"")
        except httpx.HTTPError as error:
            raise TransientError(
                f"the download broke off: {error}", key=self._key, store=self._store
            ) from error
        self._received += len(chunk)
        if self._received > self._expected or (not chunk and self._received < self._expected):
            raise self._refused(f"the server sent {self._received:,} bytes of {self._expected:,}")
        if self._digest is not None:
            self._digest.update(chunk)
            if not chunk and f"sha256:{self._digest.hexdigest()}" != self._checksum:
                raise self._refused(f"the content the server sent is not {self._checksum}")
        return chunk

    def _refused(self, message: str) -> IntegrityError:
        self._response.close()
        return IntegrityError(message, key=self._key, store=self._store)

    def close(self) -> None:
        self._response.close()
        super().close()
