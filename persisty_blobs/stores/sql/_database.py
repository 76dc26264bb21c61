"""The SQL store's way into its database: transactions, the raw one-statement reads of the
fast path, and every error on the way mapped onto the error tree (``_errors``)."""

from __future__ import annotations

import collections
import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

from ...errors import BlobError, TransientError
from ._errors import classify, database_errors, driver_errors, is_conflict

__all__ = ["Compiled", "Database", "Raced"]

T = TypeVar("T")

_RACE_ATTEMPTS = 20


class Raced(Exception):
    """A concurrent write changed the row between our read and our write: try again."""


class Compiled:
    """A select compiled once for one dialect, on first use, to run on a DBAPI cursor:
    building and keying a SQLAlchemy statement costs more than SQLite takes to run it."""

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


class Database:
    """An engine, the store's name for messages, and how the store runs statements on it."""

    def __init__(self, engine: sa.Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.dialect = engine.dialect
        self._driver_errors = driver_errors(engine.dialect)
        sqlite = engine.dialect.name == "sqlite"
        # SQLite: BEGIN IMMEDIATE (see _engine.prepare_sqlite). Servers: no gap locks for
        # writes, and one snapshot for the whole of a read.
        self._write_options: dict[str, Any] = (
            {"persisty_write": True} if sqlite else {"isolation_level": "READ COMMITTED"}
        )
        self._snapshot_options: dict[str, Any] = (
            {"persisty_snapshot": True} if sqlite else {"isolation_level": "REPEATABLE READ"}
        )

    def errors(self, key: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Map every database error raised inside onto the error tree."""
        return database_errors(self.name, self._driver_errors, key)

    @contextlib.contextmanager
    def reading(self, key: str | None = None) -> Iterator[sa.Connection]:
        with self.errors(key), self.engine.connect() as connection:
            yield connection

    def snapshot(self, key: str) -> sa.Connection:
        """A connection inside a transaction that sees one snapshot until it is closed."""
        with self.errors(key):
            connection = self.engine.connect()
            try:
                connection.execution_options(**self._snapshot_options)
                connection.begin()
            except BaseException:
                connection.close()
                raise
        return connection

    def race_free(
        self, key: str | None, attempt: Callable[[sa.Connection], T], *, staging: bool = False
    ) -> T:
        """Run ``attempt`` in a write transaction, again if a concurrent writer raced it.
        ``staging``: it writes nothing visible, so its commit need not be durable by itself."""
        with self.errors(key):
            for tries in range(_RACE_ATTEMPTS):
                try:
                    with self.engine.connect() as connection:
                        connection.execution_options(
                            **self._write_options, persisty_staging=staging
                        )
                        with connection.begin():
                            return attempt(connection)
                except Raced:
                    pass
                except sa.exc.DBAPIError as error:
                    if not is_conflict(error):
                        raise
                # A random pause, longer after each loss, so that racing writers spread out.
                time.sleep(random.uniform(0, 0.001 * (tries + 1)))
        raise TransientError(
            f"gave up after {_RACE_ATTEMPTS} conflicting concurrent writes",
            key=key,
            store=self.name,
        )

    def write_one(self, statement: sa.Executable) -> int:
        """Run one statement in its own write transaction; the number of rows it changed."""

        def attempt(connection: sa.Connection) -> int:
            return connection.execute(statement).rowcount

        return self.race_free(None, attempt)

    def fetch_one(self, query: Compiled, values: dict[str, Any], key: str) -> Any:
        """The first row of a read run on a pooled DBAPI connection, skipping SQLAlchemy's
        per-statement work: for a small item that work costs several times the query."""
        with self.errors(key):
            connection = self.engine.raw_connection()
        try:
            found = self.fetch_rows(connection, query, values, key)
        finally:
            connection.close()
        return found[0] if found else None

    def fetch_rows(
        self,
        connection: sa.Connection | PoolProxiedConnection,
        query: Compiled,
        values: dict[str, Any],
        key: str,
    ) -> list[Any]:
        """The rows of ``query`` run on ``connection``'s DBAPI connection. A connection that
        the error broke is invalidated (with the pool's others, as SQLAlchemy does), so the
        next call connects afresh."""
        proxied = connection.connection if isinstance(connection, sa.Connection) else connection
        try:
            cursor = proxied.cursor()
            try:
                cursor.execute(query.sql, query.parameters(values))
                found = cursor.fetchall()
            finally:
                cursor.close()
        except self._driver_errors as error:
            if self.dialect.is_disconnect(cast(Any, error), proxied.dbapi_connection, None):
                self.engine.pool._invalidate(proxied, error, _checkin=False)
                connection.invalidate(error)
            raise classify(error, self.name, key) from error
        return [query.row_type(*row) for row in found]

    def classify(self, error: BaseException, key: str | None) -> BlobError:
        return classify(error, self.name, key)
