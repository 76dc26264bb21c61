"""Sidecars: what a file cannot say about itself (checksum, content type, metadata, flags).

A file this store writes keeps its sidecar in its own extended attribute ``user.persisty-blobs``
where the file system has them: set on the temp file before it takes its name, it is made
durable by the file's own fsync, switches with the content in one ``os.replace``, and a listing
reads it with one call on the file. Elsewhere (no user attributes, an attribute too large, the
hash of another program's file), a sidecar is a file under ``<root>/.persisty-blobs/meta/``,
keyed by the file's inode, which a rename keeps too. Either holds the size and mtime it was
written for; a file another program edits (new size or mtime) no longer matches, and its stale
metadata is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable
from typing import TypeVar

from ...driver import etag_for
from ._attribute import ATTRIBUTE, PLATFORM_HAS_ATTRIBUTES, pack, read_attribute, set_attribute
from ._fileio import write_all
from ._record import Sidecar
from ._recovery import owned_name

__all__ = ["Sidecar", "SidecarStore", "etag_of"]

_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: More than any sidecar this store writes (metadata is at most 2 KiB): a read of this size
#: that comes back short is the whole file.
_SIDECAR_MAX_BYTES = 64 * 1024
_T = TypeVar("_T")
_FILE_FIELDS = ("adopted", "checksum", "content_type", "flags", "metadata", "mtime_ns", "size")


def _read_sidecar_file(path: str) -> bytes | None:
    """A sidecar's bytes in as few system calls as can be (a listing reads one per item), or
    None for anything that is no sidecar: missing, not a regular file (a FIFO would block, a
    device never end), or larger than a sidecar can be. Links are not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _SIDECAR_MAX_BYTES + 1)
        if len(data) > _SIDECAR_MAX_BYTES or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    finally:
        os.close(fd)
    return data


def _in_folder_of(path: str, make: Callable[[], _T]) -> _T:
    """``make()``, which makes ``path``; if its folder is missing (the first sidecar there),
    the folder is made and ``make()`` runs again."""
    try:
        return make()
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return make()


def etag_of(stat: os.stat_result, sidecar: Sidecar | None) -> str:
    """The etag of the file ``stat`` describes: from the checksum of content this store wrote,
    else from the file's identity (inode, size, mtime), which any change of content replaces."""
    if sidecar is not None and sidecar.checksum is not None and not sidecar.adopted:
        return etag_for(sidecar.checksum)
    identity = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return hashlib.blake2b(identity, digest_size=16).hexdigest()


class SidecarStore:
    """The sidecars of one store, and the state folder's ``tmp`` they are written through."""

    def __init__(self, state_dir: str) -> None:
        self.meta_dir = os.path.join(state_dir, "meta")
        self.temp_dir = os.path.join(state_dir, "tmp")
        self.attributes = PLATFORM_HAS_ATTRIBUTES

    @staticmethod
    def _bucket(inode: int) -> str:
        return f"{inode % 256:02x}"

    def _path(self, inode: int) -> str:
        return os.path.join(self.meta_dir, self._bucket(inode), str(inode))

    def buckets(self) -> frozenset[str]:
        """The folders sidecar files are in now: where none is, no file has a sidecar file
        (a listing then looks for none; under the store's shared lock no file with one can
        appear, as its rename needs the exclusive lock)."""
        try:
            return frozenset(os.listdir(self.meta_dir))
        except FileNotFoundError:
            return frozenset()

    def read(
        self,
        stat: os.stat_result,
        file: int | str | None = None,
        buckets: frozenset[str] | None = None,
    ) -> Sidecar | None:
        """The sidecar of the file ``stat`` describes (open as ``file``, or at the path
        ``file``, to read its attribute), or None (none, stale, or damaged). ``buckets``: from
        ``buckets()``, to look for a sidecar file only where one can be."""
        if file is not None and self.attributes:
            sidecar = read_attribute(file)
            if sidecar is not None and sidecar.describes(stat):
                return sidecar
        if buckets is not None and self._bucket(stat.st_ino) not in buckets:
            return None
        data = _read_sidecar_file(self._path(stat.st_ino))
        if data is None:
            return None
        try:
            fields = json.loads(data)
            if not isinstance(fields, dict) or not fields.keys() <= set(_FILE_FIELDS):
                return None
            sidecar = Sidecar(**fields)
        except (ValueError, TypeError, RecursionError):
            return None
        return sidecar if sidecar.valid() and sidecar.describes(stat) else None

    def write(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Replace the sidecar of a file that has a name: in one rename, so that a crash
        leaves the old sidecar or the new one."""
        self.install(self.prepare(sidecar, durable=durable), inode, durable=durable)

    def create(self, fd: int, inode: int, sidecar: Sidecar, *, durable: bool) -> bool:
        """Give the temp file open as ``fd`` its sidecar, before it takes its name; True if
        that went in its attribute, which only the file's own fsync (the caller's) makes
        durable. A sidecar file is made durable here."""
        if self.attributes and set_attribute(fd, sidecar):
            return True
        self._create_file(inode, sidecar, durable=durable)
        return False

    def replace(self, fd: int, inode: int, sidecar: Sidecar) -> None:
        """Replace, durably, the sidecar of the named file open as ``fd`` where it is kept."""
        if sidecar.in_attribute:  # the same size as before: it has room
            os.setxattr(fd, ATTRIBUTE, pack(sidecar))
            os.fsync(fd)
        else:
            self.write(inode, sidecar, durable=True)

    def _create_file(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Write the sidecar file of a temp file in place: no reader looks it up before the
        temp file takes its name, and one torn by a crash belongs to a temp file that is
        removed (a later file given the inode does not match its size and mtime). Only as a
        new file: whatever has the name already (a stale sidecar, or a link someone planted to
        a file elsewhere) is replaced by a rename, never written through."""
        target = self._path(inode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = _in_folder_of(target, lambda: os.open(target, flags, 0o644))
        except FileExistsError:
            self.write(inode, sidecar, durable=durable)
            return
        self._write(fd, sidecar, durable=durable)
        if durable:
            self._sync_folder(target)

    def prepare(self, sidecar: Sidecar, *, durable: bool) -> str:
        """Write ``sidecar`` to a temp file of its own (outside any lock); its path."""
        temp = os.path.join(self.temp_dir, owned_name("side"))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._write(fd, sidecar, durable=durable)
        return temp

    @staticmethod
    def _write(fd: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Write ``sidecar`` to the new file ``fd`` and close it."""
        fields = {name: getattr(sidecar, name) for name in _FILE_FIELDS}
        try:
            write_all(fd, _ENCODER.encode(fields).encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def install(self, temp: str, inode: int, *, durable: bool) -> None:
        """Make the prepared ``temp`` the sidecar of ``inode`` in one rename."""
        target = self._path(inode)
        _in_folder_of(target, lambda: os.replace(temp, target))
        if durable:
            self._sync_folder(target)

    @staticmethod
    def _sync_folder(path: str) -> None:
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    @staticmethod
    def discard(temp: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)

    def remove(self, inode: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(inode))
