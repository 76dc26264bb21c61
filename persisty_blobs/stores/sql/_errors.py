"""The one place that decides what a database error means: which error of the tree it becomes,
and whether it is a lost race that the write should simply run again.

Only what a retry can fix is a ``TransientError``: a lost or refused connection, a timeout, a
lock or deadlock, a server shutting down. Bad credentials are ``PermissionDenied``, a database
that does not exist ``NotFound``, a file that is not a database this key opens
``DecryptionError``; anything else is a plain ``BlobError``. Drivers are told apart by what
their errors carry: SQLite (and SQLCipher) an ``sqlite_errorcode``, PostgreSQL a ``sqlstate``
(or, for a refused login, only the server's message), MySQL and MariaDB a numeric code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import sqlalchemy as sa

from ...errors import (
    BlobError,
    DecryptionError,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    TransientError,
)

__all__ = ["classify", "database_errors", "driver_errors", "is_conflict"]

_SQLITE = {
    3: PermissionDenied,  # SQLITE_PERM
    5: TransientError,  # SQLITE_BUSY
    6: TransientError,  # SQLITE_LOCKED
    8: PermissionDenied,  # SQLITE_READONLY
    11: IntegrityError,  # SQLITE_CORRUPT
    13: QuotaExceeded,  # SQLITE_FULL
    23: PermissionDenied,  # SQLITE_AUTH
    26: DecryptionError,  # SQLITE_NOTADB: not a database, or not one this key opens
}

_POSTGRES = {
    "28000": PermissionDenied,  # invalid authorization (an unknown role)
    "28P01": PermissionDenied,  # invalid password
    "42501": PermissionDenied,  # insufficient privilege
    "3D000": NotFound,  # the database does not exist
    "53100": QuotaExceeded,  # disk full
    "54000": InvalidArgument,  # program limit exceeded
    "55P03": TransientError,  # lock not available
    "57014": TransientError,  # statement timeout, or cancelled
}
_POSTGRES_TRANSIENT_CLASSES = ("08", "40", "53", "57P")  # connection, rollback, resources, shutdown
# A login the server refuses arrives before any result, so without a sqlstate: its message.
# Any other refusal (starting up, shutting down, too many clients) passes with time.
_POSTGRES_LOGIN = (
    ("password authentication failed", PermissionDenied),
    ("no pg_hba.conf entry", PermissionDenied),
    ("permission denied", PermissionDenied),
    ('role "', PermissionDenied),  # role "x" does not exist
    ('database "', NotFound),  # database "x" does not exist
)

# libpq's refusals of the connection settings themselves, before any connection is tried.
_LIBPQ_SETTINGS = re.compile(r'invalid connection option|invalid URI|invalid \w+ value: "')

_MYSQL = {
    1021: QuotaExceeded,  # disk full
    1044: PermissionDenied,  # access denied to the database
    1045: PermissionDenied,  # access denied (password)
    1049: NotFound,  # unknown database
    1059: InvalidArgument,  # identifier too long
    1103: InvalidArgument,  # incorrect table name (too long)
    1114: QuotaExceeded,  # table full
    1142: PermissionDenied,  # command denied
    1143: PermissionDenied,  # column command denied
    1227: PermissionDenied,  # needs a privilege
    1698: PermissionDenied,  # access denied (no such user)
    1040: TransientError,  # too many connections
    1053: TransientError,  # server shutdown
    1205: TransientError,  # lock wait timeout
    1213: TransientError,  # deadlock: also a conflict, see is_conflict
    1927: TransientError,  # connection killed
    1969: TransientError,  # MariaDB max_statement_time exceeded
    3024: TransientError,  # MySQL max_execution_time exceeded
}
_MYSQL_DEADLOCK = 1213
# Client-side codes: 0 (PyMySQL's "connection closed") and 2000-2999 (can't connect, lost it).
_MYSQL_CLIENT = range(2000, 3000)

# The DBAPI classes of failures outside any statement (PEP 249), by name: every driver has its
# own classes of them.
_DBAPI_CONNECTION_ERRORS = ("OperationalError", "InterfaceError")

_DEADLOCK_SQLSTATES = ("40P01", "40001")  # PostgreSQL deadlock, serialization failure


def _original(error: BaseException) -> BaseException:
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def _kind(error: BaseException) -> type[BlobError]:
    original = _original(error)
    if isinstance(original, MemoryError):
        return DecryptionError
    if isinstance(original, OSError):  # a socket's: refused, reset, timed out
        return TransientError
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return _SQLITE.get(sqlite_code & 0xFF, BlobError)
    code = original.args[0] if original.args else None
    if isinstance(code, int):  # MySQL and MariaDB
        if code in _MYSQL:
            return _MYSQL[code]
        return TransientError if code == 0 or code in _MYSQL_CLIENT else BlobError
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):  # PostgreSQL
        if sqlstate in _POSTGRES:
            return _POSTGRES[sqlstate]
        return TransientError if sqlstate.startswith(_POSTGRES_TRANSIENT_CLASSES) else BlobError
    text = str(original)
    if _LIBPQ_SETTINGS.search(text):
        return InvalidArgument  # the URL's own settings: no retry changes them
    if "FATAL:" in text:
        fatal = text.split("FATAL:", 1)[1]
        return next((kind for marker, kind in _POSTGRES_LOGIN if marker in fatal), TransientError)
    # No code at all: the connection itself failed (refused, cut, timed out, closed).
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return TransientError
    operational = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
    if isinstance(error, operational) or any(
        kind.__name__ in _DBAPI_CONNECTION_ERRORS for kind in type(original).__mro__
    ):
        return TransientError
    return BlobError


def classify(error: BaseException, store: str, key: str | None = None) -> BlobError:
    """``error`` (SQLAlchemy's, a DBAPI driver's, or a socket's) as an error of the tree."""
    kind = _kind(error)
    detail = str(_original(error)).strip().replace("\n", " ")
    if kind is DecryptionError:
        message = "the file is not a database this key opens (wrong key, or not a database)"
    elif kind is NotFound:
        message = f"the database does not exist: {detail}"
    elif kind is IntegrityError:
        message = f"the database file is damaged: {detail}"
    else:
        message = f"database error: {detail}"
    return kind(message, key=key, store=store)


def driver_errors(dialect: sa.Dialect) -> tuple[type[BaseException], ...]:
    """What the dialect's driver raises, besides SQLAlchemy's errors: its DBAPI errors, socket
    errors, and on SQLite ``MemoryError``, SQLCipher's SQLITE_NOMEM for a page that failed to
    decrypt (another process rekeyed or replaced the file)."""
    errors: tuple[type[BaseException], ...] = (dialect.loaded_dbapi.Error, OSError)
    return (*errors, MemoryError) if dialect.name == "sqlite" else errors


@contextlib.contextmanager
def database_errors(
    store: str, errors: tuple[type[BaseException], ...], key: str | None = None
) -> Iterator[None]:
    """Map SQLAlchemy's and the driver's ``errors`` onto the error tree."""
    caught: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError, *errors)
    try:
        yield
    except BlobError:
        raise
    except caught as error:
        raise classify(error, store, key) from error


def is_conflict(error: sa.exc.DBAPIError) -> bool:
    """A unique violation or deadlock: another writer got there first, run the write again."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    original = _original(error)
    code = original.args[0] if original.args else None
    return code == _MYSQL_DEADLOCK or getattr(original, "sqlstate", None) in _DEADLOCK_SQLSTATES
