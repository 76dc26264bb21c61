"""``SqlStore``: items in SQLite, PostgreSQL or MariaDB/MySQL through SQLAlchemy Core.

Modules, one concept each: ``store`` (the public class and its options), ``_engine``
(engines, timeouts, SQLite settings, fork safety), ``_database`` (transactions and raw reads),
``_errors`` (what a database error means), ``_schema`` (tables and rows), ``_driver`` (the
driver primitives), ``_read`` (the chunk reader), ``_write`` (writes), ``_garbage`` (cleanup).
"""

from __future__ import annotations

from ...registry import require

require("sqlalchemy", extra="sql")

from .store import SqlStore  # noqa: E402

__all__ = ["SqlStore"]
