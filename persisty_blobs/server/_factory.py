"""``HostedDataStoreFactory``: signed URLs and upload forms for any store, verified by the app
of ``create_app`` (same ``secret``). Browser code written for ``S3DataStoreFactory`` works
unchanged: a form is posted field by field, then the file.

Every URL and form is signed inside the store that ``create(authorization)`` returns (the
store itself, or one of its namespace views), so one caller's URLs and forms never reach
another caller's items.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime

from ..errors import InvalidArgument, PermissionDenied
from ..factory import (
    DataStoreFactory,
    UploadForm,
    checked_disposition,
    checked_expiry,
    checked_max_size,
    form_key,
)
from ..http_wire import quote_key
from ..keys import validate_content_type, validate_key
from ..store import DataStore
from ._signing import Signer

__all__ = ["HostedDataStoreFactory"]

Authorizer = Callable[[DataStore, object | None], DataStore]


def _content_types(types: list[str]) -> list[str]:
    """Exact types, or families written ``"image/"``."""
    if isinstance(types, str) or not types:
        raise InvalidArgument("content_types is a non-empty list of types or families")
    return [
        entry.lower()
        if entry.endswith("/") and entry.count("/") == 1
        else validate_content_type(entry).split(";")[0].strip().lower()
        for entry in types
    ]


class HostedDataStoreFactory(DataStoreFactory):
    """Signs URLs and forms that ``create_app(store, secret=...)`` serves at ``base_url``."""

    def __init__(
        self,
        store: DataStore,
        *,
        secret: bytes | str,
        base_url: str,
        authorizer: Authorizer | None = None,
        download_expires_in: int = 3600,
        upload_expires_in: int = 3600,
    ) -> None:
        if store.namespace_name:
            raise InvalidArgument("give the app's store, not a namespace view of it")
        self.store = store
        self.base_url = base_url.rstrip("/")
        self._signer = Signer(secret)
        self._authorizer = authorizer
        self._download_expires_in = checked_expiry(download_expires_in)
        self._upload_expires_in = checked_expiry(upload_expires_in)

    def create(self, authorization: object | None = None) -> DataStore:
        if self._authorizer is None:
            return self.store
        store = self._authorizer(self.store, authorization)
        # The app serves the namespaces of its own store: a URL can only name one of them.
        if not isinstance(store, DataStore) or store._driver is not self.store._driver:
            raise PermissionDenied("the authorizer gave no view of this factory's store")
        return store

    def _url(
        self,
        method: str,
        key: str,
        authorization: object | None,
        seconds: int,
        content_type: str | None,
        disposition: str | None,
    ) -> str:
        namespace = self.create(authorization).namespace_name
        expires = int(time.time()) + seconds
        signature = self._signer.sign_request(
            method, namespace, validate_key(key), expires, content_type, disposition
        )
        query = {"namespace": namespace, "expires": str(expires), "signature": signature}
        if content_type is not None:
            query["content_type"] = content_type
        if disposition is not None:
            query["disposition"] = disposition
        return f"{self.base_url}/v1/signed/{quote_key(key)}?{urllib.parse.urlencode(query)}"

    def download_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        expires_in: int | None = None,
        content_disposition: str | None = None,
    ) -> str:
        checked_disposition(content_disposition)
        seconds = checked_expiry(expires_in, self._download_expires_in)
        return self._url("GET", key, authorization, seconds, None, content_disposition)

    def upload_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        content_type: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        checked = None if content_type is None else validate_content_type(content_type)
        seconds = checked_expiry(expires_in, self._upload_expires_in)
        return self._url("PUT", key, authorization, seconds, checked, None)

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
        field_key = form_key(key, key_prefix)
        checked_max_size(max_size)
        types = None if content_types is None else _content_types(content_types)
        seconds = checked_expiry(expires_in, self._upload_expires_in)
        expires = int(time.time()) + seconds
        policy = {
            "namespace": self.create(authorization).namespace_name,
            "key": key,
            "prefix": key_prefix,
            "max_size": max_size,
            "content_types": types,
            "expires": expires,
        }
        encoded, signature = self._signer.sign_policy(policy)
        fields = {"key": field_key}
        if types is not None:
            fields["Content-Type"] = types[0] if len(types) == 1 and types[0][-1] != "/" else ""
        fields.update({"policy": encoded, "signature": signature})
        return UploadForm(
            url=f"{self.base_url}/v1/upload",
            fields=fields,
            key=field_key,
            expires_at=datetime.fromtimestamp(expires, UTC),
            max_size=max_size,
            content_types=types,
        )
