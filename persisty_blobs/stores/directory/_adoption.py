"""Files another program wrote: ``get`` and ``list`` hash them, and from ``REMEMBER_HASH_BYTES``
on the checksum is kept in a sidecar file while the file keeps its inode, size and mtime.

``open`` does not hash a settled file first (its reader has the content anyway, and fails if
the file's size or mtime changed by the end of the read). A file changed moments ago is not
settled: a file system's clock ticks coarsely (FAT's every 2 s, ext4 with small inodes every
second), so that program could change it again within the same tick, keeping its size and
mtime. Such a file is hashed first, which a copy's target checks a second read against, and its
hash is not remembered (as git treats "racily clean" files)."""

from __future__ import annotations

import contextlib
import os
import time

from ._fileio import file_lock, sha256_of_fd
from ._record import Sidecar
from ._sidecars import SidecarStore

__all__ = ["REMEMBER_HASH_BYTES", "Adopter"]

#: Below this size, hashing the file again costs no more than reading a sidecar back, and
#: writing one (a file, a rename, the lock) costs far more than both.
REMEMBER_HASH_BYTES = 64 * 1024
#: How long after its last change a file is settled: longer than any file system's tick.
_SETTLED_NS = 3_000_000_000


class Adopter:
    """Checksums of other programs' files for one store (its sidecars and its lock)."""

    def __init__(self, sidecars: SidecarStore, lock_path: str) -> None:
        self.sidecars = sidecars
        self.lock_path = lock_path

    @staticmethod
    def settled(file_stat: os.stat_result) -> bool:
        """Whether a change to the file would change its mtime (one in the future is not)."""
        return time.time_ns() - file_stat.st_mtime_ns >= _SETTLED_NS

    def hash_now(self, fd: int, file_stat: os.stat_result, known: Sidecar | None) -> Sidecar:
        """The sidecar of the open file ``fd`` (as ``file_stat`` describes it, ``known`` its
        sidecar then), its content hashed now."""
        # Settled before the hash starts: a file that settles while a long hash runs may
        # have changed within its tick behind the hash.
        settled = self.settled(file_stat)
        checksum = sha256_of_fd(fd, file_stat.st_size)
        flags = [] if known is None else known.flags
        sidecar = Sidecar(file_stat.st_size, file_stat.st_mtime_ns, checksum, flags=flags)
        sidecar.adopted = True
        if file_stat.st_size >= REMEMBER_HASH_BYTES and settled:
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
