"""``DirectoryStore``: items are plain files under a root folder.

Point it at an existing folder and its files appear as items. What a file cannot hold itself
(content type, metadata, flags, checksum) lives in a sidecar: the file's extended attribute
``user.persisty-blobs`` where the file system has them, else a file under
``<root>/.persisty-blobs/``, which never shows as an item; other namespaces live there too,
apart from the root's own files.

A write streams into a temp file beside its target, is fsynced, and becomes visible with one
``os.replace``, so a reader sees the old file or the whole new one. ``durable=False`` skips the
fsyncs (a cache, scratch space): writes stay atomic, but a power cut may lose recent ones. An
interrupted write leaves only a temp file, which is never listed and is removed the next time
the store is opened.
Nothing outside the root is ever created, changed or removed: a symlink is followed only where
it leads inside the root, and listings leave symlinked folders out. The store's own
``.persisty-blobs`` folder is trusted: a symlink planted inside it is followed.
A file system cannot hold both ``a`` and ``a/b``, nor a key segment longer than its name limit
(255 bytes on most): such keys raise ``Unsupported`` or ``InvalidKey`` here.
"""

from __future__ import annotations

import os
import urllib.parse

from ..._urls import shown_url
from ...errors import InvalidArgument, InvalidArgumentType
from ...store import DataStore
from ._driver import DirectoryDriver

__all__ = ["DirectoryStore"]


class DirectoryStore(DataStore):
    """Items as files under ``root`` (created if missing)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        chunk_size: int = 1024 * 1024,
        durable: bool = True,
    ) -> None:
        if not isinstance(root, str | os.PathLike):
            raise InvalidArgumentType(f"root must be a path, not {type(root).__name__}")
        if "\0" in os.fsdecode(root):
            raise InvalidArgument("a path cannot hold a NUL character")
        if type(chunk_size) is not int:
            raise InvalidArgumentType(f"chunk_size must be an int, not {type(chunk_size).__name__}")
        if chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be positive, not {chunk_size}")
        if not isinstance(durable, bool):
            raise InvalidArgumentType(f"durable must be a bool, not {type(durable).__name__}")
        super().__init__(DirectoryDriver(os.fspath(root), chunk_size, durable))

    @classmethod
    def from_url(
        cls, url: str, *, chunk_size: int = 1024 * 1024, durable: bool = True
    ) -> DirectoryStore:
        """``file:///absolute/path``; the options are the constructor's."""
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not os.path.isabs(path):
            raise InvalidArgument(
                f"a directory store URL is file:///absolute/path, not {shown_url(url)!r}"
            )
        if parts.query or parts.fragment:
            raise InvalidArgument(
                f"a directory store URL has no query ({shown_url(url)!r}): chunk_size= and "
                "durable= are options"
            )
        return cls(path, chunk_size=chunk_size, durable=durable)
