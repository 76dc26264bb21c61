"""Reading a streamed response of the hosting app: the bytes as they come, checked against
the length the answer promised, and a ``Content-Range`` checked against the range asked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ...errors import TransientError
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
    """The body of a streamed response, read as the server sends it."""

    def __init__(self, response: Any, store: str, key: str, expected: int) -> None:
        super().__init__()
        self._response = response
        self._expected = expected
        self._received = 0
        self._chunks: Iterator[bytes] = response.iter_raw(CHUNK)
        self._left = b""
        self._store, self._key = store, key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            if not self._left:
                self._left = next(self._chunks, b"")
        except httpx.HTTPError as error:
            raise TransientError(
                f"the download broke off: {error}", key=self._key, store=self._store
            ) from error
        if size < 0 or size >= len(self._left):
            data, self._left = self._left, b""
            return data
        data, self._left = self._left[:size], self._left[size:]
        return data

    def close(self) -> None:
        self._response.close()
        super().close()
