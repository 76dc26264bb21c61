"""Conformance: threads writing and reading at once, and memory bounded while streaming."""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import ClassVar

import pytest

from ..errors import AlreadyExists, PreconditionFailed
from ..store import DataStore
from ._support import keys, payload, pieces

BIG_ITEM = 256 * 1024 * 1024
RSS_BUDGET = 64 * 1024 * 1024


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def _put_and_read_big_item(store: DataStore, report: Connection) -> None:
    try:
        block = payload(1024 * 1024, seed=11)

        def blocks() -> Iterator[bytes]:
            for _ in range(BIG_ITEM // len(block)):
                yield block

        Path("/proc/self/clear_refs").write_text("5")  # restart the peak-RSS count here
        start_kib = _status_kib("VmRSS")
        item = store.put("big/item.bin", blocks())
        digest = hashlib.sha256()
        with store.open("big/item.bin") as reader:
            while part := reader.read(1024 * 1024):
                digest.update(part)
        peak_kib = _status_kib("VmHWM")
        report.send((item.size, digest.hexdigest(), (peak_kib - start_kib) * 1024))
    except BaseException as exc:
        report.send(repr(exc))


def _race_has_one_winner(
    store: DataStore, key: str, loss: type[Exception], **precondition: str
) -> None:
    """8 threads put ``key`` under the same precondition: exactly one may succeed."""
    outcomes: list[str] = []

    def put(index: int) -> None:
        try:
            store.put(key, f"writer {index}".encode(), **precondition)  # type: ignore[arg-type]
            outcomes.append("won")
        except loss:
            outcomes.append("lost")

    _run_threads(8, put)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert store.read_bytes(key).startswith(b"writer ")


class ConcurrencyTests:
    #: True for stores that hold content in this process (the memory store).
    content_in_process: ClassVar[bool] = False

    def test_writers_of_distinct_keys(self, store: DataStore) -> None:
        def write(index: int) -> None:
            store.put(f"thread/{index:02d}", payload(3000 + index, seed=index))

        _run_threads(20, write)
        assert keys(store.list("thread/")) == [f"thread/{index:02d}" for index in range(20)]
        for index in range(20):
            assert store.read_bytes(f"thread/{index:02d}") == payload(3000 + index, seed=index)

    def test_overwriters_and_readers_never_see_a_mix(self, store: DataStore) -> None:
        size = 2 * store.chunk_size + 7
        versions = [payload(size, seed=100 + index) for index in range(8)]
        store.put("contended", versions[0])
        allowed = {hashlib.sha256(version).digest() for version in versions}
        writing = threading.Event()
        writing.set()

        def overwrite(index: int) -> None:
            for _ in range(3):
                store.put("contended", pieces(versions[index], 65536))

        def read(_: int) -> None:
            while writing.is_set():
                assert hashlib.sha256(store.read_bytes("contended")).digest() in allowed

        readers = threading.Thread(target=_run_threads, args=(3, read))
        readers.start()
        try:
            _run_threads(8, overwrite)
        finally:
            writing.clear()
            readers.join(timeout=120)
        final = store.read_bytes("contended")
        assert final in versions
        item = store.get("contended")
        assert item is not None
        assert item.checksum == "sha256:" + hashlib.sha256(final).hexdigest()

    def test_create_only_race_has_one_winner(self, store: DataStore) -> None:
        _race_has_one_winner(store, "race", AlreadyExists, if_none_match="*")

    def test_if_match_race_has_one_winner(self, store: DataStore) -> None:
        etag = store.put("guarded", b"original").etag
        _race_has_one_winner(store, "guarded", PreconditionFailed, if_match=etag)

    @pytest.mark.slow
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for RSS")
    def test_big_item_streams_in_bounded_memory(self, store: DataStore) -> None:
        if self.content_in_process:
            pytest.skip("this store keeps content in the process's memory by design")
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork with threads; the child uses none it inherits.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = context.Process(target=_put_and_read_big_item, args=(store, sender))
            child.start()
        try:
            assert receiver.poll(timeout=240), "the child process did not report"
            result = receiver.recv()
        finally:
            child.join(timeout=60)
        assert isinstance(result, tuple), result
        size, sha256_hex, peak_growth = result
        block = payload(1024 * 1024, seed=11)
        expected = hashlib.sha256()
        for _ in range(BIG_ITEM // len(block)):
            expected.update(block)
        assert size == BIG_ITEM
        assert sha256_hex == expected.hexdigest()
        assert peak_growth < RSS_BUDGET, f"peak RSS grew by {peak_growth / 2**20:.1f} MiB"
