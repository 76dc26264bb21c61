"""The layer base: a driver that forwards every primitive to the driver of an inner store.

A layer (OpenDAL's term) wraps a store and is itself a store: ``EncryptedStore`` now, and a
retry, metrics or namespace-view layer the same way. It subclasses ``ForwardingDriver`` and
overrides only the primitives it changes; everything else reaches the inner store unchanged.
"""

from __future__ import annotations

import io

from .driver import Capabilities, Driver, DriverWriter, ItemHeader
from .errors import InvalidArgument
from .item import DataItem, Entry, Flag
from .store import DataStore

__all__ = ["ForwardingDriver"]


class ForwardingDriver(Driver):
    """Forwards to ``inner``'s driver. ``inner`` must be a whole store, not a namespace view:
    the layer's own ``namespace(name)`` views pass the name down."""

    def __init__(self, inner: DataStore, name: str) -> None:
        if inner.namespace_name:
            raise InvalidArgument(
                "wrap the store itself, not a namespace view: Layer(store).namespace(name) "
                "is the layered view of that namespace"
            )
        self.inner: Driver = inner._driver
        self.name = f"{name}({self.inner.name})"
        self.chunk_size = self.inner.chunk_size
        self.capabilities: Capabilities = self.inner.capabilities

    def stat(self, namespace: str, key: str) -> DataItem | None:
        return self.inner.stat(namespace, key)

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        return self.inner.open_range(namespace, key, start, end)

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return self.inner.new_writer(namespace, key, header)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        return self.inner.delete(namespace, key, if_match)

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        return self.inner.list_page(namespace, prefix, after, limit, flag)

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        return self.inner.scan_page(namespace, prefix, after, limit)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self.inner.set_flags(namespace, key, flags)

    def namespaces(self) -> list[str]:
        return self.inner.namespaces()

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem | None:
        return self.inner.copy(namespace, src_key, dst_key)

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        return self.inner.count(namespace, prefix, flag)

    def close(self) -> None:
        self.inner.close()
