"""The stores: one module each. Importing this package imports no optional dependency: the
SQL, SQLCipher and S3 stores load (with their dependency) when first named."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .directory import DirectoryStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from .s3 import S3Store
    from .sql import SqlStore
    from .sqlcipher import SqlCipherStore

__all__ = ["DirectoryStore", "MemoryStore", "S3Store", "SqlCipherStore", "SqlStore"]

_LAZY = {"S3Store": ".s3", "SqlStore": ".sql", "SqlCipherStore": ".sqlcipher"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
