"""Data and helpers shared by the conformance suite's modules."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import pytest

from ..item import DataItem, Entry
from ..store import DataStore

#: ``list_page_size`` in the paging tests: tens of items cross several pages.
PAGE = 5
#: How long a worker thread or child process may run before the test fails as hung.
WORKER_TIMEOUT = 120.0

LONG_KEY = "/".join(["k" * 200] * 4 + ["l" * 220])  # 1024 bytes; each segment fits a file name
WEIRD_KEYS = [
    "with space",
    "quote'\"",
    "100%",
    "hash#tag",
    "question?mark",
    "plus+sign",
    "semi;colon,comma=equals&amp@at",
    "brackets[]{}()<>|*",
    "ünïcødé/ключ/鍵",
    "emoji/🎉🚀",
    ".hidden/...dots/trailing.",
    "~tilde/-dash/_under",
    "/".join(f"d{level}" for level in range(30)),
    LONG_KEY,
]
INVALID_KEYS: list[object] = [
    "",
    "/leading",
    "trailing/",
    "doubled//slash",
    ".",
    "..",
    "a/./b",
    "a/../b",
    "../escape",
    "back\\slash",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    "del\x7fete",
    "x" * 1025,
    "é" * 513,
    "lone\ud800surrogate",
    123,
    b"bytes",
    None,
]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def pieces(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def keys(items: Iterable[DataItem | Entry]) -> list[str]:
    return [item.key for item in items]


def by_utf8(strings: list[str]) -> list[str]:
    return sorted(strings, key=lambda text: text.encode("utf-8"))


def assert_stored(store: DataStore, key: str, written: DataItem | None, began: float) -> None:
    """Assert that ``written``, what a write begun at ``began`` (``time.monotonic()``) returned,
    is the item ``store`` holds at ``key``.

    Where the clock is a server's, no write response carries the time the server stamped the
    object with (S3 gives none): the write's ``updated_at`` is its response's ``Date``, later
    than the stamp by up to the write's duration, both to the second.
    """
    stored = store.get(key)
    assert written is not None
    assert stored is not None, key
    if store.capabilities.local_clock:
        assert written == stored
        return
    assert dataclasses.replace(written, updated_at=stored.updated_at) == stored
    took = timedelta(seconds=time.monotonic() - began + 1)
    assert stored.updated_at <= written.updated_at <= stored.updated_at + took, (written, stored)


def assert_empty(store: DataStore) -> None:
    assert list(store.list()) == []
    assert store.count() == 0


class Workers:
    """Threads whose failures fail the test that started them.

    pytest only warns about an exception in a thread (an error only where a project sets
    ``filterwarnings = error``), and a thread that never ends would hang the run. ``join``
    re-raises what the workers raised in the test's own thread, and fails the test if one is
    still running at the deadline.
    """

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self, target: Callable[..., object], *args: object) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self._errors.append(exc)

        # A daemon: a hung worker must not keep the test run from ending either.
        thread = threading.Thread(target=guarded, name=f"worker-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float = WORKER_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [thread.name for thread in self._threads if thread.is_alive()]
        if len(self._errors) == 1:
            raise self._errors[0]
        if self._errors:
            raise BaseExceptionGroup("worker threads failed", self._errors)
        if hung:
            pytest.fail(f"{len(hung)} worker thread(s) still running after {timeout:.0f} s: {hung}")


def run_threads(count: int, target: Callable[[int], object]) -> None:
    """Run ``target(0)`` ... ``target(count - 1)`` on threads at once; fail as ``Workers`` does."""
    workers = Workers()
    for index in range(count):
        workers.start(target, index)
    workers.join()
