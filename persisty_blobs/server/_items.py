"""Item endpoints: ``HEAD``/``GET`` (ranges, conditional requests, streaming), ``PUT``
(streaming, preconditions, quota) and ``DELETE``; used both by authenticated clients and by
signed URLs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from .. import http_wire
from ..errors import (
    InvalidArgument,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
    RangeNotSatisfiable,
    TransientError,
)
from ..item import DataItem, Flag
from ..store import DataStore
from ..streams import ItemReader, ItemWriter
from ._body import ThreadedSink, arriving

__all__ = ["if_match_etag", "read_item", "write_item"]

_CHUNK = 1024 * 1024
_ATTEMPTS = 5
_SMALL = 256 * 1024
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})$")


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, stop)`` a ``Range`` header asks for, None for the whole item. A header
    this server does not take (several ranges, other units) is ignored, as RFC 9110 allows."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return max(0, size - count), size
    start = int(first)
    stop = size if not last else min(size, int(last) + 1)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"range starts at {start}, past the item's {size} bytes")
    return start, stop


def _not_modified(request: Request, item: DataItem) -> bool:
    tags = request.headers.get("if-none-match")
    if tags is not None:
        # Weak comparison, as RFC 9110 asks of If-None-Match: W/"x" matches "x".
        given = [tag.strip().removeprefix("W/") for tag in tags.split(",")]
        return "*" in given or f'"{item.etag}"' in given
    since = request.headers.get("if-modified-since")
    if since:
        try:
            moment: datetime = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if moment.tzinfo is None:  # "-0000": a time in UTC (RFC 5322)
            moment = moment.replace(tzinfo=UTC)
        return item.updated_at.replace(microsecond=0) <= moment
    return False


def _range_applies(request: Request, item: DataItem) -> bool:
    """Whether to answer a ``Range`` (RFC 9110): only if an ``If-Range`` names this version
    by its etag. A date is too weak to (two versions can share a second): the whole item then
    goes out, so that a resumed download never splices two versions."""
    given = request.headers.get("if-range")
    return given is None or given.strip() == f'"{item.etag}"'


def _read_all(reader: ItemReader) -> bytes:
    with reader:
        return reader.read()


def _chunks(reader: ItemReader) -> Iterator[bytes]:
    with reader:
        while block := reader.read(_CHUNK):
            yield block


async def read_item(
    request: Request, store: DataStore, key: str, disposition: str | None = None
) -> Response:
    """The answer to ``HEAD`` or ``GET`` of ``key``; every header describes the version sent."""
    wanted = request.headers.get("range") if request.method == "GET" else None
    for _ in range(_ATTEMPTS):
        if request.method == "HEAD" or wanted:
            item = await run_in_threadpool(store.get, key)
            if item is None:
                raise NotFound("no such item", key=key)
            reader = None
        else:
            reader = await run_in_threadpool(store.open, key)
            try:
                item = await run_in_threadpool(_with_checksum, store, reader.item)
            except BaseException:
                reader.close()
                raise
        headers = http_wire.item_headers(item)
        headers["accept-ranges"] = "bytes"
        # Content its uploader chose, served from this app's origin: never sniffed, never
        # run as a page of the origin (an HTML upload opened in a tab has no scripts).
        headers["x-content-type-options"] = "nosniff"
        headers["content-security-policy"] = "sandbox"
        if disposition:
            headers["content-disposition"] = disposition
        unchanged = _not_modified(request, item)
        if unchanged or request.method == "HEAD":
            if reader is not None:
                reader.close()
            if not unchanged:
                headers["content-length"] = str(item.size)
            return Response(status_code=304 if unchanged else 200, headers=headers)
        if reader is not None:
            headers["content-length"] = str(item.size)
            if item.size <= _SMALL:  # one read, no streaming machinery
                body = await run_in_threadpool(_read_all, reader)
                return Response(body, status_code=200, headers=headers)
            return StreamingResponse(_chunks(reader), status_code=200, headers=headers)
        try:
            span = _range(wanted, item.size) if _range_applies(request, item) else None
        except RangeNotSatisfiable:
            return Response(status_code=416, headers={"content-range": f"bytes */{item.size}"})
        start, stop = span if span is not None else (0, item.size)
        reader = await run_in_threadpool(store.open, key, start, stop)
        if reader.item.etag != item.etag:  # replaced between the two calls: look again
            reader.close()
            continue
        headers["content-length"] = str(stop - start)
        status = 200
        if span is not None:
            status = 206
            headers["content-range"] = f"bytes {start}-{stop - 1}/{item.size}"
        return StreamingResponse(_chunks(reader), status_code=status, headers=headers)
    raise TransientError("the item kept changing while it was opened; try again", key=key)


def _flags_header(text: str | None) -> list[Flag]:
    try:
        return [Flag(part.strip()) for part in (text or "").split(",") if part.strip()]
    except ValueError:
        raise InvalidArgument(f"unknown flag in {text!r}") from None


async def if_match_etag(request: Request, store: DataStore, key: str) -> str | None:
    """The etag an ``If-Match`` names: ``*`` names the current version, if there is one."""
    given = request.headers.get("if-match")
    if given is None:
        return None
    if given.strip() != "*":
        return given.strip().strip('"')
    current = await run_in_threadpool(store.get, key)
    if current is None:
        raise PreconditionFailed("If-Match: * failed: the item is missing", key=key)
    return current.etag


async def write_item(
    request: Request,
    store: DataStore,
    key: str,
    *,
    limit: int | None,
    idle_seconds: float,
    content_type: str | None = None,
    signed: bool = False,
) -> DataItem:
    """Stream the request's body into ``key``; nothing is kept unless all of it arrives
    within ``limit`` bytes, the precondition holds and it hashes to the checksum sent with it
    (``X-Persisty-Checksum``), if one was. A ``signed`` upload (a signed URL's) takes no
    flags or metadata from its headers: its signature does not cover them."""
    headers = request.headers
    declared = headers.get("content-length")
    if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
        raise QuotaExceeded(f"{declared} bytes would exceed the quota", key=key)
    if_none_match = headers.get("if-none-match")
    if_match = await if_match_etag(request, store, key)
    metadata = {} if signed else http_wire.metadata_from_headers(headers)
    flags = [] if signed else _flags_header(headers.get("x-persisty-flags"))
    writer: ItemWriter = await run_in_threadpool(
        lambda: store.writer(
            key,
            content_type=content_type or headers.get("content-type"),
            metadata=metadata,
            flags=flags,
            if_match=if_match,
            if_none_match=None if if_none_match is None else if_none_match.strip(),
            # Checked before anything is committed: bytes changed on the way replace nothing.
            checksum=headers.get("x-persisty-checksum"),
        )
    )
    sink = ThreadedSink(writer.write)
    try:
        received = 0
        async for chunk in arriving(request, idle_seconds, key):
            received += len(chunk)
            if limit is not None and received > limit:
                raise QuotaExceeded(
                    f"the upload would exceed the quota at {received} bytes", key=key
                )
            await sink.feed(chunk)
        await sink.flush()
        await run_in_threadpool(writer.close)
    except ClientDisconnect:
        await sink.abandon()
        await run_in_threadpool(writer.abort)
        raise TransientError("the client went away during the upload", key=key) from None
    except BaseException:
        await sink.abandon()
        await run_in_threadpool(writer.abort)
        raise
    assert writer.item is not None
    return writer.item


def _with_checksum(store: DataStore, item: DataItem) -> DataItem:
    """``item`` with its checksum, which a reader of a file another program wrote does not
    know: from ``get`` (which hashes the file) if that still describes the same version, so
    that a client can check the body end to end."""
    if item.checksum is not None:
        return item
    described = store.get(item.key)
    if described is None or described.etag != item.etag:
        return item
    return described
