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


@contextlib.contextmanager
def file_lock(path: str, *, exclusive: bool) -> Iterator[None]:
    """A cross-process lock. Each call opens its own file description, so threads of one
    process exclude each other exactly as processes do."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
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
