"""``SqlStore``: items in a SQL database through SQLAlchemy Core, content cut into chunks.

SQLite (``sqlite:///path.db``) is the embedded default; PostgreSQL (``postgresql+psycopg://``)
and MariaDB/MySQL (``mysql+pymysql://``) are the servers to grow into. Tables: ``_schema``;
writes: ``_write``; reads: ``_driver`` and ``_read``; errors: ``_errors``.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from ..._urls import without_secret_parameters
from ...errors import InvalidArgument, InvalidArgumentType
from ...store import DataStore
from ._database import Database
from ._driver import SqlDriver
from ._engine import check_sqlite_path, make_engine, prepare_sqlite, survive_fork
from ._schema import Tables

__all__ = ["SqlStore"]

_MAX_CHUNK_SIZE = 16 * 1024 * 1024


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentType(f"{name} must be a number of seconds, not {value!r}")
    if not value > 0:
        raise InvalidArgument(f"{name} must be more than 0 seconds, not {value!r}")
    return float(value)


class SqlStore(DataStore):
    """Items in SQL tables; ``url_or_engine`` is a SQLAlchemy URL or ``Engine``.

    On a server, connecting gives up after ``connect_timeout`` seconds and a statement that
    waits longer than ``read_timeout`` for the server fails (both ``TransientError``); on SQLite
    a write waits up to ``busy_timeout`` for another writer's lock. An engine passed in stays
    the caller's (``close`` does not dispose it, and its connect arguments, so its timeouts,
    are its own); on SQLite it gets this store's connection settings (WAL, busy timeout,
    ``BEGIN IMMEDIATE`` for writes). In a forked child every engine gets a new pool.
    """

    def __init__(
        self,
        url_or_engine: str | sa.Engine,
        *,
        chunk_size: int = 1024 * 1024,
        table_prefix: str = "blobs",
        busy_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if isinstance(url_or_engine, sa.Engine):
            self._start(url_or_engine, False, chunk_size, table_prefix, busy_timeout)
            return
        if not isinstance(url_or_engine, str):
            raise InvalidArgumentType(
                f"url_or_engine must be a URL or an Engine, not {type(url_or_engine).__name__}"
            )
        engine = make_engine(
            url_or_engine,
            _positive(connect_timeout, "connect_timeout"),
            _positive(read_timeout, "read_timeout"),
        )
        self._start(engine, True, chunk_size, table_prefix, busy_timeout)

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
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            # Absolute: a sync state tells stores apart by their names, and one relative
            # path from two working folders names two files.
            url = url.set(database=os.path.abspath(url.database))
        shown = without_secret_parameters(url.render_as_string(hide_password=True))
        other_tables = "" if table_prefix == "blobs" else f", table_prefix={table_prefix!r}"
        name = f"{type(self).__name__}({shown!r}{other_tables})"
        try:
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
                raise InvalidArgumentType(f"chunk_size must be an int, not {chunk_size!r}")
            if not 1 <= chunk_size <= _MAX_CHUNK_SIZE:
                raise InvalidArgument(
                    f"chunk_size must be 1 to {_MAX_CHUNK_SIZE} bytes, not {chunk_size}"
                )
            tables = Tables.define(table_prefix)
            if engine.dialect.name == "sqlite":
                check_sqlite_path(engine, name)
                prepare_sqlite(
                    engine, _positive(busy_timeout, "busy_timeout"), self._new_file_page_size
                )
            survive_fork(engine)
            driver = SqlDriver(Database(engine, name), tables, chunk_size, owns_engine)
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
        """Remove the chunks of replaced and deleted items and of abandoned writes (each open
        does that too), then on SQLite give the freed pages back to the file system, so the
        file shrinks; returns how many versions were removed. A file made before this release
        is rewritten once (a full ``VACUUM``) to turn incremental vacuum on. Servers reuse the
        freed space for new rows themselves."""
        driver = self._driver
        assert isinstance(driver, SqlDriver)
        return driver.vacuum()
