"""What every endpoint shares: the app's settings, who is asking and which store they reach,
and the error responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import http_wire
from ..errors import BlobError, InvalidArgument, PermissionDenied, TooLarge, TransientError
from ..keys import validate_key, validate_namespace
from ..store import DataStore
from ._signing import Signer

__all__ = ["Authenticate", "Authorize", "Hosted", "bearer_tokens", "error_response"]

log = logging.getLogger("persisty_blobs.server")
_JSON_LIMIT = 64 * 1024

#: request -> principal, or None for "not authenticated" (401).
Authenticate = Callable[[Request], Any]
#: (the app's store, principal) -> the store that principal may use.
Authorize = Callable[[DataStore, Any], DataStore]
#: bytes an authorized store may hold: a number, or a function of the store.
Quota = int | Callable[[DataStore], int] | None


def bearer_tokens(tokens: Mapping[str, Any]) -> Authenticate:
    """An authenticator for ``Authorization: Bearer <token>`` that maps each token of the
    table to its principal. Tokens are compared in constant time."""
    import hmac

    table = [(token.encode(), principal) for token, principal in tokens.items()]

    def authenticate(request: Request) -> Any:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        found = None
        for token, principal in table:
            if hmac.compare_digest(token, given.encode()):
                found = principal
        return found

    return authenticate


@dataclass
class Hosted:
    """The app's configuration, reached by every endpoint."""

    store: DataStore
    signer: Signer
    authenticate: Authenticate | None
    authorize: Authorize | None
    quota: Quota
    #: Seconds an upload may send nothing before it is cut off.
    body_timeout: float = 60.0
    _writing: dict[str, asyncio.Lock] = field(default_factory=dict)

    def caller_store(self, request: Request) -> DataStore:
        """The store the caller may use, in the namespace the request names."""
        principal = None if self.authenticate is None else self.authenticate(request)
        if principal is None:
            raise _Unauthenticated()
        store = self.store if self.authorize is None else self.authorize(self.store, principal)
        namespace = validate_namespace(request.query_params.get("namespace", ""))
        if not namespace:
            return store
        if store.namespace_name:
            raise PermissionDenied("this caller's store has no other namespaces")
        return store.namespace(namespace)

    def limit(self, store: DataStore, replacing: str | None = None) -> int | None:
        """How many more bytes ``store`` may take (the item ``replacing`` counts as gone),
        or None for no quota."""
        if self.quota is None:
            return None
        allowed = self.quota(store) if callable(self.quota) else self.quota
        used = sum(entry.size for entry in store.scan() if entry.key != replacing)
        return max(0, allowed - used)

    def turn(self, store: DataStore) -> contextlib.AbstractAsyncContextManager[object]:
        """``store``'s turn at its quota (``writing``); none is needed without a quota."""
        return contextlib.nullcontext() if self.quota is None else self.writing(store)

    async def room(self, store: DataStore, replacing: str | None) -> int | None:
        """``limit``, on a worker thread (it scans the store)."""
        return None if self.quota is None else await run_in_threadpool(self.limit, store, replacing)

    def writing(self, store: DataStore) -> asyncio.Lock:
        """Held while a write to ``store`` checks and uses its quota, so concurrent writes
        cannot each see room the others are about to take. (It holds within one process;
        instances behind a load balancer can each take the room once.)"""
        name = repr(store)
        lock = self._writing.get(name)
        if lock is None:
            lock = self._writing[name] = asyncio.Lock()
        return lock


class _Unauthenticated(Exception):
    pass


def path_key(request: Request) -> str:
    return validate_key(request.path_params["key"])


def integer(request: Request, name: str, default: int | None = None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 18:
        raise InvalidArgument(f"{name} must be a whole number, not {text[:40]!r}")
    return int(text)


async def json_body(request: Request) -> Any:
    """The request's JSON body, read up to ``_JSON_LIMIT`` bytes (413 past it)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_LIMIT:
            raise TooLarge(f"a JSON body is at most {_JSON_LIMIT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidArgument("the body is not JSON") from None


def error_response(error: BaseException, key: str | None = None) -> JSONResponse:
    if isinstance(error, _Unauthenticated):
        body = {
            "version": http_wire.WIRE_VERSION,
            "error": "PermissionDenied",
            "message": "authentication required",
            "key": None,
        }
        return JSONResponse(body, 401, headers={"www-authenticate": "Bearer"})
    if not isinstance(error, BlobError):
        log.exception("unexpected error", exc_info=error)
        error = BlobError("the server failed", key=key)
    headers = {"retry-after": "1"} if isinstance(error, TransientError) else None
    return JSONResponse(http_wire.error_body(error), http_wire.status_of(error), headers=headers)
