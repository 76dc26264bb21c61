"""The queue's passes: every due attachment transferred (``concurrency`` at once, highest
priority first), each result written as soon as it is known, failures handed to
``on_error``, then archived attachments beyond the cache limit evicted locally.

Every record write happens under the queue's lock, which is never held across network I/O.
A transfer writes its result only if the record's revision is the one it started from; a
transfer abandoned by ``stop`` writes nothing (a partial write is discarded by the store's
writer), and the next pass finds its record still queued and runs it again.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from ..errors import NotFound, PreconditionFailed, TransientError
from ..item import DataItem
from ..store import DataStore
from ..sync import BlobManager
from ..sync.state import Outcome
from .model import Attachment, AttachmentState, ErrorHandler
from .records import UNRECORDED_KEPT, Record, Records, new_revision
from .transfers import delete_remote, download, saved_version, upload

__all__ = ["Worker", "attachment", "default_retry"]

_LOG = logging.getLogger("persisty_blobs.attachments")
_MAX_DELAY = 600.0


#: A finished transfer: (the record it started from, or None for an ``open`` of an unknown
#: id; the local item; the remote item).
_Done = tuple[Record | None, DataItem, DataItem]


class _Abandoned(Exception):
    """Raised inside a transfer's copy loop once the pass is cancelled: the writer discards
    what it wrote."""


def attachment(record: Record) -> Attachment:
    return Attachment(
        id=record.id,
        media_type=record.media_type,
        size=record.size,
        checksum=record.checksum,
        state=record.state,
        created=datetime.fromtimestamp(record.created, UTC),
        last_error=record.last_error,
        attempts=record.attempts,
    )


def default_retry(state: AttachmentState, error: BaseException) -> bool:
    """Transient errors are retried; so is a download of an attachment its author has not
    uploaded yet. Anything else fails at once."""
    if isinstance(error, TransientError):
        return True
    return isinstance(error, NotFound) and state is AttachmentState.QUEUED_DOWNLOAD


def content_row(item: DataItem) -> dict[str, Any]:
    return {
        "media_type": item.content_type,
        "size": item.size,
        "checksum": item.checksum,
        "local_etag": item.etag,
    }


class Worker:
    def __init__(
        self,
        manager: BlobManager,
        records: Records,
        namespace: str,
        lock: threading.Lock,
        *,
        cache_limit: int,
        on_error: ErrorHandler | None,
        concurrency: int,
        retry_delay: float,
    ) -> None:
        self.manager, self.records, self.namespace, self.lock = manager, records, namespace, lock
        self.local: DataStore = manager.local.namespace(namespace)
        self.remote: DataStore = manager.remote.namespace(namespace)
        self.cache_limit, self.on_error = cache_limit, on_error
        self.concurrency, self.retry_delay = concurrency, retry_delay
        self._busy: set[str] = set()
        #: Ids being saved now (``AttachmentQueue.save``, between its write and its record):
        #: a pass finishing an earlier delete of one leaves its content alone.
        self.saving: collections.Counter[str] = collections.Counter()
        self._strays: set[Future[Any]] = set()
        self._adopted = False

    # A pass ---------------------------------------------------------------------------------

    def run_pass(self, cancel: threading.Event) -> None:
        if not self._adopted:
            self.adopt()
            self._adopted = True
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="pb-attachments")
        running: dict[Future[_Done | None], str] = {}
        try:
            due = iter(self.records.due(time.time()))
            while not cancel.is_set():
                while len(running) < self.concurrency and (id := next(due, None)) is not None:
                    if self._claim(id):
                        running[pool.submit(self._process, id, cancel)] = id
                if not running:
                    break
                done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                if cancel.is_set():
                    break  # what finished meanwhile is abandoned too: its record stays queued
                # The results that came in together are written in one transaction.
                self.settle([result for future in done if (result := future.result())])
                with self.lock:
                    self._busy.difference_update(running.pop(future) for future in done)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for future, id in running.items():
                future.add_done_callback(functools.partial(self._release, id))
            with self.lock:
                self._strays |= set(running)
        if not cancel.is_set():
            self.evict()

    def wait_strays(self, timeout: float | None) -> None:
        """Wait for the transfers a cancelled pass abandoned to return."""
        with self.lock:
            strays = list(self._strays)
            self._strays.clear()
        wait(strays, timeout=timeout)

    def _claim(self, id: str) -> bool:
        with self.lock:
            if id in self._busy:
                return False
            self._busy.add(id)
            return True

    def _release(self, id: str, _future: object = None) -> None:
        with self.lock:
            self._busy.discard(id)

    def _process(self, id: str, cancel: threading.Event) -> _Done | None:
        """Run one transfer; a finished upload or download is returned for ``settle``."""

        def moved(_count: int) -> None:
            if cancel.is_set():
                raise _Abandoned

        try:
            record = self.records.get(id)
            if record is None or not record.state.queued:
                return None
            try:
                if record.state is AttachmentState.QUEUED_UPLOAD:
                    saved = saved_version(id, record.local_etag, record.size, record.checksum)
                    local_item, remote_item = upload(
                        self.local,
                        self.remote,
                        id,
                        saved,
                        record.remote_etag,
                        moved,
                        record.unrecorded(),
                    )
                elif record.state is AttachmentState.QUEUED_DOWNLOAD:
                    local_item, remote_item = download(
                        self.remote, self.local, id, record.checksum, moved
                    )
                else:
                    delete_remote(
                        self.remote,
                        id,
                        record.remote_etag,
                        record.checksum,
                        record.unrecorded(),
                    )
                    if not cancel.is_set():
                        self._deleted(record)
                    return None
            except _Abandoned:
                return None
            except Exception as error:
                if not cancel.is_set():
                    self.failed(record, error)
                return None
            return record, local_item, remote_item
        except Exception:
            _LOG.exception("attachment %r: recording the transfer failed", id)
            return None

    # Results ----------------------------------------------------------------------------------

    def settle(self, results: list[_Done]) -> None:
        """Record finished uploads and downloads in one transaction. A result whose record
        changed meanwhile (a save or delete) is not written over it; one without a record
        (``open`` of an id never seen) is kept as ARCHIVED for the cache to evict."""
        if not results:
            return
        now = time.time()
        with self.lock:
            current = self.records.get_many([local.key for _, local, _ in results])
            new: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for record, local_item, remote_item in results:
                found = current.get(local_item.key)
                if found is None:
                    if record is None:
                        new.append(self._row(local_item, remote_item, AttachmentState.ARCHIVED))
                    elif record.state is AttachmentState.QUEUED_DOWNLOAD:
                        # No longer wanted (watch dropped it) while it downloaded.
                        self._delete_local(local_item.key, local_item.etag)
                    continue
                if record is not None and found.revision != record.revision:
                    if found.state is AttachmentState.QUEUED_DELETE and record.state is (
                        AttachmentState.QUEUED_DOWNLOAD
                    ):  # deleted while it downloaded: the copy must not outlive the record
                        self._delete_local(local_item.key, local_item.etag)
                    elif record.state is AttachmentState.QUEUED_UPLOAD:
                        # The remote holds this version now: the next upload or delete
                        # replaces it.
                        self.records.update(found.id, {"remote_etag": remote_item.etag})
                    continue
                waiting = found.state.queued or found.state is AttachmentState.FAILED
                state = found.after if waiting else found.state
                updates.append(
                    {
                        "id": found.id,
                        "revision": found.revision,
                        **content_row(local_item),
                        "remote_etag": remote_item.etag,
                        "unrecorded_checksums": None,
                        "state": state.value,
                        "archived_at": now if state is AttachmentState.ARCHIVED else None,
                        "attempts": 0,
                        "next_attempt": 0.0,
                        "last_error": None,
                    }
                )
            with self.records.transaction() as connection:
                self.records.upsert(new, connection)
                self.records.update_many(updates, connection)

    def _row(self, local: DataItem, remote: DataItem, state: AttachmentState) -> dict[str, Any]:
        now = time.time()
        return {
            "id": local.key,
            **content_row(local),
            "state": state.value,
            "after": AttachmentState.SYNCED.value,
            "priority": 2,
            "created": now,
            "archived_at": now,
            "remote_etag": remote.etag,
            "revision": new_revision(),
            "attempts": 0,
            "next_attempt": 0.0,
            "last_error": None,
            "unrecorded_checksums": None,
        }

    def _deleted(self, record: Record) -> None:
        with self.lock:
            current = self.records.get(record.id)
            if current is None:
                return
            if current.revision != record.revision or self.saving[record.id]:
                # Saved again meanwhile (or being saved): it stays, and the remote holds
                # nothing its upload must replace.
                self.records.update(record.id, {"remote_etag": None})
                return
            self.local.delete(record.id)  # a crash may have come between record and delete
            self.records.remove([record.id])
        self._forget(record.id)

    def failed(self, record: Record, error: BaseException) -> None:
        """Ask ``on_error`` (or the default) whether to retry, and record the answer."""
        try:
            if self.on_error is None:
                retry = default_retry(record.state, error)
            else:
                retry = bool(self.on_error(attachment(record), error))
        except Exception as handler_error:
            _LOG.exception("on_error raised for attachment %r", record.id)
            retry, error = False, handler_error
        message = f"{type(error).__name__}: {error}"[:2000]
        values: dict[str, Any] = {"attempts": record.attempts + 1, "last_error": message}
        if retry:
            delay = min(_MAX_DELAY, self.retry_delay * 2.0**record.attempts)
            values["next_attempt"] = time.time() + delay * random.uniform(0.5, 1.0)
        else:
            values["state"] = AttachmentState.FAILED.value
        with self.lock:
            self.records.update(record.id, values, revision=record.revision)

    # Housekeeping -------------------------------------------------------------------------------

    def evict(self) -> None:
        """Archived attachments beyond the cache limit, longest archived first, are removed
        locally (never remotely) with their records."""
        archived = self.records.archived()
        for id, revision in archived[: max(0, len(archived) - self.cache_limit)]:
            with self.lock:
                current = self.records.get(id)
                if (
                    current is None
                    or current.revision != revision
                    or current.state is not AttachmentState.ARCHIVED
                ):
                    continue
                # The content first: a crash between leaves a record that open() downloads
                # again, never a local blob without a record.
                self.local.delete(id)
                self.records.remove([id])
            self._forget(id)

    def adopt(self) -> None:
        """Local content its record does not describe (a save that died between its write
        and its record: none yet, or the one of the version before) is adopted: queued for
        upload, as the save would have. A queued delete's content is left to the pass."""
        known = self.records.local_etags()
        for entry in self.local.scan():
            if entry.key in known and known[entry.key] in (None, entry.etag):
                continue
            with self.lock:
                item = self.local.get(entry.key)
                record = self.records.get(entry.key)
                if item is None or not _undescribed(item, record):
                    continue
                self.records.upsert([local_row(item, record, priority=2)])
                _LOG.info("adopted attachment %r, saved before a crash", entry.key)

    def _delete_local(self, id: str, etag: str) -> None:
        with contextlib.suppress(PreconditionFailed):  # saved again meanwhile: it stays
            self.local.delete(id, if_match=etag)

    def _forget(self, id: str) -> None:
        """Drop the sync state's row of ``id``, so a ``BlobManager.sync`` never reads a local
        eviction as a delete to carry to the remote."""
        self.manager.state.settle(
            self.manager.pair, [Outcome(namespace=self.namespace, key=id, forget=True)]
        )


