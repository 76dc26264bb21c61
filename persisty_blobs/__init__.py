"""persisty-blobs: store and replicate binary data behind one small interface."""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    BlobError,
    ContentTypeNotAllowed,
    DecryptionError,
    IntegrityError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidFlags,
    InvalidKey,
    InvalidMetadata,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    QuotaExceeded,
    RangeNotSatisfiable,
    TooLarge,
    TransientError,
    Unsupported,
)
from .factory import DataStoreFactory, UploadForm
from .item import DataItem, Entry, Flag
from .registry import open_store
from .store import DataStore

if TYPE_CHECKING:
    from .crypto import EncryptedStore, Keyring

__all__ = [
    "AlreadyExists",
    "BlobError",
    "ContentTypeNotAllowed",
    "DataItem",
    "DataStore",
    "DataStoreFactory",
    "DecryptionError",
    "EncryptedStore",
    "Entry",
    "Flag",
    "IntegrityError",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidFlags",
    "InvalidKey",
    "InvalidMetadata",
    "Keyring",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "QuotaExceeded",
    "RangeNotSatisfiable",
    "TooLarge",
    "TransientError",
    "Unsupported",
    "UploadForm",
    "open_store",
]
__version__ = "0.1.0"

# Loaded when first named, with the cryptography package they need.
_LAZY = {"EncryptedStore": ".crypto", "Keyring": ".crypto"}
# Subpackages reachable as attributes after a bare ``import persisty_blobs`` (``pb.stores``).
_SUBPACKAGES = {"stores", "sync", "testing"}


def __dir__() -> list[str]:
    # help() and completion list the lazy names too.
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
