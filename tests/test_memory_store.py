import os
import threading
from collections.abc import Iterator

import pytest

import persisty_blobs as pb
from persisty_blobs.stores import MemoryStore
from persisty_blobs.testing import StoreConformance
from persisty_blobs.testing._processes import fork, wait_for_child
from persisty_blobs.testing._support import Workers


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        with MemoryStore() as store:
            yield store


def test_open_store_takes_the_stores_options() -> None:
    store = pb.open_store("memory://", chunk_size=1000)
    assert isinstance(store, MemoryStore)
    assert store.chunk_size == 1000
    with pytest.raises(TypeError, match="chunk_size"):
        pb.open_store("memory://", chunk_size="big")
    with pytest.raises(pb.InvalidArgument, match="chunk_size"):
        MemoryStore(chunk_size=0)
    with pytest.raises(pb.Unsupported, match="a folder is file:///srv/blobs"):
        pb.open_store("/srv/blobs")
    for said_more in ("memory://?chunk_size=1", "memory://elsewhere"):
        with pytest.raises(pb.InvalidArgument, match="memory:// alone"):
            pb.open_store(said_more)


def test_capabilities() -> None:
    capabilities = MemoryStore().capabilities
    assert capabilities.content_in_process
    assert not capabilities.shared_across_processes
    assert capabilities.nested_keys


def test_listing_pages_by_bisection_over_many_keys() -> None:
    store = MemoryStore()
    names = [f"k{index:06d}" for index in range(5_000)]
    for name in reversed(names):  # the costly order for the sorted index
        store.put(name, b"")
    store.delete(names[5])
    assert [item.key for item in store.list("k0000", limit=7)] == names[:5] + names[6:8]
    assert [entry.key for entry in store.scan(after=names[-3])] == names[-2:]
    assert store.count("k001") == 1_000
    assert store.namespaces() == [""]
    for name in names:
        store.delete(name)
    assert store.namespaces() == []


def test_a_failing_worker_fails_the_test_in_its_own_thread() -> None:
    def fail(index: int) -> None:
        assert index < 0, "a reader saw wrong content"

    workers = Workers()
    workers.start(fail, 1)
    with pytest.raises(AssertionError, match="wrong content"):
        workers.join()
    two = Workers()
    two.start(fail, 1)
    two.start(fail, 2)
    with pytest.raises(BaseExceptionGroup):
        two.join()


def test_a_hung_worker_fails_the_test() -> None:
    release = threading.Event()
    workers = Workers()
    workers.start(release.wait)
    try:
        with pytest.raises(pytest.fail.Exception, match="still running"):
            workers.join(timeout=0.2)
    finally:
        release.set()


def test_a_child_forked_while_threads_use_the_store_gets_a_copy_it_can_use() -> None:
    store, stop, busy = MemoryStore(), threading.Event(), Workers()

    def keep_busy() -> None:
        while not stop.is_set():
            store.put("busy", b"b")
            list(store.scan())

    for _ in range(2):
        busy.start(keep_busy)
    try:
        for _ in range(10):
            pid = fork()
            if pid == 0:  # the child: never return into pytest
                status = 1
                try:
                    store.put("child", b"c")
                    status = 0 if store.read_bytes("child") == b"c" else 1
                finally:
                    os._exit(status)
            assert wait_for_child(pid) == 0
    finally:
        stop.set()
        busy.join()
    assert not store.exists("child")  # the child's items were its own
