"""``SyncState``: the database a replicator keeps its base and its queue in.

One row per pair, namespace and key holds the base (the last version both sides agreed on:
checksum, size, each side's etag, flags) and the queue (status, priority, the planned action,
attempts, last error, lease). Another table leases a pair's run to one planner, so several
processes sharing a PostgreSQL state split one run's work (``FOR UPDATE SKIP LOCKED``).
Keys sort by their UTF-8 bytes (SQLite's BINARY collation, PostgreSQL's "C"), the order every
store's ``scan`` uses, so the base streams beside the two listings in one merge.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .._liveness import local_owner, owner_is_gone
from ..errors import Unsupported
from ..registry import require
from . import _codec
from ._tables import Tables, connect
from .model import Action, ActionKind, ItemState, Priority, Status

__all__ = ["BaseRow", "Outcome", "SyncState"]

_LEASE_SECONDS = 60.0
_PENDING = (
    Status.PENDING_UPLOAD.value,
    Status.PENDING_DOWNLOAD.value,
    Status.PENDING_DELETE.value,
)
_DELETES = (ActionKind.DELETE_A.value, ActionKind.DELETE_B.value)


@dataclass(frozen=True, kw_only=True)
class BaseRow:
    """A state row as the diff reads it."""

    key: str
    checksum: str | None
    size: int | None
    etag_a: str | None
    etag_b: str | None
    flags: frozenset[str] | None
    status: Status | None
    priority: Priority
    resolution: str | None

    @property
    def has_base(self) -> bool:
        return self.etag_a is not None and self.etag_b is not None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The result of one action, written back in a batch: a new base (or none: forget the
    key), or a failure."""

    namespace: str
    key: str
    checksum: str | None = None
    size: int | None = None
    etag_a: str | None = None
    etag_b: str | None = None
    flags: frozenset[str] | None = None
    forget: bool = False
    failed: Status | None = None
    error: str | None = None
    attempts: int = 0
    status: Status = Status.SYNCED


@dataclass(frozen=True, kw_only=True)
class Claim:
    namespace: str
    key: str
    action: Action
    attempts: int


