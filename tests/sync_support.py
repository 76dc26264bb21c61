"""What the sync tests share: stores with faults injected by a real layer, and helpers."""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Callable

from persisty_blobs import DataStore
from persisty_blobs.driver import DriverWriter, ItemHeader
from persisty_blobs.item import DataItem, Entry, Flag
from persisty_blobs.layer import ForwardingDriver
from persisty_blobs.stores.memory import MemoryStore

Fault = Callable[[str, str], BaseException | None]


class _FaultyDriver(ForwardingDriver):
    """Raises what ``fault(operation, key)`` returns before forwarding ("read", "write",
    "delete", "flags", "list", "stat"); counts reads and writes per key."""

    def __init__(self, inner: DataStore, fault: Fault) -> None:
        super().__init__(inner, "Faulty")
        # A remote's calls wait on its network: a sync overlaps them.
        self.capabilities = dataclasses.replace(
            inner.capabilities, reads_wait=True, writes_wait=True
        )
        self.fault = fault
        self.lock = threading.Lock()
        self.reads: dict[str, int] = {}
        self.writes: dict[str, int] = {}

    def _check(self, operation: str, key: str) -> None:
        error = self.fault(operation, key)
        if error is not None:
            raise error

    def stat(self, namespace: str, key: str) -> DataItem | None:
        self._check("stat", key)
        return super().stat(namespace, key)

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        self._check("read", key)
        with self.lock:
            self.reads[key] = self.reads.get(key, 0) + 1
        return super().open_range(namespace, key, start, end)

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        self._check("write", key)
        with self.lock:
            self.writes[key] = self.writes.get(key, 0) + 1
        return super().new_writer(namespace, key, header)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        self._check("delete", key)
        return super().delete(namespace, key, if_match)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self._check("flags", key)
        super().set_flags(namespace, key, flags)

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        self._check("list", prefix)
        return super().scan_page(namespace, prefix, after, limit)

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        self._check("list", prefix)
        return super().list_page(namespace, prefix, after, limit, flag)


class Faulty(DataStore):
    """``inner`` with faults injected: the failures a real remote has, on demand."""

    def __init__(self, inner: DataStore | None = None, fault: Fault | None = None) -> None:
        self.fault: Fault = fault or (lambda operation, key: None)
        super().__init__(_FaultyDriver(inner or MemoryStore(), self._fault))

    def _fault(self, operation: str, key: str) -> BaseException | None:
        return self.fault(operation, key)

    @property
    def counts(self) -> _FaultyDriver:
        assert isinstance(self._driver, _FaultyDriver)
        return self._driver


def contents(store: DataStore) -> dict[tuple[str, str], bytes]:
    """Every item of every namespace: (namespace, key) -> content."""
    found = {}
    for namespace in store.namespaces():
        view = store.namespace(namespace)
        for entry in view.scan():
            found[namespace, entry.key] = view.read_bytes(entry.key)
    return found
