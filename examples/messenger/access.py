"""The hosted store at ``/blobs`` and what a bearer token reaches in it.

Browsers reach it with the signed forms and URLs the app hands out. A desktop client
(``client.py``) reaches it as an ``HttpStore`` with a token from ``POST /api/token``, and sees
only its user's namespace, under the same rules a form holds a browser to: it may read
everything there, and add new attachments (keys ``att/<32 hex digits>``, at most 25 MiB, of
the allowed types). It may not replace an item, delete one or change flags: a sent attachment
belongs to a message others read, and flags are the worker's. As for a browser's upload, the
app flags the attachment PENDING when the message naming it is posted, not when it arrives.
"""

from __future__ import annotations

import dataclasses
import re

from starlette.applications import Starlette
from starlette.requests import Request

from persisty_blobs import (
    ContentTypeNotAllowed,
    DataItem,
    DataStore,
    Flag,
    PermissionDenied,
    TooLarge,
)
from persisty_blobs.driver import DriverWriter, ItemHeader, WriteSpec
from persisty_blobs.layer import ForwardingDriver

from .storage import MAX_SIZE, TYPES, namespace_of
from .tokens import TokenSigner

__all__ = ["ClientStore", "CreateOnlyStore", "blob_app"]

ATTACHMENT_KEY = re.compile(r"att/[0-9a-f]{32}")


class _CreateOnlyWriter(DriverWriter):
    """Commits only a new item, whatever precondition the caller asked for."""

    def __init__(self, inner: DriverWriter) -> None:
        self.inner = inner

    def write(self, chunk: memoryview) -> None:
        self.inner.write(chunk)

    def commit(self, spec: WriteSpec) -> DataItem:
        # Checked by the store itself when it commits: race-free, unlike a look beforehand.
        return self.inner.commit(dataclasses.replace(spec, if_match=None, if_none_match=True))

    def abort(self) -> None:
        self.inner.abort()


class _CreateOnlyDriver(ForwardingDriver):
    """Every write adds a new item or fails with ``AlreadyExists`` (412 over HTTP).

    The hosted app's upload forms write through it: a form stays valid until it expires, and
    without this a form posted again would replace an attachment already sent, checked and
    downloaded (the library's form handler sets no precondition of its own)."""

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        create = dataclasses.replace(header, if_match=None, if_none_match=True)
        return _CreateOnlyWriter(self.inner.new_writer(namespace, key, create))

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem | None:
        return None  # streamed through new_writer instead, so a copy is create-only too

    def close(self) -> None:
        pass  # the app's store is the app's to close


class _LimitedWriter(_CreateOnlyWriter):
    """Refuses the first chunk past ``MAX_SIZE`` (``inner`` is create-only already)."""

    def __init__(self, inner: DriverWriter, key: str, store: str) -> None:
        super().__init__(inner)
        self.key, self.store = key, store
        self.size = 0

    def write(self, chunk: memoryview) -> None:
        self.size += len(chunk)
        if self.size > MAX_SIZE:
            raise TooLarge(
                f"an attachment is at most {MAX_SIZE} bytes", key=self.key, store=self.store
            )
        self.inner.write(chunk)


class _ClientDriver(_CreateOnlyDriver):
    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        if not ATTACHMENT_KEY.fullmatch(key):
            raise PermissionDenied(
                "a client adds attachments only, under att/<32 hex digits>", key=key
            )
        if header.if_match is not None:
            raise PermissionDenied("an attachment is never replaced", key=key)
        if header.flags:
            raise PermissionDenied("flags are set by the app, not by a client", key=key)
        bare = header.content_type.split(";")[0].strip().lower()
        if bare not in TYPES:
            raise ContentTypeNotAllowed(
                f"{bare} cannot be sent: images, PDF and plain text only", key=key
            )
        return _LimitedWriter(super().new_writer(namespace, key, header), key, self.name)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        raise PermissionDenied("a sent attachment belongs to its message: no deletes", key=key)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        raise PermissionDenied("flags are set by the app, not by a client", key=key)


class CreateOnlyStore(DataStore):
    """``store`` where nothing is ever replaced: what the hosted app serves forms from."""

    def __init__(self, store: DataStore) -> None:
        super().__init__(_CreateOnlyDriver(store, "CreateOnlyStore"))


class ClientStore(DataStore):
    """``store`` as a token's holder may use it; ``.namespace(name)`` is one user's part."""

    def __init__(self, store: DataStore) -> None:
        super().__init__(_ClientDriver(store, "ClientStore"))


def blob_app(store: DataStore, secret: bytes, tokens: TokenSigner) -> Starlette:
    """The hosted store's app: signed forms and URLs for browsers, tokens for clients."""
    from persisty_blobs.server import create_app

    clients = ClientStore(store)

    def authenticate(request: Request) -> int | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return tokens.open(token.strip()) if scheme.lower() == "bearer" else None

    def authorize(_: DataStore, user_id: int) -> DataStore:
        return clients.namespace(namespace_of(user_id))

    return create_app(
        CreateOnlyStore(store), secret=secret, authenticate=authenticate, authorize=authorize
    )
