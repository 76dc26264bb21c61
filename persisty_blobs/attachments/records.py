"""The attachment records: one table of its own in the sync state's database.

A row per (pair, namespace, id) holds what the app sees (media type, size, checksum, state,
created, last error) and what the queue needs: the state to take once the queued transfer is
done (``after``: SYNCED, or ARCHIVED when the app stopped referencing it meanwhile), each
side's etag, the retry schedule, and ``revision``, a new random number on every change of the
content (save, delete). A transfer writes its result only if the revision it started from is
still there, so a save or delete made meanwhile is never overwritten by an older transfer.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from ..errors import BlobError
from ..sync import SyncState
from ..sync._tables import _key_type
from .model import AttachmentState

__all__ = ["UNRECORDED_KEPT", "Record", "Records", "new_revision"]

#: How many unrecorded checksums a record keeps.
UNRECORDED_KEPT = 16

_QUEUED = [state.value for state in AttachmentState if state.queued]


def new_revision() -> int:
    return secrets.randbits(62)


@dataclass(frozen=True, kw_only=True)
class Record:
    id: str
    media_type: str | None
    size: int | None
    checksum: str | None
    state: AttachmentState
    after: AttachmentState
    priority: int
    created: float
    archived_at: float | None
    local_etag: str | None
    remote_etag: str | None
    revision: int
    attempts: int
    next_attempt: float
    last_error: str | None
    #: The checksums (space-separated, the last ``UNRECORDED_KEPT``) of the versions saves
    #: replaced while their uploads were queued: a pass may have sent one and died (or been
    #: stopped) before recording it, so the remote may hold it under an etag this record never
    #: learned. Such a version is this device's own, replaced or deleted freely.
    unrecorded_checksums: str | None = None

    def unrecorded(self) -> frozenset[str]:
        return frozenset((self.unrecorded_checksums or "").split())

    @classmethod
    def from_row(cls, row: Any) -> Record:
        values = {name: row[name] for name in _COLUMNS}
        values["state"] = AttachmentState(values["state"])
        values["after"] = AttachmentState(values["after"])
        return cls(**values)


_COLUMNS = [field.name for field in fields(Record)]


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("pair", _key_type(200), primary_key=True),
        sa.Column("namespace", _key_type(255), primary_key=True),
        sa.Column("id", _key_type(1024), primary_key=True),
        sa.Column("media_type", sa.String(255)),
        sa.Column("size", sa.BigInteger),
        sa.Column("checksum", sa.String(80)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("after", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("archived_at", sa.Float),
        sa.Column("local_etag", sa.String(200)),
        sa.Column("remote_etag", sa.String(200)),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("unrecorded_checksums", sa.Text),
        sa.Index(f"{name}_due", "pair", "namespace", "state", "next_attempt"),
    )


class Records:
    """The rows of one queue (a pair and a namespace of a ``SyncState``)."""

    def __init__(self, state: SyncState, pair: str, namespace: str) -> None:
        self.engine = state.engine
        self.dialect = state.dialect
        prefix = state.tables.items.name.removesuffix("_items")
        self.table = _table(f"{prefix}_attachments")
        self.table.metadata.create_all(self.engine, checkfirst=True)
        _add_missing_columns(self.engine, self.table)
        self.pair, self.namespace = pair, namespace
        self._get = sa.select(self.table).where(self._one(sa.bindparam("id")))

    def _mine(self) -> Any:
        table = self.table
        return (table.c.pair == self.pair) & (table.c.namespace == self.namespace)

    def _one(self, id: Any) -> Any:
        return self._mine() & (self.table.c.id == id)

    def get(self, id: str) -> Record | None:
        with self.engine.connect() as connection:
            row = connection.execute(self._get, {"id": id}).mappings().first()
        return None if row is None else Record.from_row(row)

    def upsert(self, rows: Iterable[dict[str, Any]], connection: Any = None) -> None:
        """Insert each row (every column given) or replace the one with its id."""
        values = [{"pair": self.pair, "namespace": self.namespace, **row} for row in rows]
        if not values:
            return
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement: Any = pg_insert(self.table)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(self.table)
        statement = statement.on_conflict_do_update(
            index_elements=["pair", "namespace", "id"],
            set_={name: statement.excluded[name] for name in values[0] if name != "id"},
        )
        if connection is not None:
            connection.execute(statement, values)
            return
        with self.engine.begin() as own:
            own.execute(statement, values)

    def update(self, id: str, values: dict[str, Any], *, revision: int | None = None) -> bool:
        """Change one row (only while it has ``revision``, if given); True if it did."""
        where = self._one(id)
        if revision is not None:
            where &= self.table.c.revision == revision
        with self.engine.begin() as connection:
            result = connection.execute(sa.update(self.table).where(where).values(**values))
        return bool(result.rowcount)

    def update_many(self, rows: list[dict[str, Any]], connection: Any) -> None:
        """Change rows (each ``id`` only while it has its ``revision``; every row gives the
        same columns) in ``connection``'s transaction."""
        if not rows:
            return
        table = self.table
        where = self._mine()
        where &= (table.c.id == sa.bindparam("w_id")) & (
            table.c.revision == sa.bindparam("w_revision")
        )
        connection.execute(
            sa.update(table).where(where),
            [
                {"w_id": row["id"], "w_revision": row["revision"]}
                | {name: value for name, value in row.items() if name not in ("id", "revision")}
                for row in rows
            ],
        )

    def get_many(self, ids: list[str]) -> dict[str, Record]:
        query = sa.select(self.table).where(self._mine() & self.table.c.id.in_(ids))
        with self.engine.connect() as connection:
            return {row["id"]: Record.from_row(row) for row in connection.execute(query).mappings()}

    def remove(self, ids: Iterable[str], connection: Any = None) -> None:
        chosen = list(ids)
        if not chosen:
            return
        statement = sa.delete(self.table).where(self._mine() & self.table.c.id.in_(chosen))
        if connection is not None:
            connection.execute(statement)
            return
        with self.engine.begin() as own:
            own.execute(statement)

    def transaction(self) -> Any:
        return self.engine.begin()

    def due(self, now: float) -> list[str]:
        """Queued ids whose next attempt is due, highest priority first, then oldest."""
        table = self.table
        query = (
            sa.select(table.c.id)
            .where(self._mine(), table.c.state.in_(_QUEUED), table.c.next_attempt <= now)
            .order_by(table.c.priority.desc(), table.c.created, table.c.id)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def next_due(self) -> float | None:
        table = self.table
        query = sa.select(sa.func.min(table.c.next_attempt)).where(
            self._mine(), table.c.state.in_(_QUEUED)
        )
        with self.engine.connect() as connection:
            value = connection.execute(query).scalar()
        return None if value is None else float(value)

    def listing(self, state: AttachmentState | None = None) -> Iterator[Record]:
        """Every row (of ``state``), oldest first, in pages."""
        table = self.table
        query = sa.select(table).where(self._mine())
        if state is not None:
            query = query.where(table.c.state == state.value)
        query = query.order_by(table.c.created, table.c.id)
        offset = 0
        while True:
            with self.engine.connect() as connection:
                page = connection.execute(query.limit(1000).offset(offset)).mappings().all()
            yield from (Record.from_row(row) for row in page)
            if len(page) < 1000:
                return
            offset += len(page)

    def archived(self) -> list[tuple[str, int]]:
        """(id, revision) of the archived rows, the longest archived first."""
        table = self.table
        query = (
            sa.select(table.c.id, table.c.revision)
            .where(self._mine(), table.c.state == AttachmentState.ARCHIVED.value)
            .order_by(table.c.archived_at, table.c.id)
        )
        with self.engine.connect() as connection:
            return [(row.id, row.revision) for row in connection.execute(query)]

    def local_etags(self) -> dict[str, str | None]:
        """Each record's id and the etag of the local content it describes (None: none, or a
        queued delete)."""
        table = self.table
        query = sa.select(table.c.id, table.c.local_etag, table.c.state).where(self._mine())
        deleting = AttachmentState.QUEUED_DELETE.value
        with self.engine.connect() as connection:
            return {
                row.id: None if row.state == deleting else row.local_etag
                for row in connection.execute(query)
            }


def _add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Add the columns a table made by an earlier release lacks (each nullable)."""
    quote = engine.dialect.identifier_preparer
    for _ in range(2):  # another process may add one at the same moment: look again
        present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        if not missing:
            return
        try:
            with engine.begin() as connection:
                for column in missing:
                    connection.exec_driver_sql(
                        f"ALTER TABLE {quote.format_table(table)} ADD COLUMN "
                        f"{quote.format_column(column)} {column.type.compile(engine.dialect)}"
                    )
            return
        except (sa.exc.DBAPIError, BlobError):  # the state's engine raises its own errors
            continue
    raise BlobError(f"cannot add the columns of this release to {table.name}")
