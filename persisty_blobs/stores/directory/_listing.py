"""The directory driver's listings: ``list`` pages, ``scan`` pages, ``count``, namespaces."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

from ...errors import PermissionDenied
from ...item import DataItem, Entry, Flag
from ._fileio import file_lock
from ._names import decode_name
from ._sidecars import Sidecar, etag_of
from ._time import updated_at

if TYPE_CHECKING:
    from ._driver import DirectoryDriver
    from ._walk import Found

__all__ = ["count", "entries", "items", "namespaces"]

_NO_FLAGS: frozenset[Flag] = frozenset()
_UNOPENABLE = frozenset({errno.EACCES, errno.EPERM, errno.EWOULDBLOCK, errno.ENXIO})
#: Where a path can name a file relative to a folder this process holds open, as ``dir_fd``
#: does for the calls that take one (``getxattr`` does not).
_OPEN_FOLDERS = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else ""


def items(
    driver: DirectoryDriver,
    namespace: str,
    prefix: str,
    after: str | None,
    limit: int,
    flag: Flag | None,
) -> list[DataItem]:
    found: list[DataItem] = []
    if limit == 0:
        return found
    with contextlib.closing(driver.files(namespace, prefix, after)) as files:
        for file in files:
            try:
                opened = driver.open_in(file.folder, file.name, file.path, namespace, file.key)
            except PermissionDenied:  # swapped for a link out of the root meanwhile
                continue
            if opened is None:  # deleted since the folder was read
                continue
            os.close(opened.fd)
            if flag is None or flag in opened.item.flags:
                found.append(opened.item)
                if len(found) == limit:
                    break
    return found


def entries(
    driver: DirectoryDriver, namespace: str, prefix: str, after: str | None, limit: int
) -> list[Entry]:
    """Per file, an open, a stat and a read of its sidecar (its attribute, else a sidecar
    file), never the content: a file without a current sidecar has no checksum here. The
    shared lock keeps each file with its own sidecar file, as a commit swaps both under the
    exclusive one."""
    found: list[Entry] = []
    if limit == 0:
        return found
    files = driver.files(namespace, prefix, after)
    with file_lock(driver.lock_path, exclusive=False), contextlib.closing(files):
        buckets = driver.sidecars.buckets()
        for file in files:
            described = _described(driver, file, buckets)
            if described is None:
                continue
            file_stat, sidecar = described
            flags = frozenset(map(Flag, sidecar.flags)) if sidecar and sidecar.flags else _NO_FLAGS
            found.append(
                Entry(
                    key=file.key,
                    size=file_stat.st_size,
                    etag=etag_of(file_stat, sidecar),
                    updated_at=updated_at(file_stat),
                    checksum=None if sidecar is None else sidecar.checksum,
                    flags=flags,
                )
            )
            if len(found) == limit:
                break
    return found


def _described(
    driver: DirectoryDriver, file: Found, buckets: frozenset[str]
) -> tuple[os.stat_result, Sidecar | None] | None:
    """The listed file's stat and sidecar; None if it is gone or no regular file."""
    try:
        opened = driver.open_file(file.folder, file.name, file.path)
    except PermissionDenied:  # swapped for a link out of the root meanwhile
        return None
    except OSError as exc:
        if exc.errno not in _UNOPENABLE:
            raise
        # Leased by another program, unreadable, or swapped for a socket: described without
        # opening it, its attribute read by path (as far as its permissions let).
        try:
            file_stat = os.stat(file.name, dir_fd=file.folder, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(file_stat.st_mode):  # a link is listed only if it can be opened
            return None
        by_path = f"{_OPEN_FOLDERS}/{file.folder}/{file.name}" if _OPEN_FOLDERS else file.path
        return file_stat, driver.sidecars.read(file_stat, by_path, buckets)
    if opened is None:
        return None
    fd, file_stat = opened
    try:
        return file_stat, driver.sidecars.read(file_stat, fd, buckets)
    finally:
        os.close(fd)


def count(driver: DirectoryDriver, namespace: str, prefix: str) -> int:
    with contextlib.closing(driver.files(namespace, prefix, None)) as files:
        return sum(1 for _ in files)


def namespaces(driver: DirectoryDriver) -> list[str]:
    names = [""] if _holds_items(driver, "") else []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(os.path.join(driver.state_dir, "ns")):
            name = decode_name(entry.name)
            if name is not None and _holds_items(driver, name):
                names.append(name)
    return sorted(names)


def _holds_items(driver: DirectoryDriver, namespace: str) -> bool:
    with contextlib.closing(driver.files(namespace, "", None)) as files:
        return next(files, None) is not None