class SyncState:
    """The state database: a path (SQLite file) or an SQLAlchemy URL (PostgreSQL to share
    one state between processes)."""

    def __init__(self, url: str | os.PathLike[str] = ":memory:", *, table_prefix: str = "pbsync"):
        require("sqlalchemy", extra="sql")
        text = os.fspath(url)
        if "://" not in text:
            text = "sqlite://" if text == ":memory:" else f"sqlite:///{os.path.abspath(text)}"
        self.url = text
        self._engine, self._tables = connect(text, table_prefix)
        self.dialect = self._engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise Unsupported(f"a sync state needs SQLite or PostgreSQL, not {self.dialect}")
        self._lock = threading.Lock()
        #: Bumped by ``set_priority``: a running executor in this process re-chooses.
        self.priority_changes = 0
        self.owner = f"{secrets.token_hex(6)}@{local_owner() or 'unknown'}"

    def __repr__(self) -> str:
        return f"SyncState({self.url!r})"

    def close(self) -> None:
        self._engine.dispose()

    @property
    def tables(self) -> Tables:
        return self._tables

    # The base, streamed in key order ------------------------------------------------------

    def rows(self, pair: str, namespace: str, prefix: str = "") -> Iterator[BaseRow]:
        """Every row of ``pair`` and ``namespace`` whose key starts with ``prefix``, in key
        order, fetched in pages so memory stays flat for any number of keys."""
        import sqlalchemy as sa

        items = self._tables.items
        after: str | None = None
        while True:
            query = sa.select(items).where(items.c.pair == pair, items.c.namespace == namespace)
            bound = after if after is not None else prefix
            query = query.where(items.c.key > bound if after is not None else items.c.key >= bound)
            query = query.order_by(items.c.key).limit(2000)
            with self._engine.connect() as connection:
                page = connection.execute(query).mappings().all()
            for row in page:
                if not row["key"].startswith(prefix):
                    return
                yield _base_row(row)
            if len(page) < 2000:
                return
            after = page[-1]["key"]

    def namespaces(self, pair: str) -> list[str]:
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items.c.namespace).where(items.c.pair == pair).distinct()
        with self._engine.connect() as connection:
            return sorted(connection.execute(query).scalars())

    # Writing the plan and the outcomes ----------------------------------------------------

    def record_plan(self, pair: str, run_id: str, actions: Iterable[Action]) -> None:
        """Queue ``actions`` (one transaction per batch): each row's status, action and the
        versions it was planned against; an existing row keeps its base and priority."""
        values = [
            {
                "pair": pair,
                "namespace": action.namespace,
                "key": action.key,
                "priority": int(action.priority),
                "action": action.kind.value,
                "plan": _codec.dumps(
                    {
                        "a": _codec.encode_version(action.a),
                        "b": _codec.encode_version(action.b),
                        "size": action.size,
                        "reason": action.reason,
                    }
                ),
                "run_id": run_id,
                "lease_owner": None,
                "lease_until": None,
                "resolution": None,
            }
            for action in actions
        ]
        if values:
            keep = ("pair", "namespace", "key", "priority")
            self._upsert(values, [name for name in values[0] if name not in keep])

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

    def settle(self, pair: str, outcomes: Iterable[Outcome]) -> None:
        """Write outcomes in one transaction: a success sets the base and clears the queue, a
        failure records the error and the attempts, ``forget`` drops the row."""
        import sqlalchemy as sa

        items = self._tables.items
        now = time.time()
        bases: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        forgotten: list[dict[str, Any]] = []
        for outcome in outcomes:
            where = {"pair": pair, "namespace": outcome.namespace, "key": outcome.key}
            if outcome.forget:
                forgotten.append(where)
            elif outcome.failed is not None:
                failures.append(
                    {
                        **_where_names(where),
                        "status": outcome.failed.value,
                        "last_error": (outcome.error or "")[:2000],
                        "more": outcome.attempts,
                    }
                )
            else:
                bases.append(
                    {
                        **where,
                        "base_checksum": outcome.checksum,
                        "base_size": outcome.size,
                        "base_etag_a": outcome.etag_a,
                        "base_etag_b": outcome.etag_b,
                        "base_flags": _codec.encode_flags(outcome.flags),
                        "base_at": now,
                        "status": outcome.status.value,
                        "action": None,
                        "plan": None,
                        "attempts": 0,
                        "last_error": None,
                        "lease_owner": None,
                        "lease_until": None,
                        "resolution": None,
                        "priority": int(Priority.MEDIUM),
                    }
                )
        matches = (
            (items.c.pair == sa.bindparam("w_pair"))
            & (items.c.namespace == sa.bindparam("w_namespace"))
            & (items.c.key == sa.bindparam("w_key"))
        )
        with self._lock, self._engine.begin() as connection:
            if bases:
                keep = ("pair", "namespace", "key", "priority")
                update = [name for name in bases[0] if name not in keep]
                connection.execute(self._upsert_statement(update), bases)
            if failures:
                connection.execute(
                    sa.update(items)
                    .where(matches)
                    .values(
                        status=sa.bindparam("status"),
                        last_error=sa.bindparam("last_error"),
                        attempts=items.c.attempts + sa.bindparam("more"),
                        lease_owner=None,
                        lease_until=None,
                    ),
                    failures,
                )
            if forgotten:
                connection.execute(
                    sa.delete(items).where(matches),
                    [_where_names(where) for where in forgotten],
                )

    def mark(self, pair: str, namespace: str, key: str, status: Status, **fields: Any) -> None:
        """Set one row's status (creating the row): ``BlobManager`` queues with it."""
        values = {"pair": pair, "namespace": namespace, "key": key, "status": status.value}
        if "priority" in fields:
            fields["priority"] = int(Priority.of(fields["priority"]))
        values.update(fields)
        self._upsert(
            [values], [name for name in values if name not in ("pair", "namespace", "key")]
        )

    def _upsert(self, values: list[dict[str, Any]], update: list[str]) -> None:
        with self._lock, self._engine.begin() as connection:
            connection.execute(self._upsert_statement(update), values)

    def _upsert_statement(self, update: list[str]) -> Any:
        """INSERT that updates only ``update`` of a row that exists (one statement for a
        whole batch of rows)."""
        items = self._tables.items
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement: Any = pg_insert(items)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(items)
        return statement.on_conflict_do_update(
            index_elements=["pair", "namespace", "key"],
            set_={name: statement.excluded[name] for name in update},
        )

    # Claiming work -------------------------------------------------------------------------

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
        """(transfers still queued or leased, transfers failed) in this run."""
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
                .where(mine & items.c.status.in_(failed))
            ).scalar_one()
        return int(queued), int(failures)

    # Reading the queue ---------------------------------------------------------------------

    def item(self, pair: str, namespace: str, key: str) -> ItemState | None:
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items).where(
            items.c.pair == pair, items.c.namespace == namespace, items.c.key == key
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _item_state(row)

    def items(
        self, pair: str, *, status: Status | None = None, namespace: str | None = None
    ) -> Iterator[ItemState]:
        """Rows by priority, highest first, then key; paged."""
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items).where(items.c.pair == pair)
        if status is not None:
            query = query.where(items.c.status == Status(status).value)
        if namespace is not None:
            query = query.where(items.c.namespace == namespace)
        query = query.order_by(items.c.priority.desc(), items.c.namespace, items.c.key)
        offset = 0
        while True:
            with self._engine.connect() as connection:
                page = connection.execute(query.limit(1000).offset(offset)).mappings().all()
            yield from (_item_state(row) for row in page)
            if len(page) < 1000:
                return
            offset += len(page)

    def base(self, pair: str, namespace: str, key: str) -> str | None:
        """b's etag in the base of ``key``, or None."""
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items.c.base_etag_b).where(
            items.c.pair == pair, items.c.namespace == namespace, items.c.key == key
        )
        with self._engine.connect() as connection:
            return connection.execute(query).scalar()

    def set_priority(self, pair: str, namespace: str, key: str, priority: Priority) -> None:
        """Set a key's priority, kept by every later plan (a row is made if need be)."""
        values = {"pair": pair, "namespace": namespace, "key": key, "priority": int(priority)}
        self._upsert([values], ["priority"])
        self.priority_changes += 1

    def progress(self, pair: str) -> dict[Status, int]:
        import sqlalchemy as sa

        items = self._tables.items
        query = (
            sa.select(items.c.status, sa.func.count())
            .where(items.c.pair == pair)
            .group_by(items.c.status)
        )
        with self._engine.connect() as connection:
            counts = {Status(status): int(count) for status, count in connection.execute(query)}
        return {status: counts.get(status, 0) for status in Status}

    @property
    def engine(self) -> Any:
        return self._engine


