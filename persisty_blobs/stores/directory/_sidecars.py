"""Sidecars: what a file cannot say about itself (checksum, content type, metadata, flags).

A sidecar lives under ``<root>/.persisty-blobs/meta/``, keyed by the file's inode: a rename keeps
the inode, so content and sidecar switch together in one ``os.replace``. It holds the size and
mtime it was written for; a file another program edits (new size or mtime) no longer matches,
and its stale metadata is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ...driver import etag_for
from ...errors import InvalidMetadata
from ...item import Flag
from ...keys import validate_content_type, validate_metadata
from ._fileio import write_all
from ._recovery import owned_name

__all__ = ["Sidecar", "SidecarStore", "etag_of"]

_FLAGS = frozenset(flag.value for flag in Flag)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: More than any sidecar this store writes (metadata is at most 2 KiB): a read of this size
#: that comes back short is the whole file.
_SIDECAR_MAX_BYTES = 64 * 1024
_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")
_T = TypeVar("_T")


@dataclass
class Sidecar:
    """A file's sidecar, valid while the file keeps ``size`` and ``mtime_ns``.

    ``adopted``: the file was written by another program; its checksum (if known) was computed
    here, and its etag comes from the file's identity, so listing it never reads its content.
    """

    size: int
    mtime_ns: int
    checksum: str | None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    adopted: bool = False

    def describes(self, stat: os.stat_result) -> bool:
        return self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns

    def valid(self) -> bool:
        """Whether a sidecar read from disk has the shape this module writes, with values the
        store would accept (one written by hand cannot hand out a header or a checksum that
        no put could have)."""
        shaped = (
            type(self.size) is int
            and type(self.mtime_ns) is int
            and (self.checksum is None or bool(_CHECKSUM.fullmatch(str(self.checksum))))
            and isinstance(self.content_type, str | None)
            and isinstance(self.metadata, dict)
            and isinstance(self.flags, list)
            and all(isinstance(flag, str) and flag in _FLAGS for flag in self.flags)
            and isinstance(self.adopted, bool)
        )
        if not shaped:
            return False
        try:
            if self.content_type is not None:
                validate_content_type(self.content_type)
            return validate_metadata(self.metadata) == self.metadata
        except InvalidMetadata:
            return False


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

    def _path(self, inode: int) -> str:
        return os.path.join(self.meta_dir, f"{inode % 256:02x}", str(inode))

    def read(self, stat: os.stat_result) -> Sidecar | None:
        """The sidecar of the file ``stat`` describes, or None (none, stale, or damaged)."""
        data = _read_sidecar_file(self._path(stat.st_ino))
        if data is None:
            return None
        try:
            sidecar = Sidecar(**json.loads(data))
        except (ValueError, TypeError, RecursionError):
            return None
        return sidecar if sidecar.valid() and sidecar.describes(stat) else None

    def write(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Replace the sidecar of a file that has a name: in one rename, so that a crash
        leaves the old sidecar or the new one."""
        self.install(self.prepare(sidecar, durable=durable), inode, durable=durable)

    def create(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Write the sidecar of a temp file in place: no reader looks it up before the temp
        file takes its name, and one torn by a crash belongs to a temp file that is removed
        (a later file given the inode does not match its size and mtime). Only as a new file:
        whatever has the name already (a stale sidecar, or a link someone planted to a file
        elsewhere) is replaced by a rename, never written through."""
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
        try:
            write_all(fd, _ENCODER.encode(sidecar.__dict__).encode())
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
