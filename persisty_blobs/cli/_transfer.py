"""Streaming one item: file to store, store to file, store to store.

Content moves a block at a time, hashed as it goes; a copy whose SHA-256 differs from the
source's checksum is discarded before it is committed. A local file is written beside its
target and appears through one ``os.replace``, so an interrupted download leaves the old
file (or none), never part of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import IntegrityError
from ..item import DataItem, Flag
from ..store import DataStore
from ._progress import Meter

__all__ = ["copy_item", "download", "local_writer", "upload"]

_BLOCK = 1024 * 1024


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _pump(reader: _Source, writer: _Sink, meter: Meter, expected: str | None, where: str) -> None:
    """Copy every block; raise (so the caller's writer is discarded) if the content's
    SHA-256 is not ``expected``."""
    digest = hashlib.sha256()
    while block := reader.read(_BLOCK):
        digest.update(block)
        writer.write(block)
        meter.advance(len(block))
    copied = f"sha256:{digest.hexdigest()}"
    if expected is not None and copied != expected:
        raise IntegrityError(f"read {copied}, the source's checksum is {expected}", key=where)


@contextlib.contextmanager
def local_writer(path: Path) -> Iterator[BinaryIO]:
    """A new file that replaces ``path`` on a clean exit and vanishes on an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # mkstemp's 0600 is for the temp file only
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def upload(
    source: str,
    store: DataStore,
    key: str,
    meter: Meter,
    *,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
    flags: Iterable[Flag | str] | None = None,
) -> DataItem:
    """``source`` (a file's path, or ``-`` for stdin) onto ``store[key]``."""
    with contextlib.ExitStack() as stack:
        if source == "-":
            file: BinaryIO = sys.stdin.buffer
        else:
            file = stack.enter_context(open(source, "rb"))
            meter.expect(os.fstat(file.fileno()).st_size)
        with store.writer(key, content_type=content_type, metadata=metadata, flags=flags) as out:
            _pump(file, out, meter, None, key)
    meter.item_done()
    assert out.item is not None
    return out.item


def download(store: DataStore, key: str, target: str, meter: Meter) -> DataItem:
    """``store[key]`` into the file ``target`` (``-``: stdout)."""
    with store.open(key) as reader:
        item = reader.item
        meter.expect(item.size)
        if target == "-":
            _pump(reader, sys.stdout.buffer, meter, item.checksum, key)
            sys.stdout.buffer.flush()
        else:
            with local_writer(Path(target)) as out:
                _pump(reader, out, meter, item.checksum, key)
    meter.item_done()
    return item


def copy_item(
    source: DataStore, key: str, target: DataStore, target_key: str, meter: Meter
) -> DataItem:
    """``source[key]`` onto ``target[target_key]`` with its content type, metadata and
    flags."""
    with source.open(key) as reader:
        item = reader.item
        meter.expect(item.size)
        with target.writer(
            target_key, content_type=item.content_type, metadata=item.metadata, flags=item.flags
        ) as out:
            _pump(reader, out, meter, item.checksum, key)
    meter.item_done()
    assert out.item is not None
    return out.item
