"""``DirectoryWriter``: streams into a temp file beside its target, then commits it.

The process's journal in the state folder names the temp file before it exists, so the next
opening of the store removes it (and the folders it made) if this process dies first.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import TYPE_CHECKING

from ... import driver as driver_module
from ...driver import DriverWriter, WriteSpec
from ...errors import from_os_error
from ...item import DataItem
from ._commit import commit, release_cache
from ._fileio import write_all
from ._folders import FolderChain, make_folders
from ._names import temp_name
from ._recovery import JournalFile
from ._time import mtime_ns_of

if TYPE_CHECKING:
    from ._driver import DirectoryDriver

__all__ = ["DirectoryWriter"]

_CREATE_ATTEMPTS = 5
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class DirectoryWriter(DriverWriter):
    def __init__(
        self, driver: DirectoryDriver, namespace: str, key: str, *, replacing: bool = True
    ) -> None:
        self._driver = driver
        self._replacing = replacing
        self._namespace = namespace
        self._key = key
        self._temp = temp_name()
        self._chain: FolderChain | None = None
        self._journal: JournalFile | None = None
        self._fd = -1
        folders, keep, self._name = driver.place(namespace, key)
        try:
            with driver.os_errors(key):
                self._create(folders, keep)
        except BaseException:
            self.abort()
            raise

    def _create(self, folders: list[str], keep: int) -> None:
        driver = self._driver
        # Listed first: if this process dies at any point on, the folders it made go too.
        self._journal = driver.journal.add(folders, keep, self._temp)
        for _ in range(_CREATE_ATTEMPTS):
            try:
                self._chain = make_folders(driver.real_root, folders, keep=keep, store=driver.name)
            except NotADirectoryError:
                raise driver.conflict(self._key) from None
            try:
                self._fd = os.open(self._temp, _TEMP_FLAGS, 0o666, dir_fd=self._chain.fd)
            except FileNotFoundError:  # a delete pruned the new folder meanwhile: make it again
                self._chain.close()
                self._chain = None
                continue
            if self._replacing:  # a create-only write has no old version to make room for
                release_cache(driver, self._chain.fd, self._name, self._chain.shown(self._name))
            return
        vanished = FileNotFoundError(errno.ENOENT, "the folder keeps vanishing")
        raise from_os_error(vanished, key=self._key, store=driver.name)

    def write(self, chunk: memoryview) -> None:
        with self._driver.os_errors(self._key):
            write_all(self._fd, chunk)

    def commit(self, spec: WriteSpec) -> DataItem:
        assert self._chain is not None  # set by the constructor, cleared only by abort
        with self._driver.os_errors(self._key):
            stamp = mtime_ns_of(driver_module.utc_now())
            os.utime(self._fd, ns=(stamp, stamp))
        item = commit(
            self._driver,
            self._namespace,
            self._key,
            self._chain.fd,
            self._name,
            self._temp,
            self._fd,
            spec,
            self._chain.shown(self._name),
        )
        self._close()
        self._finish()
        return item

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            if self._fd >= 0:
                os.close(self._fd)
        self._fd = -1
        if self._chain is not None:
            self._chain.close()
            self._chain = None

    def abort(self) -> None:
        if self._chain is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp, dir_fd=self._chain.fd)
            self._chain.prune()
        self._close()
        self._finish()

    def _finish(self) -> None:
        if self._journal is not None:
            self._journal.finish()
            self._journal = None
