"""Folders below the root, opened one at a time relative to their parent (``openat``).

Every operation that creates, changes or removes a name reaches its folder this way, never by a
path string: a symlinked folder is followed only when the folder it leads to, checked on the
open descriptor, is inside the root, so nothing outside the root is ever created, changed or
removed, even if a link is swapped while the operation runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ...errors import PermissionDenied
from ._names import RESERVED

__all__ = ["FolderChain", "check_inside", "make_folders", "open_folders"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MISSING = (errno.ENOENT, errno.ENAMETOOLONG)


def check_inside(fd: int, real_root: str, shown_path: str, store: str) -> None:
    """Refuse an open file or folder that a symlink led out of its namespace: outside the
    root, or from the default namespace into the store's own folder (other namespaces, the
    lock), or from a namespace into anything but its own folder. ``shown_path`` is the path
    as named from the root, which says whose it is."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (macOS, BSD): fall back to the path
        real = os.path.realpath(shown_path)
    if not _within(real, real_root):
        raise PermissionDenied(f"{shown_path!r} resolves outside the store's root", store=store)
    named = os.path.relpath(shown_path, real_root).split(os.sep)
    reserved = os.path.join(real_root, RESERVED)
    if named[:2] == [RESERVED, "ns"] and len(named) >= 3:
        allowed = _within(real, os.path.join(reserved, "ns", named[2]))
    elif named[0] == RESERVED:  # the store's folder itself, or its namespaces' folder
        allowed = real == os.path.join(real_root, *named)
    else:
        allowed = not _within(real, reserved)
    if not allowed:
        raise PermissionDenied(f"{shown_path!r} resolves into another namespace", store=store)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


class FolderChain:
    """Open descriptors of the folders from the root down to one folder, each opened in the
    one before. The first ``keep`` folders below the root are never pruned."""

    def __init__(self, real_root: str, root_fd: int, keep: int, store: str) -> None:
        self.real_root = real_root
        self.store = store
        self.fds = [root_fd]
        self.names: list[str] = []
        self.keep = keep

    @property
    def fd(self) -> int:
        """The deepest folder's descriptor."""
        return self.fds[-1]

    def shown(self, name: str = "") -> str:
        """A path for messages (the folders as named, not as resolved)."""
        return os.path.join(self.real_root, *self.names, name)

    def prune(self) -> None:
        """Remove the folders of the chain that are empty, deepest first, down to ``keep``.
        ``rmdir`` of a name that is a symlink fails, so a linked folder is never removed."""
        for depth in range(len(self.names), self.keep, -1):
            try:
                os.rmdir(self.names[depth - 1], dir_fd=self.fds[depth - 1])
            except OSError:
                return

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def open_folders(
    real_root: str, names: list[str], *, keep: int, store: str, follow_links: bool = True
) -> FolderChain | None:
    """The chain of folders ``names`` below the root, or None if one is missing (or is a file,
    or, without ``follow_links``, a symlink). ``PermissionDenied`` if a symlink leads outside
    the root."""
    return _chain(real_root, names, keep, store, create=False, follow_links=follow_links)


def make_folders(real_root: str, names: list[str], *, keep: int, store: str) -> FolderChain:
    """Like ``open_folders``, making the folders that are missing; ``NotADirectoryError`` where
    a file is in the way. On any error the folders this call made are removed again."""
    chain = _chain(real_root, names, keep, store, create=True, follow_links=True)
    assert chain is not None  # with create, a missing folder is made, never reported
    return chain


def _chain(
    real_root: str, names: list[str], keep: int, store: str, *, create: bool, follow_links: bool
) -> FolderChain | None:
    chain = FolderChain(real_root, os.open(real_root, _FOLDER | os.O_NOFOLLOW), keep, store)
    made = False
    try:
        for name in names:
            opened = _open_folder(chain, name, create=create, follow_links=follow_links)
            if opened is None:
                chain.close()
                return None
            chain.fds.append(opened[0])
            chain.names.append(name)
            made = made or opened[1]
    except BaseException:
        if made:
            chain.prune()
        chain.close()
        raise
    return chain


def _open_folder(
    chain: FolderChain, name: str, *, create: bool, follow_links: bool
) -> tuple[int, bool] | None:
    """The folder ``name`` in the chain's deepest folder: its descriptor and whether this call
    made it, or None (missing, a file, or a symlink not to be followed)."""
    made = False
    while True:
        try:
            fd = os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=chain.fd)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=chain.fd)
                made = True
            continue
        except NotADirectoryError:
            linked = _open_linked_folder(chain, name, create=create, follow_links=follow_links)
            return None if linked is None else (linked, False)
        except OSError as exc:
            if exc.errno in _MISSING and not create:
                return None
            raise
        return fd, made


def _open_linked_folder(
    chain: FolderChain, name: str, *, create: bool, follow_links: bool
) -> int | None:
    """``name`` is a symlink or a file: the folder a symlink leads to, if inside the root."""
    shown = chain.shown(name)
    if not stat.S_ISLNK(os.lstat(name, dir_fd=chain.fd).st_mode):
        if create:
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", shown)
        return None
    if not follow_links:
        return None
    try:
        fd = os.open(name, _FOLDER, dir_fd=chain.fd)
    except (FileNotFoundError, NotADirectoryError):
        if create:
            message = f"{shown!r} is a symlink that leads to no folder"
            raise PermissionDenied(message, store=chain.store) from None
        return None
    try:
        check_inside(fd, chain.real_root, shown, chain.store)
    except BaseException:
        os.close(fd)
        raise
    return fd
