"""The SQL store's driver: the primitives of ``driver.Driver`` over the tables of ``_schema``.

Reads of a small item take one statement on a pooled DBAPI connection; a multi-chunk item is
read inside a snapshot transaction (``_read.ChunkRangeRaw``); listings and scans take one
query per page. Writes are in ``_write``, the removal of what they leave behind in
``_garbage``.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import sqlalchemy as sa

from ...driver import Capabilities, Driver, DriverWriter, ItemHeader, clip_range
from ...errors import IntegrityError, NotFound
from ...item import DataItem, Entry, Flag
from ...streams import BytesRangeRaw
from ._database import Database
from ._engine import check_chunk_size
from ._garbage import collect_garbage, reclaim_space
from ._read import ChunkRangeRaw, Queries
from ._schema import Tables, create_schema, entry_of, item_of
from ._write import SqlWriter, Writes

__all__ = ["SqlDriver"]


class SqlDriver(Driver):
    capabilities = Capabilities(
        nested_keys=True,
        presign=False,
        server_side_copy=False,
        flags_in_listing=True,
        checksums_in_listing=True,
        content_in_process=False,
        local_clock=True,
        shared_across_processes=True,
    )

    def __init__(
        self, database: Database, tables: Tables, chunk_size: int, owns_engine: bool
    ) -> None:
        self.database = database
        self.name = database.name
        if database.dialect.name == "sqlite":
            self.capabilities = dataclasses.replace(self.capabilities, forks_while_busy=False)
        self.chunk_size = chunk_size
        self.tables = tables
        self.queries = Queries(tables, database.dialect)
        self._writes = Writes(database, tables, self.queries, chunk_size)
        self._owns_engine = owns_engine
        with database.errors():
            create_schema(database.engine, tables, self.name)
            with database.engine.connect() as connection:
                check_chunk_size(connection, chunk_size, self.name)
        self.collect_garbage()

    # Reading ------------------------------------------------------------------------------

    def _values(self, namespace: str, key: str) -> dict[str, Any]:
        return {"namespace": namespace.encode(), "key": key.encode()}

    def stat(self, namespace: str, key: str) -> DataItem | None:
        row = self.database.fetch_one(self.queries.fast_row, self._values(namespace, key), key)
        return None if row is None else item_of(row)

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        # One statement fetches the row, and the content too when it fits in one chunk: a
        # small item is read in a single round trip, without holding a connection.
        row = self.database.fetch_one(
            self.queries.fast_row_and_only_chunk, self._values(namespace, key), key
        )
        if row is None:
            raise NotFound("no such item", key=key, store=self.name)
        item = item_of(row)
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
        connection = self.database.snapshot(key)
        try:
            with self.database.errors(key):
                row = self.queries.item_row(connection, namespace, key)
            if row is None:
                raise NotFound("no such item", key=key, store=self.name)
            item = item_of(row)
            first, stop = clip_range(item.size, start, end, key, self.name)
        except BaseException:
            connection.close()
            raise
        raw = ChunkRangeRaw(self.database, self.queries, connection, row, key, first, stop)
        return item, raw

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        query = self._page(sa.select(self.tables.items), namespace, prefix, after, limit, flag)
        with self.database.reading() as connection:
            return [item_of(row) for row in connection.execute(query)]

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        columns = self.tables.items.c
        listed = sa.select(
            columns.key,
            columns.size,
            columns.etag,
            columns.updated_us,
            columns.checksum,
            columns.flags,
        )
        query = self._page(listed, namespace, prefix, after, limit, None)
        with self.database.reading() as connection:
            return [entry_of(row) for row in connection.execute(query)]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        query = self._matching(sa.select(sa.func.count()), namespace, prefix, flag)
        with self.database.reading() as connection:
            return int(connection.scalar(query.select_from(self.tables.items)) or 0)

    def _page(
        self,
        query: sa.Select[Any],
        namespace: str,
        prefix: str,
        after: str | None,
        limit: int,
        flag: Flag | None,
    ) -> sa.Select[Any]:
        query = self._matching(query, namespace, prefix, flag)
        if after is not None:
            query = query.where(self.tables.items.c.key > after.encode())
        return query.order_by(self.tables.items.c.key).limit(limit)

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
        with self.database.reading() as connection:
            return sorted(name.decode() for name in connection.scalars(query))

    # Writing ------------------------------------------------------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return SqlWriter(self._writes, namespace, key)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        return self._writes.delete(namespace, key, if_match)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self._writes.set_flags(namespace, key, flags)

    # Upkeep -------------------------------------------------------------------------------

    def collect_garbage(self) -> int:
        return collect_garbage(self.database, self.tables)

    def vacuum(self) -> int:
        removed = self.collect_garbage()
        reclaim_space(self.database)
        return removed

    def close(self) -> None:
        if self._owns_engine:
            self.database.engine.dispose()
