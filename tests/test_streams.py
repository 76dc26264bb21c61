"""ItemWriter: chunks are hashed on a pool thread behind the writes, through a ring of
buffers. Whatever the shape of the input, the stored bytes and the checksum must be exact,
also after the ring has wrapped several times."""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import random
from collections.abc import Callable, Iterator

import pytest

from persisty_blobs import DataStore
from persisty_blobs import streams as streams_module
from persisty_blobs.stores import MemoryStore

# Chunks this large are hashed off the caller's thread; the ring then holds 16 of them, so
# 9 MiB wraps it twice.
CHUNK = 256 * 1024
PAYLOAD = random.Random(7).randbytes(9 * 1024 * 1024 + 13)


class ShortReads(io.RawIOBase):
    """A pipe-like source: readinto fills an arbitrary part of what it is offered."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._position = 0
        self._sizes = random.Random(11)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining = len(self._data) - self._position
        count = min(len(buffer), self._sizes.randint(1, 3 * CHUNK), remaining)
        buffer[:count] = self._data[self._position : self._position + count]
        self._position += count
        return count


def odd_blocks(data: bytes) -> Iterator[bytes]:
    sizes = random.Random(5)
    position = 0
    while position < len(data):
        step = sizes.choice([1, 7, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK])
        yield data[position : position + step]
        position += step


SOURCES: dict[str, Callable[[bytes], object]] = {
    "bytes": lambda data: data,
    "bytearray": bytearray,
    "short-reading file": ShortReads,
    "buffered file": lambda data: io.BufferedReader(ShortReads(data)),
    "generator of odd blocks": odd_blocks,
}


@pytest.fixture
def store() -> Iterator[DataStore]:
    with MemoryStore(chunk_size=CHUNK) as store:
        yield store


@pytest.mark.parametrize("source", SOURCES)
def test_content_and_checksum_exact_after_the_ring_wraps(store: DataStore, source: str) -> None:
    item = store.put("big.bin", SOURCES[source](PAYLOAD))

    assert item.size == len(PAYLOAD)
    assert item.checksum == f"sha256:{hashlib.sha256(PAYLOAD).hexdigest()}"
    assert store.read_bytes("big.bin") == PAYLOAD


def test_caller_may_reuse_its_buffer_once_write_returns(store: DataStore) -> None:
    buffer = bytearray(3 * CHUNK)
    expected = hashlib.sha256()
    with store.writer("reused.bin") as writer:
        for fill in range(12):
            buffer[:] = bytes([fill]) * len(buffer)
            writer.write(buffer)
            expected.update(buffer)
    assert writer.item is not None
    assert writer.item.checksum == f"sha256:{expected.hexdigest()}"
    content = store.read_bytes("reused.bin")
    assert [content[i * len(buffer)] for i in range(12)] == list(range(12))


def test_tell_counts_bytes_not_yet_forwarded(store: DataStore) -> None:
    with store.writer("counted.bin") as writer:
        writer.write(b"x" * 10)
        assert writer.tell() == 10
        writer.write(os.urandom(CHUNK))
        assert writer.tell() == 10 + CHUNK


def test_aborted_large_write_leaves_nothing(store: DataStore) -> None:
    writer = store.writer("gone.bin")
    writer.write(PAYLOAD)
    writer.abort()
    assert store.get("gone.bin") is None
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_writers_reuse_the_buffers_of_committed_writes(
    store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    real = streams_module.page_aligned_buffer

    def counted(size: int) -> mmap.mmap:
        made.append(size)
        return real(size)

    monkeypatch.setattr(streams_module, "page_aligned_buffer", counted)
    monkeypatch.setattr(streams_module, "_kept_buffers", {})
    store.put("first", b"a" * 10)
    store.put("second", b"b" * 10)
    assert made == [CHUNK], "the second write fills the first one's buffer"
    writer = store.writer("never")
    writer.write(b"c" * (3 * CHUNK))
    writer.abort()
    before = len(made)
    store.put("third", b"d" * (3 * CHUNK))
    assert len(made) > before, "an aborted write's buffers are not kept (a hash may read one)"
    before = len(made)
    store.put("fourth", b"e" * (3 * CHUNK))
    assert len(made) == before
    assert [store.read_bytes(key) for key in ("first", "second", "third", "fourth")] == [
        b"a" * 10,
        b"b" * 10,
        b"d" * (3 * CHUNK),
        b"e" * (3 * CHUNK),
    ]
