"""How the SQL store writes: a new version's chunks in short transactions, then one short
transaction that checks the precondition and points the item row at the new version; deletes
and flag changes the same race-free way.

A write streams its chunks a few per transaction (so a 1 GiB put never holds SQLite's write
lock, or a server's transaction buffer, for long). Readers read one version inside a snapshot,
so an overwrite or delete that removes the old chunks meanwhile does not disturb them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ... import driver as driver_module
from ..._liveness import local_owner
from ...driver import DriverWriter, WriteSpec, check_precondition, etag_for
from ...errors import NotFound, TransientError
from ...item import DataItem, Flag
from ._database import Database, Raced
from ._garbage import LEASE, discard, now_us, remove_quietly
from ._read import Queries
from ._schema import EPOCH, Tables, flag_bits, item_of, updated_at

__all__ = ["SqlWriter", "Writes"]

_BATCH_BYTES = 4 * 1024 * 1024  # chunks inserted per transaction


class Writes:
    """Every change the SQL store makes to items."""

    def __init__(self, database: Database, tables: Tables, queries: Queries, chunk_size: int):
        self._database = database
        self._tables = tables
        self._queries = queries
        self._chunk_size = chunk_size

    def _where_item(self, namespace: str, key: str) -> sa.ColumnElement[bool]:
        items = self._tables.items
        return sa.and_(items.c.namespace == namespace.encode(), items.c.key == key.encode())

    def new_version(self, key: str) -> int:
        """A version in state ``writing``, owned by this process."""
        started = sa.insert(self._tables.versions).values(
            state="writing", owner=local_owner(), touched_us=now_us()
        )

        def attempt(connection: sa.Connection) -> int:
            primary_key = connection.execute(started).inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])

        return self._database.race_free(key, attempt)

    def store_chunks(self, key: str, version_id: int, rows: list[dict[str, Any]]) -> None:
        versions = self._tables.versions

        def attempt(connection: sa.Connection) -> None:
            touched = connection.execute(
                sa.update(versions)
                .where(versions.c.id == version_id, versions.c.state == "writing")
                .values(touched_us=now_us())
            )
            if touched.rowcount != 1:
                raise self._reclaimed(key)
            connection.execute(sa.insert(self._tables.chunks), rows)

        self._database.race_free(key, attempt, staging=True)

    def _reclaimed(self, key: str) -> TransientError:
        return TransientError(
            f"this write was idle for more than {LEASE} and its chunks were reclaimed",
            key=key,
            store=self._database.name,
        )

    def commit(self, namespace: str, key: str, version_id: int, spec: WriteSpec) -> DataItem:
        items, versions = self._tables.items, self._tables.versions
        name = self._database.name

        def attempt(connection: sa.Connection) -> tuple[DataItem, int | None]:
            # Locked: writers of one key queue for it instead of racing (on servers, where
            # an optimistic retry loop could starve under contention).
            row = self._queries.item_row(connection, namespace, key, lock=True)
            current = None if row is None else item_of(row)
            check_precondition(current, key, name, spec.if_match, spec.if_none_match)
            claimed = connection.execute(
                sa.update(versions)
                .where(versions.c.id == version_id, versions.c.state == "writing")
                .values(state="live")
            )
            if claimed.rowcount != 1:
                raise self._reclaimed(key)
            now = (driver_module.utc_now() - EPOCH) // timedelta(microseconds=1)
            etag = etag_for(spec.checksum)
            # Never earlier than the version it replaces, even if the clock steps back.
            updated_us = now if row is None else max(now, row.updated_us)
            values = {
                "version_id": version_id,
                "size": spec.size,
                "chunk_size": self._chunk_size,
                "etag": etag,
                "checksum": spec.checksum,
                "content_type": spec.content_type,
                "metadata": json.dumps(dict(spec.metadata), sort_keys=True),
                "flags": flag_bits(spec.flags),
                "updated_us": updated_us,
            }
            if row is None:
                names = {"namespace": namespace.encode(), "key": key.encode()}
                connection.execute(sa.insert(items).values(**names, **values))
            else:
                self._unlink(connection, namespace, key, row, sa.update(items).values(values))
            self._write_flags(connection, namespace, key, spec.flags)
            item = DataItem(
                key=key,
                namespace=namespace,
                size=spec.size,
                etag=etag,
                content_type=spec.content_type,
                updated_at=updated_at(updated_us),
                checksum=spec.checksum,
                metadata=spec.metadata,
                flags=spec.flags,
            )
            return item, None if row is None else row.version_id

        item, replaced = self._database.race_free(key, attempt)
        if replaced is not None:
            remove_quietly(self._database, self._tables, replaced)
        return item

    def discard(self, version_id: int) -> None:
        discard(self._database, self._tables, version_id)

    def _unlink(
        self,
        connection: sa.Connection,
        namespace: str,
        key: str,
        row: sa.Row[Any],
        statement: sa.Update | sa.Delete,
    ) -> None:
        """Update or delete the item row, only if it still points at the version we read,
        and mark that version garbage."""
        items, versions = self._tables.items, self._tables.versions
        changed = connection.execute(
            statement.where(self._where_item(namespace, key), items.c.version_id == row.version_id)
        )
        if changed.rowcount != 1:
            raise Raced
        connection.execute(
            sa.update(versions).where(versions.c.id == row.version_id).values(state="garbage")
        )

    def _write_flags(
        self, connection: sa.Connection, namespace: str, key: str, flags: frozenset[Flag]
    ) -> None:
        table = self._tables.flags
        where = sa.and_(table.c.namespace == namespace.encode(), table.c.key == key.encode())
        connection.execute(sa.delete(table).where(where))
        if flags:
            rows = [
                {"namespace": namespace.encode(), "flag": flag.value, "key": key.encode()}
                for flag in flags
            ]
            connection.execute(sa.insert(table), rows)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        def attempt(connection: sa.Connection) -> int | None:
            row = self._queries.item_row(connection, namespace, key, lock=True)
            current = None if row is None else item_of(row)
            check_precondition(current, key, self._database.name, if_match, False)
            if row is None:
                return None
            self._unlink(connection, namespace, key, row, sa.delete(self._tables.items))
            self._write_flags(connection, namespace, key, frozenset())
            return int(row.version_id)

        removed = self._database.race_free(key, attempt)
        if removed is None:
            return False
        remove_quietly(self._database, self._tables, removed)
        return True

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        def attempt(connection: sa.Connection) -> None:
            statement = sa.update(self._tables.items).where(self._where_item(namespace, key))
            if connection.execute(statement.values(flags=flag_bits(flags))).rowcount == 0:
                raise NotFound("no such item", key=key, store=self._database.name)
            self._write_flags(connection, namespace, key, flags)

        self._database.race_free(key, attempt)


class SqlWriter(DriverWriter):
    """Buffers up to ``_BATCH_BYTES`` of chunks, then inserts them in one transaction."""

    def __init__(self, writes: Writes, namespace: str, key: str) -> None:
        self._writes = writes
        self._namespace = namespace
        self._key = key
        self._version_id: int | None = writes.new_version(key)
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._next_seq = 0

    def write(self, chunk: memoryview) -> None:
        self._pending.append(
            {"version_id": self._version_id, "seq": self._next_seq, "data": bytes(chunk)}
        )
        self._next_seq += 1
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            assert self._version_id is not None
            self._writes.store_chunks(self._key, self._version_id, self._pending)
            self._pending = []
            self._pending_bytes = 0

    def commit(self, spec: WriteSpec) -> DataItem:
        assert self._version_id is not None
        self._flush()
        item = self._writes.commit(self._namespace, self._key, self._version_id, spec)
        self._version_id = None
        return item

    def abort(self) -> None:
        self._pending = []
        if self._version_id is not None:
            version_id, self._version_id = self._version_id, None
            self._writes.discard(version_id)
