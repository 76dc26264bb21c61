"""A request body handed to a blocking consumer (a store's writer, a form parser) in large
buffers on a worker thread, while the event loop goes on receiving the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

__all__ = ["ThreadedSink"]

BUFFER_BYTES = 1024 * 1024


class ThreadedSink:
    """Two buffers: one fills on the event loop while the other is consumed on a thread, so
    receiving and writing overlap instead of taking turns. ``consume`` must not keep the
    view it is given after it returns (the buffer is refilled)."""

    def __init__(self, consume: Callable[[memoryview], object]) -> None:
        self._consume = consume
        # Allocated once: a buffer regrown for every megabyte costs fresh pages each time.
        self._buffers = (bytearray(BUFFER_BYTES), bytearray(BUFFER_BYTES))
        self._current = 0
        self._filled = 0
        self._in_flight: asyncio.Future[object] | None = None

    async def feed(self, data: bytes) -> None:
        with memoryview(data) as view:
            position = 0
            while position < len(view):
                count = min(len(view) - position, BUFFER_BYTES - self._filled)
                start, buffer = self._filled, self._buffers[self._current]
                buffer[start : start + count] = view[position : position + count]
                self._filled += count
                position += count
                if self._filled == BUFFER_BYTES:
                    await self._hand_over()

    async def _hand_over(self) -> None:
        await self._wait()
        full = memoryview(self._buffers[self._current])[: self._filled]
        self._in_flight = asyncio.ensure_future(run_in_threadpool(self._consume, full))
        self._current ^= 1
        self._filled = 0

    async def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def flush(self) -> None:
        """Consume what is buffered and wait until all of it was consumed."""
        if self._filled:
            await self._hand_over()
        await self._wait()

    async def abandon(self) -> None:
        """Wait for the buffer being consumed, ignoring how it ends: called on the way out of
        a failed request, so that nothing runs on a thread when the consumer is aborted."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved, so asyncio does not log it as lost
