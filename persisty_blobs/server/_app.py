"""``create_app``: a Starlette app that serves any store over HTTP (wire format:
``persisty_blobs.http_wire``), for ``HttpStore`` clients, signed URLs and browser forms.

The app holds no state of its own: any number of instances can serve one store (S3,
PostgreSQL) behind a load balancer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import http_wire
from ..errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    QuotaExceeded,
)
from ..item import DataItem, Flag
from ..keys import validate_content_type, validate_flags, validate_namespace, validate_prefix
from ..store import DataStore
from ._context import (
    Authenticate,
    Authorize,
    Hosted,
    Quota,
    error_response,
    integer,
    json_body,
    path_key,
)
from ._forms import post_form
from ._items import if_match_etag, read_item, write_item
from ._signing import Signer

__all__ = ["create_app"]

_PAGE = 1000
_EXPOSED = [
    "etag",
    "content-range",
    "content-length",
    "last-modified",
    "x-persisty-checksum",
    "x-persisty-flags",
    "x-persisty-updated-at",
]

Endpoint = Callable[[Request, Hosted], Awaitable[Response]]


def _endpoint(hosted: Hosted, handler: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, hosted)
        except Exception as error:
            return error_response(error, request.path_params.get("key"))

    return endpoint


async def _item(request: Request, hosted: Hosted) -> Response:
    store, key = hosted.caller_store(request), path_key(request)
    if request.method in ("GET", "HEAD"):
        return await read_item(request, store, key)
    if request.method == "PUT":
        item = await _put(request, hosted, store, key)
        return Response(status_code=201, headers=http_wire.item_headers(item))
    if_match = await if_match_etag(request, store, key)
    existed = await run_in_threadpool(store.delete, key, if_match=if_match)
    if not existed:
        raise NotFound("no such item", key=key)
    return Response(status_code=204)


async def _put(
    request: Request,
    hosted: Hosted,
    store: DataStore,
    key: str,
    content_type: str | None = None,
    *,
    signed: bool = False,
) -> DataItem:
    """A streamed PUT; with a quota, one write at a time per store checks and takes room."""
    async with hosted.turn(store):
        return await write_item(
            request,
            store,
            key,
            limit=await hosted.room(store, key),
            idle_seconds=hosted.body_timeout,
            content_type=content_type,
            signed=signed,
        )


async def _signed(request: Request, hosted: Hosted) -> Response:
    """A signed URL: no credentials, the signature says what it may do until it expires."""
    key = path_key(request)
    query = request.query_params
    namespace = validate_namespace(query.get("namespace", ""))
    content_type = query.get("content_type")
    disposition = query.get("disposition")
    method = "GET" if request.method == "HEAD" else request.method
    hosted.signer.check_request(
        query.get("signature", ""),
        method,
        namespace,
        key,
        query.get("expires", ""),
        content_type,
        disposition,
    )
    store = hosted.store.namespace(namespace)
    if method == "GET":
        return await read_item(request, store, key, disposition)
    if content_type is not None:
        given = request.headers.get("content-type", "")
        if given.split(";")[0].strip().lower() != content_type.split(";")[0].strip().lower():
            raise PermissionDenied("the upload's content type is not the one signed", key=key)
    checked = None if content_type is None else validate_content_type(content_type)
    item = await _put(request, hosted, store, key, checked, signed=True)
    return Response(status_code=201, headers=http_wire.item_headers(item))


async def _form(request: Request, hosted: Hosted) -> Response:
    item = await post_form(request, hosted)  # which takes its namespace's quota lock
    headers = http_wire.item_headers(item)
    headers["location"] = http_wire.quote_key(item.key)
    return Response(status_code=204, headers=headers)


def _page_size(request: Request) -> int:
    asked = integer(request, "limit", _PAGE)
    assert asked is not None
    if asked < 1:
        raise InvalidArgument("limit must be at least 1")
    return min(asked, _PAGE)


def _flag(request: Request) -> Flag | None:
    text = request.query_params.get("flag")
    return None if not text else next(iter(validate_flags([text])))


async def _list(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    prefix = validate_prefix(request.query_params.get("prefix", ""))
    after = request.query_params.get("after") or None
    limit = _page_size(request)
    flag = _flag(request)
    items = await run_in_threadpool(
        lambda: list(store.list(prefix, after=after, limit=limit, flag=flag))
    )
    return JSONResponse(
        {
            "version": http_wire.WIRE_VERSION,
            "items": [http_wire.item_to_json(item) for item in items],
            "next": items[-1].key if len(items) == limit else None,
        }
    )


async def _scan(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    prefix = validate_prefix(request.query_params.get("prefix", ""))
    after = request.query_params.get("after") or None
    limit = _page_size(request)

    def page() -> list[dict[str, Any]]:
        found = []
        for entry in store.scan(prefix, after=after):
            found.append(http_wire.entry_to_json(entry))
            if len(found) == limit:
                break
        return found

    entries = await run_in_threadpool(page)
    last = entries[-1]["key"] if len(entries) == limit else None
    return JSONResponse({"version": http_wire.WIRE_VERSION, "entries": entries, "next": last})


async def _count(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    prefix = validate_prefix(request.query_params.get("prefix", ""))
    count = await run_in_threadpool(store.count, prefix, flag=_flag(request))
    return JSONResponse({"version": http_wire.WIRE_VERSION, "count": count})


async def _namespaces(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    names = [""] if store.namespace_name else await run_in_threadpool(store.namespaces)
    return JSONResponse({"version": http_wire.WIRE_VERSION, "namespaces": names})


async def _flags(request: Request, hosted: Hosted) -> Response:
    store, key = hosted.caller_store(request), path_key(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("flags"), list):
        raise InvalidArgument('the body is {"flags": [...]}')
    await run_in_threadpool(store.set_flags, key, body["flags"])
    return Response(status_code=204)


def _rewrite(store: DataStore, key: str, metadata: dict[str, str], etag: str) -> DataItem:
    """The item again with other metadata, only if it still has ``etag``: a stream from the
    store into itself, as the portable store API has no metadata-only write."""
    with store.open(key) as reader:
        item = reader.item
        if item.etag != etag:
            raise PreconditionFailed("the item changed", key=key)
        return store.put(
            key,
            reader,
            content_type=item.content_type,
            metadata=metadata,
            flags=item.flags,
            if_match=etag,
        )


async def _metadata(request: Request, hosted: Hosted) -> Response:
    """Metadata known only once the content has streamed (a layer's sealed record)."""
    store, key = hosted.caller_store(request), path_key(request)
    etag = await if_match_etag(request, store, key)
    body = await json_body(request)
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if not etag or not isinstance(metadata, dict):
        raise InvalidArgument('send If-Match and {"metadata": {...}}')
    item = await run_in_threadpool(_rewrite, store, key, metadata, etag)
    return Response(status_code=200, headers=http_wire.item_headers(item))


async def _copy(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument('the body is {"from": key, "to": key}')
    source, target = body.get("from"), body.get("to")
    if not isinstance(source, str) or not isinstance(target, str):
        raise InvalidArgument('the body is {"from": key, "to": key}')
    if hosted.quota is None:
        item = await run_in_threadpool(store.copy, source, target)
    else:
        async with hosted.writing(store):
            room = await run_in_threadpool(hosted.limit, store, target)
            found = await run_in_threadpool(store.get, source)
            if found is not None and room is not None and found.size > room:
                raise QuotaExceeded("the copy would exceed the quota", key=target)
            item = await run_in_threadpool(store.copy, source, target)
    return JSONResponse(http_wire.item_to_json(item), status_code=201)


async def _info(request: Request, hosted: Hosted) -> Response:
    store = hosted.caller_store(request)
    capabilities = store.capabilities
    return JSONResponse(
        {
            "version": http_wire.WIRE_VERSION,
            # Which store the caller's token gives it, as a digest (nothing of the token, the
            # same for each of its tokens): a client tells two users' stores at one URL apart.
            "store_id": hashlib.sha256(repr(store).encode()).hexdigest()[:16],
            "chunk_size": store.chunk_size,
            "capabilities": {
                "nested_keys": capabilities.nested_keys,
                "flags_in_listing": capabilities.flags_in_listing,
                "checksums_in_listing": capabilities.checksums_in_listing,
            },
        }
    )


def create_app(
    store: DataStore,
    *,
    secret: bytes | str,
    authenticate: Authenticate | None = None,
    authorize: Authorize | None = None,
    quota: Quota = None,
    cors_origins: Sequence[str] = (),
    body_timeout: float = 60.0,
) -> Starlette:
    """The app serving ``store``. ``authenticate(request)`` returns the caller's principal or
    None (401); without it only signed URLs and forms work. ``authorize(store, principal)``
    returns the store that principal may use (usually ``store.namespace(user)``); without it,
    ``store``. ``quota``: bytes each authorized store may hold. ``secret`` signs the URLs and
    forms of ``HostedDataStoreFactory``. ``body_timeout``: seconds an upload may send nothing
    before it is cut off (it holds its namespace's turn at the quota while it streams)."""
    number = not isinstance(body_timeout, bool) and isinstance(body_timeout, int | float)
    if not number or not body_timeout > 0:
        raise InvalidArgument(f"body_timeout is seconds above 0, not {body_timeout!r}")
    hosted = Hosted(store, Signer(secret), authenticate, authorize, quota, float(body_timeout))

    def route(path: str, handler: Endpoint, methods: list[str]) -> Route:
        return Route(path, _endpoint(hosted, handler), methods=methods)

    routes = [
        route("/v1/info", _info, ["GET"]),
        route("/v1/items", _list, ["GET"]),
        route("/v1/scan", _scan, ["GET"]),
        route("/v1/count", _count, ["GET"]),
        route("/v1/namespaces", _namespaces, ["GET"]),
        route("/v1/items/{key:path}", _item, ["GET", "HEAD", "PUT", "DELETE"]),
        route("/v1/flags/{key:path}", _flags, ["PUT"]),
        route("/v1/metadata/{key:path}", _metadata, ["PUT"]),
        route("/v1/copy", _copy, ["POST"]),
        route("/v1/signed/{key:path}", _signed, ["GET", "HEAD", "PUT"]),
        route("/v1/upload", _form, ["POST"]),
    ]
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
                allow_headers=["*"],  # metadata headers have open names
                expose_headers=_EXPOSED,
                max_age=600,
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _routing_error},
    )


async def _routing_error(request: Request, error: Exception) -> Response:
    """A path or method no route takes: its status, with the JSON body every error has."""
    assert isinstance(error, HTTPException)
    body = {
        "version": http_wire.WIRE_VERSION,
        "error": "NotFound" if error.status_code == 404 else "Unsupported",
        "message": error.detail,
        "key": None,
    }
    return JSONResponse(body, error.status_code, headers=error.headers)
