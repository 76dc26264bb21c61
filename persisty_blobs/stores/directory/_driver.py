"""The directory store's driver: items as files, their sidecars, and the lock between them.

A commit swaps the file and its sidecar under an exclusive lock on ``.persisty-blobs/lock``;
readers take it shared, so they see a file with its own sidecar. ``updated_at`` is the file's
mtime: a write stamps it from ``driver.utc_now``, and its commit never sets it below the mtime
of the file it replaces, so an item's ``updated_at`` never goes backwards, even if the clock
does.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import stat
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ...driver import (
    Capabilities,
    Driver,
    DriverWriter,
    ItemHeader,
    check_precondition,
    clip_range,
)
from ...errors import InvalidKey, NotFound, Unsupported, from_os_error
from ...item import DataItem, Entry, Flag
from ...keys import guess_content_type
from . import _listing
from ._adoption import Adopter
from ._fileio import file_lock
from ._folders import check_inside, open_folders
from ._names import RESERVED, encode_segment
from ._readers import FileRangeRaw, ForeignFileRaw, WholeFileRaw
from ._recovery import Journal, clean_interrupted_writes
from ._sidecars import Sidecar, SidecarStore, etag_of
from ._time import updated_at
from ._walk import Found, walk
from ._writer import DirectoryWriter

__all__ = ["DirectoryDriver"]

_NAMESPACES = [RESERVED, "ns"]


class _Opened(NamedTuple):
    item: DataItem
    fd: int  # open on the file
    stat: os.stat_result
    sidecar: Sidecar | None  # as read when it was opened


@dataclass
class Current:
    """The file a key names right now, seen under the store's lock."""

    link: os.stat_result  # of the name itself: a symlink, or the file
    stat: os.stat_result  # of the file it leads to
    sidecar: Sidecar
    fd: int  # open on the file


