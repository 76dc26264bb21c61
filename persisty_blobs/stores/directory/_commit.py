"""A write's last step: its temp file swapped in as the item's file under the store's lock,
and the page cache of a large file it replaces freed before the new content takes memory."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from ...driver import WriteSpec, check_precondition
from ...errors import PermissionDenied
from ...item import DataItem
from ._fileio import file_lock, unlink_in_background
from ._recovery import owned_name
from ._sidecars import Sidecar

if TYPE_CHECKING:
    from ._driver import Current, DirectoryDriver

__all__ = ["commit", "release_cache"]

_RELEASE_LATER_BYTES = 8 * 1024 * 1024


def release_cache(driver: DirectoryDriver, folder: int, name: str, shown: str) -> None:
    """Drop the page cache of a large file that a write is about to replace.

    The old version stays readable (from disk) until the swap, but its cached pages are
    freed now, so the new content reuses that memory instead of taking fresh pages: on a
    VM whose freed memory is returned to the host (free page reporting), writing into
    fresh pages costs several times the copy itself. A truncating copy frees the old
    content first and gets this for free; a store that must keep the old version cannot.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError, PermissionDenied):
        opened = driver.open_file(folder, name, shown)
        if opened is None:
            return
        fd, file_stat = opened
        try:
            if file_stat.st_size >= _RELEASE_LATER_BYTES:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def commit(
    driver: DirectoryDriver, namespace: str, key: str, folder: int, name: str, temp: str,
    temp_fd: int, spec: WriteSpec, shown: str,
) -> DataItem:  # fmt: skip
    """Swap the temp file ``temp`` (open as ``temp_fd``, its content written) in as ``name``.

    Only the precondition check and the rename hold the store's lock. The file and its
    sidecar (an attribute of the file, or a file keyed by its own inode: no other writer
    touches either) are made durable before, and the folder after: concurrent writers'
    fsyncs then share the file system's journal commits instead of queueing behind the
    lock."""
    with driver.os_errors(key):
        written, sidecar = _seal(driver, temp_fd, spec)
    try:
        with (
            driver.os_errors(key),
            file_lock(driver.lock_path, exclusive=True),
            driver.current(folder, name, shown, replacing=True) as current,
        ):
            current_item = None if current is None else driver.item_of(namespace, key, current)
            check_precondition(current_item, key, driver.name, spec.if_match, spec.if_none_match)
            if current is not None and current.stat.st_mtime_ns > written.st_mtime_ns:
                # The clock went back: keep updated_at where it was, durably like the rest.
                os.utime(temp_fd, ns=(written.st_atime_ns, current.stat.st_mtime_ns))
                written, sidecar = _seal(driver, temp_fd, spec)
            replaced = (
                None if current is None else _keep_for_later_release(driver, folder, name, current)
            )
            try:
                os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except OSError as exc:
                if replaced is not None:
                    unlink_in_background(replaced)
                if isinstance(exc, IsADirectoryError):
                    raise driver.conflict(key) from None
                raise
            if current is not None:
                driver.forget(current)
    except BaseException:
        driver.sidecars.remove(written.st_ino)
        raise
    if driver.durable:
        with driver.os_errors(key):
            os.fsync(folder)
    if replaced is not None:
        unlink_in_background(replaced)
    return driver.item(namespace, key, written, sidecar)


def _seal(driver: DirectoryDriver, temp_fd: int, spec: WriteSpec) -> tuple[os.stat_result, Sidecar]:
    """Give the temp file its sidecar for its size and mtime now, and make both durable."""
    written = os.fstat(temp_fd)
    sidecar = Sidecar(
        written.st_size,
        written.st_mtime_ns,
        spec.checksum,
        spec.content_type,
        dict(spec.metadata),
        sorted(spec.flags),
    )
    sidecar.in_attribute = driver.sidecars.create(
        temp_fd, written.st_ino, sidecar, durable=driver.durable
    )
    if driver.durable:
        os.fsync(temp_fd)
    return written, sidecar


def _keep_for_later_release(
    driver: DirectoryDriver, folder: int, name: str, current: Current
) -> str | None:
    """Give a large file that is about to be replaced a second name in the state folder, so
    that ``os.replace`` does not free its blocks while the writer waits."""
    if current.link.st_nlink != 1 or current.stat.st_size < _RELEASE_LATER_BYTES:
        return None
    keeper = os.path.join(driver.sidecars.temp_dir, owned_name("old"))
    try:
        os.link(name, keeper, src_dir_fd=folder, follow_symlinks=False)
    except OSError:  # another file system (a mount inside the root), or no hard links
        return None
    return keeper
