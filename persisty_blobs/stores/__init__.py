"""The stores: one module each. Importing this package imports no optional dependency: the
SQL, SQLCipher, S3 and HTTP stores load (with their dependency) when first named."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .directory import DirectoryStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from .http import HttpStore
    from .s3 import S3Store
    from .sql import SqlStore
    from .sqlcipher import SqlCipherStore

__all__ = ["DirectoryStore", "HttpStore", "MemoryStore", "S3Store", "SqlCipherStore", "SqlStore"]

_LAZY = {
    "HttpStore": ".http",
    "S3Store": ".s3",
    "SqlStore": ".sql",
    "SqlCipherStore": ".sqlcipher",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
