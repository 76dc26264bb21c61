"""A request body handed to a blocking consumer (a store's writer, a form parser) in batches on
a worker thread, while the event loop goes on receiving the next batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import TransientError

__all__ = ["ThreadedSink", "arriving"]

BATCH_BYTES = 1024 * 1024


class ThreadedSink:
    """Receiving and consuming overlap instead of taking turns: one batch of received chunks
    is consumed on a thread while the next one gathers. A batch holds the chunks as they came
    (no copy, and nothing allocated ahead of the data: an idle upload costs no memory), and is
    handed over once it reaches ``BATCH_BYTES``, so at most two batches are held."""

    def __init__(
        self,
        consume: Callable[[bytes], object],
        between: Callable[[], Awaitable[None]] | None = None,
        batch_bytes: Callable[[], int] | None = None,
    ) -> None:
        """``between``, if given, is awaited on the event loop as soon as a batch has been
        consumed, before more is gathered: what the consumer asked for meanwhile (a lock, a
        look-up) is got there, without holding a worker thread, and while it waits the
        request holds no more than what had come in meanwhile. ``batch_bytes`` gives the size
        of the next batch (``BATCH_BYTES`` if not given)."""
        self._consume = consume
        self._between = between
        self._batch_bytes = batch_bytes or (lambda: BATCH_BYTES)
        self._batch: list[bytes] = []
        self._gathered = 0
        self._in_flight: asyncio.Future[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._between is not None and self._in_flight is not None and self._in_flight.done():
            await self._wait()
        self._batch.append(chunk)
        self._gathered += len(chunk)
        if self._gathered >= self._batch_bytes():
            await self._hand_over()

    def _consume_all(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self._consume(chunk)

    async def _hand_over(self) -> None:
        await self._wait()
        batch, self._batch, self._gathered = self._batch, [], 0
        self._in_flight = asyncio.ensure_future(run_in_threadpool(self._consume_all, batch))

    async def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight
            if self._between is not None:
                await self._between()

    async def flush(self) -> None:
        """Consume what is gathered and wait until all of it was consumed."""
        if self._batch:
            await self._hand_over()
        await self._wait()

    async def abandon(self) -> None:
        """Wait for the batch being consumed, ignoring how it ends: called on the way out of
        a failed request, so that nothing runs on a thread when the consumer is aborted."""
        in_flight, self._in_flight = self._in_flight, None
        self._batch, self._gathered = [], 0
        if in_flight is not None:
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved, so asyncio does not log it as lost


async def arriving(request: Request, idle_seconds: float, key: str | None) -> AsyncIterator[bytes]:
    """The request's body as it comes; a client that sends nothing for ``idle_seconds`` is
    cut off (``TransientError``): an upload holds its namespace's turn while it streams, and
    one that stalls must not hold it for good."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise TransientError(
                f"the client sent nothing for {idle_seconds:g} s", key=key
            ) from None
        yield chunk
