"""Small file-system helpers: the store's lock, whole writes, hashing a file, late unlinks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator

__all__ = ["StoreLock", "sha256_of_fd", "unlink_in_background", "write_all"]

_HASH_BUFFER = 1024 * 1024


class _Descriptor:
    """A thread's descriptor on the lock file, closed when the thread (or the store) is gone."""

    def __init__(self, path: str) -> None:
        self.pid = os.getpid()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.busy = False

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self.fd)


class StoreLock:
    """The store's cross-process lock (``flock`` on one file). Each thread keeps its own
    descriptor, hence its own open file description, so threads exclude each other exactly as
    processes do, without opening the file for every lock; a forked child opens its own, as
    the parent's description would share the parent's lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    @contextlib.contextmanager
    def hold(self, *, exclusive: bool) -> Iterator[None]:
        mine: _Descriptor | None = getattr(self._local, "descriptor", None)
        if mine is None or mine.pid != os.getpid():
            mine = self._local.descriptor = _Descriptor(self.path)
        if mine.busy:  # held further up this thread's stack: a description of its own
            mine = _Descriptor(self.path)
        mine.busy = True
        try:
            fcntl.flock(mine.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(mine.fd, fcntl.LOCK_UN)
        finally:
            mine.busy = False


def unlink_in_background(path: str) -> None:
    """Unlink on a helper thread: freeing a large file's blocks takes a while, and the caller
    need not wait for it. If the process dies first, the store's next opening removes it."""
    threading.Thread(target=_unlink_quietly, args=(path,), daemon=True).start()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sha256_of_fd(fd: int) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_BUFFER)
    offset = 0
    with memoryview(buffer) as whole:
        while count := os.preadv(fd, [buffer], offset):
            digest.update(whole[:count])
            offset += count
    return f"sha256:{digest.hexdigest()}"