class DirectoryDriver(Driver):
    def __init__(self, root: str, chunk_size: int, durable: bool = True) -> None:
        # Absolute: a sync state tells two folders apart by their stores' names, and the
        # same relative path from two working folders names two folders.
        self.name = f"DirectoryStore({os.path.abspath(root)!r})"
        self.chunk_size = chunk_size
        #: fsync what a write or delete changed before it returns (off: atomic, not durable).
        self.durable = durable
        # Only an fsync waits for the disk: the rest is system calls and Python.
        self.capabilities = Capabilities(
            nested_keys=False, local_clock=True, reads_wait=False, writes_wait=durable
        )
        try:
            os.makedirs(root, exist_ok=True)
            self.real_root = os.path.realpath(root)
            self.state_dir = os.path.join(self.real_root, RESERVED)
            self.sidecars = SidecarStore(self.state_dir)
            os.makedirs(self.sidecars.meta_dir, exist_ok=True)
            os.makedirs(self.sidecars.temp_dir, exist_ok=True)
            self.lock_path = os.path.join(self.state_dir, "lock")
            self.adopter = Adopter(self.sidecars, self.lock_path)
            self._name_max = os.pathconf(self.real_root, "PC_NAME_MAX")
            clean_interrupted_writes(self.real_root, self.sidecars.temp_dir, self.name)
        except OSError as exc:
            raise from_os_error(exc, store=self.name) from exc
        # A plain function: the process-wide journal must not keep this driver alive.
        sweep = functools.partial(
            clean_interrupted_writes, self.real_root, self.sidecars.temp_dir, self.name
        )
        self.journal = Journal.open(self.sidecars.temp_dir, sweep)
        # Once, on close or when a store nobody closed is collected.
        self._release_journal = weakref.finalize(self, self.journal.close)

    def close(self) -> None:
        self._release_journal()

    # Names -------------------------------------------------------------------------------

    def base(self, namespace: str) -> list[str]:
        """The folders below the root that hold a namespace's files."""
        return [*_NAMESPACES, encode_segment(namespace)] if namespace else []

    def place(self, namespace: str, key: str) -> tuple[list[str], int, str]:
        """The folders (below the root) of ``key``'s file, how many of them are never pruned,
        and the file's name."""
        names = [encode_segment(segment) for segment in key.split("/")]
        for name in names:
            if len(name.encode()) > self._name_max:
                raise InvalidKey(
                    f"a key segment of {len(name.encode())} bytes is longer than this file "
                    f"system allows ({self._name_max})",
                    key=key,
                    store=self.name,
                )
        return self.base(namespace) + names[:-1], len(_NAMESPACES) if namespace else 0, names[-1]

    @contextlib.contextmanager
    def os_errors(self, key: str | None) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise from_os_error(exc, key=key, store=self.name) from exc

    def conflict(self, key: str) -> Unsupported:
        return Unsupported(
            "a directory store cannot hold both a key and a key below it (as 'a' and 'a/b')",
            key=key,
            store=self.name,
        )

    # Reading -----------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        with self.os_errors(key):
            opened = self._open_item(namespace, key)
        if opened is None:
            return None
        os.close(opened.fd)
        return opened.item

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        with self.os_errors(key):
            opened = self._open_item(namespace, key, lazy=True)
        if opened is None:
            raise NotFound("no such item", key=key, store=self.name)
        item, fd = opened.item, opened.fd
        try:
            first, stop = clip_range(item.size, start, end, key, self.name)
        except BaseException:
            os.close(fd)
            raise
        if opened.sidecar is None or opened.sidecar.adopted:
            # Another program's file, which it may edit in place while it is read.
            return item, ForeignFileRaw(fd, opened.stat, first, stop, key, self.name)
        if first == 0 and stop == item.size:
            return item, WholeFileRaw(fd, key, self.name)
        return item, FileRangeRaw(fd, first, stop, key, self.name)

    def _open_item(self, namespace: str, key: str, *, lazy: bool = False) -> _Opened | None:
        folders, keep, name = self.place(namespace, key)
        chain = open_folders(self.real_root, folders, keep=keep, store=self.name)
        if chain is None:
            return None
        try:
            return self.open_in(chain.fd, name, chain.shown(name), namespace, key, lazy)
        finally:
            chain.close()

    def open_in(
        self, folder: int, name: str, shown: str, namespace: str, key: str, lazy: bool = False
    ) -> _Opened | None:
        """The current version of the file ``name`` in ``folder`` and an open descriptor on it,
        or None if there is none. Another program's file whose checksum is not known is
        hashed, unless ``lazy`` and it is settled (its item then has no checksum)."""
        # Shared lock: a commit cannot swap the file and drop its sidecar in between.
        with file_lock(self.lock_path, exclusive=False):
            opened = self.open_file(folder, name, shown)
            if opened is None:
                return None
            fd, file_stat = opened
            try:
                sidecar = self.sidecars.read(file_stat, fd)
            except BaseException:
                os.close(fd)
                raise
        known = sidecar
        try:
            unknown = sidecar is None or sidecar.checksum is None
            if unknown and not (lazy and self.adopter.settled(file_stat)):
                sidecar = self.adopter.hash_now(fd, file_stat, sidecar)
        except BaseException:
            os.close(fd)
            raise
        described = sidecar or Sidecar(file_stat.st_size, file_stat.st_mtime_ns, None, adopted=True)
        return _Opened(self.item(namespace, key, file_stat, described), fd, file_stat, known)

    def open_file(self, folder: int, name: str, shown: str) -> tuple[int, os.stat_result] | None:
        """An open descriptor on the regular file ``name`` in ``folder`` inside the root."""
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
        linked = False
        try:
            # A name that is no symlink stays in its folder, which is inside the root.
            fd = os.open(name, flags | os.O_NOFOLLOW, dir_fd=folder)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a socket: no item
                return None
            if exc.errno != errno.ELOOP:
                raise
            linked = True
            try:
                fd = os.open(name, flags, dir_fd=folder)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # a link to a socket: no item
                    return None
                raise
        try:
            file_stat = os.fstat(fd)
            if not stat.S_ISREG(file_stat.st_mode):
                os.close(fd)
                return None
            if linked:
                check_inside(fd, self.real_root, shown, self.name)
        except BaseException:
            os.close(fd)
            raise
        return fd, file_stat

    def item(
        self, namespace: str, key: str, file_stat: os.stat_result, sidecar: Sidecar
    ) -> DataItem:
        return DataItem(
            key=key,
            namespace=namespace,
            size=file_stat.st_size,
            etag=etag_of(file_stat, sidecar),
            content_type=sidecar.content_type or guess_content_type(key),
            updated_at=updated_at(file_stat),
            checksum=sidecar.checksum,
            metadata=sidecar.metadata,
            flags=frozenset(Flag(flag) for flag in sidecar.flags),
        )

    # Writing (callers hold the exclusive lock where noted) ----------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return DirectoryWriter(self, namespace, key, replacing=not header.if_none_match)

    @contextlib.contextmanager
    def current(
        self, folder: int, name: str, shown: str, *, replacing: bool = False
    ) -> Iterator[Current | None]:
        """The file ``name`` in ``folder``, under the exclusive lock (never hashed: its etag
        comes from its sidecar or, for another program's file, from its identity). It is held
        open until the block ends: its inode cannot be reused meanwhile, so a sidecar file
        removed for it (``forget``) is never a new file's that was given the same inode.
        ``replacing``: a write will replace the name, which another program's pipe, socket or
        device refuses (it is no item, and not this store's to replace)."""
        try:
            link = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        mode = link.st_mode
        if replacing and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
            raise Unsupported(f"{shown!r} is a pipe, socket or device", store=self.name)
        opened = self.open_file(folder, name, shown)
        if opened is None:
            yield None
            return
        fd, file_stat = opened
        try:
            sidecar = self.sidecars.read(file_stat, fd)
            if sidecar is None:
                sidecar = Sidecar(file_stat.st_size, file_stat.st_mtime_ns, None, adopted=True)
            yield Current(link, file_stat, sidecar, fd)
        finally:
            os.close(fd)

    def forget(self, current: Current) -> None:
        """Drop the sidecar file of a file that no longer has a name (not a symlink's target,
        nor a file still reachable through another hard link); an attribute goes with it."""
        if current.sidecar.in_attribute:
            return
        if stat.S_ISREG(current.link.st_mode) and current.link.st_nlink <= 1:
            self.sidecars.remove(current.stat.st_ino)

    def item_of(self, namespace: str, key: str, current: Current) -> DataItem:
        return self.item(namespace, key, current.stat, current.sidecar)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        folders, keep, name = self.place(namespace, key)
        with self.os_errors(key), file_lock(self.lock_path, exclusive=True):
            chain = open_folders(self.real_root, folders, keep=keep, store=self.name)
            if chain is None:
                check_precondition(None, key, self.name, if_match, False)
                return False
            try:
                with self.current(chain.fd, name, chain.shown(name)) as current:
                    current_item = (
                        None if current is None else self.item_of(namespace, key, current)
                    )
                    check_precondition(current_item, key, self.name, if_match, False)
                    if current is None:
                        return False
                    os.unlink(name, dir_fd=chain.fd)
                    if self.durable:
                        os.fsync(chain.fd)
                    self.forget(current)
                chain.prune()
            finally:
                chain.close()
        return True

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        folders, keep, name = self.place(namespace, key)
        with self.os_errors(key), file_lock(self.lock_path, exclusive=True):
            chain = open_folders(self.real_root, folders, keep=keep, store=self.name)
            if chain is None:
                raise NotFound("no such item", key=key, store=self.name)
            try:
                with self.current(chain.fd, name, chain.shown(name)) as current:
                    if current is None:
                        raise NotFound("no such item", key=key, store=self.name)
                    current.sidecar.flags = sorted(flags)
                    self.sidecars.replace(current.fd, current.stat.st_ino, current.sidecar)
            finally:
                chain.close()

    # Listing (``_listing``) ----------------------------------------------------------------

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        with self.os_errors(None):
            return _listing.items(self, namespace, prefix, after, limit, flag)

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        with self.os_errors(None):
            return _listing.entries(self, namespace, prefix, after, limit)

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        if flag is not None:
            return super().count(namespace, prefix, flag)
        with self.os_errors(None):
            return _listing.count(self, namespace, prefix)

    def namespaces(self) -> list[str]:
        with self.os_errors(None):
            return _listing.namespaces(self)

    def files(self, namespace: str, prefix: str, after: str | None) -> Generator[Found, None, None]:
        return walk(self.real_root, self.base(namespace), prefix, after, self.name)
