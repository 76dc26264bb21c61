"""Running a planned run: ``concurrency`` actions at once, highest priority first, re-chosen
whenever a slot frees; retries with exponential backoff and jitter; deletes after every
transfer, and none if a transfer failed; outcomes committed in small batches as they come."""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..errors import TransientError
from ..store import DataStore
from . import _runs
from ._perform import failure_status, perform, retry_limit
from ._queue import Claim
from ._transfer import Trash
from .model import ProgressEvent, SyncReport
from .state import Outcome, SyncState

__all__ = ["Executor"]

_FLUSH_SECONDS = 0.25
_FLUSH_ITEMS = 500
_MAX_DELAY = 30.0
#: Actions leased at once. A raised priority is still seen at once in this process (the
#: unstarted leases are given back and claimed again); other processes see it at their next
#: claim.
_CLAIM_BATCH = 32
#: Items this large hold a store's whole buffers while they move (an S3 part, a writer's
#: ring): at most half the transfers at once move one, which bounds a run's memory.
_LARGE_BYTES = 8 * 1024 * 1024


@dataclass(order=True)
class _Ready:
    sort: tuple[float, int, str, str]
    claim: Claim = field(compare=False)


@dataclass
class Executor:
    state: SyncState
    pair: str
    run_id: str
    views: Callable[[str], tuple[DataStore, DataStore]]
    report: SyncReport
    concurrency: int = 4
    max_attempts: int = 5
    retry_delay: float = 1.0
    trash: Trash | None = None
    progress: Callable[[ProgressEvent], None] | None = None
    planner: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        self._outcomes: list[Outcome] = []
        self._flushed = time.monotonic()
        self._renewed = time.monotonic()
        self._attempts: dict[tuple[str, str], int] = {}
        self._transient_failures = 0
        self._large = threading.BoundedSemaphore(max(1, self.concurrency // 2))
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="pb-sync") as pool:
            try:
                self._transfers_then_deletes(pool)
            finally:
                self._flush()

    def _transfers_then_deletes(self, pool: ThreadPoolExecutor) -> None:
        self._drain(pool, deletes=False)
        while True:
            self._flush()
            queued, failed = self.state.unfinished(self.pair, self.run_id)
            if queued == 0:
                break
            time.sleep(0.1)  # another process still holds leases on this run's transfers
            self._drain(pool, deletes=False)
        # Deletes wait for a healthy run: a transfer that failed for a reason a retry could
        # fix (a side timing out, throttling) holds them back; one item that cannot be
        # copied (a bad name, a damaged blob) does not hold back the deletes of the others.
        if failed or self._transient_failures:
            self.report.deletes_skipped = self._skip_deletes()
            return
        self._drain(pool, deletes=True)

    def _drain(self, pool: ThreadPoolExecutor, *, deletes: bool) -> None:
        """Run every action this process can claim, until none is left."""
        ready: list[_Ready] = []
        delayed: list[tuple[float, int, Claim]] = []
        running: dict[Future[list[Outcome]], Claim] = {}
        seen_changes = self.state.priority_changes
        sequence = 0
        while True:
            if self.state.priority_changes != seen_changes:
                seen_changes = self.state.priority_changes
                self._release([entry.claim for entry in ready])
                ready.clear()  # claim again, so a raised priority goes next
            now = time.monotonic()
            while delayed and delayed[0][0] <= now:
                _, _, claim = heapq.heappop(delayed)
                sequence += 1
                heapq.heappush(
                    ready, _Ready((-int(claim.action.priority), sequence, "", ""), claim)
                )
            free = self.concurrency - len(running)
            if free > 0 and not ready:
                batch = max(_CLAIM_BATCH, 2 * self.concurrency)
                for claim in self.state.claim(self.pair, self.run_id, batch, deletes=deletes):
                    sequence += 1
                    order = (-int(claim.action.priority), sequence, claim.namespace, claim.key)
                    heapq.heappush(ready, _Ready(order, claim))
            while free > 0 and ready:
                claim = heapq.heappop(ready).claim
                running[pool.submit(self._perform, claim)] = claim
                free -= 1
            if not running and not ready:
                if not delayed:
                    return
                time.sleep(max(0.0, min(delayed[0][0] - time.monotonic(), 0.5)))
                continue
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                claim = running.pop(future)
                retry_at = self._finished(claim, future)
                if retry_at is not None:
                    sequence += 1
                    heapq.heappush(delayed, (retry_at, sequence, claim))
            self._maybe_flush()

    def _perform(self, claim: Claim) -> list[Outcome]:
        a, b = self.views(claim.namespace)

        def moved(count: int) -> None:
            with self._lock:
                self.report.bytes += count
            self._emit(
                ProgressEvent(
                    kind="bytes",
                    namespace=claim.namespace,
                    key=claim.key,
                    action=claim.action.kind,
                    bytes=count,
                )
            )

        if claim.action.size < _LARGE_BYTES:
            return perform(claim.action, a, b, self.trash, moved)
        with self._large:
            return perform(claim.action, a, b, self.trash, moved)

    def _finished(self, claim: Claim, future: Future[list[Outcome]]) -> float | None:
        """Record the result; the monotonic time to retry at, or None."""
        kind = claim.action.kind
        error = future.exception()
        if error is None:
            self._outcomes.extend(future.result())
            self.report.done[kind] = self.report.done.get(kind, 0) + 1
            self._emit(
                ProgressEvent(kind="done", namespace=claim.namespace, key=claim.key, action=kind)
            )
            return None
        slot = (claim.namespace, claim.key)
        attempts = self._attempts.get(slot, 0) + 1
        self._attempts[slot] = attempts
        if attempts < retry_limit(error, kind, self.max_attempts):
            delay: float = min(_MAX_DELAY, self.retry_delay * 2.0 ** (attempts - 1))
            return time.monotonic() + delay * random.uniform(0.5, 1.0)
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, TransientError):
            self._transient_failures += 1
        self._outcomes.append(
            Outcome(
                namespace=claim.namespace,
                key=claim.key,
                failed=failure_status(kind),
                error=message,
                attempts=attempts,
            )
        )
        self.report.failures.append((claim.namespace, claim.key, kind, message))
        self._emit(
            ProgressEvent(
                kind="failed", namespace=claim.namespace, key=claim.key, action=kind, error=message
            )
        )
        return None

    def _release(self, claims: list[Claim]) -> None:
        if claims:
            self.state.release(self.pair, [(claim.namespace, claim.key) for claim in claims])

    def _skip_deletes(self) -> int:
        return self.state.drop_deletes(self.pair, self.run_id)

    def _emit(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if len(self._outcomes) >= _FLUSH_ITEMS or now - self._flushed >= _FLUSH_SECONDS:
            self._flush()
        if self.planner and now - self._renewed >= _runs.LEASE_SECONDS / 3:
            _runs.renew_run(self.state, self.pair, self.run_id)
            self._renewed = now

    def _flush(self) -> None:
        if self._outcomes:
            self.state.settle(self.pair, self._outcomes)
            self._outcomes = []
        self._flushed = time.monotonic()
