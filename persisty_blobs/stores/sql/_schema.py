"""The SQL store's tables, how they are created and versioned, and how a row becomes an item.

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
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ...errors import InvalidArgument, Unsupported
from ...item import DataItem, Entry, Flag
from ...keys import MAX_KEY_BYTES

__all__ = ["SCHEMA_VERSION", "Tables", "create_schema", "entry_of", "flag_bits", "item_of"]

SCHEMA_VERSION = 1
_CREATE_ATTEMPTS = 10
_MYSQL = ("mysql", "mariadb")
# PostgreSQL cuts names at 63 bytes (MySQL refuses past 64); the longest name made from the
# prefix is the index "<prefix>_versions_state".
_LONGEST_SUFFIX = len("_versions_state")
MAX_PREFIX = 63 - _LONGEST_SUFFIX

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLAG_BITS = {flag: 1 << index for index, flag in enumerate(Flag)}
_NO_METADATA: dict[str, str] = {}


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
        if not isinstance(prefix, str) or not prefix.replace("_", "").isalnum():
            raise InvalidArgument(
                f"table_prefix must be ASCII letters, digits and _, not {prefix!r}"
            )
        if not prefix.isascii() or len(prefix) > MAX_PREFIX:
            raise InvalidArgument(
                f"table_prefix must be ASCII and at most {MAX_PREFIX} characters (table names "
                f"are limited to 63), not {len(prefix)}: {prefix!r}"
            )
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


# Rows -------------------------------------------------------------------------------------


@functools.cache
def _flags_of(bits: int) -> frozenset[Flag]:
    return frozenset(flag for flag, bit in _FLAG_BITS.items() if bits & bit)


def flag_bits(flags: frozenset[Flag]) -> int:
    """The ``flags`` column's value for a set of flags."""
    return sum(_FLAG_BITS[flag] for flag in flags)


def updated_at(updated_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=updated_us)


def item_of(row: Any) -> DataItem:
    """The item an ``items`` row describes."""
    return DataItem(
        key=row.key.decode(),
        namespace=row.namespace.decode(),
        size=row.size,
        etag=row.etag,
        content_type=row.content_type,
        updated_at=updated_at(row.updated_us),
        checksum=row.checksum,
        metadata=_NO_METADATA if row.metadata == "{}" else json.loads(row.metadata),
        flags=_flags_of(row.flags),
    )


def entry_of(row: Any) -> Entry:
    """The scan entry of a row with the ``items`` columns ``scan_page`` selects."""
    return Entry(
        key=row.key.decode(),
        size=row.size,
        etag=row.etag,
        updated_at=updated_at(row.updated_us),
        checksum=row.checksum,
        flags=_flags_of(row.flags),
    )


# Creation ---------------------------------------------------------------------------------


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
    # On SQLite, BEGIN IMMEDIATE (see _engine.prepare_sqlite): a deferred transaction that
    # reads and then writes fails at once, without waiting, if another writer went first.
    with engine.connect() as connection:
        connection.execution_options(persisty_write=True)
        with connection.begin():
            yield connection
