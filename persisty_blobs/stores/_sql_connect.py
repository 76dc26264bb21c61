"""How the SQL store talks to its database: SQLite's connection settings and transaction
kinds, and which driver errors mean that a concurrent writer won a race."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["is_conflict", "prepare_sqlite"]


def prepare_sqlite(engine: sa.Engine, busy_timeout: float, page_size: int | None) -> None:
    """WAL, a busy timeout, durable commits, and our own BEGIN: ``BEGIN IMMEDIATE`` for writes,
    so a transaction that reads and then writes never fails half way on a lock upgrade."""
    if engine.url.database in (None, "", ":memory:"):
        raise ValueError("SqlStore needs an SQLite file; use memory:// for an in-memory store")

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if page_size is not None:
            # Only a new file takes it, before WAL is on.
            cursor.execute(f"PRAGMA page_size = {page_size}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get("persisty_write"):
            # Chunks of a write in progress need no fsync of their own: the commit that makes
            # them visible fsyncs the WAL, and with it every frame written before it.
            staging = options.get("persisty_staging", False)
            connection.exec_driver_sql(f"PRAGMA synchronous = {'NORMAL' if staging else 'FULL'}")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif options.get("persisty_snapshot"):
            connection.exec_driver_sql("BEGIN")
        # Otherwise each statement runs on its own, which is atomic: no BEGIN, no ROLLBACK.


def is_conflict(error: sa.exc.DBAPIError) -> bool:
    """A unique violation or deadlock: another writer got there first."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    original = error.orig
    code = original.args[0] if original is not None and original.args else None
    return code == 1213 or getattr(original, "sqlstate", None) in ("40P01", "40001")
