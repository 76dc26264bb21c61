"""``SqlCipherStore``: a ``SqlStore`` in an SQLite file encrypted by SQLCipher.

It is the SQL store itself over an engine whose connections come from ``sqlcipher3``: every
page of the database, its WAL and its journal is encrypted (AES-256, HMAC-SHA512 per page), so
keys, metadata and content are unreadable on disk. The key never appears in a URL, a repr or
a log line: it is given as an option and applied with ``PRAGMA key`` on each new connection.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from ..errors import InvalidArgument, InvalidArgumentType
from ..registry import require

require("sqlalchemy", extra="sqlcipher")
require("sqlcipher3", extra="sqlcipher")

import sqlalchemy as sa  # noqa: E402
import sqlcipher3.dbapi2 as sqlcipher  # type: ignore[import-untyped]  # noqa: E402

from .sql import SqlStore  # noqa: E402
from .sql._driver import SqlDriver  # noqa: E402

__all__ = ["SqlCipherStore"]

_RAW_KEY_BYTES = 32


def _key_pragma(key: str | bytes) -> str:
    """The value of ``PRAGMA key``: a passphrase (SQLCipher derives the key with PBKDF2) or a
    raw 256-bit key, used as is."""
    if isinstance(key, str):
        if not key:
            raise InvalidArgument("the passphrase must not be empty")
        return "'" + key.replace("'", "''") + "'"
    if not isinstance(key, bytes):
        raise InvalidArgumentType(f"key must be a passphrase str or {_RAW_KEY_BYTES} raw bytes")
    if len(key) != _RAW_KEY_BYTES:
        raise InvalidArgument(f"a raw key must be {_RAW_KEY_BYTES} bytes, not {len(key)}")
    return f"\"x'{key.hex()}'\""


class SqlCipherStore(SqlStore):
    """Items in the SQLCipher database at ``path``, created if missing, opened with ``key``.

    A wrong key, or a file that is not such a database, raises ``DecryptionError``.
    """

    # SQLCipher's pages are its cipher pages: keep its default (4 KiB), which any SQLCipher
    # 4 database made elsewhere also has.
    _new_file_page_size = None

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str | bytes,
        *,
        chunk_size: int = 1024 * 1024,
        table_prefix: str = "blobs",
        busy_timeout: float = 10.0,
    ) -> None:
        self._path = os.path.abspath(os.fspath(path))
        self._key_pragma = _key_pragma(key)
        self._busy_timeout = busy_timeout
        # module= makes SQLAlchemy recognise (and wrap) sqlcipher3's exceptions.
        engine = sa.create_engine(
            f"sqlite:///{self._path}", module=sqlcipher, creator=self._connect
        )
        self._start(engine, True, chunk_size, table_prefix, busy_timeout)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqlCipherStore:
        """``sqlcipher:///absolute/path.db`` with ``key=...`` as an option, never in the URL."""
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc or parts.query or not os.path.isabs(path):
            raise InvalidArgument(
                "a SQLCipher store URL is sqlcipher:///absolute/path.db; pass key= as an option"
            )
        if "key" not in options:
            raise InvalidArgument("open_store('sqlcipher:///...') needs the key= option")
        return cls(path, options.pop("key"), **options)

    def _connect(self) -> Any:
        connection = sqlcipher.connect(
            self._path, timeout=self._busy_timeout, check_same_thread=False
        )
        try:
            # SQLCipher prints a line per failed page decryption to stderr; errors reach the
            # caller as DecryptionError instead.
            connection.execute("PRAGMA cipher_log_level = NONE")
            connection.execute(f"PRAGMA key = {self._key_pragma}")
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except BaseException:
            connection.close()
            raise
        return connection

    def rekey(self, new_key: str | bytes) -> None:
        """Re-encrypt the whole database under ``new_key``, in place. Readers and writers of
        this store must be idle; other processes must reopen with the new key."""
        pragma = _key_pragma(new_key)
        driver = self._driver
        assert isinstance(driver, SqlDriver)
        with driver.database.errors(), self.engine.connect() as connection:
            connection.exec_driver_sql(f"PRAGMA rekey = {pragma}")
        self._key_pragma = pragma
        self.engine.dispose()  # pooled connections were opened with the old key
