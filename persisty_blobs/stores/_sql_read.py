"""The SQL store's read path: statements compiled once, and the raw reader of a version's
chunks."""

from __future__ import annotations

import collections
import contextlib
import functools
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from ..errors import IntegrityError
from ..streams import HandsOutBytes
from ._sql_schema import Tables, database_errors

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .sql import _SqlDriver

__all__ = ["ChunkRangeRaw", "Compiled", "Queries"]

_ROWIDS_PER_QUERY = 64


class Queries:
    """The statements of the read path, built once: building and keying a SQLAlchemy
    statement costs more than SQLite takes to run it."""

    def __init__(self, tables: Tables, dialect: sa.Dialect) -> None:
        items, chunks = tables.items, tables.chunks
        this_item = sa.and_(
            items.c.namespace == sa.bindparam("namespace"), items.c.key == sa.bindparam("key")
        )
        self.row = sa.select(items).where(this_item)
        only_chunk = sa.and_(
            chunks.c.version_id == items.c.version_id,
            chunks.c.seq == 0,
            items.c.size <= items.c.chunk_size,
        )
        self.row_and_only_chunk = (
            sa.select(items, chunks.c.data).outerjoin(chunks, only_chunk).where(this_item)
        )
        this_chunk = sa.and_(
            chunks.c.version_id == sa.bindparam("version_id"), chunks.c.seq == sa.bindparam("seq")
        )
        self.chunk = Compiled(sa.select(chunks.c.seq, chunks.c.data).where(this_chunk), dialect)
        part = sa.func.substr(chunks.c.data, sa.bindparam("first"), sa.bindparam("length"))
        self.chunk_part = Compiled(
            sa.select(chunks.c.seq, part.label("data")).where(this_chunk), dialect
        )
        rowid: sa.Label[int] = sa.literal_column("rowid").label("rowid")
        these_chunks = sa.and_(
            chunks.c.version_id == sa.bindparam("version_id"),
            chunks.c.seq.between(sa.bindparam("first_seq"), sa.bindparam("last_seq")),
        )
        self.chunk_rowids = (
            Compiled(sa.select(chunks.c.seq, rowid).where(these_chunks), dialect)
            if dialect.name == "sqlite"
            else None
        )
        self.fast_row = Compiled(self.row, dialect)
        self.fast_row_and_only_chunk = Compiled(self.row_and_only_chunk, dialect)


class Compiled:
    """A select compiled once for one dialect, on first use, to run on a DBAPI cursor."""

    def __init__(self, query: sa.Select[Any], dialect: sa.Dialect) -> None:
        self._query = query
        self._dialect = dialect
        self.row_type = collections.namedtuple("_Row", list(query.selected_columns.keys()))  # type: ignore[misc]

    @functools.cached_property
    def _compiled(self) -> SQLCompiler:
        return self._query.compile(dialect=self._dialect)

    @functools.cached_property
    def sql(self) -> str:
        return self._compiled.string

    def parameters(self, values: dict[str, Any]) -> Any:
        named = self._compiled.construct_params(values)
        order = self._compiled.positiontup
        return named if order is None else tuple(named[name] for name in order)


