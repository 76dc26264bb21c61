"""``AttachmentQueue``: attachments for apps whose documents reference blobs.

``save`` stores the content locally and queues its upload in one step; ``watch`` takes the
set of ids the app's documents reference and queues what is missing for download, archives
what is no longer referenced (uploaded first if it never was) and lets the cache evict the
oldest archived ones locally; ``delete`` removes locally and queues the remote delete. A
background thread (``start``) or ``sync_now`` runs the transfers. See ``worker.py``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, BinaryIO

from ..errors import InvalidArgument, InvalidArgumentType, NotFound
from ..keys import validate_content_type, validate_key, validate_metadata, validate_namespace
from ..sync import BlobManager, Priority
from .model import Attachment, AttachmentFlags, AttachmentState, ErrorHandler
from .records import Record, Records, new_revision
from .transfers import download
from .worker import Worker, attachment, local_row

__all__ = ["AttachmentQueue"]

_LOG = logging.getLogger("persisty_blobs.attachments")
_STOP_SECONDS = 0.45


class AttachmentQueue:
    """Attachments over ``manager``'s two stores, in ``namespace`` on both sides.

    ``save(content)`` stores it locally and queues its upload in one step, returning its id;
    ``watch(ids)`` takes the ids the app's documents reference: it queues the missing ones
    for download, archives the unreferenced ones (uploading them first if they never went
    up) and lets the oldest archived ones be evicted locally; ``open(id)`` reads one;
    ``delete(id)`` removes it locally and queues the remote delete. ``start()`` runs the
    transfers on a background thread (``sync_now()`` runs one pass); ``close()`` stops it.
    """

    def __init__(
        self,
        manager: BlobManager,
        *,
        cache_limit: int = 100,
        interval: float = 30.0,
        on_error: ErrorHandler | None = None,
        namespace: str = "attachments",
        concurrency: int = 4,
        retry_delay: float = 1.0,
    ) -> None:
        if not isinstance(manager, BlobManager):
            raise InvalidArgumentType(f"manager is a BlobManager, not {manager!r}")
        if isinstance(cache_limit, bool) or not isinstance(cache_limit, int) or cache_limit < 0:
            raise InvalidArgument(f"cache_limit is an int of at least 0, not {cache_limit!r}")
        if not interval > 0 or not retry_delay >= 0:
            raise InvalidArgument("interval must be positive and retry_delay at least 0")
        if concurrency < 1:
            raise InvalidArgument(f"concurrency must be at least 1, not {concurrency!r}")
        if on_error is not None and not callable(on_error):
            raise InvalidArgumentType(f"on_error is a callable or None, not {on_error!r}")
        self.manager = manager
        self.namespace = validate_namespace(namespace)
        self.interval = float(interval)
        self.records = Records(manager.state, manager.pair, self.namespace)
        self._lock = threading.Lock()
        self._worker = Worker(
            manager,
            self.records,
            self.namespace,
            self._lock,
            cache_limit=cache_limit,
            on_error=on_error,
            concurrency=concurrency,
            retry_delay=retry_delay,
        )
        self.local, self.remote = self._worker.local, self._worker.remote
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AttachmentQueue({self.local!r} <-> {self.remote!r})"

    # What the app does -------------------------------------------------------------------------

    def save(
        self,
        data: Any,
        *,
        media_type: str,
        id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: Priority | str | int = "medium",
    ) -> Attachment:
        """Store ``data`` locally and queue its upload; returns once it is stored locally."""
        key = uuid.uuid4().hex if id is None else validate_key(id)
        validate_content_type(media_type)
        validate_metadata(metadata)
        rank = int(Priority.of(priority))
        saving = self._worker.saving
        with self._lock:
            saving[key] += 1
        try:
            self.local.put(key, data, content_type=media_type, metadata=metadata)
            with self._lock:
                item = self.local.get(key)
                existing = self.records.get(key)
                if item is None:  # a delete of this id came after the write: the delete won
                    if existing is None:
                        raise NotFound(
                            "deleted while it was saved", key=key, store=repr(self.local)
                        )
                    return attachment(existing)
                row = local_row(item, existing, priority=rank)
                self.records.upsert([row])
        finally:
            with self._lock:
                saving[key] -= 1
                if not saving[key]:
                    del saving[key]
        self._wake.set()
        return attachment(Record.from_row(row))

    def watch(self, ids: Iterable[str]) -> None:
        """``ids``: every attachment id the app's documents reference now."""
        if isinstance(ids, str | bytes):
            raise InvalidArgumentType("watch takes a collection of ids, not one string")
        wanted = {validate_key(id) for id in ids}
        now = time.time()
        with self._lock:
            changed: list[dict[str, Any]] = []
            dropped: list[str] = []
            for record in self.records.listing():
                update = _rewatch(record, record.id in wanted, now)
                wanted.discard(record.id)
                if update is None:
                    continue
                if update == {"drop": True}:
                    dropped.append(record.id)
                else:
                    changed.append({**_row(record), **update})
            changed += [_download_row(id, now) for id in sorted(wanted)]
            with self.records.transaction() as connection:
                self.records.upsert(changed, connection)
                self.records.remove(dropped, connection)
        if changed:
            self._wake.set()

    def delete(self, id: str) -> None:
        """Remove locally now and queue the remote delete."""
        key = validate_key(id)
        with self._lock:
            existing = self.records.get(key)
            now = time.time()
            row = {
                **(_download_row(key, now) if existing is None else _row(existing)),
                "state": AttachmentState.QUEUED_DELETE.value,
                "local_etag": None,
                "revision": new_revision(),
                "attempts": 0,
                "next_attempt": 0.0,
                "last_error": None,
            }
            # The record first: a crash before the local delete leaves a queued delete, which
            # the pass finishes locally too.
            self.records.upsert([row])
            self.local.delete(key)
        self._wake.set()

    def open(self, id: str) -> BinaryIO:
        """A reader of the content: local if present, else downloaded (and verified) now."""
        key = validate_key(id)
        try:
            return self.local.open(key)
        except NotFound:
            pass
        record = self.records.get(key)
        if record is not None and record.state is AttachmentState.QUEUED_DELETE:
            raise NotFound("the attachment was deleted", key=key, store=repr(self.local))
        checksum = None if record is None else record.checksum
        local_item, remote_item = download(self.remote, self.local, key, checksum, _ignore)
        self._worker.settle([(record, local_item, remote_item)])
        return self.local.open(key)

    # What the app reads --------------------------------------------------------------------------

    def attachment(self, id: str) -> Attachment | None:
        record = self.records.get(validate_key(id))
        return None if record is None else attachment(record)

    def state(self, id: str) -> AttachmentState | None:
        record = self.records.get(validate_key(id))
        return None if record is None else record.state

    def attachments(self, state: AttachmentState | str | None = None) -> list[Attachment]:
        """Every attachment (in ``state``), oldest first."""
        wanted = None if state is None else AttachmentState(state)
        return [attachment(record) for record in self.records.listing(wanted)]

    def attachment_state(self, id: str) -> AttachmentFlags:
        """Soledad's view: LOCAL if the content is here, REMOTE if the remote holds it."""
        key = validate_key(id)
        record = self.records.get(key)
        flags = AttachmentFlags.NONE
        if self.local.exists(key):
            flags |= AttachmentFlags.LOCAL
        if record is not None and record.remote_etag is not None:
            flags |= AttachmentFlags.REMOTE
        return flags

    def is_dirty(self, id: str) -> bool:
        """True while the local content has not reached the remote."""
        record = self.records.get(validate_key(id))
        if record is None:
            return False
        if record.state is AttachmentState.QUEUED_UPLOAD:
            return True
        return record.state is AttachmentState.FAILED and record.local_etag is not None

    # Running the queue -------------------------------------------------------------------------

    def sync_now(self) -> None:
        """One pass in the caller's thread: every due transfer, then the cache's eviction."""
        self._worker.run_pass(threading.Event())

    def start(self) -> None:
        """Run passes on a background thread, every ``interval`` seconds and whenever
        ``save`` or ``watch`` adds work."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="pb-attachments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread at once: a transfer in flight is abandoned (its partial
        write discarded, its record left queued for a later pass)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(_STOP_SECONDS)
            self._thread = None

    def close(self, timeout: float | None = 30.0) -> None:
        """``stop``, then wait for abandoned transfers to return. The manager stays open."""
        self.stop()
        self._worker.wait_strays(timeout)

    def __enter__(self) -> AttachmentQueue:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._worker.run_pass(self._stopping)
                due = self.records.next_due()
            except Exception:
                _LOG.exception("an attachment pass failed; the next one retries")
                due = None
            wait = self.interval if due is None else min(self.interval, due - time.time())
            # An item still held by an abandoned transfer is due but skipped: do not spin.
            self._wake.wait(max(wait, 0.05))
            self._wake.clear()


def _ignore(_count: int) -> None:
    return None


def _row(record: Record) -> dict[str, Any]:
    row = dict(vars(record))
    row["state"] = record.state.value
    row["after"] = record.after.value
    return row


def _download_row(id: str, now: float) -> dict[str, Any]:
    return {
        "id": id,
        "media_type": None,
        "size": None,
        "checksum": None,
        "state": AttachmentState.QUEUED_DOWNLOAD.value,
        "after": AttachmentState.SYNCED.value,
        "priority": int(Priority.MEDIUM),
        "created": now,
        "archived_at": None,
        "local_etag": None,
        "remote_etag": None,
        "revision": new_revision(),
        "attempts": 0,
        "next_attempt": 0.0,
        "last_error": None,
        "unrecorded_checksums": None,
    }


def _rewatch(record: Record, referenced: bool, now: float) -> dict[str, Any] | None:
    """What ``watch`` changes in ``record`` ({"drop": True}: remove it), or None."""
    state, after = record.state, record.after
    synced, archived = AttachmentState.SYNCED.value, AttachmentState.ARCHIVED.value
    if referenced:
        if state is AttachmentState.ARCHIVED:
            return {"state": synced, "archived_at": None}  # un-archived: no transfer
        if state is AttachmentState.QUEUED_UPLOAD and after is AttachmentState.ARCHIVED:
            return {"after": synced}
        return None
    if state is AttachmentState.SYNCED:
        return {"state": archived, "archived_at": now}
    if state is AttachmentState.QUEUED_UPLOAD and after is AttachmentState.SYNCED:
        return {"after": archived}  # uploaded first, then archived
    if state is AttachmentState.QUEUED_DOWNLOAD:
        return {"drop": True}  # nothing here to keep
    return None
