"""One attachment's transfer: an upload, a download or a remote delete, each a conditional
write, so a transfer abandoned or killed midway and run again later is safe."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AlreadyExists, IntegrityError, NotFound, PreconditionFailed
from ..item import DataItem
from ..store import DataStore
from ..sync._transfer import copy_version
from ..sync.model import Version

__all__ = ["delete_remote", "download", "saved_version", "upload"]

Progress = Callable[[int], None]


def _version(item: DataItem) -> Version:
    return Version(etag=item.etag, size=item.size, checksum=item.checksum, flags=None)


def saved_version(id: str, etag: str | None, size: int | None, checksum: str | None) -> Version:
    """The local version a record says was saved (the upload is conditional on it)."""
    if etag is None:
        raise NotFound("the attachment has no local content", key=id)
    return Version(etag=etag, size=size or 0, checksum=checksum, flags=None)


def upload(
    local: DataStore,
    remote: DataStore,
    id: str,
    saved: Version,
    replaces: str | None,
    on_bytes: Progress,
    unrecorded: frozenset[str] = frozenset(),
) -> tuple[DataItem, DataItem]:
    """Copy the local version ``saved`` to the remote, over the remote version ``replaces``
    (None: only if absent). A remote that already holds the same content (an upload that
    finished before its result was recorded) counts as done; one that holds nothing any more,
    or one of the ``unrecorded`` versions (see ``Record.unrecorded_checksums``), is written
    over.
    Returns (local item, remote item)."""
    target = None if replaces is None else Version(etag=replaces, size=0, checksum=None, flags=None)
    try:
        return copy_version(local, remote, id, saved, target, on_bytes=on_bytes)
    except (AlreadyExists, PreconditionFailed):
        there = remote.get(id)
        if there is None and replaces is not None:
            # The version it was to replace is gone (deleted here before a crash recorded
            # it, or by another device): the content saved since goes up anew.
            return copy_version(local, remote, id, saved, None, on_bytes=on_bytes)
        if there is not None and there.checksum in unrecorded:
            # This device's own earlier version, sent before a crash recorded it.
            return copy_version(local, remote, id, saved, _version(there), on_bytes=on_bytes)
        if there is None or there.checksum is None or there.checksum != saved.checksum:
            raise
        item = local.get(id)
        if item is None or item.etag != saved.etag:
            raise
        return item, there


def download(
    remote: DataStore, local: DataStore, id: str, checksum: str | None, on_bytes: Progress
) -> tuple[DataItem, DataItem]:
    """Copy the remote content to the local store, where it becomes visible only once the
    whole copy matched the remote's checksum (and ``checksum``, when the record knows it).
    Returns (local item, remote item)."""
    item = remote.get(id)
    if item is None:
        raise NotFound("not on the remote (yet)", key=id, store=repr(remote))
    if checksum is not None and item.checksum is not None and item.checksum != checksum:
        raise IntegrityError(
            f"the remote holds {item.checksum}, the attachment is {checksum}",
            key=id,
            store=repr(remote),
        )
    try:
        source, copy = copy_version(remote, local, id, _version(item), None, on_bytes=on_bytes)
    except AlreadyExists:
        there = local.get(id)
        if there is None or there.checksum != item.checksum:
            raise
        return there, item
    return copy, source


def delete_remote(
    remote: DataStore,
    id: str,
    etag: str | None,
    checksum: str | None,
    unrecorded: frozenset[str] = frozenset(),
) -> None:
    """Delete the remote copy: only the version the record knows, or content equal to ours
    (an upload whose result was never recorded: ``checksum``, or ``unrecorded``); when the
    record never had content here, whatever the id holds, as the app asked."""
    if etag is not None:
        try:
            remote.delete(id, if_match=etag)
            return
        except PreconditionFailed:
            pass  # gone, or replaced: by this device before a crash, or by another
    there = remote.get(id)
    if there is None:
        return
    anything = etag is None and checksum is None
    if anything or _is(there, checksum) or there.checksum in unrecorded:
        remote.delete(id, if_match=there.etag)
    elif etag is not None:
        raise PreconditionFailed(
            "the remote holds another device's version", key=id, store=repr(remote)
        )


def _is(item: DataItem, checksum: str | None) -> bool:
    return checksum is not None and item.checksum == checksum
