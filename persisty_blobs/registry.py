"""``open_store(url)``: a store from a URL. Stores are imported only when their scheme is used,
so ``import persisty_blobs`` never imports an optional dependency."""

from __future__ import annotations

import importlib
import os
import urllib.parse
from types import ModuleType
from typing import Any

from .errors import InvalidArgumentType, Unsupported
from .store import DataStore

__all__ = ["open_store", "require"]

# scheme -> "module:class"; the class has ``from_url(url, **options)``.
_SCHEMES: dict[str, str] = {
    "file": "persisty_blobs.stores.directory:DirectoryStore",
    "http": "persisty_blobs.stores.http:HttpStore",
    "https": "persisty_blobs.stores.http:HttpStore",
    "mariadb": "persisty_blobs.stores.sql:SqlStore",
    "mariadb+pymysql": "persisty_blobs.stores.sql:SqlStore",
    "memory": "persisty_blobs.stores.memory:MemoryStore",
    "mysql": "persisty_blobs.stores.sql:SqlStore",
    "mysql+pymysql": "persisty_blobs.stores.sql:SqlStore",
    "postgresql": "persisty_blobs.stores.sql:SqlStore",
    "postgresql+psycopg": "persisty_blobs.stores.sql:SqlStore",
    "s3": "persisty_blobs.stores.s3:S3Store",
    "sqlcipher": "persisty_blobs.stores.sqlcipher:SqlCipherStore",
    "sqlite": "persisty_blobs.stores.sql:SqlStore",
}


def store_class_path(url: str) -> str:
    """``module:Class`` of the store a URL names; ``Unsupported`` for an unknown scheme."""
    if not isinstance(url, str):
        raise InvalidArgumentType(f"a store URL is a str, not {type(url).__name__}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    target = _SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
        hint = f"; a folder is file://{os.path.abspath(url)}" if "://" not in url else ""
        raise Unsupported(f"no store for the URL scheme {scheme!r} (known: {known}){hint}")
    return target


def open_store(url: str, **options: Any) -> DataStore:
    """Open the store a URL names, e.g. ``memory://`` or ``file:///srv/blobs``."""
    module_name, class_name = store_class_path(url).split(":")
    store_class = getattr(importlib.import_module(module_name), class_name)
    store: DataStore = store_class.from_url(url, **options)
    return store


def require(module: str, *, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unsupported(
            f"this needs the module {module!r}: pip install 'persisty-blobs[{extra}]'"
        ) from exc
