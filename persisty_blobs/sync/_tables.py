"""The state database's tables and their schema version."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex

from .._urls import shown_url
from ..errors import BlobError, InvalidArgument, NotFound, TransientError, Unsupported

__all__ = ["SCHEMA_VERSION", "Tables", "connect", "lock_for_writing"]

SCHEMA_VERSION = 6
#: The dialects whose indexes can leave rows out (a state runs on no other).
_PARTIAL = ("sqlite", "postgresql")


def _key_type(length: int) -> Any:
    # Keys must sort by their UTF-8 bytes, as every store's scan does, for the merge.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


@dataclass(frozen=True)
class Tables:
    schema: sa.Table
    items: sa.Table
    runs: sa.Table


def _define(prefix: str, dialect: str) -> tuple[sa.MetaData, Tables]:
    metadata = sa.MetaData()
    schema = sa.Table(
        f"{prefix}_schema", metadata, sa.Column("version", sa.Integer, nullable=False)
    )
    items = sa.Table(
        f"{prefix}_items",
        metadata,
        sa.Column("pair", _key_type(200), primary_key=True),
        sa.Column("namespace", _key_type(255), primary_key=True),
        sa.Column("key", _key_type(1024), primary_key=True),
        sa.Column("base_checksum", sa.String(80)),
        sa.Column("base_size", sa.BigInteger),
        sa.Column("base_etag_a", sa.String(200)),
        sa.Column("base_etag_b", sa.String(200)),
        sa.Column("base_flags", sa.String(200)),
        sa.Column("base_at", sa.Float),
        sa.Column("status", sa.String(20)),
        sa.Column("priority", sa.Integer, nullable=False, server_default="2"),
        sa.Column("action", sa.String(20)),
        sa.Column("plan", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("run_id", sa.String(40)),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.Float),
        # The caller's choice for a conflict, with the two versions it was made for.
        sa.Column("resolution", sa.Text),
        # A delete the caller asked for (BlobManager.delete), not one a diff planned.
        sa.Column("requested", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # The queued actions of a run in the order they are claimed; a finished one (action NULL)
    # leaves it, so the last claim of a large run walks no more rows than the first.
    # Only the engine's own dialect is named: naming another imports that dialect, which a
    # SQLite state's every first opening would pay for.
    partial: dict[str, Any] = {}
    if dialect in _PARTIAL:
        partial[f"{dialect}_where"] = items.c.action.is_not(None)
    sa.Index(
        f"{prefix}_claims",
        items.c.pair,
        items.c.run_id,
        items.c.priority.desc(),
        items.c.key,
        **partial,
    )
    runs = sa.Table(
        f"{prefix}_runs",
        metadata,
        sa.Column("pair", _key_type(200), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("sides", sa.Text, nullable=False),
        # The trash namespaces the pair's runs were given, "/" between them: never synced.
        sa.Column("trash", sa.Text, nullable=False, server_default=""),
        # The options the live run was planned with: a process joins only with the same.
        sa.Column("options", sa.Text, nullable=False, server_default=""),
    )
    return metadata, Tables(schema=schema, items=items, runs=runs)


def connect(url: str, prefix: str) -> tuple[sa.Engine, Tables]:
    """An engine on ``url`` with the tables created (or checked: a newer schema is refused)."""
    if not prefix.replace("_", "").isalnum() or len(prefix) > 30:
        raise InvalidArgument(f"table_prefix must be 1-30 letters, digits or '_', not {prefix!r}")
    options: dict[str, Any] = {}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            options["poolclass"] = sa.pool.StaticPool
    elif url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(url, **options)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
        raise InvalidArgument(f"not a state database URL {shown_url(url)!r}: {error}") from None
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(database))
        if not os.path.isdir(folder):
            engine.dispose()
            raise NotFound(f"the sync state's folder {folder!r} does not exist")
    sa.event.listen(engine, "handle_error", _as_blob_error)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            if url not in ("sqlite://", "sqlite:///:memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    metadata, tables = _define(prefix, engine.dialect.name)
    try:
        with engine.begin() as connection:
            # Processes opening a new or older state at once would race to create or change
            # its tables: one at a time. On SQLite the write lock taken first also keeps the
            # tables' changes in the transaction that sets the version (Python's sqlite3 runs
            # a change of tables outside any transaction it has not begun).
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(prefix)}
                )
            elif engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                raise Unsupported(
                    f"a sync state needs SQLite or PostgreSQL, not {shown_url(url)!r}"
                )
            metadata.create_all(connection, checkfirst=True)
            version = connection.execute(sa.select(tables.schema.c.version)).scalar()
            if version is None:
                connection.execute(sa.insert(tables.schema).values(version=SCHEMA_VERSION))
            elif version < SCHEMA_VERSION:
                _migrate(connection, tables, prefix, version)
            elif version > SCHEMA_VERSION:
                raise Unsupported(
                    f"the sync state at {shown_url(url)!r} has schema {version}; this library "
                    f"reads up to {SCHEMA_VERSION}: upgrade persisty-blobs"
                )
    except Unsupported:
        engine.dispose()
        raise
    except TransientError as error:
        engine.dispose()
        raise TransientError(
            f"cannot open the sync state at {shown_url(url)!r}: {error}"
        ) from error
    except (sa.exc.SQLAlchemyError, BlobError) as error:
        engine.dispose()
        raise BlobError(f"cannot open the sync state at {shown_url(url)!r}: {error}") from error
    return engine, tables


def _as_blob_error(context: sa.engine.ExceptionContext) -> None:
    """Every error of the state's database as this library's: a lost connection or a lock
    held too long is transient (the next run goes on where this one stopped). The message is
    the database's own, never the statement or its parameters."""
    if not isinstance(context.original_exception, Exception):
        return  # Ctrl-C, or an exit: never turned into an error a retry loop would catch
    original = context.original_exception
    reason = (str(original).strip().splitlines() or [type(original).__name__])[0]
    if _transient(context, reason):
        raise TransientError(f"the sync state's database is out of reach: {reason}") from original
    raise BlobError(f"the sync state's database refused a statement: {reason}") from original


