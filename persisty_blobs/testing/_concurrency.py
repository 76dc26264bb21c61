"""Conformance: threads writing and reading at once."""

from __future__ import annotations

import hashlib
import threading

from ..errors import AlreadyExists, PreconditionFailed
from ..store import DataStore
from ._support import Workers, keys, payload, pieces, run_threads


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

    run_threads(8, put)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert store.read_bytes(key).startswith(b"writer ")


class ConcurrencyTests:
    def test_writers_of_distinct_keys(self, store: DataStore) -> None:
        def write(index: int) -> None:
            store.put(f"thread/{index:02d}", payload(3000 + index, seed=index))

        run_threads(20, write)
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

        readers = Workers()
        for index in range(3):
            readers.start(read, index)
        try:
            run_threads(8, overwrite)
        finally:
            writing.clear()
            readers.join()
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
