"""What the SQL store leaves behind and how it is removed: the chunks of replaced and deleted
versions, of aborted writes, and of writers that died; on SQLite, the file space they held.

An interrupted write leaves an unreferenced version: removed on the next open, or by
``vacuum()``, once its writer is known to be gone (same machine) or idle for ``LEASE``.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import sqlalchemy as sa

from ..._liveness import owner_is_gone
from ._database import Database
from ._schema import Tables

__all__ = ["LEASE", "collect_garbage", "discard", "now_us", "reclaim_space", "remove_quietly"]

LEASE = timedelta(hours=1)  # a write idle this long, by a writer we cannot check, is reclaimed
_DELETE_BATCH = 64  # chunks deleted per transaction


def now_us() -> int:
    """The wall clock for leases (not for ``updated_at``, which comes from ``utc_now``)."""
    return time.time_ns() // 1000


def remove_version(database: Database, tables: Tables, version_id: int) -> None:
    """Delete a garbage version's chunks a batch per transaction, then its row."""
    chunks, versions = tables.chunks, tables.versions
    with database.reading() as connection:
        last = connection.scalar(
            sa.select(sa.func.max(chunks.c.seq)).where(chunks.c.version_id == version_id)
        )
    for first in range(0, -1 if last is None else last + 1, _DELETE_BATCH):
        batch = sa.delete(chunks).where(
            chunks.c.version_id == version_id,
            chunks.c.seq >= first,
            chunks.c.seq < first + _DELETE_BATCH,
        )
        database.write_one(batch)
    database.write_one(sa.delete(versions).where(versions.c.id == version_id))


def remove_quietly(database: Database, tables: Tables, version_id: int) -> None:
    """Remove a replaced version after the write or delete that replaced it succeeded: what a
    failure here leaves is garbage that the next open or ``vacuum()`` removes."""
    with contextlib.suppress(Exception):
        remove_version(database, tables, version_id)


def discard(database: Database, tables: Tables, version_id: int) -> None:
    """Give up an uncommitted version; never raises (the next open retries)."""
    versions = tables.versions
    with contextlib.suppress(Exception):
        database.write_one(
            sa.update(versions)
            .where(versions.c.id == version_id, versions.c.state == "writing")
            .values(state="garbage")
        )
        remove_version(database, tables, version_id)


def collect_garbage(database: Database, tables: Tables) -> int:
    """Remove garbage versions and those of dead or idle writers; how many were removed."""
    versions = tables.versions
    stale_before = now_us() - LEASE // timedelta(microseconds=1)
    with database.reading() as connection:
        candidates = connection.execute(
            sa.select(versions).where(versions.c.state.in_(("garbage", "writing")))
        ).all()
    removed = 0
    for row in candidates:
        if row.state == "writing":
            if not owner_is_gone(row.owner) and row.touched_us >= stale_before:
                continue  # a writer still at work
            claim = (
                sa.update(versions)
                .where(
                    versions.c.id == row.id,
                    versions.c.state == "writing",
                    versions.c.touched_us == row.touched_us,
                )
                .values(state="garbage")
            )
            if database.write_one(claim) != 1:
                continue  # its writer touched it meanwhile
        remove_version(database, tables, row.id)
        removed += 1
    return removed


def reclaim_space(database: Database) -> None:
    """On SQLite, give the free pages back to the file system: an incremental vacuum (a file
    made before auto_vacuum was on is converted once, by a full VACUUM), then a checkpoint that
    truncates the WAL. Other databases reuse freed space themselves."""
    if database.dialect.name != "sqlite":
        return
    with database.errors(), database.engine.connect() as connection:
        sqlite = connection.connection.driver_connection
        assert sqlite is not None
        if sqlite.execute("PRAGMA auto_vacuum").fetchone() == (0,):
            # NONE: only VACUUM turns it on, rewriting the file once.
            sqlite.execute("PRAGMA auto_vacuum = INCREMENTAL")
            sqlite.execute("VACUUM")
        # Each step of incremental_vacuum frees one page: executescript steps it to the end.
        sqlite.executescript("PRAGMA incremental_vacuum")
        sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
