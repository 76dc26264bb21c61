"""``DataStoreFactory``: hands browsers presigned URLs and upload forms, so files go straight to
storage; ``UploadForm``: what a browser needs to post one file."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from .store import DataStore

__all__ = ["DataStoreFactory", "UploadForm"]


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
