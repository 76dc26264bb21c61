"""``updated_at`` is a file's mtime: the conversions both ways."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

__all__ = ["mtime_ns_of", "updated_at"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def mtime_ns_of(moment: datetime) -> int:
    """A file mtime that reads back as ``moment`` (``updated_at`` has microseconds)."""
    return (moment - _EPOCH) // _MICROSECOND * 1000


def updated_at(file_stat: os.stat_result) -> datetime:
    return _EPOCH + _MICROSECOND * (file_stat.st_mtime_ns // 1000)