def _transient(context: sa.engine.ExceptionContext, reason: str) -> bool:
    """A lost connection, a server out of reach, or (SQLite) a lock held too long: what the
    next attempt may not meet. SQLite says "operational" of a broken file or table too."""
    if context.is_disconnect:
        return True
    if not isinstance(context.sqlalchemy_exception, sa.exc.OperationalError):
        return False
    return context.dialect.name != "sqlite" or "locked" in reason or "busy" in reason


def lock_for_writing(connection: sa.Connection, tables: Tables) -> None:
    """Take a SQLite state's write lock now, at the start of a transaction that reads rows and
    then updates them (leasing actions, taking a run): Python's sqlite3 begins a transaction
    only at its first write, so two processes could both read the same free rows first.
    PostgreSQL locks the rows it reads instead (``FOR UPDATE``)."""
    if connection.dialect.name == "sqlite":
        runs = tables.runs
        connection.execute(sa.update(runs).where(sa.false()).values(pair=runs.c.pair))


def _lock_key(prefix: str) -> int:
    """The PostgreSQL advisory lock that serializes opening the state ``prefix``."""
    digest = hashlib.sha256(f"persisty-blobs sync state {prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _migrate(connection: sa.Connection, tables: Tables, prefix: str, version: int) -> None:
    def add_column(table: sa.Table, definition: str) -> None:
        existing = {column["name"] for column in sa.inspect(connection).get_columns(table.name)}
        if definition.split()[0] not in existing:
            connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {definition}")

    if version < 2:
        # Each pair records the two stores it syncs ("" until its next run).
        add_column(tables.runs, "sides TEXT NOT NULL DEFAULT ''")
    if version < 3:
        # Claims walk an index of queued actions in priority order, not one of every row.
        # IF (NOT) EXISTS: on SQLite the DDL runs outside a transaction, so processes opening
        # the old state at once may both get here.
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {prefix}_queue")
        for index in tables.items.indexes:
            connection.execute(CreateIndex(index, if_not_exists=True))
    if version < 4:
        add_column(tables.items, "requested BOOLEAN NOT NULL DEFAULT FALSE")
        # Before, every queued delete counted as the caller's own (as BlobManager queues
        # them): kept so, or the deletes a manager queued before the upgrade would stop
        # every later run at the guard.
        items = tables.items
        connection.execute(
            sa.update(items).where(items.c.status == "pending_delete").values(requested=sa.true())
        )
    if version < 5:
        add_column(tables.runs, "trash TEXT NOT NULL DEFAULT ''")
    if version < 6:
        add_column(tables.runs, "options TEXT NOT NULL DEFAULT ''")
        if connection.dialect.name == "postgresql":  # SQLite keeps any length in any column
            connection.exec_driver_sql(
                f"ALTER TABLE {tables.items.name} ALTER COLUMN resolution TYPE TEXT"
            )
    connection.execute(sa.update(tables.schema).values(version=SCHEMA_VERSION))
