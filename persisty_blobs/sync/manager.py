"""``BlobManager``: LEAP Soledad's client API over a ``Replicator``, made correct.

Plaintext lives in a local store (a ``SqlCipherStore`` for encryption at rest), ciphertext on
the remote (an ``EncryptedStore`` over it when a keyring is given). ``put`` stores locally and
queues the upload; ``get`` reads locally, else downloads now; ``delete`` deletes both, and
queues the remote delete when the remote cannot be reached; ``sync`` runs the replicator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from ..errors import InvalidArgument, NotFound, PreconditionFailed, TransientError
from ..item import DataItem, Flag
from ..store import DataStore
from . import _codec
from ._transfer import copy_version
from .diff import is_racy
from .model import Priority, Status, SyncReport, Version
from .replicator import Replicator
from .state import Outcome, SyncState

__all__ = ["BlobManager"]

_ORDERS = {None: None, "date": False, "+date": False, "-date": True}


class BlobManager:
    """Blobs kept in ``local`` and replicated to ``remote`` (under ``keyring``'s encryption
    when one is given) by a ``Replicator`` of ``concurrency`` transfers. ``state`` is where
    what both sides agreed on is kept: give a ``SyncState`` on a file, or the default one
    lives in memory and is lost with the process (a restart then syncs from scratch:
    adopted where equal, and deletes made meanwhile not carried over)."""

    def __init__(
        self,
        local: DataStore,
        remote: DataStore,
        *,
        keyring: Any = None,
        state: SyncState | None = None,
        pair: str = "blobs",
        concurrency: int = 3,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        if keyring is not None:
            from ..crypto import EncryptedStore

            remote = EncryptedStore(remote, keyring)
        self.local, self.remote = local, remote
        self.state = state if state is not None else SyncState()
        self.pair = pair
        self._options = {
            "concurrency": concurrency,
            "max_attempts": max_attempts,
            "retry_delay": retry_delay,
        }
        self.replicator()  # bad options are refused here, not at the first sync

    def replicator(self, namespaces: list[str] | None = None) -> Replicator:
        return Replicator(
            self.local,
            self.remote,
            self.state,
            pair=self.pair,
            namespaces=namespaces,
            **self._options,  # type: ignore[arg-type]
        )

    def put(
        self,
        key: str,
        data: Any,
        *,
        namespace: str = "",
        priority: Priority | str | int = "medium",
        local_only: bool = False,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> DataItem:
        """Store locally and queue the upload (``local_only``: never upload)."""
        rank = Priority.of(priority)
        item = self.local.namespace(namespace).put(
            key, data, content_type=content_type, metadata=metadata
        )
        status = Status.LOCAL_ONLY if local_only else Status.PENDING_UPLOAD
        self.state.mark(self.pair, namespace, key, status, priority=rank)
        return item

    def get(self, key: str, *, namespace: str = "") -> BinaryIO | None:
        """The content, from the local store, else downloaded now; None if on neither."""
        local = self.local.namespace(namespace)
        try:
            return local.open(key)
        except NotFound:
            pass
        remote = self.remote.namespace(namespace)
        item = remote.get(key)
        if item is None:
            return None
        version = Version(etag=item.etag, size=item.size, checksum=item.checksum, flags=None)
        try:
            source, copy = copy_version(remote, local, key, version, None)
        except Exception as error:
            self.state.mark(
                self.pair, namespace, key, Status.FAILED_DOWNLOAD, last_error=str(error)
            )
            raise
        self.state.settle(
            self.pair,
            [
                Outcome(
                    namespace=namespace,
                    key=key,
                    checksum=source.checksum,
                    size=source.size,
                    etag_a=copy.etag,
                    # ``get`` may have hashed it: whether its etag comes from the content is
                    # not known here, so a recent version is racy.
                    etag_b=_codec.base_etag(source.etag, is_racy(remote, None, source.updated_at)),
                    flags=frozenset(str(flag) for flag in source.flags),
                )
            ],
        )
        return local.open(key)

    def delete(self, key: str, *, namespace: str = "") -> None:
        """Delete locally and remotely. The remote item is deleted only if it is still the
        version this client last synced: if another client changed it since, nothing is
        deleted and ``PreconditionFailed`` says so (a sync brings that version here). If the
        remote is down, the local item is deleted and the delete stays PENDING_DELETE: a later
        ``sync`` carries it out."""
        local = self.local.namespace(namespace)
        known = self.state.base(self.pair, namespace, key)
        if known is None:
            # Never synced from here: the remote item (if any) is someone else's version.
            local.delete(key)
            self.state.settle(self.pair, [Outcome(namespace=namespace, key=key, forget=True)])
            return
        # The remote first: a refusal leaves both sides as they were, not half deleted.
        remote = self.remote.namespace(namespace)
        try:
            remote.delete(key, if_match=known)
        except PreconditionFailed:
            if remote.exists(key):
                raise  # another client's version: theirs to keep
            # Deleted there already: what is asked for is done there.
        except TransientError as error:
            local.delete(key)
            self.state.mark(
                self.pair,
                namespace,
                key,
                Status.PENDING_DELETE,
                requested=True,
                last_error=str(error),
            )
            return
        local.delete(key)
        self.state.settle(self.pair, [Outcome(namespace=namespace, key=key, forget=True)])

    def set_flags(self, key: str, flags: Iterable[Flag | str], *, namespace: str = "") -> None:
        """Set flags locally and, when it holds the item, on the remote now (else at the
        next sync)."""
        wanted = frozenset(flags)
        local = self.local.namespace(namespace)
        if local.exists(key):
            local.set_flags(key, wanted)
        try:
            self.remote.namespace(namespace).set_flags(key, wanted)
        except NotFound:
            if not local.exists(key):
                raise NotFound("no such item", key=key, store=repr(self.local)) from None
        except TransientError:
            if not local.exists(key):
                raise  # held by the remote alone, which is out of reach: try again later

    def get_flags(self, key: str, *, namespace: str = "") -> frozenset[Flag]:
        item = self.local.namespace(namespace).get(key)
        if item is None:
            return self.remote.namespace(namespace).get_flags(key)
        return item.flags

    def remote_list(
        self,
        *,
        namespace: str = "",
        order_by: str | None = None,
        filter_flag: Flag | str | None = None,
    ) -> list[str]:
        """Keys on the remote; ``order_by`` "date" or "+date" (older first) or "-date"."""
        if order_by not in _ORDERS:
            raise InvalidArgument(f"order_by is 'date', '+date' or '-date', not {order_by!r}")
        items = list(self.remote.namespace(namespace).list(flag=filter_flag))
        descending = _ORDERS[order_by]
        if descending is not None:
            items.sort(key=lambda item: (item.updated_at, item.key), reverse=descending)
        return [item.key for item in items]

    def count(self, *, namespace: str = "") -> int:
        return self.remote.namespace(namespace).count()

    def local_list(self, *, namespace: str = "", status: Status | str | None = None) -> list[str]:
        """Local keys, highest priority first (then by key); ``status`` filters by queue
        status."""
        if status is not None:
            wanted = Status.of(status)
            return [
                row.key for row in self.state.items(self.pair, status=wanted, namespace=namespace)
            ]
        ranks = self.state.priorities(self.pair, namespace)
        keys = [entry.key for entry in self.local.namespace(namespace).scan()]
        return sorted(keys, key=lambda key: (-ranks.get(key, Priority.MEDIUM), key))

    def set_priority(
        self, key: str, priority: Priority | str | int, *, namespace: str = ""
    ) -> None:
        self.state.set_priority(self.pair, namespace, key, Priority.of(priority))

    def sync(self, *, namespace: str | None = None) -> SyncReport:
        """Replicate now (every namespace, or one): queued uploads and deletes are carried
        out, and what changed on the remote comes down."""
        return self.replicator(None if namespace is None else [namespace]).run()

    def sync_progress(self) -> dict[str, int]:
        return {status.name: count for status, count in self.state.progress(self.pair).items()}

    def close(self) -> None:
        self.state.close()
