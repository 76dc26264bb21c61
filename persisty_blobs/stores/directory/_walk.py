"""Walking a namespace's files in key order, for ``list``, ``count`` and ``scan``.

Folders are entered one at a time relative to their parent and never through a symlink, so a
symlinked folder's subtree is left out, wherever it leads; a symlinked file is listed only if it
leads to a regular file inside the root. Folders that cannot be read are left out too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ...errors import BlobError
from ...keys import is_key
from ._folders import check_inside, open_folders
from ._names import decode_name, encode_segment

__all__ = ["Found", "walk"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_UNREADABLE = (FileNotFoundError, NotADirectoryError, PermissionError)


class Found(NamedTuple):
    """A file whose key is listed: ``name`` in the open folder ``folder`` (valid while the walk
    that yielded it is not advanced or closed), shown as ``path`` in messages. A tuple: a
    listing makes one per file."""

    key: str
    folder: int
    name: str
    path: str


@dataclass(frozen=True)
class _Walk:
    real_root: str
    store: str
    prefix: str
    after: str | None


def walk(
    real_root: str, base: list[str], prefix: str, after: str | None, store: str
) -> Generator[Found, None, None]:
    """Files below the folders ``base`` whose key starts with ``prefix`` and is above ``after``,
    in ascending key order. Close the iterator (or exhaust it) to release its folders."""
    head, _, _ = prefix.rpartition("/")
    segments = head.split("/") if head else []
    if any(segment in ("", ".", "..") for segment in segments):
        return
    names = base + [encode_segment(segment) for segment in segments]
    try:
        chain = open_folders(real_root, names, keep=len(names), store=store, follow_links=False)
    except PermissionError:
        return
    if chain is None:
        return
    try:
        yield from _files(
            _Walk(real_root, store, prefix, after),
            chain.fd,
            chain.shown().removesuffix("/"),
            head + "/" * bool(head),
        )
    finally:
        chain.close()


def _files(walk: _Walk, folder: int, path: str, key_prefix: str) -> Iterator[Found]:
    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except _UNREADABLE:
        return
    named: list[tuple[str, str, bool]] = []
    for entry in entries:
        segment = decode_name(entry.name)
        if segment is None or not is_key(key_prefix + segment):
            continue
        if entry.is_dir(follow_symlinks=False):
            named.append((key_prefix + segment + "/", entry.name, True))
        elif entry.is_file(follow_symlinks=False) or (
            entry.is_symlink() and _leads_inside(walk, folder, entry.name, path)
        ):
            named.append((key_prefix + segment, entry.name, False))
    named.sort()
    for key, name, is_folder in named:
        if not is_folder:
            if key.startswith(walk.prefix) and (walk.after is None or key > walk.after):
                yield Found(key, folder, name, f"{path}/{name}")
            continue
        if not (key.startswith(walk.prefix) or walk.prefix.startswith(key)):
            continue
        if walk.after is not None and walk.after > key and not walk.after.startswith(key):
            continue
        try:
            child = os.open(name, _FOLDER, dir_fd=folder)
        except _UNREADABLE:  # removed, replaced by a link, or unreadable meanwhile
            continue
        try:
            yield from _files(walk, child, os.path.join(path, name), key)
        finally:
            os.close(child)


def _leads_inside(walk: _Walk, folder: int, name: str, path: str) -> bool:
    """Whether the symlink ``name`` leads to a regular file inside the root."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with contextlib.suppress(BlobError):
            check_inside(fd, walk.real_root, os.path.join(path, name), walk.store)
            return True
        return False
    finally:
        os.close(fd)