def _undescribed(item: DataItem, record: Record | None) -> bool:
    """Whether the local ``item`` is content its record does not know of."""
    if record is None:
        return True
    if record.state is AttachmentState.QUEUED_DELETE or record.local_etag is None:
        return False  # the delete's pass removes it; a download's copy is the remote's
    return record.local_etag != item.etag


def local_row(item: DataItem, existing: Record | None, *, priority: int) -> dict[str, Any]:
    """The record of content just written locally: queued for upload."""
    return {
        "id": item.key,
        **content_row(item),
        "state": AttachmentState.QUEUED_UPLOAD.value,
        "after": AttachmentState.SYNCED.value,
        "priority": priority,
        "created": existing.created if existing is not None else time.time(),
        "archived_at": None,
        "remote_etag": None if existing is None else existing.remote_etag,
        "unrecorded_checksums": _maybe_sent(existing),
        "revision": new_revision(),
        "attempts": 0,
        "next_attempt": 0.0,
        "last_error": None,
    }


def _maybe_sent(existing: Record | None) -> str | None:
    """What a save's record keeps as ``unrecorded_checksums``: those of the record it
    replaces, and that record's own while its upload was queued (a pass may have sent it
    without recording it)."""
    if existing is None:
        return None
    kept = (existing.unrecorded_checksums or "").split()
    waiting = existing.state in (AttachmentState.QUEUED_UPLOAD, AttachmentState.FAILED)
    if waiting and existing.local_etag is not None and existing.checksum is not None:
        kept = [checksum for checksum in kept if checksum != existing.checksum]
        kept.append(existing.checksum)
    return " ".join(kept[-UNRECORDED_KEPT:]) or None
