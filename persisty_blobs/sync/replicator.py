"""``Replicator``: syncs two stores through a ``SyncState``.

A run lists both sides (``scan``), streams the lists beside the base through the 3-way diff
(``diff.py``), records the plan in the state, checks the delete guards, and only then acts
(``executor.py``). Every write is conditional on the version the plan saw, and the base moves
only after a verified transfer, so a run killed at any point is finished by the next one.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Iterator
from typing import Literal

from ..errors import InvalidArgument, InvalidArgumentType
from ..item import Flag
from ..keys import validate_flags, validate_key, validate_namespace, validate_prefix
from ..store import DataStore
from . import _runs
from ._tally import Counts, Tally
from ._transfer import Trash
from .diff import DIRECTIONS, POLICIES, Differ, Direction, Policy, merge
from .executor import Executor
from .model import (
    Action,
    ItemState,
    Priority,
    ProgressCallback,
    ProgressEvent,
    Status,
    SyncAborted,
    SyncReport,
)
from .state import SyncState

__all__ = ["Replicator"]

_BATCH = 500
#: A namespace with at least this many items in its base is guarded on its own.
_NAMESPACE_GUARD = 4


class Replicator:
    """Replicates between ``a`` (local) and ``b`` (remote), any two stores, keeping what
    both last agreed on in ``state``.

    ``run()`` lists both sides, diffs each against that base (new, changed, deleted on each
    side), records the plan, checks the guards (``max_delete`` of the base per side, an empty
    side; ``force=True`` skips them) and then copies, deletes and sets flags, ``concurrency``
    at once, highest priority first, each write conditional on the version the plan saw.
    ``direction`` "push" or "pull" writes one side only; ``conflict`` is "keep-both",
    "prefer-a", "prefer-b", "newer" or "manual" (left for ``resolve``); ``trash`` keeps what
    a run deletes or overwrites in that namespace; ``namespaces``, ``prefix`` and ``flag``
    narrow the run. ``plan()`` says what a run would do. A run killed at any point is
    finished by the next one.
    """

    def __init__(
        self,
        a: DataStore,
        b: DataStore,
        state: SyncState,
        *,
        pair: str = "default",
        direction: Direction = "both",
        namespaces: list[str] | None = None,
        prefix: str = "",
        conflict: Policy = "keep-both",
        max_delete: float = 0.5,
        force: bool = False,
        trash: str | None = None,
        flag: Flag | str | None = None,
        concurrency: int = 4,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        _check_types(a=a, b=b, state=state)
        if direction not in DIRECTIONS:
            raise InvalidArgument(f"direction is one of {DIRECTIONS}, not {direction!r}")
        if conflict not in POLICIES:
            raise InvalidArgument(f"conflict is one of {POLICIES}, not {conflict!r}")
        if not 0 <= _number("max_delete", max_delete) <= 1:
            raise InvalidArgument(f"max_delete is a fraction from 0 to 1, not {max_delete!r}")
        if _integer("concurrency", concurrency) < 1 or _integer("max_attempts", max_attempts) < 1:
            raise InvalidArgument("concurrency and max_attempts must be at least 1")
        if not _number("retry_delay", retry_delay) >= 0:
            raise InvalidArgument(f"retry_delay is seconds, 0 or more, not {retry_delay!r}")
        if not isinstance(force, bool):
            raise InvalidArgumentType(f"force is True or False, not {force!r}")
        if not isinstance(pair, str) or not pair or len(pair) > 200:
            raise InvalidArgument(f"pair is a name of 1 to 200 characters, not {pair!r}")
        if isinstance(namespaces, str | bytes):
            raise InvalidArgumentType(f"namespaces is a list of names, not {namespaces!r}")
        if trash == "":
            raise InvalidArgument("the trash is a namespace of its own: the default one is not")
        self.a, self.b, self.state, self.pair = a, b, state, pair
        self.direction: Direction = direction
        self.namespaces = (
            None if namespaces is None else [validate_namespace(n) for n in namespaces]
        )
        self.prefix = validate_prefix(prefix)
        self.conflict: Policy = conflict
        self.max_delete, self.force = max_delete, force
        self.trash = None if trash is None else Trash(validate_namespace(trash))
        if self.trash is not None and self.namespaces and self.trash.name in self.namespaces:
            raise InvalidArgument(f"the trash namespace {trash!r} is never synced: pick another")
        self.flag = None if flag is None else str(next(iter(validate_flags([flag]))))
        self.concurrency, self.max_attempts, self.retry_delay = (
            concurrency,
            max_attempts,
            retry_delay,
        )

    # Planning ---------------------------------------------------------------------------

    def _namespaces(self) -> list[str]:
        if self.namespaces is not None:
            return sorted(self.namespaces)
        names = set(self.a.namespaces()) | set(self.b.namespaces())
        names |= set(self.state.namespaces(self.pair))
        names -= _runs.trash_namespaces(self.state, self.pair)
        if self.trash is not None:
            names.discard(self.trash.name)
        return sorted(names)

    def _views(self, namespace: str) -> tuple[DataStore, DataStore]:
        return self.a.namespace(namespace), self.b.namespace(namespace)

    def _actions(self, tally: Tally) -> Iterator[Action]:
        for namespace in self._namespaces():
            a, b = self._views(namespace)
            differ = Differ(
                namespace,
                a,
                b,
                self.conflict,
                self.direction,
                self.flag,
                max_attempts=self.max_attempts,
                retry_delay=self.retry_delay,
            )
            counts = tally.begin(namespace)
            scan_a = tally.count(counts, "a", a.scan(self.prefix))
            scan_b = tally.count(counts, "b", b.scan(self.prefix))
            rows = self.state.rows(self.pair, namespace, self.prefix)
            for key, entry_a, entry_b, row in merge(scan_a, scan_b, rows):
                # A flag= run's guards weigh its deletes against the base in its scope.
                in_scope = self.flag is None or differ.in_scope(entry_a, entry_b, row)
                if row is not None and row.has_base and in_scope:
                    counts.base += 1
                action = differ.decide(key, entry_a, entry_b, row)
                if action is not None:
                    tally.add(counts, action, row)
                    yield action

    def plan(self) -> list[Action]:
        """What a run would do now. Writes nothing to either store or to the state."""
        return self._planned()[0]

    def _planned(self) -> tuple[list[Action], SyncAborted | None]:
        """The plan, and why a run would stop before acting on it (None: it would act)."""
        tally = Tally()
        actions = list(self._actions(tally))
        refused = _runs.check_sides(self.state, self.pair, f"{self.a!r} <-> {self.b!r}")
        if refused is not None:
            return actions, refused
        try:
            self._check(tally)
        except SyncAborted as stopped:
            return actions, stopped
        return actions, None

    # Running ------------------------------------------------------------------------------

    def run(self, *, progress: ProgressCallback | None = None) -> SyncReport:
        """Plan, check the guards, then carry the plan out; see ``SyncReport``."""
        started = time.monotonic()
        report = SyncReport()
        self.state.release_dead_leases(self.pair)
        if self.trash is not None and self.trash.name in self.state.namespaces(self.pair):
            raise InvalidArgument(
                f"the namespace {self.trash.name!r} holds items this pair syncs: a trash is a "
                "namespace of its own"
            )
        sides = f"{self.a!r} <-> {self.b!r}"
        run_id, planner = _runs.begin_run(self.state, self.pair, sides, self._options())
        while not planner:
            phase = self._await_plan(run_id)
            if phase == "executing":
                break
            if phase != "abandoned":
                report.seconds = time.monotonic() - started
                return report
            # Its planner died (or hung) before the plan was made: plan it here.
            run_id, planner = _runs.begin_run(self.state, self.pair, sides, self._options())
        largest = None
        if planner:
            tally = self._record(run_id, progress)
            report.conflicts, largest = tally.conflicts, tally.largest
        executor = Executor(
            state=self.state,
            pair=self.pair,
            run_id=run_id,
            views=self._views,
            report=report,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            retry_delay=self.retry_delay,
            trash=self.trash,
            progress=progress,
            planner=planner,
            largest=largest,
        )
        try:
            executor.run()
        finally:
            if planner:
                _runs.end_run(self.state, self.pair, run_id)
        report.seconds = time.monotonic() - started
        return report

    def _record(self, run_id: str, progress: ProgressCallback | None) -> Tally:
        tally = Tally()
        try:
            with _runs.held(self.state, self.pair, run_id):
                batch: list[Action] = []
                for action in self._actions(tally):
                    batch.append(action)
                    if len(batch) >= _BATCH:
                        self.state.record_plan(self.pair, run_id, batch)
                        batch = []
                self.state.record_plan(self.pair, run_id, batch)
            self._check(tally)
            if self.trash is not None:  # a plan past the guards: from now on never synced
                _runs.remember_trash(self.state, self.pair, self.trash.name)
            if not _runs.renew_run(self.state, self.pair, run_id):
                raise SyncAborted(
                    "this run's lease lapsed while it was planned and another process runs "
                    "the pair now; nothing was changed"
                )
        except BaseException:
            self.state.discard(self.pair, run_id)
            _runs.end_run(self.state, self.pair, run_id)
            raise
        self.state.activate(self.pair, run_id)
        _runs.renew_run(self.state, self.pair, run_id, "executing")
        if progress is not None:
            progress(ProgressEvent(kind="planned", items=tally.items, bytes=tally.bytes))
        return tally

    def _check(self, tally: Tally) -> None:
        """The guards, over the whole run and per namespace (one of at least
        ``_NAMESPACE_GUARD`` items), so a namespace gone from one side stops the run even when
        the others make it a small share of the base."""
        if self.force:
            return
        total = Counts()
        for namespace, counts in tally.namespaces.items():
            total.add(counts)
            if counts.base >= _NAMESPACE_GUARD:
                self._guard(counts, f" in namespace {namespace!r}" if namespace else "")
        self._guard(total, "")

    def _guard(self, counts: Counts, where: str) -> None:
        for side in ("a", "b"):
            store = repr(self.a if side == "a" else self.b)
            # One item deleted on one side also lists it empty: only a store that had more
            # is suspect.
            if counts.listed[side] == 0 and counts.base - counts.requested > 1:
                raise SyncAborted(
                    f"side {side} listed no items{where} but the base holds {counts.base}: a "
                    f"wrong or unmounted store? Nothing was changed (force=True to sync anyway)",
                    store=store,
                )
            deletes = counts.deletes[side]
            if counts.base and deletes > self.max_delete * counts.base:
                raise SyncAborted(
                    f"the run would delete {deletes} of {counts.base} items on side {side}"
                    f"{where}, over max_delete={self.max_delete}; nothing was changed "
                    f"(force=True to sync anyway)",
                    store=store,
                )

    def _options(self) -> str:
        """What this run's plan is made with, as the state records it for processes that
        join (how many transfers each runs, and their retries, are each one's own)."""
        chosen = {
            "direction": self.direction,
            "namespaces": None if self.namespaces is None else sorted(set(self.namespaces)),
            "prefix": self.prefix,
            "conflict": self.conflict,
            "max_delete": float(self.max_delete),
            "force": self.force,
            "trash": None if self.trash is None else self.trash.name,
            "flag": self.flag,
        }
        return json.dumps(chosen, sort_keys=True, separators=(",", ":"))

    def _await_plan(self, run_id: str) -> str | None:
        """Wait while another process plans the run this one joins; the phase it reached
        ("executing", "done", "abandoned" by its planner), or None if the pair runs another."""
        while (phase := _runs.run_phase(self.state, self.pair, run_id)) == "planning":
            time.sleep(0.1)
        return phase

    # The queue ------------------------------------------------------------------------------

    def status(self, key: str, *, namespace: str = "") -> Status | None:
        found = self.state.item(self.pair, validate_namespace(namespace), validate_key(key))
        return None if found is None else found.status

    def items(
        self, *, status: Status | str | None = None, namespace: str | None = None
    ) -> Iterator[ItemState]:
        wanted = None if status is None else Status.of(status)
        name = None if namespace is None else validate_namespace(namespace)
        return self.state.items(self.pair, status=wanted, namespace=name)

    def set_priority(
        self, key: str, priority: Priority | str | int, *, namespace: str = ""
    ) -> None:
        self.state.set_priority(
            self.pair, validate_namespace(namespace), validate_key(key), Priority.of(priority)
        )

    def resolve(self, key: str, keep: Literal["a", "b"], *, namespace: str = "") -> None:
        """Settle a CONFLICT: the next run copies side ``keep``'s version over the other,
        unless a side changed since the conflict was found (it is a conflict again)."""
        if keep not in ("a", "b"):
            raise InvalidArgument(f"keep is 'a' or 'b', not {keep!r}")
        self.state.resolve(self.pair, validate_namespace(namespace), validate_key(key), keep)

    def progress(self) -> dict[Status, int]:
        return self.state.progress(self.pair)


def _check_types(**given: object) -> None:
    for name, value in given.items():
        wanted = SyncState if name == "state" else DataStore
        if not isinstance(value, wanted):
            hint = " (SyncState(path) for a SQLite file)" if wanted is SyncState else ""
            raise InvalidArgumentType(f"{name} is a {wanted.__name__}{hint}, not {value!r}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise InvalidArgumentType(f"{name} is a number, not {value!r}")
    return float(value)


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name} is an int, not {value!r}")
    return int(value)
