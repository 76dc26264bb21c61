"""``DataStoreFactory``: hands browsers presigned URLs and upload forms, so files go straight to
storage; ``UploadForm``: what a browser needs to post one file."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from .errors import InvalidArgument, InvalidArgumentType
from .keys import validate_key, validate_prefix
from .store import DataStore

__all__ = [
    "DataStoreFactory",
    "UploadForm",
    "checked_disposition",
    "checked_expiry",
    "checked_max_size",
    "form_key",
]

#: The longest a signed URL or form lives (SigV4's limit, kept by every factory).
MAX_EXPIRES_IN = 7 * 24 * 3600


def checked_expiry(seconds: int | None, default: int | None = None) -> int:
    """``seconds``, or ``default`` for None; a signed request lives 1 s to 7 days."""
    if seconds is None and default is not None:
        return default
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidArgumentType(f"expires_in must be an int, not {type(seconds).__name__}")
    if not 1 <= seconds <= MAX_EXPIRES_IN:
        raise InvalidArgument(f"expires_in must be 1 to {MAX_EXPIRES_IN} seconds, not {seconds}")
    return seconds


def checked_disposition(value: str | None) -> str | None:
    """A ``Content-Disposition`` to sign: printable ASCII (RFC 6266), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentType("content_disposition must be a str")
    if not value.isprintable() or not value.isascii():
        raise InvalidArgument("content_disposition must be printable ASCII (RFC 6266)")
    return value


def checked_max_size(max_size: int | None) -> int | None:
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0
    ):
        raise InvalidArgument(f"max_size must be an int >= 0, not {max_size!r}")
    return max_size


def form_key(key: str | None, key_prefix: str | None) -> str:
    """An upload form's ``key`` field: the key, or the prefix followed by ``${filename}``
    (the posted file's name goes there)."""
    if (key is None) == (key_prefix is None):
        raise InvalidArgument("give either key or key_prefix")
    if key is not None:
        return validate_key(key)
    assert key_prefix is not None
    return validate_prefix(key_prefix) + "${filename}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class UploadForm:
    """A browser posts this as ``multipart/form-data``: every entry of ``fields`` in order, then
    the file under ``file_field``. The same browser code serves every store."""

    url: str
    method: str = "POST"
    fields: dict[str, str]
    file_field: str = "file"
    key: str
    expires_at: datetime
    max_size: int | None = None
    content_types: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict to send to the browser (``expires_at`` as ISO 8601)."""
        data = dataclasses.asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        return data


class DataStoreFactory(ABC):
    """Creates stores for callers and signs direct browser access to one store's items."""

    @abstractmethod
    def create(self, authorization: object | None = None) -> DataStore:
        """The store this caller may use; raise ``PermissionDenied`` to refuse."""

    @abstractmethod
    def download_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        expires_in: int | None = None,
        content_disposition: str | None = None,
    ) -> str:
        """A URL that GETs the item's content until it expires, signed inside the store that
        ``create(authorization)`` gives. ``expires_in=None``: the factory's default."""

    @abstractmethod
    def upload_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        content_type: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        """A URL that PUTs content to ``key`` until it expires."""

    @abstractmethod
    def upload_form(
        self,
        key: str | None = None,
        *,
        authorization: object | None = None,
        key_prefix: str | None = None,
        max_size: int | None = None,
        content_types: list[str] | None = None,
        expires_in: int | None = None,
    ) -> UploadForm:
        """A form that posts one file to ``key`` (or under ``key_prefix``), within limits."""
