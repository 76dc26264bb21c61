"""``MemoryStore``: the reference store. Everything lives in a dict behind one lock, beside a
sorted list of each namespace's keys, so a page of a listing costs a bisection and the page."""

from __future__ import annotations

import bisect
import dataclasses
import io
import os
import threading
import weakref
from typing import Any

from .. import driver as driver_module
from ..driver import (
    Capabilities,
    Driver,
    DriverWriter,
    ItemHeader,
    WriteSpec,
    check_precondition,
    clip_range,
    etag_for,
)
from ..errors import InvalidArgument, InvalidArgumentType, NotFound
from ..item import DataItem, Flag
from ..store import DataStore
from ..streams import BytesRangeRaw

__all__ = ["MemoryStore"]

_Entry = tuple[DataItem, bytes]


class MemoryStore(DataStore):
    """Items in this process's memory, gone when it ends. Thread-safe."""

    def __init__(self, *, chunk_size: int = 64 * 1024) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise InvalidArgumentType(f"chunk_size must be an int, not {type(chunk_size).__name__}")
        if chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be at least 1, not {chunk_size}")
        super().__init__(_MemoryDriver(chunk_size))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        """``memory://``: a new, empty store; ``options`` are the constructor's (a URL that
        says more, ``memory://?chunk_size=1``, would have it ignored: refused)."""
        if url.lower() != "memory://":
            raise InvalidArgument(
                f"a memory store's URL is memory:// alone, not {url!r}: pass options as "
                "keyword arguments"
            )
        return cls(**options)


#: Every store of this process: a forked child gives each a new lock (a thread of the
#: parent may have held the old one, and that thread does not exist in the child).
_drivers: weakref.WeakSet[_MemoryDriver] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for driver in list(_drivers):
        driver.renew_lock()


os.register_at_fork(after_in_child=_new_locks_in_child)


class _MemoryDriver(Driver):
    name = "MemoryStore()"
    # A forked child gets a copy of the items, not the parent's store.
    capabilities = Capabilities(
        server_side_copy=True,
        content_in_process=True,
        shared_across_processes=False,
        reads_wait=False,
        writes_wait=False,
    )

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        # Each namespace's keys in ascending order: str order is UTF-8 byte order.
        self._keys: dict[str, list[str]] = {}
        _drivers.add(self)

    def renew_lock(self) -> None:
        self._lock = threading.Lock()

    def stat(self, namespace: str, key: str) -> DataItem | None:
        entry = self._entries.get((namespace, key))
        return None if entry is None else entry[0]

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        item, content = self._entry(namespace, key)
        first, stop = clip_range(item.size, start, end, key, self.name)
        return item, BytesRangeRaw(content, first, stop)

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return _MemoryWriter(self, namespace, key)

    def store(self, namespace: str, key: str, content: bytes, spec: WriteSpec) -> DataItem:
        with self._lock:
            current = self.stat(namespace, key)
            check_precondition(current, key, self.name, spec.if_match, spec.if_none_match)
            now = driver_module.utc_now()
            item = DataItem(
                key=key,
                namespace=namespace,
                size=len(content),
                etag=etag_for(spec.checksum),
                content_type=spec.content_type,
                # Never earlier than the version it replaces, even if the clock steps back.
                updated_at=now if current is None else max(now, current.updated_at),
                checksum=spec.checksum,
                metadata=spec.metadata,
                flags=spec.flags,
            )
            if current is None:
                # Appending is the cheap case: a sync writes keys in ascending order.
                bisect.insort(self._keys.setdefault(namespace, []), key)
            self._entries[namespace, key] = (item, content)
            return item

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        with self._lock:
            current = self.stat(namespace, key)
            check_precondition(current, key, self.name, if_match, False)
            if current is None:
                return False
            del self._entries[namespace, key]
            keys = self._keys[namespace]
            del keys[bisect.bisect_left(keys, key)]
            if not keys:
                del self._keys[namespace]
            return True

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        items: list[DataItem] = []
        with self._lock:
            keys = self._keys.get(namespace, [])
            index = bisect.bisect_left(keys, prefix)
            if after is not None:
                index = max(index, bisect.bisect_right(keys, after))
            # Keys under a prefix are contiguous in sorted order.
            while len(items) < limit and index < len(keys) and keys[index].startswith(prefix):
                item = self._entries[namespace, keys[index]][0]
                if flag is None or flag in item.flags:
                    items.append(item)
                index += 1
        return items

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        with self._lock:
            item, content = self._entry(namespace, key)
            self._entries[namespace, key] = (dataclasses.replace(item, flags=flags), content)

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem:
        item, content = self._entry(namespace, src_key)
        assert item.checksum is not None
        spec = WriteSpec(
            content_type=item.content_type,
            metadata=item.metadata,
            flags=item.flags,
            size=item.size,
            checksum=item.checksum,
            if_match=None,
            if_none_match=False,
        )
        # Content is immutable bytes: the copy shares it.
        return self.store(namespace, dst_key, content, spec)

    def _entry(self, namespace: str, key: str) -> _Entry:
        entry = self._entries.get((namespace, key))
        if entry is None:
            raise NotFound("no such item", key=key, store=self.name)
        return entry


class _MemoryWriter(DriverWriter):
    def __init__(self, driver: _MemoryDriver, namespace: str, key: str) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._chunks: list[bytes] = []

    def write(self, chunk: memoryview) -> None:
        self._chunks.append(bytes(chunk))

    def commit(self, spec: WriteSpec) -> DataItem:
        content = b"".join(self._chunks)
        self._chunks.clear()
        return self._driver.store(self._namespace, self._key, content, spec)

    def abort(self) -> None:
        self._chunks.clear()
