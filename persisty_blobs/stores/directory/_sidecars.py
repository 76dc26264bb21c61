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
from dataclasses import dataclass, field

from ...driver import etag_for
from ...item import Flag
from ._fileio import write_all
from ._recovery import owned_name

__all__ = ["Sidecar", "SidecarStore", "etag_of"]

_FLAGS = frozenset(flag.value for flag in Flag)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_READ_AT_ONCE = 64 * 1024


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
        """Whether a sidecar read from disk has the shape this module writes."""
        return (
            type(self.size) is int
            and type(self.mtime_ns) is int
            and isinstance(self.checksum, str | None)
            and isinstance(self.content_type, str | None)
            and isinstance(self.metadata, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items())
            and isinstance(self.flags, list)
            and all(isinstance(flag, str) and flag in _FLAGS for flag in self.flags)
            and isinstance(self.adopted, bool)
        )


def _read_small_file(path: str) -> bytes:
    """The whole of a file of a few hundred bytes, in as few system calls as can be (a listing
    reads one per item): a short read of a regular file is its end."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = [os.read(fd, _READ_AT_ONCE)]
        while len(parts[-1]) == _READ_AT_ONCE:
            parts.append(os.read(fd, _READ_AT_ONCE))
    finally:
        os.close(fd)
    return b"".join(parts)


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
        try:
            sidecar = Sidecar(**json.loads(_read_small_file(self._path(stat.st_ino))))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return sidecar if sidecar.valid() and sidecar.describes(stat) else None

    def write(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Replace the sidecar of a file that has a name: in one rename, so that a crash
        leaves the old sidecar or the new one."""
        self.install(self.prepare(sidecar, durable=durable), inode, durable=durable)

    def create(self, inode: int, sidecar: Sidecar, *, durable: bool) -> None:
        """Write the sidecar of a temp file in place: no reader looks it up before the temp
        file takes its name, and one torn by a crash belongs to a temp file that is removed
        (a later file given the inode does not match its size and mtime)."""
        target = self._path(inode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, 0o644)
        except FileNotFoundError:  # the first sidecar in its folder: make the folder
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(target, flags, 0o644)
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
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the first sidecar in its folder: make the folder
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(temp, target)
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