class ChunkRangeRaw(HandsOutBytes):
    """Bytes ``[start, stop)`` of one version, inside the snapshot transaction that
    ``open_range`` began; closing ends it and returns the connection.

    On SQLite a chunk is read with incremental blob I/O, as much as the caller asks for at a
    time, straight from the database pages; elsewhere (and on SQLCipher, whose driver has no
    blob I/O) the rest of a chunk is fetched with one query.
    """

    def __init__(
        self,
        driver: _SqlDriver,
        connection: sa.Connection,
        row: sa.Row[Any],
        key: str,
        start: int,
        stop: int,
    ) -> None:
        super().__init__()
        self._driver = driver
        self._connection = connection
        self._dbapi_connection: Any = connection.connection.driver_connection
        self._blob_io = driver.queries.chunk_rowids is not None and hasattr(
            self._dbapi_connection, "blobopen"
        )
        self._blob: Any = None
        self._blob_seq = -1
        self._blob_left = 0  # of this range, in the open blob after its position
        self._rowids: dict[int, int] = {}
        self._version_id = row.version_id
        self._chunk_size = row.chunk_size
        self._key = key
        self._start = self._position = start
        self._stop = stop
        self._data = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self.filled_a_buffer = True
        if self._position >= self._stop:
            return 0
        with memoryview(buffer) as view, view.cast("B") as target:
            if not self._data:
                self._data = memoryview(self._fetch(len(target)))
            count = min(len(target), len(self._data))
            target[:count] = self._data[:count]
        self._data = self._data[count:]
        self._position += count
        return count

    def tell(self) -> int:
        return self._position - self._start

    def read(self, size: int = -1) -> bytes:
        # The path of nearly every read of a large item, kept to one call into the driver.
        if 0 < size <= self._blob_left:
            try:
                data: bytes = self._blob.read(size)
            except Exception as error:
                self._raise_blob_error(error)
            self._blob_left -= size
            self._position += size
            return data
        if size is None or size < 0:
            return self.readall()
        if self._position >= self._stop or size == 0:
            return b""
        if self._data:
            data = bytes(self._data[:size])
            self._data = self._data[len(data) :]
        else:
            data = self._fetch(size)
            if len(data) > size:  # a whole chunk came back from a SELECT: keep the rest
                self._data = memoryview(data)[size:]
                data = data[:size]
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        # RawIOBase's would read 8 KiB at a time; read_bytes() lands here.
        parts = [bytes(self._data)]
        self._position += len(self._data)
        self._data = memoryview(b"")
        while self._position < self._stop:
            parts.append(self._fetch(self._chunk_size))
            self._position += len(parts[-1])
        return b"".join(parts)

    def _fetch(self, wanted: int) -> bytes:
        """Up to ``wanted`` bytes from the current position, within one chunk."""
        seq, offset = divmod(self._position, self._chunk_size)
        length = min(self._chunk_size - offset, self._stop - self._position)
        if self._blob_io:
            if self._blob_seq != seq:
                with database_errors(self._driver.name, self._key):
                    self._open_blob(seq, offset + length)
            count = min(wanted, length)
            try:
                data: bytes = self._blob.read(count)
            except Exception as error:
                self._raise_blob_error(error)
            self._blob_left = length - count
            return data
        with database_errors(self._driver.name, self._key):
            found = self._select(seq, offset, length)
        if found is None or len(found) != length:
            raise self._damaged(seq)
        return found if isinstance(found, bytes) else bytes(found)

    def _select(self, seq: int, offset: int, length: int) -> Any:
        queries = self._driver.queries
        values = {"version_id": self._version_id, "seq": seq}
        if offset == 0 and length == self._chunk_size:
            query = queries.chunk
        else:
            query, values = queries.chunk_part, {**values, "first": offset + 1, "length": length}
        found = self._driver.fetch_rows(self._connection.connection, query, values)
        return found[0].data if found else None

    def _open_blob(self, seq: int, needed: int) -> None:
        """Open chunk ``seq`` for blob I/O, positioned at this reader's offset in it."""
        self._close_blob()
        if seq not in self._rowids:
            self._find_rowids(seq)
        rowid = self._rowids.pop(seq, None)
        if rowid is None:
            raise self._damaged(seq)
        driver = self._driver
        with driver.dbapi_errors("blobopen", {"version_id": self._version_id, "seq": seq}):
            self._blob = self._dbapi_connection.blobopen(
                driver.tables.chunks.name, "data", rowid, readonly=True
            )
        self._blob_seq = seq
        if len(self._blob) < needed:
            raise self._damaged(seq)
        self._blob.seek(self._position % self._chunk_size)

    def _find_rowids(self, first_seq: int) -> None:
        """The rowids of the next chunks of the range, a batch per query: one query per
        chunk would cost a large read as much as its blob I/O."""
        query = self._driver.queries.chunk_rowids
        assert query is not None
        last_seq = min(first_seq + _ROWIDS_PER_QUERY - 1, (self._stop - 1) // self._chunk_size)
        values = {"version_id": self._version_id, "first_seq": first_seq, "last_seq": last_seq}
        found = self._driver.fetch_rows(self._connection.connection, query, values)
        self._rowids = {row.seq: row.rowid for row in found}

    def _raise_blob_error(self, error: Exception) -> NoReturn:
        """Raise a blob read's failure mapped onto the error tree, as any database error is."""
        with (
            database_errors(self._driver.name, self._key),
            self._driver.dbapi_errors("blob read", {"seq": self._blob_seq}),
        ):
            raise error from None

    def _damaged(self, seq: int) -> IntegrityError:
        return IntegrityError(
            f"chunk {seq} of the item is missing or short", key=self._key, store=self._driver.name
        )

    def _close_blob(self) -> None:
        if self._blob is not None:
            blob, self._blob, self._blob_seq, self._blob_left = self._blob, None, -1, 0
            with contextlib.suppress(Exception):
                blob.close()

    def close(self) -> None:
        if not self.closed:
            self._data = memoryview(b"")
            self._close_blob()
            with contextlib.suppress(Exception):
                self._connection.close()  # rolls the snapshot transaction back
        super().close()
