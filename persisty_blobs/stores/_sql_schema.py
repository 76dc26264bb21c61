"""The SQL store's tables, how they are created and versioned, and how database errors map onto
the error tree.

Keys and namespace names are stored as their UTF-8 bytes (BLOB, BYTEA, VARBINARY), so every
backend compares them byte by byte: the listing order of DESIGN.md whatever the collation, and
no PAD SPACE surprise on MySQL, where ``'a'`` and ``'a '`` are equal strings.

Tables (``blobs`` is the default ``table_prefix``):

- ``blobs_items``: one row per live item, pointing at the version that holds its content.
- ``blobs_versions``: one row per written content; ``state`` is ``writing`` (not yet
  committed: ``owner`` and ``touched_us`` tell whether its writer is still alive), ``live``
  (an item points at it) or ``garbage`` (its chunks are being removed).
- ``blobs_chunks``: ``(version_id, seq) -> data``, the content cut into ``chunk_size`` pieces.
- ``blobs_flags``: ``(namespace, flag, key)``, the index behind ``list(flag=...)``.
- ``blobs_schema``: the schema version, so that later releases can migrate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._liveness import local_owner, owner_is_gone
from ..errors import (
    BlobError,
    DecryptionError,
    PermissionDenied,
    QuotaExceeded,
    TransientError,
    Unsupported,
)
from ..keys import MAX_KEY_BYTES
from ..registry import require

require("sqlalchemy", extra="sql")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.dialects import mysql  # noqa: E402

__all__ = [
    "SCHEMA_VERSION",
    "Tables",
    "create_schema",
    "database_errors",
    "local_owner",
    "owner_is_gone",
]

SCHEMA_VERSION = 1
_CREATE_ATTEMPTS = 10
_MYSQL = ("mysql", "mariadb")

# Transient conditions that a driver reports as a generic error, recognised by their text
# (SQLite) or code (MySQL: 1205 lock wait timeout, 1213 deadlock, 2006/2013 connection lost).
_TRANSIENT_TEXT = ("database is locked", "database table is locked", "busy")
_MYSQL_TRANSIENT_CODES = {1205, 1213, 2006, 2013}
_NOT_A_DATABASE = ("file is not a database", "not a database", "malformed")


def _binary(length: int) -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.VARBINARY(length), *_MYSQL)


def _id_type() -> sa.types.TypeEngine[int]:
    # On SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclass(frozen=True)
class Tables:
    metadata: sa.MetaData
    schema: sa.Table
    items: sa.Table
    versions: sa.Table
    chunks: sa.Table
    flags: sa.Table

    @classmethod
    def define(cls, prefix: str) -> Tables:
        if not prefix.replace("_", "").isalnum() or not prefix.isascii():
            raise ValueError(f"table_prefix must be ASCII letters, digits and _, not {prefix!r}")
        metadata = sa.MetaData()
        options: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
        schema = sa.Table(
            f"{prefix}_schema",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("version", sa.Integer, nullable=False),
            **options,
        )
        items = sa.Table(
            f"{prefix}_items",
            metadata,
            sa.Column("namespace", _binary(MAX_KEY_BYTES), primary_key=True),
            sa.Column("key", _binary(MAX_KEY_BYTES), primary_key=True),
            sa.Column("version_id", sa.BigInteger, nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("chunk_size", sa.Integer, nullable=False),
            sa.Column("etag", sa.String(64), nullable=False),
            sa.Column("checksum", sa.String(80), nullable=True),
            sa.Column("content_type", sa.Text, nullable=False),
            sa.Column("metadata", sa.Text, nullable=False),  # JSON, ASCII-escaped
            sa.Column("flags", sa.Integer, nullable=False),  # bit i = i-th Flag
            sa.Column("updated_us", sa.BigInteger, nullable=False),  # µs since the epoch, UTC
            **options,
        )
        versions = sa.Table(
            f"{prefix}_versions",
            metadata,
            sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("owner", sa.String(200), nullable=True),
            sa.Column("touched_us", sa.BigInteger, nullable=False),
            sa.Index(f"{prefix}_versions_state", "state"),
            **options,
        )
        chunks = sa.Table(
            f"{prefix}_chunks",
            metadata,
            sa.Column("version_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("data", sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)),
            **options,
        )
        flags = sa.Table(
            f"{prefix}_flags",
            metadata,
            sa.Column("namespace", _binary(MAX_KEY_BYTES), primary_key=True),
            sa.Column("flag", sa.String(16), primary_key=True),
            sa.Column("key", _binary(MAX_KEY_BYTES), primary_key=True),
            **options,
        )
        return cls(metadata, schema, items, versions, chunks, flags)


def create_schema(engine: sa.Engine, tables: Tables, store: str) -> None:
    """Create the tables if missing and check the schema version. Safe when several processes
    start at once: the loser of a CREATE race looks again and skips what now exists (MySQL's
    DDL is not transactional, so each race settles one table at a time)."""
    found = _schema_version(engine, tables)
    if found is None:  # a new database: the slow path, run once
        _create_tables(engine, tables)
        found = _schema_version(engine, tables)
    if found != SCHEMA_VERSION:
        raise Unsupported(
            f"the database holds schema version {found}; this release reads {SCHEMA_VERSION}",
            store=store,
        )


def _schema_version(engine: sa.Engine, tables: Tables) -> int | None:
    """The recorded schema version; None if there is none yet, or no table to read it from
    (and if the error was anything else, creating the tables raises it again)."""
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.select(tables.schema.c.version))
    except sa.exc.DBAPIError:
        return None


def _create_tables(engine: sa.Engine, tables: Tables) -> None:
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with _writing(engine) as connection:
                tables.metadata.create_all(connection, checkfirst=True)
            break
        except sa.exc.DBAPIError as error:
            # PostgreSQL reports a lost race as a unique violation, MySQL and SQLite by name.
            lost_race = isinstance(error, sa.exc.IntegrityError) or "already exists" in str(error)
            if not lost_race or attempt == _CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    with contextlib.suppress(sa.exc.IntegrityError), _writing(engine) as connection:
        if connection.scalar(sa.select(tables.schema.c.version)) is None:
            connection.execute(tables.schema.insert().values(id=1, version=SCHEMA_VERSION))


@contextlib.contextmanager
def _writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    # On SQLite, BEGIN IMMEDIATE (see _sql_connect.prepare_sqlite): a deferred transaction
    # that reads and then writes fails at once, without waiting, if another writer went first.
    with engine.connect() as connection:
        connection.execution_options(persisty_write=True)
        with connection.begin():
            yield connection


@contextlib.contextmanager
def database_errors(store: str, key: str | None = None) -> Iterator[None]:
    """Map SQLAlchemy and driver errors onto the error tree."""
    try:
        yield
    except BlobError:
        raise
    except sa.exc.TimeoutError as error:  # no free connection in the pool
        raise TransientError(f"database busy: {error}", key=key, store=store) from error
    except sa.exc.DBAPIError as error:
        raise _mapped(error, store, key) from error
    except sa.exc.SQLAlchemyError as error:
        raise BlobError(f"database error: {error}", key=key, store=store) from error


def _mapped(error: sa.exc.DBAPIError, store: str, key: str | None) -> BlobError:
    text = str(error.orig).lower()
    code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    message = f"database error: {error.orig}"
    if any(marker in text for marker in _NOT_A_DATABASE):
        return DecryptionError(
            "the file is not a database this key opens (wrong key, or not a database)",
            key=key,
            store=store,
        )
    if "disk is full" in text or "disk full" in text:
        return QuotaExceeded(message, key=key, store=store)
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return PermissionDenied(message, key=key, store=store)
    if (
        error.connection_invalidated
        or any(marker in text for marker in _TRANSIENT_TEXT)
        or code in _MYSQL_TRANSIENT_CODES
        or isinstance(error, sa.exc.OperationalError)
    ):
        return TransientError(message, key=key, store=store)
    return BlobError(message, key=key, store=store)
