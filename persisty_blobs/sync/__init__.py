"""The replication engine: a 3-way replicator between any two stores, its state database,
and ``BlobManager``, the app-facing client over it."""

from ..registry import require

require("sqlalchemy", extra="sync")  # the state database, before anything imports it

from .manager import BlobManager  # noqa: E402
from .model import (  # noqa: E402
    Action,
    ActionKind,
    ItemState,
    Priority,
    ProgressEvent,
    Status,
    SyncAborted,
    SyncReport,
)
from .replicator import Replicator  # noqa: E402
from .state import SyncState  # noqa: E402

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
