"""The HTTP wire format shared by the hosting app (``server``) and its client (``HttpStore``).

Version 1. Paths are under ``/v1``; a key is sent percent-encoded segment by segment; a
namespace travels as the ``namespace`` query parameter ("" or absent: the default one).

- An item's description travels in headers: ``ETag`` (quoted), ``Last-Modified``,
  ``Content-Type``, ``Content-Length``, ``X-Persisty-Checksum``, ``X-Persisty-Updated-At``
  (ISO 8601 UTC, microseconds), ``X-Persisty-Flags`` (comma-separated) and one
  ``X-Persisty-Meta-<name>`` per metadata value (percent-encoded UTF-8).
- Listings are JSON: ``{"version": 1, "items": [item, ...], "next": cursor | null}`` where an
  item is ``{"key", "namespace", "size", "etag", "content_type", "updated_at", "checksum",
  "metadata", "flags"}``; a scan page has ``"entries"`` of ``{"key", "size", "etag",
  "updated_at", "checksum", "flags"}`` (``flags`` may be null).
- Errors are JSON ``{"version": 1, "error": "<class in persisty_blobs.errors>", "message",
  "key"}`` with the status of ``STATUS`` below; the client raises the same class.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

from . import errors
from .item import DataItem, Entry, Flag
from .keys import validate_key, validate_namespace

__all__ = [
    "STATUS",
    "WIRE_VERSION",
    "entry_from_json",
    "entry_to_json",
    "error_body",
    "error_from",
    "item_from_headers",
    "item_from_json",
    "item_headers",
    "item_to_json",
    "quote_key",
    "quote_metadata",
]

WIRE_VERSION = 1
_Parse = TypeVar("_Parse", bound=Callable[..., Any])
META_PREFIX = "x-persisty-meta-"

#: Each error class's HTTP status; a subclass takes its base's.
STATUS: dict[type[errors.BlobError], int] = {
    errors.NotFound: 404,
    errors.AlreadyExists: 412,
    errors.PreconditionFailed: 412,
    errors.InvalidKey: 400,
    errors.InvalidMetadata: 400,
    errors.InvalidFlags: 400,
    errors.InvalidArgument: 400,
    errors.InvalidArgumentType: 400,
    errors.RangeNotSatisfiable: 416,
    errors.TooLarge: 413,
    errors.ContentTypeNotAllowed: 415,
    errors.PermissionDenied: 403,
    errors.QuotaExceeded: 507,
    errors.IntegrityError: 422,
    errors.DecryptionError: 422,
    errors.Unsupported: 501,
    errors.TransientError: 503,
}
_BY_NAME = {error.__name__: error for error in STATUS}
_BY_NAME["BlobError"] = errors.BlobError


def status_of(error: errors.BlobError) -> int:
    for error_class in type(error).__mro__:
        if error_class in STATUS:
            return STATUS[error_class]
    return 500


def error_body(error: errors.BlobError) -> dict[str, Any]:
    # Never the store's name: it can hold a server's paths or addresses.
    return {
        "version": WIRE_VERSION,
        "error": type(error).__name__,
        "message": error.message,
        "key": error.key,
    }


def error_from(status: int, body: Any, store: str, key: str | None) -> errors.BlobError:
    """The error a response stands for: the class the server named, else one by status."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error_class = _BY_NAME.get(body["error"], errors.BlobError)
        message = str(body.get("message") or body["error"])
        return error_class(message, key=body.get("key") or key, store=store)
    if status in (401, 403):
        return errors.PermissionDenied(f"HTTP {status}", key=key, store=store)
    if status == 404:
        return errors.NotFound(f"HTTP {status}", key=key, store=store)
    if status == 412:
        return errors.PreconditionFailed(f"HTTP {status}", key=key, store=store)
    if status in (408, 429) or status >= 500:
        return errors.TransientError(f"HTTP {status}", key=key, store=store)
    return errors.BlobError(f"HTTP {status}", key=key, store=store)


def quote_key(key: str) -> str:
    return urllib.parse.quote(key, safe="/")


def quote_metadata(value: str) -> str:
    """A metadata value as a header value: percent-encoded UTF-8."""
    return urllib.parse.quote(value, safe="")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _flags_text(flags: frozenset[Flag]) -> str:
    return ",".join(sorted(flag.value for flag in flags))


def _flags(text: str | None) -> frozenset[Flag]:
    return frozenset(Flag(part) for part in (text or "").split(",") if part)


