"""persisty-blobs: store and replicate binary data behind one small interface."""

from .errors import (
    AlreadyExists,
    BlobError,
    ContentTypeNotAllowed,
    DecryptionError,
    IntegrityError,
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
from .item import DataItem, Flag
from .registry import open_store
from .store import DataStore

__all__ = [
    "AlreadyExists",
    "BlobError",
    "ContentTypeNotAllowed",
    "DataItem",
    "DataStore",
    "DataStoreFactory",
    "DecryptionError",
    "Flag",
    "IntegrityError",
    "InvalidFlags",
    "InvalidKey",
    "InvalidMetadata",
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
