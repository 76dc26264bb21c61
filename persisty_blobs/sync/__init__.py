"""The replication engine: a 3-way replicator between any two stores, its state database,
and ``BlobManager``, the app-facing client over it."""

from .manager import BlobManager
from .model import (
    Action,
    ActionKind,
    ItemState,
    Priority,
    ProgressEvent,
    Status,
    SyncAborted,
    SyncReport,
)
from .replicator import Replicator
from .state import SyncState

__all__ = [
    "Action",
    "ActionKind",
    "BlobManager",
    "ItemState",
    "Priority",
    "ProgressEvent",
    "Replicator",
    "Status",
    "SyncAborted",
    "SyncReport",
    "SyncState",
]