def item_headers(item: DataItem) -> dict[str, str]:
    headers = {
        "x-persisty-size": str(item.size),
        "etag": f'"{item.etag}"',
        "last-modified": format_datetime(item.updated_at.astimezone(UTC), usegmt=True),
        "content-type": item.content_type,
        "x-persisty-updated-at": _iso(item.updated_at),
        "x-persisty-flags": _flags_text(item.flags),
    }
    if item.checksum is not None:
        headers["x-persisty-checksum"] = item.checksum
    for name, value in item.metadata.items():
        headers[META_PREFIX + name] = quote_metadata(value)
    return headers


def metadata_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name[len(META_PREFIX) :]: urllib.parse.unquote(value)
        for name, value in headers.items()
        if name.lower().startswith(META_PREFIX)
    }


def _parsing(parse: _Parse) -> _Parse:
    """A parser of what a server sent: anything malformed is an ``IntegrityError``, never a
    ``KeyError`` or ``ValueError`` from deep inside."""

    @functools.wraps(parse)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return parse(*args, **kwargs)
        except (KeyError, ValueError, TypeError, AttributeError, errors.InvalidKey) as error:
            raise errors.IntegrityError(
                f"a malformed answer from the server ({type(error).__name__}: {error})"
            ) from None

    return checked  # type: ignore[return-value]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is no string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _moment(text: Any) -> datetime:
    """A time with its zone: a naive one cannot be compared with the others."""
    moment = datetime.fromisoformat(_text(text))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is no size")
    return value


@_parsing
def page_from_json(answer: Any, field: str, limit: int | None = None) -> list[Any]:
    """The list ``field`` of an answer, no longer than ``limit``: a server that ignores the
    limit is answering another question."""
    found = answer[field]
    if not isinstance(found, list):
        raise TypeError(f"{field!r} is no list")
    if limit is not None and len(found) > limit:
        raise ValueError(f"{len(found)} {field}, asked for {limit}")
    return found


@_parsing
def namespaces_from_json(answer: Any) -> list[str]:
    return [validate_namespace(name) for name in page_from_json(answer, "namespaces")]


@_parsing
def count_from_json(answer: Any) -> int:
    return _size(answer["count"])


@_parsing
def item_from_headers(
    headers: Mapping[str, str], key: str, namespace: str, size: int | None = None
) -> DataItem:
    """The item a response describes; ``size`` from the response's own framing, else its
    ``X-Persisty-Size`` header."""
    return DataItem(
        key=key,
        namespace=namespace,
        size=int(headers["x-persisty-size"]) if size is None else size,
        etag=headers["etag"].strip('"'),
        content_type=headers.get("content-type", "application/octet-stream"),
        updated_at=_moment(headers["x-persisty-updated-at"]),
        checksum=headers.get("x-persisty-checksum"),
        metadata=metadata_from_headers(headers),
        flags=_flags(headers.get("x-persisty-flags")),
    )


def item_to_json(item: DataItem) -> dict[str, Any]:
    return {
        "key": item.key,
        "namespace": item.namespace,
        "size": item.size,
        "etag": item.etag,
        "content_type": item.content_type,
        "updated_at": _iso(item.updated_at),
        "checksum": item.checksum,
        "metadata": dict(item.metadata),
        "flags": sorted(flag.value for flag in item.flags),
    }


@_parsing
def item_from_json(data: dict[str, Any]) -> DataItem:
    metadata = data["metadata"]
    if not isinstance(metadata, dict) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in metadata.items()
    ):
        raise TypeError("the metadata is no mapping of strings")
    return DataItem(
        key=validate_key(data["key"]),
        namespace=validate_namespace(data["namespace"]) if data["namespace"] else "",
        size=_size(data["size"]),
        etag=_text(data["etag"]),
        content_type=_text(data["content_type"]),
        updated_at=_moment(data["updated_at"]),
        checksum=_optional_text(data["checksum"]),
        metadata=metadata,
        flags=frozenset(Flag(flag) for flag in data["flags"]),
    )


def entry_to_json(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "size": entry.size,
        "etag": entry.etag,
        "updated_at": _iso(entry.updated_at),
        "checksum": entry.checksum,
        "flags": None if entry.flags is None else sorted(flag.value for flag in entry.flags),
    }


@_parsing
def entry_from_json(data: dict[str, Any]) -> Entry:
    flags = data["flags"]
    return Entry(
        key=validate_key(data["key"]),
        size=_size(data["size"]),
        etag=_text(data["etag"]),
        updated_at=_moment(data["updated_at"]),
        checksum=_optional_text(data["checksum"]),
        flags=None if flags is None else frozenset(Flag(flag) for flag in flags),
    )
