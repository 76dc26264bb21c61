"""Files another program wrote: ``get`` and ``list`` hash them (``open`` does not: its reader
has the content anyway), and from ``REMEMBER_HASH_BYTES`` on the checksum is kept in a sidecar
file while the file keeps its inode, size and mtime."""

from __future__ import annotations

import contextlib
import os

from ._fileio import file_lock, sha256_of_fd
from ._record import Sidecar
from ._sidecars import SidecarStore

__all__ = ["REMEMBER_HASH_BYTES", "Adopter"]

#: Below this size, hashing the file again costs no more than reading a sidecar back, and
#: writing one (a file, a rename, the lock) costs far more than both.
REMEMBER_HASH_BYTES = 64 * 1024


class Adopter:
    """Checksums of other programs' files for one store (its sidecars and its lock)."""

    def __init__(self, sidecars: SidecarStore, lock_path: str) -> None:
        self.sidecars = sidecars
        self.lock_path = lock_path

    def hash_now(self, fd: int, file_stat: os.stat_result, known: Sidecar | None) -> Sidecar:
        """The sidecar of the open file ``fd`` (as ``file_stat`` describes it, ``known`` its
        sidecar then), its content hashed now."""
        checksum = sha256_of_fd(fd, file_stat.st_size)
        flags = [] if known is None else known.flags
        sidecar = Sidecar(file_stat.st_size, file_stat.st_mtime_ns, checksum, flags=flags)
        sidecar.adopted = True
        if file_stat.st_size >= REMEMBER_HASH_BYTES:
            with contextlib.suppress(OSError):
                self._remember(fd, file_stat, known, sidecar)
        return sidecar

    def _remember(
        self, fd: int, file_stat: os.stat_result, known: Sidecar | None, sidecar: Sidecar
    ) -> None:
        # Written before the lock is taken, so the lock is held for a stat, a read and a rename.
        temp = self.sidecars.prepare(sidecar, durable=False)
        installed = False
        try:
            with file_lock(self.lock_path, exclusive=True):
                # The file is held open, so its inode is not another file's. Kept only if
                # the file still has a name and its content and sidecar are as they were
                # when it was opened: flags set meanwhile are not overwritten.
                now = os.fstat(fd)
                if (
                    now.st_nlink > 0
                    and now.st_ino == file_stat.st_ino
                    and sidecar.describes(now)
                    and self.sidecars.read(now, fd) == known
                ):
                    self.sidecars.install(temp, now.st_ino, durable=False)
                    installed = True
        finally:
            if not installed:
                self.sidecars.discard(temp)
