"""SHA-256 over a write's chunks on a pool thread, in order, behind the writes."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

__all__ = ["Sha256Pipeline"]

_OFF_THREAD_MIN_BYTES = 256 * 1024  # below this the hand-off costs more than it saves
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _forget_hash_pool_in_child() -> None:
    # A forked child has none of the pool's threads: a submit would wait forever.
    global _hash_pool, _hash_pool_lock
    _hash_pool = None
    _hash_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_hash_pool_in_child)


def _hash_executor() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(thread_name_prefix="persisty-hash")
        return _hash_pool


class Sha256Pipeline:
    """SHA-256 over chunks handed in order. ``add`` returns a ticket at once; ``wait(ticket)``
    returns once that chunk is hashed, so its buffer may be refilled. At most one pool task
    per pipeline runs the updates, which keeps them in order."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._pending: deque[memoryview] = deque()
        self._changed = threading.Condition()
        self._added = self._hashed = 0
        self._draining = False
        self._failure: BaseException | None = None

    def add(self, chunk: memoryview) -> int:
        with self._changed:
            self._added += 1
            if self._draining or len(chunk) >= _OFF_THREAD_MIN_BYTES:
                self._pending.append(chunk)
                if not self._draining:
                    self._draining = True
                    _hash_executor().submit(self._drain)
                return self._added
        # Nothing is queued, so no pool thread touches the hash: update it here.
        self._sha256.update(chunk)
        with self._changed:
            self._hashed += 1
        return self._added

    def _drain(self) -> None:
        while True:
            with self._changed:
                if not self._pending:
                    self._draining = False
                    self._changed.notify_all()
                    return
                chunk = self._pending[0]
            try:
                self._sha256.update(chunk)
            except BaseException as error:
                with self._changed:
                    self._failure = error
                    self._pending.clear()
                    self._draining = False
                    self._changed.notify_all()
                return
            with self._changed:
                if self._pending:  # cancel() may have emptied it meanwhile
                    self._pending.popleft()
                self._hashed += 1
                self._changed.notify_all()

    def wait(self, ticket: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._hashed >= ticket or self._failure is not None)
            if self._failure is not None:
                raise self._failure

    def hexdigest(self) -> str:
        self.wait(self._added)
        return self._sha256.hexdigest()

    def cancel(self) -> None:
        """Drop what is queued; a running update finishes on its own."""
        with self._changed:
            self._pending.clear()
