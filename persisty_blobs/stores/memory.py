"""``MemoryStore``: the reference store. Everything lives in a dict behind one lock."""

from __future__ import annotations

import dataclasses
import io
import threading
from datetime import UTC, datetime

from ..driver import (
    Driver,
    DriverWriter,
    ItemHeader,
    WriteSpec,
    check_precondition,
    clip_range,
    etag_for,
)
from ..errors import NotFound
from ..item import DataItem, Flag
from ..store import DataStore
from ..streams import BytesRangeRaw

__all__ = ["MemoryStore"]

_Entry = tuple[DataItem, bytes]


class MemoryStore(DataStore):
    """Items in this process's memory, gone when it ends. Thread-safe."""

    def __init__(self, *, chunk_size: int = 64 * 1024) -> None:
        super().__init__(_MemoryDriver(chunk_size))

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        """``memory://``: a new, empty store."""
        return cls()


class _MemoryDriver(Driver):
    name = "MemoryStore()"

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

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
            now = datetime.now(UTC)
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
            self._entries[namespace, key] = (item, content)
            return item

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        with self._lock:
            current = self.stat(namespace, key)
            check_precondition(current, key, self.name, if_match, False)
            return self._entries.pop((namespace, key), None) is not None

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        with self._lock:
            items = [
                item
                for (space, key), (item, _) in self._entries.items()
                if space == namespace
                and key.startswith(prefix)
                and (after is None or key > after)
                and (flag is None or flag in item.flags)
            ]
        items.sort(key=lambda item: item.key)
        return items[:limit]

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        with self._lock:
            item, content = self._entry(namespace, key)
            self._entries[namespace, key] = (dataclasses.replace(item, flags=flags), content)

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted({namespace for namespace, _ in self._entries})

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
