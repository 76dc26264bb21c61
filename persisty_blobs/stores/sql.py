"""``SqlStore``: items in a SQL database through SQLAlchemy Core, content cut into chunks.

SQLite (``sqlite:///path.db``) is the embedded default; PostgreSQL (``postgresql+psycopg://``)
and MariaDB/MySQL (``mysql+pymysql://``) are the servers to grow into. Tables: see
``_sql_schema``.

A write streams its chunks into a new *version* in short transactions of a few chunks each
(so a 1 GiB put never holds SQLite's write lock, or a server's transaction buffer, for long),
then one short transaction checks the precondition and points the item row at the new
version. Readers read one version inside a snapshot transaction, one chunk per query, so an
overwrite or delete that removes the old chunks meanwhile does not disturb them. What an
interrupted write leaves is an unreferenced version: removed on the next open, or by
``vacuum()``, once its writer is known to be gone (same machine) or idle for ``_LEASE``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from ..driver import (
    Driver,
    DriverWriter,
    ItemHeader,
    WriteSpec,
    check_precondition,
    clip_range,
    etag_for,
)
from ..errors import IntegrityError, NotFound, TransientError
from ..item import DataItem, Flag
from ..store import DataStore
from ..streams import BytesRangeRaw
from ._sql_connect import is_conflict, prepare_sqlite
from ._sql_read import ChunkRangeRaw, Compiled, Queries
from ._sql_schema import Tables, create_schema, database_errors, local_owner, owner_is_gone

__all__ = ["SqlStore"]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLAG_BITS = {flag: 1 << index for index, flag in enumerate(Flag)}
_MAX_CHUNK_SIZE = 16 * 1024 * 1024  # MariaDB's default max_allowed_packet
_BATCH_BYTES = 4 * 1024 * 1024  # chunks inserted per transaction
_DELETE_BATCH = 64  # chunks deleted per transaction
_RACE_ATTEMPTS = 20
_LEASE = timedelta(hours=1)  # a write idle this long, by a writer we cannot check, is reclaimed


_NO_METADATA: dict[str, str] = {}


@functools.cache
def _flags_of(bits: int) -> frozenset[Flag]:
    return frozenset(flag for flag, bit in _FLAG_BITS.items() if bits & bit)


class _Raced(Exception):
    """A concurrent write changed the row between our read and our write: try again."""


class SqlStore(DataStore):
    """Items in SQL tables; ``url_or_engine`` is a SQLAlchemy URL or ``Engine``.

    An engine passed in stays the caller's (``close`` does not dispose it); on SQLite it gets
    this store's connection settings (WAL, busy timeout, ``BEGIN IMMEDIATE`` for writes).
    """

    def __init__(
        self,
        url_or_engine: str | sa.Engine,
        *,
        chunk_size: int = 1024 * 1024,
        table_prefix: str = "blobs",
        busy_timeout: float = 10.0,
    ) -> None:
        if isinstance(url_or_engine, str):
            self._start(
                sa.create_engine(url_or_engine), True, chunk_size, table_prefix, busy_timeout
            )
        else:
            self._start(url_or_engine, False, chunk_size, table_prefix, busy_timeout)

    #: The page size a new SQLite file gets: with 64 KiB pages (the largest) a 1 MiB chunk
    #: spans 16 pages, not 256, and reads twice as fast.
    _new_file_page_size: int | None = 65536

    def _start(
        self,
        engine: sa.Engine,
        owns_engine: bool,
        chunk_size: int,
        table_prefix: str,
        busy_timeout: float,
    ) -> None:
        name = f"{type(self).__name__}({engine.url.render_as_string(hide_password=True)!r})"
        try:
            if not isinstance(chunk_size, int) or not 1 <= chunk_size <= _MAX_CHUNK_SIZE:
                raise ValueError(
                    f"chunk_size must be 1 to {_MAX_CHUNK_SIZE} bytes, not {chunk_size}"
                )
            if engine.dialect.name == "sqlite":
                prepare_sqlite(engine, busy_timeout, self._new_file_page_size)
            tables = Tables.define(table_prefix)
            driver = _SqlDriver(engine, chunk_size, tables, name, owns_engine)
        except BaseException:
            if owns_engine:
                engine.dispose()  # its connections would otherwise leak, unclosed
            raise
        super().__init__(driver)
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqlStore:
        return cls(url, **options)

    def vacuum(self) -> int:
        """Remove the chunks of replaced and deleted items and of abandoned writes; returns
        how many versions were removed. Runs on every open too."""
        driver = self._driver
        assert isinstance(driver, _SqlDriver)
        return driver.collect_garbage()


def _now_us() -> int:
    return time.time_ns() // 1000


class _SqlDriver(Driver):
    def __init__(
        self, engine: sa.Engine, chunk_size: int, tables: Tables, name: str, owns_engine: bool
    ) -> None:
        self.engine = engine
        self.chunk_size = chunk_size
        self.tables = tables
        self.queries = Queries(tables, engine.dialect)
        self.name = name
        self._owns_engine = owns_engine
        sqlite = engine.dialect.name == "sqlite"
        # SQLite: BEGIN IMMEDIATE (see prepare_sqlite). Servers: no gap locks for writes, and
        # one snapshot for the whole of a read.
        self._write_options: dict[str, Any] = (
            {"persisty_write": True} if sqlite else {"isolation_level": "READ COMMITTED"}
        )
        self._snapshot_options: dict[str, Any] = (
            {"persisty_snapshot": True} if sqlite else {"isolation_level": "REPEATABLE READ"}
        )
        with database_errors(name):
            create_schema(engine, tables, name)
        self.collect_garbage()

    # Transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, key: str | None = None) -> Iterator[sa.Connection]:
        with database_errors(self.name, key), self.engine.connect() as connection:
            yield connection

    def _race_free(
        self, key: str | None, attempt: Callable[[sa.Connection], T], *, staging: bool = False
    ) -> T:
        """Run ``attempt`` in a write transaction, again if a concurrent writer raced it.
        ``staging``: it writes nothing visible, so its commit need not be durable by itself."""
        with database_errors(self.name, key):
            for _ in range(_RACE_ATTEMPTS):
                try:
                    with self.engine.connect() as connection:
                        connection.execution_options(
                            **self._write_options, persisty_staging=staging
                        )
                        with connection.begin():
                            return attempt(connection)
                except _Raced:
                    continue
                except sa.exc.DBAPIError as error:
                    if not is_conflict(error):
                        raise
        raise TransientError(
            f"gave up after {_RACE_ATTEMPTS} conflicting concurrent writes",
            key=key,
            store=self.name,
        )

    def _write_one(self, statement: sa.Executable) -> int:
        """Run one statement in its own write transaction; the number of rows it changed."""

        def attempt(connection: sa.Connection) -> int:
            return connection.execute(statement).rowcount

        return self._race_free(None, attempt)

    # Rows ---------------------------------------------------------------------------------

    def _where_item(self, namespace: str, key: str) -> sa.ColumnElement[bool]:
        items = self.tables.items
        return sa.and_(items.c.namespace == namespace.encode(), items.c.key == key.encode())

    def _row(self, connection: sa.Connection, namespace: str, key: str) -> sa.Row[Any] | None:
        names = {"namespace": namespace.encode(), "key": key.encode()}
        return connection.execute(self.queries.row, names).first()

    @staticmethod
    def _item_of(row: sa.Row[Any]) -> DataItem:
        return DataItem(
            key=row.key.decode(),
            namespace=row.namespace.decode(),
            size=row.size,
            etag=row.etag,
            content_type=row.content_type,
            updated_at=_EPOCH + timedelta(microseconds=row.updated_us),
            checksum=row.checksum,
            metadata=_NO_METADATA if row.metadata == "{}" else json.loads(row.metadata),
            flags=_flags_of(row.flags),
        )

    def _write_flags(
        self, connection: sa.Connection, namespace: str, key: str, flags: frozenset[Flag]
    ) -> None:
        table = self.tables.flags
        where = sa.and_(table.c.namespace == namespace.encode(), table.c.key == key.encode())
        connection.execute(sa.delete(table).where(where))
        if flags:
            rows = [
                {"namespace": namespace.encode(), "flag": flag.value, "key": key.encode()}
                for flag in flags
            ]
            connection.execute(sa.insert(table), rows)

    # Reading ------------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        row = self._fetch_row(self.queries.fast_row, namespace, key)
        return None if row is None else self._item_of(row)

    def _fetch_row(self, query: Compiled, namespace: str, key: str) -> Any:
        """Run a one-row read on a pooled DBAPI connection, skipping SQLAlchemy's per-statement
        work: for a small item that work costs several times what the database does."""
        values = {"namespace": namespace.encode(), "key": key.encode()}
        with database_errors(self.name, key):
            connection = self.engine.raw_connection()
            try:
                found = self.fetch_rows(connection, query, values)
            finally:
                connection.close()
        return found[0] if found else None

    def fetch_rows(self, connection: Any, query: Compiled, values: dict[str, Any]) -> list[Any]:
        """The rows of ``query`` run on a DBAPI ``connection``, its errors wrapped as
        SQLAlchemy's would be (for ``database_errors``)."""
        cursor = connection.cursor()
        try:
            with self.dbapi_errors(query.sql, values):
                cursor.execute(query.sql, query.parameters(values))
                found = cursor.fetchall()
        finally:
            cursor.close()
        return [query.row_type(*row) for row in found]

    @contextlib.contextmanager
    def dbapi_errors(self, statement: str, values: dict[str, Any]) -> Iterator[None]:
        """Wrap the driver's own errors as SQLAlchemy does, so ``database_errors`` maps them."""
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            yield
        except dbapi_error as error:
            raise sa.exc.DBAPIError.instance(
                statement, values, error, dbapi_error, dialect=self.engine.dialect
            ) from error

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        # One statement fetches the row, and the content too when it fits in one chunk: a
        # small item is read in a single round trip, without holding a connection.
        row = self._fetch_row(self.queries.fast_row_and_only_chunk, namespace, key)
        if row is None:
            raise NotFound("no such item", key=key, store=self.name)
        item = self._item_of(row)
        first, stop = clip_range(item.size, start, end, key, self.name)
        if row.size <= row.chunk_size:
            content = row.data or b""
            if len(content) != row.size:
                raise IntegrityError(
                    "the item's chunk is missing or short", key=key, store=self.name
                )
            return item, BytesRangeRaw(bytes(content), first, stop)
        return self._open_snapshot(namespace, key, start, end)

    def _open_snapshot(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        """A reader of a multi-chunk item that holds a snapshot (and its connection) until it
        is closed, so the version it reads stays whole whatever writers do meanwhile."""
        with database_errors(self.name, key):
            connection = self.engine.connect()
            try:
                connection.execution_options(**self._snapshot_options)
                connection.begin()
                row = self._row(connection, namespace, key)
                if row is None:
                    raise NotFound("no such item", key=key, store=self.name)
                item = self._item_of(row)
                first, stop = clip_range(item.size, start, end, key, self.name)
            except BaseException:
                connection.close()
                raise
        return item, ChunkRangeRaw(self, connection, row, key, first, stop)

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        query = self._matching(sa.select(self.tables.items), namespace, prefix, flag)
        if after is not None:
            query = query.where(self.tables.items.c.key > after.encode())
        query = query.order_by(self.tables.items.c.key).limit(limit)
        with self._reading() as connection:
            return [self._item_of(row) for row in connection.execute(query)]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        query = self._matching(sa.select(sa.func.count()), namespace, prefix, flag)
        with self._reading() as connection:
            return int(connection.scalar(query.select_from(self.tables.items)) or 0)

    def _matching(
        self, query: sa.Select[Any], namespace: str, prefix: str, flag: Flag | None
    ) -> sa.Select[Any]:
        items, flags = self.tables.items, self.tables.flags
        query = query.where(items.c.namespace == namespace.encode())
        if prefix:
            # UTF-8 never contains 0xFF, so every key that starts with prefix sorts below this.
            encoded = prefix.encode()
            query = query.where(items.c.key >= encoded, items.c.key < encoded + b"\xff")
        if flag is not None:
            query = query.join(
                flags,
                sa.and_(
                    flags.c.namespace == items.c.namespace,
                    flags.c.key == items.c.key,
                    flags.c.flag == flag.value,
                ),
            )
        return query

    def namespaces(self) -> list[str]:
        query = sa.select(self.tables.items.c.namespace).distinct()
        with self._reading() as connection:
            return sorted(name.decode() for name in connection.scalars(query))

    # Writing ------------------------------------------------------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        versions = self.tables.versions
        started = sa.insert(versions).values(
            state="writing", owner=local_owner(), touched_us=_now_us()
        )

        def attempt(connection: sa.Connection) -> int:
            primary_key = connection.execute(started).inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])

        return _SqlWriter(self, namespace, key, self._race_free(key, attempt))

    def store_chunks(self, key: str, version_id: int, rows: list[dict[str, Any]]) -> None:
        versions = self.tables.versions

        def attempt(connection: sa.Connection) -> None:
            touched = connection.execute(
                sa.update(versions)
                .where(versions.c.id == version_id, versions.c.state == "writing")
                .values(touched_us=_now_us())
            )
            if touched.rowcount != 1:
                raise self._reclaimed(key)
            connection.execute(sa.insert(self.tables.chunks), rows)

        self._race_free(key, attempt, staging=True)

    def _reclaimed(self, key: str) -> TransientError:
        return TransientError(
            f"this write was idle for more than {_LEASE} and its chunks were reclaimed",
            key=key,
            store=self.name,
        )

    def commit(self, namespace: str, key: str, version_id: int, spec: WriteSpec) -> DataItem:
        items, versions = self.tables.items, self.tables.versions

        def attempt(connection: sa.Connection) -> tuple[DataItem, int | None]:
            row = self._row(connection, namespace, key)
            current = None if row is None else self._item_of(row)
            check_precondition(current, key, self.name, spec.if_match, spec.if_none_match)
            claimed = connection.execute(
                sa.update(versions)
                .where(versions.c.id == version_id, versions.c.state == "writing")
                .values(state="live")
            )
            if claimed.rowcount != 1:
                raise self._reclaimed(key)
            now = _now_us()
            etag = etag_for(spec.checksum)
            # Never earlier than the version it replaces, even if the clock steps back.
            updated_us = now if row is None else max(now, row.updated_us)
            values = {
                "version_id": version_id,
                "size": spec.size,
                "chunk_size": self.chunk_size,
                "etag": etag,
                "checksum": spec.checksum,
                "content_type": spec.content_type,
                "metadata": json.dumps(dict(spec.metadata), sort_keys=True),
                "flags": sum(_FLAG_BITS[flag] for flag in spec.flags),
                "updated_us": updated_us,
            }
            if row is None:
                names = {"namespace": namespace.encode(), "key": key.encode()}
                connection.execute(sa.insert(items).values(**names, **values))
            else:
                self._unlink_version(
                    connection, namespace, key, row, sa.update(items).values(values)
                )
            self._write_flags(connection, namespace, key, spec.flags)
            item = DataItem(
                key=key,
                namespace=namespace,
                size=spec.size,
                etag=etag,
                content_type=spec.content_type,
                updated_at=_EPOCH + timedelta(microseconds=updated_us),
                checksum=spec.checksum,
                metadata=spec.metadata,
                flags=spec.flags,
            )
            return item, None if row is None else row.version_id

        item, replaced = self._race_free(key, attempt)
        if replaced is not None:
            self._remove_version_quietly(replaced)
        return item

    def _unlink_version(
        self,
        connection: sa.Connection,
        namespace: str,
        key: str,
        row: sa.Row[Any],
        statement: sa.Update | sa.Delete,
    ) -> None:
        """Update or delete the item row, only if it still points at the version we read,
        and mark that version garbage."""
        items, versions = self.tables.items, self.tables.versions
        changed = connection.execute(
            statement.where(self._where_item(namespace, key), items.c.version_id == row.version_id)
        )
        if changed.rowcount != 1:
            raise _Raced
        connection.execute(
            sa.update(versions).where(versions.c.id == row.version_id).values(state="garbage")
        )

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        def attempt(connection: sa.Connection) -> int | None:
            row = self._row(connection, namespace, key)
            current = None if row is None else self._item_of(row)
            check_precondition(current, key, self.name, if_match, False)
            if row is None:
                return None
            self._unlink_version(connection, namespace, key, row, sa.delete(self.tables.items))
            self._write_flags(connection, namespace, key, frozenset())
            return int(row.version_id)

        removed = self._race_free(key, attempt)
        if removed is None:
            return False
        self._remove_version_quietly(removed)
        return True

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        bits = sum(_FLAG_BITS[flag] for flag in flags)

        def attempt(connection: sa.Connection) -> None:
            statement = sa.update(self.tables.items).where(self._where_item(namespace, key))
            if connection.execute(statement.values(flags=bits)).rowcount == 0:
                raise NotFound("no such item", key=key, store=self.name)
            self._write_flags(connection, namespace, key, flags)

        self._race_free(key, attempt)

    # Garbage ------------------------------------------------------------------------------

    def discard(self, version_id: int) -> None:
        versions = self.tables.versions
        with contextlib.suppress(Exception):
            self._write_one(
                sa.update(versions)
                .where(versions.c.id == version_id, versions.c.state == "writing")
                .values(state="garbage")
            )
            self.remove_version(version_id)

    def _remove_version_quietly(self, version_id: int) -> None:
        # The write or delete has succeeded; chunks left by a failure here are garbage that
        # the next open or vacuum() removes.
        with contextlib.suppress(Exception):
            self.remove_version(version_id)

    def remove_version(self, version_id: int) -> None:
        """Delete a garbage version's chunks a batch per transaction, then its row."""
        chunks, versions = self.tables.chunks, self.tables.versions
        with self._reading() as connection:
            last = connection.scalar(
                sa.select(sa.func.max(chunks.c.seq)).where(chunks.c.version_id == version_id)
            )
        for first in range(0, -1 if last is None else last + 1, _DELETE_BATCH):
            batch = sa.delete(chunks).where(
                chunks.c.version_id == version_id,
                chunks.c.seq >= first,
                chunks.c.seq < first + _DELETE_BATCH,
            )
            self._write_one(batch)
        self._write_one(sa.delete(versions).where(versions.c.id == version_id))

    def collect_garbage(self) -> int:
        versions = self.tables.versions
        stale_before = _now_us() - _LEASE // timedelta(microseconds=1)
        with self._reading() as connection:
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
                if self._write_one(claim) != 1:
                    continue  # its writer touched it meanwhile
            self.remove_version(row.id)
            removed += 1
        return removed

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


class _SqlWriter(DriverWriter):
    """Buffers up to ``_BATCH_BYTES`` of chunks, then inserts them in one transaction."""

    def __init__(self, driver: _SqlDriver, namespace: str, key: str, version_id: int) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._version_id: int | None = version_id
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
            self._driver.store_chunks(self._key, self._version_id, self._pending)
            self._pending = []
            self._pending_bytes = 0

    def commit(self, spec: WriteSpec) -> DataItem:
        assert self._version_id is not None
        self._flush()
        item = self._driver.commit(self._namespace, self._key, self._version_id, spec)
        self._version_id = None
        return item

    def abort(self) -> None:
        self._pending = []
        if self._version_id is not None:
            version_id, self._version_id = self._version_id, None
            self._driver.discard(version_id)
