"""Leasing a pair's run: one process plans it, any number execute it.

The first process to start a run of a pair becomes its planner and writes the plan; a process
that starts while that run is live joins it and only claims queued actions. A planner that dies
loses its lease (after ``LEASE_SECONDS``, or at once when it ran on this machine), and the next
process plans again from the two listings and the base, so nothing needs a resync.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from .._liveness import owner_is_gone
from .model import SyncAborted
from .state import SyncState

__all__ = ["LEASE_SECONDS", "begin_run", "end_run", "renew_run", "run_phase"]

LEASE_SECONDS = 30.0


def begin_run(state: SyncState, pair: str, sides: str) -> tuple[str, bool]:
    """(run id, True if this process plans it) for a new run of ``pair``, or the live run.
    ``sides`` names the two stores: a pair's state is refused for any other two, whose
    listings it would read as deletes."""
    runs = state.tables.runs
    with state.engine.begin() as connection:
        # The row exists before anyone locks it, so processes starting together never race
        # on inserting it.
        connection.execute(
            _insert_once(state).values(
                pair=pair, run_id="", owner="", phase="done", lease_until=0.0, sides=sides
            )
        )
    now = time.time()
    with state.engine.begin() as connection:
        query = sa.select(runs).where(runs.c.pair == pair)
        if state.dialect == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).mappings().one()
        if not row["sides"]:  # a state from before the stores were recorded
            connection.execute(sa.update(runs).where(runs.c.pair == pair).values(sides=sides))
        elif row["sides"] != sides:
            raise SyncAborted(
                f"the state's pair {pair!r} syncs {row['sides']}, not {sides}: give this pair "
                "another name (or another state), or its base would turn into deletes"
            )
        live = (
            row["phase"] in ("planning", "executing")
            and row["lease_until"] > now
            and not owner_is_gone(row["owner"].partition("@")[2])
        )
        if live:
            return str(row["run_id"]), False
        run_id = secrets.token_hex(8)
        connection.execute(
            sa.update(runs)
            .where(runs.c.pair == pair)
            .values(
                run_id=run_id, owner=state.owner, phase="planning", lease_until=now + LEASE_SECONDS
            )
        )
    return run_id, True


def _insert_once(state: SyncState) -> Any:
    runs = state.tables.runs
    if state.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(runs).on_conflict_do_nothing(index_elements=["pair"])
    return sa.insert(runs).prefix_with("OR IGNORE")


def renew_run(state: SyncState, pair: str, run_id: str, phase: str | None = None) -> None:
    runs = state.tables.runs
    values: dict[str, object] = {"lease_until": time.time() + LEASE_SECONDS}
    if phase is not None:
        values["phase"] = phase
    with state.engine.begin() as connection:
        connection.execute(
            sa.update(runs).where(runs.c.pair == pair, runs.c.run_id == run_id).values(**values)
        )


def run_phase(state: SyncState, pair: str, run_id: str) -> str | None:
    runs = state.tables.runs
    with state.engine.connect() as connection:
        phase = connection.execute(
            sa.select(runs.c.phase).where(runs.c.pair == pair, runs.c.run_id == run_id)
        ).scalar()
    return None if phase is None else str(phase)


def end_run(state: SyncState, pair: str, run_id: str) -> None:
    renew_run(state, pair, run_id, "done")