def _where_names(where: dict[str, Any]) -> dict[str, Any]:
    return {f"w_{name}": value for name, value in where.items()}


def _base_row(row: Any) -> BaseRow:
    return BaseRow(
        key=row["key"],
        checksum=row["base_checksum"],
        size=row["base_size"],
        etag_a=row["base_etag_a"],
        etag_b=row["base_etag_b"],
        flags=_codec.decode_flags(row["base_flags"]),
        status=None if row["status"] is None else Status(row["status"]),
        priority=Priority(row["priority"]),
        resolution=row["resolution"],
    )


def _item_state(row: Any) -> ItemState:
    return ItemState(
        namespace=row["namespace"],
        key=row["key"],
        status=Status(row["status"] or Status.SYNCED.value),
        priority=Priority(row["priority"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        checksum=row["base_checksum"],
        size=row["base_size"],
    )


def _claim(row: Any) -> Claim:
    plan = _codec.loads(row["plan"])
    action = Action(
        kind=ActionKind(row["action"]),
        namespace=row["namespace"],
        key=row["key"],
        a=_codec.decode_version(plan["a"]),
        b=_codec.decode_version(plan["b"]),
        size=plan["size"],
        priority=Priority(row["priority"]),
        reason=plan["reason"],
    )
    return Claim(
        namespace=row["namespace"], key=row["key"], action=action, attempts=row["attempts"]
    )
