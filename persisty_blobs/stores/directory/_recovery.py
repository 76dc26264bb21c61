"""What writers leave in the state folder's ``tmp``, and the cleanup after writers that died.

Every file there is named ``<owner>~<token>.<kind>``, the owner being ``_liveness``'s boot id,
PID namespace and PID: a store opening later removes a file only when that owner has exited on
this machine, never because a PID from another namespace or boot happens to be free here.
Kinds: ``journal`` (a process's list of the temp files its writers make beside their targets;
``write``, one such entry per file, from earlier versions), ``side`` (a sidecar being written),
``old`` (a replaced file's second name, unlinked in the background).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import stat
import threading
import weakref
from collections.abc import Callable

from ... import _liveness
from ...errors import BlobError
from ._fileio import write_all
from ._folders import open_folders
from ._names import TEMP_PREFIX, unique_token

__all__ = ["Journal", "JournalFile", "clean_interrupted_writes", "owned_name"]

#: Entries per journal file: a full one is removed once its writers have finished, so a
#: long-lived process keeps the journal short and a restart has little to read.
_ENTRIES = 1024
#: A journal holds at most ``_ENTRIES`` short lines; a larger file is not one of ours.
_JOURNAL_MAX_BYTES = 4 * 1024 * 1024
_JOURNAL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
#: One lock for the journals of the process, made anew in a forked child (whose copy may have
#: been held by another thread at the fork).
_lock = threading.Lock()


#: Counts the forks that led to this process (``os.getpid`` is a system call each time).
_generation = [0]


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()
    _generation[0] += 1


os.register_at_fork(after_in_child=_new_lock)


def owned_name(kind: str) -> str:
    """A new name for a file of this process in the state folder's ``tmp``."""
    owner = _liveness.local_owner() or "unknown"
    return f"{owner}~{unique_token()}.{kind}"


class JournalFile:
    """One journal file: the writers it lists that have not finished, and whether new entries
    go elsewhere now (then the last of them to finish removes it)."""

    def __init__(self, temp_dir: str) -> None:
        self.path = os.path.join(temp_dir, owned_name("journal"))
        self.fd = os.open(self.path, _JOURNAL_FLAGS, 0o644)
        self.generation = _generation[0]
        self.entries = 0
        self.active = 0
        self.retired = False

    def finish(self) -> None:
        """One writer listed here committed or gave up: its entry is no longer needed."""
        with _lock:
            self.active -= 1
            self._remove_if_done()

    def retire(self) -> None:
        self.retired = True
        self._remove_if_done()

    def _remove_if_done(self) -> None:
        if self.retired and self.active == 0 and self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.fd = -1


class Journal:
    """Where a store's writers in this process list their temp files before making them: one
    appended line each, instead of a record file made and removed per write. If the process
    dies, the store's next opening removes every temp file listed that is still there.

    One per state folder and process, shared by every store opened on that folder (``open``),
    and removed when the last of them is closed and its writers have finished, or at exit."""

    def __init__(self, temp_dir: str, sweep: Callable[[], None]) -> None:
        self._temp_dir = temp_dir
        self._sweep = sweep
        self._current: JournalFile | None = None
        self._users = 0
        _every_journal.add(self)

    @classmethod
    def open(cls, temp_dir: str, sweep: Callable[[], None]) -> Journal:
        """The journal of the state folder ``temp_dir``; ``sweep`` cleans up after the dead
        processes' journals there, and runs whenever this one starts a new file (so forked
        children that exit without cleaning up leave no pile behind)."""
        with _lock:
            journal = _journals.get(temp_dir)
            if journal is None:
                journal = _journals[temp_dir] = cls(temp_dir, sweep)
            journal._users += 1
        return journal

    def add(self, folders: list[str], keep: int, temp: str) -> JournalFile:
        """List the temp file ``temp`` about to be made in ``folders`` (below the root); the
        caller calls ``finish`` on the file returned once the write is over."""
        line = json.dumps({"folders": folders, "keep": keep, "temp": temp}).encode() + b"\n"
        started = False
        with _lock:
            current = self._current
            mine = current is not None and current.generation == _generation[0]
            if current is None or not mine or current.entries >= _ENTRIES:
                if current is not None and mine:
                    current.retire()
                # A forked child lists its writers apart: its parent's journal is its parent's.
                current = self._current = JournalFile(self._temp_dir)
                started = True
            write_all(current.fd, line)
            current.entries += 1
            current.active += 1
        if started:
            with contextlib.suppress(OSError, BlobError):
                self._sweep()
        return current

    def close(self) -> None:
        """A store on this folder is closed; the last one takes the journal with it."""
        with _lock:
            self._users -= 1
            if self._users <= 0:
                self._retire()
                if _journals.get(self._temp_dir) is self:
                    del _journals[self._temp_dir]

    def _retire(self) -> None:
        if self._current is not None and self._current.generation == _generation[0]:
            self._current.retire()
        self._current = None


_journals: dict[str, Journal] = {}
#: Every journal alive, a closed store's included (one written to after ``close`` too).
_every_journal: weakref.WeakSet[Journal] = weakref.WeakSet()


@atexit.register
def _retire_journals() -> None:
    with _lock:
        for journal in list(_every_journal):
            journal._retire()


def clean_interrupted_writes(real_root: str, temp_dir: str, store: str) -> None:
    """Remove what writers that died mid-write left: their temp files, the folders those made
    that are now empty (so they do not block a key of the same name), and their records."""
    for name in os.listdir(temp_dir):
        owner, marked, _ = name.partition("~")
        if not marked or not _liveness.owner_is_gone(owner):
            continue
        path = os.path.join(temp_dir, name)
        if name.endswith((".journal", ".write")):
            _remove_temps(real_root, path, store)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _remove_temps(real_root: str, journal: str, store: str) -> None:
    try:
        # Not blocking, and only a regular file: whatever else has the name is skipped.
        fd = os.open(journal, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        with open(fd, "rb", closefd=False) as file:
            lines = file.read(_JOURNAL_MAX_BYTES).splitlines()
    except OSError:
        return
    finally:
        os.close(fd)
    for line in lines:
        # A damaged line (deeply nested, a name that cannot be) must not keep the store shut.
        with contextlib.suppress(Exception):
            _remove_temp(real_root, line, store)


def _remove_temp(real_root: str, line: bytes, store: str) -> None:
    try:
        content = json.loads(line)
        folders, keep, temp = content["folders"], content["keep"], content["temp"]
    except (ValueError, TypeError, KeyError):
        return  # died before the entry was whole: it made no temp file yet
    if not (
        isinstance(folders, list)
        and all(isinstance(name, str) and _plain(name) for name in folders)
        and type(keep) is int
        and 0 <= keep <= len(folders)
        and isinstance(temp, str)
        and temp.startswith(TEMP_PREFIX)
        and _plain(temp)
    ):
        return
    try:
        chain = open_folders(real_root, folders, keep=keep, store=store)
    except (OSError, BlobError):
        return  # a folder became a link out of the root, or unreadable: leave it
    if chain is None:
        return
    try:
        try:
            os.unlink(temp, dir_fd=chain.fd)
        except FileNotFoundError:
            return  # committed (or never made): its folders are the user's now
        chain.prune()
    finally:
        chain.close()


def _plain(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")
