"""Conformance: content round trips, item fields, missing keys, ranges and the reader API."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .. import driver as driver_module
from ..errors import NotFound, RangeNotSatisfiable
from ..store import DataStore
from ._support import payload, pieces, sha256

SIZES: dict[str, Callable[[int], int]] = {
    "empty": lambda chunk: 0,
    "one": lambda chunk: 1,
    "chunk-1": lambda chunk: chunk - 1,
    "chunk": lambda chunk: chunk,
    "chunk+1": lambda chunk: chunk + 1,
    "3chunks+7": lambda chunk: 3 * chunk + 7,
}


def _generator(data: bytes) -> Iterator[bytes]:
    yield from pieces(data, 7919)


SOURCES: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "binary-file": io.BytesIO,
    "generator": _generator,
}


class ContentTests:
    @pytest.mark.parametrize("size_name", list(SIZES))
    @pytest.mark.parametrize("source", list(SOURCES))
    def test_round_trip(self, store: DataStore, size_name: str, source: str) -> None:
        data = payload(SIZES[size_name](store.chunk_size), seed=len(size_name))
        item = store.put("round/trip.bin", SOURCES[source](data))
        assert item.size == len(data)
        assert item.checksum == sha256(data)
        assert store.read_bytes("round/trip.bin") == data
        stored = store.get("round/trip.bin")
        assert stored is not None
        assert (stored.size, stored.etag, stored.checksum) == (item.size, item.etag, item.checksum)

    def test_item_fields(self, store: DataStore) -> None:
        data = payload(5000)
        item = store.put("fields/doc.bin", data, metadata={"Owner": "ada", "x-tag": "ü"})
        assert item.key == "fields/doc.bin"
        assert item.namespace == ""
        assert item.size == 5000
        assert isinstance(item.etag, str)
        assert item.etag
        assert item.checksum == sha256(data)
        assert dict(item.metadata) == {"owner": "ada", "x-tag": "ü"}
        assert item.flags == frozenset()
        assert item.updated_at.tzinfo is not None
        assert item.updated_at.utcoffset() == timedelta(0)
        stored = store.get("fields/doc.bin")
        assert stored is not None
        for field in ("key", "namespace", "size", "etag", "checksum", "content_type", "flags"):
            assert getattr(stored, field) == getattr(item, field), field
        assert dict(stored.metadata) == dict(item.metadata)
        assert abs(stored.updated_at - item.updated_at) < timedelta(seconds=2)

    def test_etag_changes_with_content(self, store: DataStore) -> None:
        first = store.put("etag", b"one")
        second = store.put("etag", b"two")
        assert first.etag != second.etag
        stored = store.get("etag")
        assert stored is not None
        assert stored.etag == second.etag

    def test_content_type_given_guessed_and_default(self, store: DataStore) -> None:
        given = store.put("given.bin", b"{}", content_type="application/json; charset=utf-8")
        assert given.content_type == "application/json; charset=utf-8"
        assert store.put("guessed/photo.png", b"png").content_type == "image/png"
        assert store.put("guessed/page.html", b"<p>").content_type == "text/html"
        assert store.put("no-extension", b"?").content_type == "application/octet-stream"
        for key, expected in (
            ("given.bin", "application/json; charset=utf-8"),
            ("guessed/photo.png", "image/png"),
            ("no-extension", "application/octet-stream"),
        ):
            stored = store.get(key)
            assert stored is not None
            assert stored.content_type == expected

    def test_updated_at_is_utc_and_now(self, store: DataStore) -> None:
        before = store.put("clock", b"1")
        after = store.put("clock", b"2")
        assert after.updated_at >= before.updated_at
        assert after.updated_at.tzinfo is not None
        assert after.updated_at.utcoffset() == timedelta(0)
        assert abs(after.updated_at - datetime.now(UTC)) < timedelta(minutes=5)

    def test_updated_at_never_goes_back_when_the_clock_does(
        self, store: DataStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if not store.capabilities.local_clock:
            pytest.skip("updated_at comes from a clock outside this process (capabilities)")
        now = datetime.now(UTC) + timedelta(days=1)
        monkeypatch.setattr(driver_module, "utc_now", lambda: now)
        first = store.put("clock", b"1")
        # local_clock promises that the store stamps updated_at with driver.utc_now.
        assert abs(first.updated_at - now) < timedelta(seconds=1), first.updated_at
        now -= timedelta(hours=1)
        second = store.put("clock", b"2")
        with store.writer("clock") as writer:
            writer.write(b"3")
        assert writer.item is not None
        store.put("other", b"x")
        copied = store.copy("other", "clock")
        stamps = [first.updated_at, second.updated_at, writer.item.updated_at, copied.updated_at]
        assert stamps == sorted(stamps), stamps
        stored = store.get("clock")
        assert stored is not None
        assert stored.updated_at >= first.updated_at

    def test_missing_key(self, store: DataStore) -> None:
        assert store.get("missing") is None
        assert store.exists("missing") is False
        assert store.delete("missing") is False
        calls: list[Callable[[], object]] = [
            lambda: store.open("missing"),
            lambda: store.read_bytes("missing"),
            lambda: store.copy("missing", "elsewhere"),
            lambda: store.set_flags("missing", ["pending"]),
            lambda: store.get_flags("missing"),
        ]
        for call in calls:
            with pytest.raises(NotFound, match="missing") as caught:
                call()
            assert isinstance(caught.value, KeyError)
        assert store.get("elsewhere") is None

    def test_ranges(self, store: DataStore) -> None:
        data = payload(100)
        store.put("ranged", data)
        cases = [(10, None), (10, 15), (0, 0), (0, 100), (99, None), (100, None), (50, 1000)]
        for start, end in cases:
            assert store.read_bytes("ranged", start, end) == data[start:end], (start, end)
        with pytest.raises(RangeNotSatisfiable):
            store.read_bytes("ranged", 101)
        store.put("empty", b"")
        assert store.read_bytes("empty", 0) == b""
        with pytest.raises(RangeNotSatisfiable):
            store.read_bytes("empty", 1)

    def test_ranges_across_chunks(self, store: DataStore) -> None:
        chunk = store.chunk_size
        data = payload(3 * chunk + 7, seed=3)
        store.put("spanning", data)
        for start, end in [(chunk - 3, chunk + 3), (1, 3 * chunk + 6), (2 * chunk, None)]:
            assert store.read_bytes("spanning", start, end) == data[start:end]

    def test_reader_api(self, store: DataStore) -> None:
        data = b"first line\nsecond line\n" + payload(300, seed=4)
        item = store.put("lines.txt", data)
        with store.open("lines.txt") as reader:
            assert reader.item.etag == item.etag
            assert reader.read(5) == data[:5]
            buffer = bytearray(6)
            assert reader.readinto(buffer) == 6
            assert bytes(buffer) == data[5:11]
            assert reader.read() == data[11:]
            assert reader.read() == b""
        assert reader.closed
        with store.open("lines.txt") as reader:
            assert b"".join(reader) == data
        with store.open("lines.txt") as reader:
            assert next(iter(reader)) == b"first line\n"

    def test_reading_seven_bytes_at_a_time(self, store: DataStore) -> None:
        data = payload(3 * store.chunk_size + 7, seed=5)
        store.put("sevens", data)
        parts = []
        with store.open("sevens") as reader:
            while part := reader.read(7):
                assert len(part) <= 7
                parts.append(part)
        assert b"".join(parts) == data

    def test_small_and_large_reads_mixed_stay_in_order(self, store: DataStore) -> None:
        chunk = store.chunk_size
        data = payload(3 * chunk + 7, seed=6)
        store.put("mixed", data)
        sizes = [7, chunk, 1, chunk // 2 + 3, 2 * chunk, 5]
        with store.open("mixed") as reader:
            parts = [reader.read(size) for size in sizes]
            parts.append(reader.read())
        position = 0
        for size, part in zip(sizes, parts, strict=False):
            assert part == data[position : position + size]  # full reads, in order
            position += len(part)
        assert parts[-1] == data[position:]
        with store.open("mixed", 3, 2 * chunk + 1) as reader:
            assert reader.read(chunk) + reader.read(5) + reader.read() == data[3 : 2 * chunk + 1]

    def test_block_reads_then_small_reads_stay_in_order(self, store: DataStore) -> None:
        # shutil.copyfileobj's 64 KiB reads, then a parser's small ones, then blocks again.
        data = payload(3 * store.chunk_size + 70_000, seed=7)
        store.put("blocks", data)
        sizes = [65536, 65536 + 3, 7, 1, 65536, 20_000, 2 * store.chunk_size]
        with store.open("blocks") as reader:
            parts = [reader.read(size) for size in sizes]
            parts.append(reader.read())
        position = 0
        for size, part in zip(sizes, parts, strict=False):
            assert part == data[position : position + size]
            position += len(part)
        assert parts[-1] == data[position:]
