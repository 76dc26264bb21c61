"""File-system helpers of ``DirectoryStore``: name escaping, locks, sidecars, durable writes.

Names on disk that start with ``.persisty-blobs`` (and not ``.persisty-blobs~``) belong to the
store: its state folder and its temp files. A key segment that starts with ``.persisty-blobs``
is stored with a ``~`` after that prefix, so no key can ever name one of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import io
import json
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import PermissionDenied

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

RESERVED = ".persisty-blobs"
_ESCAPED = RESERVED + "~"
_COPY_BUFFER = 1024 * 1024


def encode_segment(segment: str) -> str:
    """The name on disk of one key segment."""
    return _ESCAPED + segment[len(RESERVED) :] if segment.startswith(RESERVED) else segment


def decode_name(name: str) -> str | None:
    """The key segment a name on disk stands for; None for the store's own files."""
    if name.startswith(_ESCAPED):
        return RESERVED + name[len(_ESCAPED) :]
    return None if name.startswith(RESERVED) else name


def temp_name() -> str:
    return f"{RESERVED}.tmp-{os.getpid()}-{secrets.token_hex(8)}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    # Python's os module has no sync_file_range; glibc and musl export it on Linux.
    if sys.platform != "linux":
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writeback, do not wait for it


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk, without waiting.

    A later fsync then has little left to do, and the disk works while the writer goes on,
    instead of taking the whole file at the end. Only a hint: errors are ignored here because
    the fsync that follows reports any real one.
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sha256_of_fd(fd: int) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_COPY_BUFFER)
    offset = 0
    with memoryview(buffer) as whole:
        while count := os.preadv(fd, [buffer], offset):
            digest.update(whole[:count])
            offset += count
    return f"sha256:{digest.hexdigest()}"


def check_inside(fd: int, real_root: str, shown_path: str, store: str) -> None:
    """Refuse a file that a symlink led outside the root (checked on the open file, so a link
    swapped after a path check is caught too)."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (macOS, BSD): fall back to the path
        real = os.path.realpath(shown_path)
    if not real.startswith(real_root + os.sep):
        raise PermissionDenied(f"{shown_path!r} resolves outside the store's root", store=store)


@dataclass
class Sidecar:
    """What a file cannot say about itself, valid while the file keeps ``size`` and ``mtime_ns``."""

    size: int
    mtime_ns: int
    checksum: str
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def describes(self, stat: os.stat_result) -> bool:
        return self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns


class SidecarStore:
    """Sidecars keyed by inode: a rename keeps the inode, so content and metadata switch together
    in one ``os.replace``, and an edit by another program (new size or mtime) is detected."""

    def __init__(self, state_dir: str) -> None:
        self.meta_dir = os.path.join(state_dir, "meta")
        self.temp_dir = os.path.join(state_dir, "tmp")

    def _path(self, inode: int) -> str:
        return os.path.join(self.meta_dir, f"{inode % 256:02x}", str(inode))

    def read(self, stat: os.stat_result) -> Sidecar | None:
        try:
            with open(self._path(stat.st_ino), "rb") as file:
                sidecar = Sidecar(**json.load(file))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return sidecar if sidecar.describes(stat) else None

    def write(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        target = self._path(inode)
        temp = os.path.join(self.temp_dir, f"{os.getpid()}.{secrets.token_hex(8)}")
        data = json.dumps(sidecar.__dict__, separators=(",", ":")).encode()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(temp, target)
        if durable:
            fsync_directory(os.path.dirname(target))

    def remove(self, inode: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(inode))


class FileRangeRaw(io.RawIOBase):
    """A raw reader of bytes ``[start, stop)`` of an open file; owns and closes ``fd``."""

    def __init__(self, fd: int, start: int, stop: int) -> None:
        super().__init__()
        self._fd = fd
        self._offset = start
        self._stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        # Called once per buffer-full: the common case (a whole byte buffer that the range
        # can fill) goes straight to preadv without building views.
        remaining = self._stop - self._offset
        if remaining <= 0:
            return 0
        with memoryview(buffer) as view:
            if view.nbytes <= remaining and view.format in ("B", "b", "c"):
                count = os.preadv(self._fd, [view], self._offset)
            else:
                with view.cast("B") as target:
                    count = os.preadv(self._fd, [target[:remaining]], self._offset)
        self._offset += count
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
