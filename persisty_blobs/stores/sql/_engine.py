"""How the SQL store gets its engine and keeps it safe: connect and read timeouts for servers,
SQLite's connection settings and transaction kinds, a fresh pool in a forked child, and the
checks made before the first query (an SQLite file's folder, MySQL's packet limit)."""

from __future__ import annotations

import os
import weakref
from typing import Any

import sqlalchemy as sa

from ...errors import InvalidArgument, NotFound, Unsupported

__all__ = [
    "check_chunk_size",
    "check_sqlite_path",
    "forks",
    "keep_inherited",
    "make_engine",
    "prepare_sqlite",
    "survive_fork",
]

_MYSQL = ("mysql", "mariadb")
# A chunk travels inside an INSERT as an escaped literal: up to two bytes per byte, plus the
# statement around it.
_STATEMENT_OVERHEAD = 1024
# The drivers the ``sql`` extra installs, for URLs that name none.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def make_engine(url: str, connect_timeout: float, read_timeout: float) -> sa.Engine:
    """An engine for ``url``; a server's connections time out, connecting after
    ``connect_timeout`` seconds, a statement waiting for the server after ``read_timeout``."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as error:
        raise InvalidArgument(f"not a database URL: {error}") from error
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {"connect_timeout": max(1, round(connect_timeout))}
    elif backend in _MYSQL:
        connect_args = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": read_timeout,
        }
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
    except ImportError as error:
        raise Unsupported(
            f"{parsed.drivername}:// needs {error.name!r}: pip install 'persisty-blobs[sql]'"
        ) from error
    except sa.exc.ArgumentError as error:  # no such dialect, or a bad option
        raise InvalidArgument(f"cannot open {parsed.drivername}://: {error}") from error
    if engine.dialect.driver == "psycopg":
        from ._postgres import DeadlineConnection

        @sa.event.listens_for(engine, "do_connect")
        def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
            connection = DeadlineConnection.connect(*cargs, **cparams)
            connection.read_timeout = read_timeout
            return connection

    return engine


def check_sqlite_path(engine: sa.Engine, store: str) -> None:
    """Refuse an SQLite URL whose file cannot be, saying which path it names and how to
    write an absolute one (SQLAlchemy's ``sqlite:///`` is relative, ``sqlite:////`` absolute)."""
    database = engine.url.database
    if database in (None, "", ":memory:"):
        raise InvalidArgument(
            "SqlStore needs an SQLite file; use memory:// for an in-memory store", store=store
        )
    assert database is not None
    path = os.path.abspath(database)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        hint = (
            ""
            if os.path.isabs(database)
            else f" ({database!r} is relative to the working directory {os.getcwd()!r}: an "
            f"absolute path takes four slashes, sqlite:////{path.lstrip('/')})"
        )
        raise NotFound(
            f"cannot open the SQLite file {path!r}: its folder does not exist{hint}", store=store
        )


def prepare_sqlite(engine: sa.Engine, busy_timeout: float, page_size: int | None) -> None:
    """WAL, a busy timeout, durable commits, incremental vacuum on a new file, and our own
    BEGIN: ``BEGIN IMMEDIATE`` for writes, so a transaction that reads and then writes never
    fails half way on a lock upgrade."""

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # Only a new file takes these, before its first table (an old one: see vacuum()).
        if page_size is not None:
            cursor.execute(f"PRAGMA page_size = {page_size}")
        cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
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


def check_chunk_size(connection: sa.Connection, chunk_size: int, store: str) -> None:
    """On MySQL and MariaDB, refuse a chunk size whose INSERT the server's packet limit would
    refuse: it would fail as a lost connection on every write, so callers would retry it."""
    if connection.dialect.name not in _MYSQL:
        return
    limit = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    largest = (limit - _STATEMENT_OVERHEAD) // 2
    if chunk_size > largest:
        raise InvalidArgument(
            f"chunk_size {chunk_size} is too large for this server: its max_allowed_packet is "
            f"{limit} bytes, and a chunk's INSERT can take twice the chunk plus "
            f"{_STATEMENT_OVERHEAD}; use chunk_size <= {largest} or raise max_allowed_packet",
            store=store,
        )


# Fork -------------------------------------------------------------------------------------


class _Forks:
    """How many times this process is a forked child of the one that opened a connection."""

    count = 0


forks = _Forks()
_engines: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
# What a child inherited: kept, never closed nor collected, since closing a connection in the
# child would end the parent's session on the socket they share.
_inherited: list[object] = []


def survive_fork(engine: sa.Engine) -> None:
    """Give ``engine`` a new, empty pool in a forked child (SQLAlchemy's advice for
    ``os.fork``): parent and child must never share a pooled connection."""
    _engines.add(engine)


def keep_inherited(thing: object) -> None:
    """Hold a connection the parent opened, so the child never closes it."""
    _inherited.append(thing)


def _after_fork_in_child() -> None:
    forks.count += 1
    for engine in list(_engines):
        _inherited.append(engine.pool)
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
