"""Small file-system helpers: the store's lock, whole writes, hashing a file, late unlinks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator

__all__ = ["file_lock", "sha256_of_fd", "unlink_in_background", "write_all"]

_HASH_BUFFER = 1024 * 1024


#: The descriptors of the locks this process's threads hold (or wait for) right now. Each is
#: opened, registered, and closed under ``_held_lock``, which a fork waits for: a child never
#: gets a lock's descriptor that it does not know of.
_held: set[int] = set()
# Reentrant: a signal handler that forks may interrupt this thread while it holds the lock.
_held_lock = threading.RLock()


def _drop_inherited_locks() -> None:
    """In a forked child: close its copies of the parent's lock descriptors. A flock belongs
    to the open file description, which the child's copy kept alive: the parent's lock held
    until the child exited, and the child waited for a lock no thread of its own held."""
    global _held_lock
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
    _held_lock = threading.RLock()


os.register_at_fork(
    before=lambda: _held_lock.acquire(),
    after_in_parent=lambda: _held_lock.release(),
    after_in_child=_drop_inherited_locks,
)


@contextlib.contextmanager
def file_lock(path: str, *, exclusive: bool) -> Iterator[None]:
    """A cross-process lock. Each call opens its own file description, so threads of one
    process exclude each other exactly as processes do."""
    with _held_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _held.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        with _held_lock:
            if fd in _held:  # else a fork closed it, in this (child) process
                _held.discard(fd)
                os.close(fd)  # releases the lock


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


def sha256_of_fd(fd: int, size: int) -> str:
    """The checksum of the file ``fd``, which holds about ``size`` bytes (the buffer's size:
    zeroing a large buffer for a small file costs more than hashing it)."""
    digest = hashlib.sha256()
    buffer = bytearray(min(_HASH_BUFFER, size + 1))  # a byte more, to see its end at once
    offset = 0
    with memoryview(buffer) as whole:
        while count := os.preadv(fd, [buffer], offset):
            digest.update(whole[:count])
            offset += count
    return f"sha256:{digest.hexdigest()}"
