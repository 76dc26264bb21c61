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
from typing import Any

from .._liveness import local_owner
from .._urls import without_secret_parameters
from ..errors import InvalidArgument
from . import _codec
from ._queue import QueueOperations
from ._rows import BASE_COLUMNS, PRIORITIES, BaseRow, Outcome, base_row, item_state
from ._tables import Tables, connect
from .model import Action, ItemState, Priority, Status

__all__ = ["BaseRow", "Outcome", "SyncState"]

#: Base rows fetched at once: memory stays flat for any number of keys.
_PAGE = 2000


class SyncState(QueueOperations):
    """The state database: a path (SQLite file) or an SQLAlchemy URL (PostgreSQL to share
    one state between processes)."""

    def __init__(self, url: str | os.PathLike[str] = ":memory:", *, table_prefix: str = "pbsync"):
        text = os.fspath(url)
        if "://" not in text:
            text = "sqlite://" if text == ":memory:" else f"sqlite:///{os.path.abspath(text)}"
        self.url = text
        self._engine, self._tables = connect(text, table_prefix)
        self.dialect = self._engine.dialect.name
        self._lock = threading.Lock()
        #: Bumped by ``set_priority``: a running executor in this process re-chooses.
        self.priority_changes = 0
        self.owner = f"{secrets.token_hex(6)}@{local_owner() or 'unknown'}"

    def __repr__(self) -> str:
        shown = without_secret_parameters(self._engine.url.render_as_string(hide_password=True))
        return f"SyncState({shown!r})"

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
        columns = [getattr(items.c, name) for name in BASE_COLUMNS]
        after: str | None = None
        while True:
            query = sa.select(*columns).where(items.c.pair == pair, items.c.namespace == namespace)
            bound = after if after is not None else prefix
            query = query.where(items.c.key > bound if after is not None else items.c.key >= bound)
            query = query.order_by(items.c.key).limit(_PAGE)
            with self._engine.connect() as connection:
                page = connection.execute(query).all()
            for row in page:
                if not row[0].startswith(prefix):
                    return
                yield base_row(*row)
            if len(page) < _PAGE:
                return
            after = page[-1][0]

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
            }
            for action in actions
        ]
        if values:
            keep = ("pair", "namespace", "key", "priority")
            self._upsert(values, [name for name in values[0] if name not in keep])

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
                        "requested": False,
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

    # Reading the queue ---------------------------------------------------------------------

    def resolve(self, pair: str, namespace: str, key: str, keep: str) -> None:
        """Choose side ``keep`` for the key's conflict, for the two versions it was found
        between: the next run copies that side over the other, unless either changed."""
        import sqlalchemy as sa

        items = self._tables.items
        where = (items.c.pair == pair, items.c.namespace == namespace, items.c.key == key)
        with self._lock, self._engine.begin() as connection:
            found = connection.execute(sa.select(items.c.status, items.c.plan).where(*where))
            row = found.first()
            if row is None or row.status != Status.CONFLICT.value:
                raise InvalidArgument(f"{key!r} is not in conflict", key=key)
            status = Status.PENDING_UPLOAD if keep == "a" else Status.PENDING_DOWNLOAD
            # A conflict whose plan a stopped run discarded: its versions are not known, and
            # the choice holds for whatever the next run finds.
            resolution = keep if row.plan is None else _codec.encode_resolution(keep, row.plan)
            connection.execute(
                sa.update(items).where(*where).values(status=status.value, resolution=resolution)
            )

    def item(self, pair: str, namespace: str, key: str) -> ItemState | None:
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items).where(
            items.c.pair == pair,
            items.c.namespace == namespace,
            items.c.key == key,
            # Else only a priority, or a plan not yet active (or a status edited by hand).
            items.c.status.in_(_STATUSES),
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else item_state(row)

    def items(
        self, pair: str, *, status: Status | None = None, namespace: str | None = None
    ) -> Iterator[ItemState]:
        """Rows by priority, highest first, then key; paged."""
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items).where(items.c.pair == pair, items.c.status.in_(_STATUSES))
        if status is not None:
            query = query.where(items.c.status == Status(status).value)
        if namespace is not None:
            query = query.where(items.c.namespace == namespace)
        query = query.order_by(items.c.priority.desc(), items.c.namespace, items.c.key)
        offset = 0
        while True:
            with self._engine.connect() as connection:
                page = connection.execute(query.limit(1000).offset(offset)).mappings().all()
            yield from (item_state(row) for row in page)
            if len(page) < 1000:
                return
            offset += len(page)

    def priorities(self, pair: str, namespace: str) -> dict[str, Priority]:
        """Every key's priority that was set or queued, synced or not yet."""
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items.c.key, items.c.priority).where(
            items.c.pair == pair, items.c.namespace == namespace
        )
        with self._engine.connect() as connection:
            return {key: PRIORITIES[rank] for key, rank in connection.execute(query)}

    def base(self, pair: str, namespace: str, key: str) -> str | None:
        """b's etag in the base of ``key`` (as a store gives it: unmarked), or None."""
        import sqlalchemy as sa

        items = self._tables.items
        query = sa.select(items.c.base_etag_b).where(
            items.c.pair == pair, items.c.namespace == namespace, items.c.key == key
        )
        with self._engine.connect() as connection:
            etag: str | None = connection.execute(query).scalar()
        return _codec.split_base_etag(etag)[0]

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
            .where(items.c.pair == pair, items.c.status.in_(_STATUSES))
            .group_by(items.c.status)
        )
        with self._engine.connect() as connection:
            counts = {Status(status): int(count) for status, count in connection.execute(query)}
        return {status: counts.get(status, 0) for status in Status}

    @property
    def engine(self) -> Any:
        return self._engine


#: The statuses rows are read by: a row with another (edited by hand) is left out.
_STATUSES = [status.value for status in Status]


def _where_names(where: dict[str, Any]) -> dict[str, Any]:
    return {f"w_{name}": value for name, value in where.items()}
