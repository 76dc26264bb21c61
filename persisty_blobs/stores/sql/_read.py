"""The SQL store's read path: statements compiled once, and the raw reader of a version's
chunks."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy as sa

from ...errors import IntegrityError, TransientError
from ...streams import HandsOutBytes
from ._database import Compiled, Database
from ._engine import forks, keep_inherited
from ._schema import Tables

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ChunkRangeRaw", "Queries"]

_ROWIDS_PER_QUERY = 64


class Queries:
    """The statements of the read path, built once."""

    def __init__(self, tables: Tables, dialect: sa.Dialect) -> None:
        items, chunks = tables.items, tables.chunks
        self.chunks_table = chunks.name
        this_item = sa.and_(
            items.c.namespace == sa.bindparam("namespace"), items.c.key == sa.bindparam("key")
        )
        self.row = sa.select(items).where(this_item)
        only_chunk = sa.and_(
            chunks.c.version_id == items.c.version_id,
            chunks.c.seq == 0,
            items.c.size <= items.c.chunk_size,
        )
        row_and_only_chunk = (
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
        self.fast_row_and_only_chunk = Compiled(row_and_only_chunk, dialect)

    def item_row(
        self, connection: sa.Connection, namespace: str, key: str, *, lock: bool = False
    ) -> sa.Row[Any] | None:
        """The item's row, read inside ``connection``'s transaction; ``lock``: locked until
        it ends (on servers; SQLite's writers are serialized by ``BEGIN IMMEDIATE``)."""
        names = {"namespace": namespace.encode(), "key": key.encode()}
        query = self.row.with_for_update() if lock else self.row
        return connection.execute(query, names).first()


class ChunkRangeRaw(HandsOutBytes):
    """Bytes ``[start, stop)`` of one version, inside the snapshot transaction that
    ``open_range`` began; closing ends it and returns the connection.

    On SQLite a chunk is read with incremental blob I/O, as much as the caller asks for at a
    time, straight from the database pages; elsewhere (and on SQLCipher, whose driver has no
    blob I/O) the rest of a chunk is fetched with one query. A reader belongs to the process
    that opened it: in a forked child it refuses to read, and closing it leaves the parent's
    connection alone.
    """

    def __init__(
        self,
        database: Database,
        queries: Queries,
        connection: sa.Connection,
        row: sa.Row[Any],
        key: str,
        start: int,
        stop: int,
    ) -> None:
        super().__init__()
        self._database = database
        self._queries = queries
        self._connection = connection
        self._forks = forks.count
        self._dbapi_connection: Any = connection.connection.driver_connection
        self._blob_io = queries.chunk_rowids is not None and hasattr(
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
        if 0 < size <= self._blob_left and self._forks == forks.count:
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
        if self._forks != forks.count:
            raise TransientError(
                "this reader was opened before a fork, by the parent process: open the item "
                "again in this one",
                key=self._key,
                store=self._database.name,
            )
        seq, offset = divmod(self._position, self._chunk_size)
        length = min(self._chunk_size - offset, self._stop - self._position)
        if self._blob_io:
            if self._blob_seq != seq:
                self._open_blob(seq, offset + length)
            count = min(wanted, length)
            try:
                data: bytes = self._blob.read(count)
            except Exception as error:
                self._raise_blob_error(error)
            self._blob_left = length - count
            return data
        found = self._select(seq, offset, length)
        if found is None or len(found) != length:
            raise self._damaged(seq)
        return found if isinstance(found, bytes) else bytes(found)

    def _select(self, seq: int, offset: int, length: int) -> Any:
        queries = self._queries
        values = {"version_id": self._version_id, "seq": seq}
        if offset == 0 and length == self._chunk_size:
            query = queries.chunk
        else:
            query, values = queries.chunk_part, {**values, "first": offset + 1, "length": length}
        found = self._database.fetch_rows(self._connection, query, values, self._key)
        return found[0].data if found else None

    def _open_blob(self, seq: int, needed: int) -> None:
        """Open chunk ``seq`` for blob I/O, positioned at this reader's offset in it."""
        self._close_blob()
        if seq not in self._rowids:
            self._find_rowids(seq)
        rowid = self._rowids.pop(seq, None)
        if rowid is None:
            raise self._damaged(seq)
        try:
            self._blob = self._dbapi_connection.blobopen(
                self._queries.chunks_table, "data", rowid, readonly=True
            )
        except Exception as error:
            self._raise_blob_error(error)
        self._blob_seq = seq
        if len(self._blob) < needed:
            raise self._damaged(seq)
        self._blob.seek(self._position % self._chunk_size)

    def _find_rowids(self, first_seq: int) -> None:
        """The rowids of the next chunks of the range, a batch per query: one query per
        chunk would cost a large read as much as its blob I/O."""
        query = self._queries.chunk_rowids
        assert query is not None
        last_seq = min(first_seq + _ROWIDS_PER_QUERY - 1, (self._stop - 1) // self._chunk_size)
        values = {"version_id": self._version_id, "first_seq": first_seq, "last_seq": last_seq}
        found = self._database.fetch_rows(self._connection, query, values, self._key)
        self._rowids = {row.seq: row.rowid for row in found}

    def _raise_blob_error(self, error: Exception) -> NoReturn:
        """Raise a blob I/O failure mapped onto the error tree, as any database error is."""
        raise self._database.classify(error, self._key) from error

    def _damaged(self, seq: int) -> IntegrityError:
        return IntegrityError(
            f"chunk {seq} of the item is missing or short",
            key=self._key,
            store=self._database.name,
        )

    def _close_blob(self) -> None:
        if self._blob is not None:
            blob, self._blob, self._blob_seq, self._blob_left = self._blob, None, -1, 0
            with contextlib.suppress(Exception):
                blob.close()

    def close(self) -> None:
        if not self.closed:
            self._data = memoryview(b"")
            if self._forks != forks.count:
                keep_inherited((self._blob, self._connection))
            else:
                self._close_blob()
                with contextlib.suppress(Exception):
                    self._connection.close()  # rolls the snapshot transaction back
        super().close()
