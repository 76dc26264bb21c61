"""Conformance: readers that seek, so ``zipfile`` or ``tarfile`` read an item in place."""

from __future__ import annotations

import io
import zipfile
from typing import IO

import pytest

from ..errors import PreconditionFailed
from ..store import DataStore
from ._support import payload

BIG_MEMBER = 1024 * 1024
SEEKABLE = 200_007  # more than a reader buffers (64 KiB at most)
SMALL_MEMBERS = {
    f"notes/{index}.txt": f"note {index}\n".encode() * (index + 1) for index in range(4)
}


class _Counting(io.RawIOBase):
    """A file that counts the bytes read through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


def _zip_with_a_big_member() -> bytes:
    """Two small members, a big one, two more small ones (the central directory at the end)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as writer:
        names = list(SMALL_MEMBERS)
        for name in names[:2]:
            writer.writestr(name, SMALL_MEMBERS[name])
        writer.writestr("big.bin", payload(BIG_MEMBER, seed=21))
        for name in names[2:]:
            writer.writestr(name, SMALL_MEMBERS[name])
    return archive.getvalue()


class SeekTests:
    def test_zipfile_reads_members_in_place(self, store: DataStore) -> None:
        store.put("archive.zip", _zip_with_a_big_member())
        with store.open("archive.zip") as reader, zipfile.ZipFile(reader) as archive:
            assert archive.namelist() == [
                *list(SMALL_MEMBERS)[:2],
                "big.bin",
                *list(SMALL_MEMBERS)[2:],
            ]
            for name, content in reversed(SMALL_MEMBERS.items()):
                assert archive.read(name) == content
            assert archive.read("big.bin") == payload(BIG_MEMBER, seed=21)
            assert archive.testzip() is None

    def test_small_members_are_read_without_reading_the_whole_item(self, store: DataStore) -> None:
        data = _zip_with_a_big_member()
        store.put("archive.zip", data)
        with store.open("archive.zip") as reader:
            counting = _Counting(reader)
            with zipfile.ZipFile(counting) as archive:
                for name, content in SMALL_MEMBERS.items():
                    assert archive.read(name) == content
        assert counting.bytes_read < BIG_MEMBER // 4, (counting.bytes_read, len(data))

    def test_seek_and_tell(self, store: DataStore) -> None:
        data = payload(SEEKABLE, seed=22)
        size = len(data)
        store.put("seekable", data)
        with store.open("seekable") as reader:
            assert reader.seekable()
            assert reader.tell() == 0
            assert reader.read(10) == data[:10]
            assert reader.tell() == 10
            assert reader.seek(size // 2) == size // 2
            assert reader.read(5) == data[size // 2 : size // 2 + 5]
            assert reader.seek(-5, io.SEEK_CUR) == size // 2
            assert reader.read(5) == data[size // 2 : size // 2 + 5]
            assert reader.seek(3, io.SEEK_CUR) == size // 2 + 8
            assert reader.read(2) == data[size // 2 + 8 : size // 2 + 10]
            assert reader.seek(-7, io.SEEK_END) == size - 7
            assert reader.read() == data[-7:]
            assert reader.tell() == size
            assert reader.seek(0, io.SEEK_END) == size
            assert reader.read() == b""
            assert reader.seek(size + 100) == size + 100  # past the end, as files allow
            assert reader.read() == b""
            assert reader.read(10) == b""
            assert reader.seek(1) == 1
            assert reader.read() == data[1:]
            assert reader.seek(0) == 0
            assert reader.read(SEEKABLE // 2) == data[: SEEKABLE // 2]
            with pytest.raises((ValueError, OSError)):
                reader.seek(-1)

    def test_a_ranged_reader_seeks_inside_its_range(self, store: DataStore) -> None:
        data = payload(3 * store.chunk_size + 7, seed=23)
        store.put("ranged", data)
        start, end = store.chunk_size - 3, 2 * store.chunk_size + 5
        part = data[start:end]
        with store.open("ranged", start, end) as reader:
            assert reader.tell() == 0
            assert reader.seek(0, io.SEEK_END) == len(part)
            assert reader.read() == b""
            assert reader.seek(5) == 5
            assert reader.read(10) == part[5:15]
            assert reader.seek(-4, io.SEEK_END) == len(part) - 4
            assert reader.read() == part[-4:]
            assert reader.seek(len(part) + 10) == len(part) + 10
            assert reader.read() == b""
            reader.seek(0)
            assert reader.read() == part
        with store.open("ranged", len(data) - 3) as reader:  # to the end of the item
            assert reader.seek(0, io.SEEK_END) == 3
            reader.seek(1)
            assert reader.read() == data[-2:]

    def test_a_seek_after_the_item_changed_fails_instead_of_mixing(self, store: DataStore) -> None:
        data = payload(SEEKABLE, seed=24)
        store.put("changing", data)
        with store.open("changing") as reader:
            assert reader.read(10) == data[:10]
            store.put("changing", payload(len(data), seed=25))
            reader.seek(len(data) - 10)  # beyond what the reader has buffered
            with pytest.raises(PreconditionFailed):
                reader.read()
