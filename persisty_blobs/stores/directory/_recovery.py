"""What a writer leaves in the state folder's ``tmp``, and the cleanup after writers that died.

Every file there is named ``<owner>~<random>.<kind>``, the owner being ``_liveness``'s boot id,
PID namespace and PID: a store opening later removes a file only when that owner has exited on
this machine, never because a PID from another namespace or boot happens to be free here.
Kinds: ``write`` (a record naming a temp file beside its target), ``side`` (a sidecar being
written), ``old`` (a replaced file's second name, unlinked in the background).
"""

from __future__ import annotations

import contextlib
import json
import os

from ... import _liveness
from ...errors import BlobError
from ._fileio import write_all
from ._folders import open_folders
from ._names import TEMP_PREFIX, unique_token

__all__ = ["clean_interrupted_writes", "owned_name", "write_record"]


def owned_name(kind: str) -> str:
    """A new name for a file of this process in the state folder's ``tmp``."""
    owner = _liveness.local_owner() or "unknown"
    return f"{owner}~{unique_token()}.{kind}"


def write_record(temp_dir: str, folders: list[str], keep: int, temp: str) -> str:
    """Record a temp file about to be made in ``folders`` (below the root); the record's path."""
    record = os.path.join(temp_dir, owned_name("write"))
    content = json.dumps({"folders": folders, "keep": keep, "temp": temp}).encode()
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, content)
    finally:
        os.close(fd)
    return record


def clean_interrupted_writes(real_root: str, temp_dir: str, store: str) -> None:
    """Remove what writers that died mid-write left: their temp files, the folders those made
    that are now empty (so they do not block a key of the same name), and their records."""
    for name in os.listdir(temp_dir):
        owner, marked, _ = name.partition("~")
        if not marked or not _liveness.owner_is_gone(owner):
            continue
        path = os.path.join(temp_dir, name)
        if name.endswith(".write"):
            _remove_temp(real_root, path, store)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _remove_temp(real_root: str, record: str, store: str) -> None:
    try:
        with open(record, encoding="utf-8") as file:
            content = json.load(file)
        folders, keep, temp = content["folders"], content["keep"], content["temp"]
    except (OSError, ValueError, TypeError, KeyError):
        return  # died before the record was whole: it made no temp file yet
    if not (
        isinstance(folders, list)
        and all(isinstance(name, str) and _plain(name) for name in folders)
        and isinstance(keep, int)
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
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=chain.fd)
        chain.prune()
    finally:
        chain.close()


def _plain(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")
