"""Running a planned run: ``concurrency`` actions at once, highest priority first, re-chosen
whenever a slot frees; retries with exponential backoff and jitter; deletes after every
transfer, and none if a transfer failed; outcomes committed in small batches as they come.

The workers take the next action from a shared heap themselves, and the steering thread
refills it a batch at a time: an action does not wait for a hand-off between threads (on a
virtual machine, a thread's wake-up can cost more than copying a small file).
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import TransientError
from ..store import DataStore
from . import _runs
from ._perform import backoff, failure_status, marked, perform, retry_limit
from ._queue import Claim
from ._transfer import Trash
from .model import ActionKind, ProgressEvent, SyncReport
from .state import Outcome, SyncState

__all__ = ["Executor"]

_FLUSH_SECONDS = 0.25
_FLUSH_ITEMS = 500
#: Actions leased at once. A raised priority is still seen at once in this process (the
#: unstarted leases are given back and claimed again); other processes see it at their next
#: claim.
_CLAIM_BATCH = 32
#: Items this large hold a store's whole buffers while they move (an S3 part, a writer's
#: ring): at most half the transfers at once move one, which bounds a run's memory.
_LARGE_BYTES = 8 * 1024 * 1024


@dataclass(order=True)
class _Ready:
    sort: tuple[int, int]
    claim: Claim = field(compare=False)


@dataclass
class _Finished:
    claim: Claim
    outcomes: list[Outcome] | None
    error: BaseException | None
    #: Bytes the attempt reported moving: a failed one takes them back.
    moved: int = 0


@dataclass
class _Board:
    """What the steering thread and the workers share, under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: list[_Ready] = field(default_factory=list)
    finished: list[_Finished] = field(default_factory=list)
    running: int = 0
    closed: bool = False
    #: The state's count of priority changes the heap was claimed under: a worker takes
    #: nothing from a heap older than the state's, so a raised priority goes next.
    priorities: int = 0
    #: What the progress callback raised on a worker: the steering thread raises it.
    callback_error: BaseException | None = None
    #: Failed actions waiting for their retry: (monotonic time, sequence, claim).
    delayed: list[tuple[float, int, Claim]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.work = threading.Condition(self.lock)  # workers wait here for actions
        self.attention = threading.Condition(self.lock)  # the steering thread waits here


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
    #: The largest action's size, known to the process that planned the run.
    largest: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        self._outcomes: list[Outcome] = []
        self._flushed = time.monotonic()
        self._renewed = time.monotonic()
        self._attempts: dict[tuple[str, str], int] = {}
        self._transient_failures = 0
        self._sequence = 0
        self._large = threading.BoundedSemaphore(max(1, self.concurrency // 2))
        # A namespace's two views are made once, not per action.
        self._views = functools.lru_cache(maxsize=64)(self.views)
        try:
            self._transfers_then_deletes()
        finally:
            self._flush()

    def _transfers_then_deletes(self) -> None:
        self._drain(deletes=False)
        while True:
            self._flush()
            queued, failed = self.state.unfinished(self.pair, self.run_id)
            if queued == 0:
                break
            time.sleep(0.1)  # another process still holds leases on this run's transfers
            self._drain(deletes=False)
        # Deletes wait for a healthy run: a transfer that failed for a reason a retry could
        # fix (a side timing out, throttling) holds them back; one item that cannot be
        # copied (a bad name, a damaged blob) does not hold back the deletes of the others.
        if failed or self._transient_failures:
            self.report.deletes_skipped = self._skip_deletes()
            return
        self._drain(deletes=True)

    def _drain(self, *, deletes: bool) -> None:
        """Run every action this process can claim, until none is left."""
        board = _Board(priorities=self.state.priority_changes)
        workers = [
            threading.Thread(target=self._work, args=(board,), name=f"pb-sync_{index}")
            for index in range(self._workers(deletes))
        ]
        try:
            # Inside the try: a Ctrl-C while they start still closes the board, which ends
            # the workers already started.
            for worker in workers:
                worker.start()
            self._steer(board, deletes)
        finally:
            with board.lock:
                board.closed = True
                unstarted = [entry.claim for entry in board.ready]
                board.ready.clear()
                board.work.notify_all()
            for worker in workers:
                if worker.ident is not None:  # started
                    worker.join()
            unstarted += [claim for _, _, claim in board.delayed]
            try:
                # Stopped early (an error, Ctrl-C): what succeeded is kept; what failed
                # meanwhile (a transfer cut short by the stop) is given back, not failed.
                unstarted += self._settle_finished(board, stopping=True)
            finally:
                self._release(unstarted)

    def _workers(self, deletes: bool) -> int:
        """``concurrency``, or one where no queued action waits on anything outside this
        process and all are small: then the work is Python and short system calls, and under
        the GIL more threads only add switches between them. (A large copy's reads and writes
        release the GIL for long: several overlap.)"""
        if self.largest is None or self.largest >= _LARGE_BYTES:
            return self.concurrency
        a, b = self.views("")
        kinds = self.state.pending_kinds(self.pair, self.run_id, deletes=deletes)
        return self.concurrency if any(_waits(kind, a, b) for kind in kinds) else 1

    def _steer(self, board: _Board, deletes: bool) -> None:
        """Keep the workers' heap filled, in priority order; take their results, schedule
        retries, commit outcomes; return when nothing is left to run or retry."""
        delayed = board.delayed
        exhausted = False
        while True:
            self._settle_finished(board)
            if board.callback_error is not None:
                raise board.callback_error
            with board.lock:
                changed = self.state.priority_changes != board.priorities
                if changed:
                    board.priorities = self.state.priority_changes
                    unstarted = [entry.claim for entry in board.ready]
                    board.ready.clear()
            if changed:
                self._release(unstarted)  # claimed again, so a raised priority goes next
                exhausted = False
            now = time.monotonic()
            due: list[Claim] = []
            while delayed and delayed[0][0] <= now:
                due.append(heapq.heappop(delayed)[2])
            with board.lock:
                low = len(board.ready) < self.concurrency
            claimed = []
            if low and not exhausted:
                batch = max(_CLAIM_BATCH, 2 * self.concurrency)
                claimed = self.state.claim(self.pair, self.run_id, batch, deletes=deletes)
                exhausted = not claimed
            if due or claimed:
                self._offer(board, due + claimed)
            self._maybe_flush()
            with board.lock:
                idle = not board.ready and board.running == 0 and not board.finished
                if idle and exhausted and not delayed:
                    return
                wait = _FLUSH_SECONDS
                if delayed:
                    wait = min(wait, max(0.0, delayed[0][0] - time.monotonic()))
                busy = bool(board.ready or board.running)
                stale = self.state.priority_changes != board.priorities
                if not board.finished and not stale and (busy or delayed):
                    board.attention.wait(wait)

    def _offer(self, board: _Board, claims: list[Claim]) -> None:
        with board.lock:
            for claim in claims:
                self._sequence += 1
                entry = _Ready((-int(claim.action.priority), self._sequence), claim)
                heapq.heappush(board.ready, entry)
            board.work.notify_all()

    def _work(self, board: _Board) -> None:
        """A worker: the highest-priority ready action, over and over."""
        low_water = max(1, self.concurrency)
        while True:
            with board.lock:
                while not board.closed and (
                    not board.ready or self.state.priority_changes != board.priorities
                ):
                    board.attention.notify()
                    board.work.wait()
                if board.closed:
                    return
                claim = heapq.heappop(board.ready).claim
                board.running += 1
                if len(board.ready) < low_water:
                    board.attention.notify()
            outcomes: list[Outcome] | None = None
            error: BaseException | None = None
            moved = [0]
            try:
                outcomes = self._perform(claim, moved)
            except BaseException as exc:  # recorded as the action's failure, as a future would
                error = exc
                with self._lock:
                    self.report.bytes -= moved[0]
            raised: BaseException | None = None
            if error is None:
                # Said here, before the next action starts: a callback may raise a priority.
                event = ProgressEvent(
                    kind="done", namespace=claim.namespace, key=claim.key, action=claim.action.kind
                )
                try:
                    self._emit(event)
                except BaseException as exc:  # the run stops, but this action is done
                    raised = exc
            with board.lock:
                board.running -= 1
                board.finished.append(_Finished(claim, outcomes, error, moved[0]))
                if raised is not None and board.callback_error is None:
                    board.callback_error = raised
                if error or raised or (not board.ready and board.running == 0):
                    board.attention.notify()

    def _settle_finished(self, board: _Board, *, stopping: bool = False) -> list[Claim]:
        """Record every result the workers left, then say which failed (a callback that
        raises loses none of them); stopping, failures are returned, to be given back."""
        with board.lock:
            finished, board.finished = board.finished, []
        events: list[ProgressEvent] = []
        given_back: list[Claim] = []
        for result in finished:
            if stopping and result.error is not None:
                given_back.append(result.claim)
                continue
            retry_at = self._finished(result, events)
            if retry_at is not None:
                self._sequence += 1
                heapq.heappush(board.delayed, (retry_at, self._sequence, result.claim))
        raised: BaseException | None = None
        for event in events:
            try:
                self._emit(event)
            except BaseException as exc:  # said after the others, once all are recorded
                raised = raised or exc
        if raised is not None:
            raise raised
        return given_back

    def _perform(self, claim: Claim, moved_so_far: list[int]) -> list[Outcome]:
        a, b = self._views(claim.namespace)

        def moved(count: int) -> None:
            moved_so_far[0] += count
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
            outcomes = perform(claim.action, a, b, self.trash, moved)
        else:
            with self._large:
                outcomes = perform(claim.action, a, b, self.trash, moved)
        return [marked(claim.action, outcome) for outcome in outcomes]

    def _finished(self, result: _Finished, events: list[ProgressEvent]) -> float | None:
        """Record the result (a failure's event goes to ``events``); the monotonic time to
        retry at, or None."""
        claim, error = result.claim, result.error
        kind = claim.action.kind
        if error is None:
            assert result.outcomes is not None
            self._outcomes.extend(result.outcomes)
            self.report.done[kind] = self.report.done.get(kind, 0) + 1
            return None
        slot = (claim.namespace, claim.key)
        attempts = self._attempts.get(slot, 0) + 1
        self._attempts[slot] = attempts
        message = f"{type(error).__name__}: {error}"
        # A failed attempt's event takes back the bytes it said it moved.
        said = functools.partial(
            ProgressEvent,
            namespace=claim.namespace,
            key=claim.key,
            action=kind,
            bytes=result.moved,
            error=message,
        )
        if attempts < retry_limit(error, kind, self.max_attempts):
            if result.moved:
                events.append(said(kind="retry"))
            return time.monotonic() + backoff(self.retry_delay, attempts)
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
        events.append(said(kind="failed"))
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
        if now - self._renewed >= _runs.LEASE_SECONDS / 3:
            if self.planner:
                _runs.renew_run(self.state, self.pair, self.run_id)
            self.state.renew_leases(self.pair, self.run_id)
            # A process of this machine that died mid-run: its actions are taken over now,
            # not when their leases run out.
            self.state.release_dead_leases(self.pair)
            self._renewed = now

    def _flush(self) -> None:
        if self._outcomes:
            self.state.settle(self.pair, self._outcomes)
            self._outcomes = []
        self._flushed = time.monotonic()


def _waits(kind: ActionKind, a: DataStore, b: DataStore) -> bool:
    """Whether ``kind``'s calls wait on something outside this process, so that several
    actions at once overlap."""
    if kind is ActionKind.UPLOAD:
        return a.capabilities.reads_wait or b.capabilities.writes_wait
    if kind is ActionKind.DOWNLOAD:
        return b.capabilities.reads_wait or a.capabilities.writes_wait
    sides = (a.capabilities, b.capabilities)
    return any(side.reads_wait or side.writes_wait for side in sides)
