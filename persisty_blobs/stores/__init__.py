"""The stores: one module each. Importing this package imports no optional dependency."""

from .directory import DirectoryStore
from .memory import MemoryStore

__all__ = ["DirectoryStore", "MemoryStore"]
