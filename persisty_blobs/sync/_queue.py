"""The queue half of the state: activating or discarding a recorded plan, leasing actions to
executors (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and the counts the delete rule reads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .._liveness import owner_is_gone
from ..errors import TransientError
from . import _codec
from ._rows import priority_of
from ._tables import Tables, lock_for_writing
from .model import Action, ActionKind, Status

__all__ = ["Claim", "QueueOperations"]

_LEASE_SECONDS = 60.0
_PENDING = (
    Status.PENDING_UPLOAD.value,
    Status.PENDING_DOWNLOAD.value,
    Status.PENDING_DELETE.value,
)
_DELETES = (ActionKind.DELETE_A.value, ActionKind.DELETE_B.value)


@dataclass(frozen=True, kw_only=True)
class Claim:
    namespace: str
    key: str
    action: Action
    attempts: int


class QueueOperations:
    """Mixed into ``SyncState``."""

    _engine: Any
    _tables: Tables
    _lock: threading.Lock
    dialect: str
    owner: str

    def activate(self, pair: str, run_id: str) -> None:
        """Make a recorded plan visible: each planned row takes its action's pending status.
        Until then a plan can be discarded and the queue is as it was."""
        import sqlalchemy as sa

        items = self._tables.items
        status = sa.case(
            *((items.c.action == kind.value, kind.status.value) for kind in ActionKind),
            else_=items.c.status,
        )
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.update(items)
                .where(items.c.pair == pair, items.c.run_id == run_id)
                .values(status=status)
            )

    def discard(self, pair: str, run_id: str) -> None:
        """Forget a plan that was not activated (a safety check stopped the run)."""
        import sqlalchemy as sa

        items = self._tables.items
        mine = (items.c.pair == pair) & (items.c.run_id == run_id)
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.delete(items).where(
                    mine & items.c.status.is_(None) & items.c.base_etag_a.is_(None)
                )
            )
            connection.execute(
                sa.update(items).where(mine).values(action=None, plan=None, run_id=None)
            )

    def release(self, pair: str, keys: list[tuple[str, str]]) -> None:
        """Give back leases this process holds on actions it has not started."""
        import sqlalchemy as sa

        items = self._tables.items
        with self._lock, self._engine.begin() as connection:
            for namespace, key in keys:
                connection.execute(
                    sa.update(items)
                    .where(
                        items.c.pair == pair,
                        items.c.namespace == namespace,
                        items.c.key == key,
                        items.c.lease_owner == self.owner,
                    )
                    .values(lease_owner=None, lease_until=None)
                )

    def drop_deletes(self, pair: str, run_id: str) -> int:
        """Take this run's deletes off the queue (a transfer failed); they stay
        PENDING_DELETE for the next run. Returns how many."""
        import sqlalchemy as sa

        items = self._tables.items
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(
                sa.update(items)
                .where(
                    items.c.pair == pair,
                    items.c.run_id == run_id,
                    items.c.action.in_(_DELETES),
                    items.c.status == Status.PENDING_DELETE.value,
                )
                .values(run_id=None, last_error="not run: a transfer of the same run failed")
            )
        return int(result.rowcount)

    def claim(self, pair: str, run_id: str, limit: int, *, deletes: bool) -> list[Claim]:
        """Lease up to ``limit`` queued actions of this run, highest priority first; deletes
        only when ``deletes`` (they run after every transfer)."""
        import sqlalchemy as sa

        items = self._tables.items
        now = time.time()
        condition = (
            (items.c.pair == pair)
            & (items.c.run_id == run_id)
            & items.c.status.in_(_PENDING)
            & items.c.action.is_not(None)
            & (items.c.lease_owner.is_(None) | (items.c.lease_until < now))
        )
        kinds = items.c.action.in_(_DELETES)
        condition &= kinds if deletes else ~kinds
        query = (
            sa.select(items.c.namespace, items.c.key, items.c.action, items.c.plan)
            .add_columns(items.c.priority, items.c.attempts)
            .where(condition)
            .order_by(items.c.priority.desc(), items.c.key)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._lock, self._engine.begin() as connection:
            lock_for_writing(connection, self._tables)
            rows = connection.execute(query).mappings().all()
            if rows:
                connection.execute(
                    sa.update(items)
                    .where(
                        (items.c.pair == pair)
                        & (items.c.namespace == sa.bindparam("w_namespace"))
                        & (items.c.key == sa.bindparam("w_key"))
                    )
                    .values(lease_owner=self.owner, lease_until=now + _LEASE_SECONDS),
                    [{"w_namespace": row["namespace"], "w_key": row["key"]} for row in rows],
                )
        return [_claim(row) for row in rows]

    def renew_leases(self, pair: str, run_id: str) -> None:
        """Extend the leases this process holds on the run's actions: a transfer that takes
        longer than a lease is not claimed again by another process meanwhile."""
        import sqlalchemy as sa

        items = self._tables.items
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.update(items)
                .where(
                    (items.c.pair == pair)
                    & (items.c.run_id == run_id)
                    & (items.c.lease_owner == self.owner)
                )
                .values(lease_until=time.time() + _LEASE_SECONDS)
            )

    def pending_kinds(self, pair: str, run_id: str, *, deletes: bool) -> set[ActionKind]:
        """The kinds of this run's queued actions: its deletes, or the others."""
        import sqlalchemy as sa

        items = self._tables.items
        kinds = items.c.action.in_(_DELETES)
        condition = (
            (items.c.pair == pair)
            & (items.c.run_id == run_id)
            & items.c.status.in_(_PENDING)
            & items.c.action.is_not(None)
            & (kinds if deletes else ~kinds)
        )
        with self._engine.connect() as connection:
            found = connection.execute(sa.select(items.c.action).where(condition).distinct())
            return {ActionKind(action) for action in found.scalars()}

    def release_dead_leases(self, pair: str) -> None:
        """Free the rows leased by processes of this machine that have exited."""
        import sqlalchemy as sa

        items = self._tables.items
        with self._lock, self._engine.begin() as connection:
            owners = connection.execute(
                sa.select(items.c.lease_owner)
                .where(items.c.pair == pair, items.c.lease_owner.is_not(None))
                .distinct()
            ).scalars()
            gone = [owner for owner in owners if owner_is_gone(owner.partition("@")[2])]
            if gone:
                connection.execute(
                    sa.update(items)
                    .where(items.c.pair == pair, items.c.lease_owner.in_(gone))
                    .values(lease_owner=None, lease_until=None)
                )

    def unfinished(self, pair: str, run_id: str) -> tuple[int, int]:
        """(transfers still queued or leased, transfers of this run that failed for a reason
        a retry could fix: a sign that a side is unwell, so no delete should run)."""
        import sqlalchemy as sa

        items = self._tables.items
        mine = (items.c.pair == pair) & (items.c.run_id == run_id)
        transfers = ~items.c.action.in_(_DELETES)
        failed = (Status.FAILED_UPLOAD.value, Status.FAILED_DOWNLOAD.value)
        with self._engine.connect() as connection:
            queued = connection.execute(
                sa.select(sa.func.count())
                .select_from(items)
                .where(mine & transfers & items.c.status.in_(_PENDING))
            ).scalar_one()
            failures = connection.execute(
                sa.select(sa.func.count())
                .select_from(items)
                .where(
                    mine
                    & items.c.status.in_(failed)
                    & items.c.last_error.like(f"{TransientError.__name__}:%")
                )
            ).scalar_one()
        return int(queued), int(failures)


def _claim(row: Any) -> Claim:
    plan = _codec.loads(row["plan"])
    action = Action(
        kind=ActionKind(row["action"]),
        namespace=row["namespace"],
        key=row["key"],
        a=_codec.decode_version(plan["a"]),
        b=_codec.decode_version(plan["b"]),
        size=plan["size"],
        priority=priority_of(row["priority"]),
        reason=plan["reason"],
    )
    return Claim(
        namespace=row["namespace"], key=row["key"], action=action, attempts=row["attempts"]
    )
