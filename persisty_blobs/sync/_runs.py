"""Leasing a pair's run: one process plans it, any number execute it.

The first process to start a run of a pair becomes its planner and writes the plan; a process
that starts while that run is live joins it and only claims queued actions. A planner that dies
loses its lease (after ``LEASE_SECONDS``, or at once when it ran on this machine), and the next
process plans again from the two listings and the base, so nothing needs a resync.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from .._liveness import owner_is_gone
from ..errors import TransientError
from ._tables import lock_for_writing
from .model import SyncAborted
from .state import SyncState

__all__ = [
    "LEASE_SECONDS",
    "begin_run",
    "check_sides",
    "end_run",
    "forget_pair",
    "held",
    "remember_trash",
    "renew_run",
    "run_phase",
    "trash_namespaces",
]

LEASE_SECONDS = 30.0
#: What a store's name gained after states recorded it: an HttpStore's store id, an S3Store's
#: endpoint other than AWS's.
_GAINED = (
    re.compile(r", store [0-9a-f]+\)"),
    re.compile(r", endpoint '[^']*'\)"),
    re.compile(r", table_prefix='[^']*'\)"),
)
#: Before the stores' names as this version records them: records without it are older, and
#: are read as names were then.
_NAMED = "names-2: "
#: Names that once gave a folder or SQLite file as it was given (relative, a trailing slash).
_FOLDER = re.compile(r"DirectoryStore\('([^']*)'\)")
_SQLITE_FILE = re.compile(r"SqlStore\('sqlite:///([^/'][^']*)'")
#: The password an HttpStore's name showed before names left it out (``user:password@``).
_PASSWORD = re.compile(r"(HttpStore\('[a-z+]+://[^/@':]*):[^/@']*@")


def begin_run(state: SyncState, pair: str, sides: str, options: str = "") -> tuple[str, bool]:
    """(run id, True if this process plans it) for a new run of ``pair``, or the live run.
    ``sides`` names the two stores: a pair's state is refused for any other two, whose
    listings it would read as deletes. ``options`` are what the plan is made with: a live
    run planned with other ones is not joined (its plan could upload for a pull, or delete
    past a trash), nor one planned before runs recorded them ("")."""
    runs = state.tables.runs
    with state.engine.begin() as connection:
        # The row exists before anyone locks it, so processes starting together never race
        # on inserting it.
        connection.execute(
            _insert_once(state).values(
                pair=pair, run_id="", owner="", phase="done", lease_until=0.0, sides=_NAMED + sides
            )
        )
    with state.engine.begin() as connection:
        lock_for_writing(connection, state.tables)
        now = time.time()
        query = sa.select(runs).where(runs.c.pair == pair)
        if state.dialect == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).mappings().one()
        if row["sides"] != _NAMED + sides:
            refused = _other_stores(pair, row["sides"], sides)
            if refused is not None:
                raise refused
            # Rewritten as named now: a password an old name showed goes with it.
            connection.execute(
                sa.update(runs).where(runs.c.pair == pair).values(sides=_NAMED + sides)
            )
        live = row["phase"] in ("planning", "executing") and _leased(row, now)
        if live:
            if row["options"] != options:
                raise SyncAborted(
                    f"a run of the pair {pair!r} is in progress with other options "
                    f"({row['options'] or 'unrecorded'}); run again when it ends, or with "
                    "the same options to help it"
                )
            return str(row["run_id"]), False
        run_id = secrets.token_hex(8)
        connection.execute(
            sa.update(runs)
            .where(runs.c.pair == pair)
            .values(
                run_id=run_id,
                owner=state.owner,
                phase="planning",
                lease_until=now + LEASE_SECONDS,
                options=options,
            )
        )
    return run_id, True


def check_sides(state: SyncState, pair: str, sides: str) -> SyncAborted | None:
    """Why a run of ``pair`` between ``sides`` would be refused as another pair's stores
    (None: it would not), changing nothing."""
    runs = state.tables.runs
    with state.engine.connect() as connection:
        recorded = connection.execute(sa.select(runs.c.sides).where(runs.c.pair == pair)).scalar()
    return None if recorded is None else _other_stores(pair, recorded, sides)


def _other_stores(pair: str, recorded: str, sides: str) -> SyncAborted | None:
    """The refusal of ``sides`` for a pair recorded as syncing ``recorded``. A record this
    version made is compared as it is. One from before the stores were recorded (""), or
    from before their names gained what they show now, or an HttpStore's left its URL's
    password out, is taken as these stores where it names them as they were named then."""
    if recorded.startswith(_NAMED):
        recorded = recorded.removeprefix(_NAMED)
        if recorded == sides:
            return None
    else:
        recorded = _PASSWORD.sub(r"\1@", recorded)
        if not recorded or _as_named_now(recorded) in _former_names(sides):
            return None
    return SyncAborted(
        f"the state's pair {pair!r} syncs {recorded}, not {sides}: give this pair "
        "another name (or another state), or its base would turn into deletes"
    )


def _as_named_now(recorded: str) -> str:
    """A state's record of its stores, with paths as names give them now: absolute, from the
    working folder (where the process that recorded them most likely ran too)."""

    def folder(found: re.Match[str]) -> str:
        return f"DirectoryStore({os.path.abspath(found[1])!r})"

    def sqlite_file(found: re.Match[str]) -> str:
        return f"SqlStore('sqlite:///{os.path.abspath(found[1])}'"

    return _SQLITE_FILE.sub(sqlite_file, _FOLDER.sub(folder, recorded))


def _former_names(sides: str) -> set[str]:
    names = {sides}
    for gained in _GAINED:
        names |= {gained.sub(")", name) for name in names}
    return names


def _insert_once(state: SyncState) -> Any:
    runs = state.tables.runs
    if state.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(runs).on_conflict_do_nothing(index_elements=["pair"])
    return sa.insert(runs).prefix_with("OR IGNORE")


def _leased(row: Any, now: float) -> bool:
    """Whether the run's owner holds its lease: not expired, and not known to be dead."""
    return bool(row["lease_until"] > now) and not owner_is_gone(row["owner"].partition("@")[2])


def renew_run(state: SyncState, pair: str, run_id: str, phase: str | None = None) -> bool:
    """Extend this run's lease (and set its phase); False if the run is no longer this one
    (its lease lapsed and another process started a run of the pair)."""
    runs = state.tables.runs
    values: dict[str, object] = {"lease_until": time.time() + LEASE_SECONDS}
    if phase is not None:
        values["phase"] = phase
    with state.engine.begin() as connection:
        result = connection.execute(
            sa.update(runs).where(runs.c.pair == pair, runs.c.run_id == run_id).values(**values)
        )
    return bool(result.rowcount == 1)


@contextlib.contextmanager
def held(state: SyncState, pair: str, run_id: str) -> Iterator[None]:
    """Keep the run's lease while the block runs, however long a listing takes between two
    planned actions: renewed by a thread of its own."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_SECONDS / 3):
            # The state out of reach for a moment: the next beat tries again, and the
            # planner's own writes fail if it stays so.
            with contextlib.suppress(TransientError):
                renew_run(state, pair, run_id)

    beat = threading.Thread(target=renew, name="pb-sync-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()


def run_phase(state: SyncState, pair: str, run_id: str) -> str | None:
    """The run's phase; "abandoned" if it is being planned by a process that lost its lease
    (dead, or stopped renewing), None if the pair runs another run now."""
    runs = state.tables.runs
    with state.engine.connect() as connection:
        row = (
            connection.execute(sa.select(runs).where(runs.c.pair == pair, runs.c.run_id == run_id))
            .mappings()
            .first()
        )
    if row is None:
        return None
    if row["phase"] == "planning" and not _leased(row, time.time()):
        return "abandoned"
    return str(row["phase"])


def end_run(state: SyncState, pair: str, run_id: str) -> None:
    renew_run(state, pair, run_id, "done")


def forget_pair(state: SyncState, pair: str) -> None:
    """Forget what ``pair``'s sides last agreed on, and which stores they were (rclone's
    ``--resync``): its next run adopts equal items and deletes nothing. Its trash is still
    its trash. Refused while a run of the pair is live."""
    runs, items = state.tables.runs, state.tables.items
    with state.engine.begin() as connection:
        lock_for_writing(connection, state.tables)
        row = connection.execute(sa.select(runs).where(runs.c.pair == pair)).mappings().first()
        if row is None:
            return
        if row["phase"] in ("planning", "executing") and _leased(row, time.time()):
            raise SyncAborted(f"a run of the pair {pair!r} is in progress; try when it ends")
        connection.execute(sa.delete(items).where(items.c.pair == pair))
        connection.execute(sa.update(runs).where(runs.c.pair == pair).values(sides=""))


def remember_trash(state: SyncState, pair: str, name: str) -> None:
    """Record ``name`` as a trash namespace of ``pair``: no later run syncs it, given a
    trash or not (only a run that names it in ``namespaces=`` does)."""
    runs = state.tables.runs
    with state.engine.begin() as connection:
        lock_for_writing(connection, state.tables)
        names = _trash_names(connection, runs, pair)
        if name not in names:
            joined = "/".join(sorted(names | {name}))
            connection.execute(sa.update(runs).where(runs.c.pair == pair).values(trash=joined))


def trash_namespaces(state: SyncState, pair: str) -> set[str]:
    with state.engine.connect() as connection:
        return _trash_names(connection, state.tables.runs, pair)


def _trash_names(connection: sa.Connection, runs: sa.Table, pair: str) -> set[str]:
    kept = connection.execute(sa.select(runs.c.trash).where(runs.c.pair == pair)).scalar()
    return set(filter(None, (kept or "").split("/")))
