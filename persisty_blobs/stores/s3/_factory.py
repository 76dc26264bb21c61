"""``S3DataStoreFactory``: presigned URLs and browser upload forms, so files go straight
between browsers and S3.

Every URL and form is signed inside the store that ``create(authorization)`` returns: the
authorizer decides which store (a namespace view, say) a caller may use, and the object key
signed is that store's, so one caller's URLs and forms never reach another caller's items.

An upload form is S3's own presigned POST. Its policy holds exactly these conditions, beside
the signature's own (``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date`` and, with
temporary credentials, ``x-amz-security-token``):

- ``{"bucket": …}``;
- the key: S3's exact-match form ``{"key": …}`` (the same as ``["eq", "$key", …]``) for one
  key, or ``["starts-with", "$key", …]`` for ``key_prefix``, whose ``key`` field ends with
  ``${filename}`` (S3 puts the posted file's name there);
- ``["content-length-range", 0, max_size]`` when ``max_size`` is given;
- ``["eq", "$Content-Type", type]`` for one type, or ``["starts-with", "$Content-Type",
  "type/"]`` for a family (its ``Content-Type`` field is then empty: the browser sets it to
  the file's type). A POST policy cannot list several types, so more than one is refused.

The policy's ``expiration`` is the form's ``expires_at``. S3 enforces all of it; the form
carries no secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ...errors import PermissionDenied, Unsupported
from ...factory import (
    DataStoreFactory,
    UploadForm,
    checked_disposition,
    checked_expiry,
    checked_max_size,
    form_key,
)
from ...keys import validate_content_type, validate_key
from ...store import DataStore
from ._errors import s3_errors
from ._store import S3Store

__all__ = ["Authorizer", "S3DataStoreFactory"]

#: Called with the factory's store and the caller's authorization; returns the store that
#: caller may use (the same one, or a view such as ``store.namespace(user)``), or raises
#: ``PermissionDenied``.
Authorizer = Callable[[S3Store, object | None], DataStore]


class S3DataStoreFactory(DataStoreFactory):
    """Signs direct browser access to the items of the store each caller is authorized for
    (``store`` itself without an ``authorizer``)."""

    def __init__(
        self,
        store: S3Store,
        *,
        authorizer: Authorizer | None = None,
        download_expires_in: int = 3600,
        upload_expires_in: int = 3600,
    ) -> None:
        if not isinstance(store, S3Store):
            raise Unsupported(
                f"S3DataStoreFactory signs for an S3Store, not {store!r}: a layer such as "
                "EncryptedStore cannot hand its content to a browser"
            )
        self.store = store
        self._authorizer = authorizer
        self._download_expires_in = checked_expiry(download_expires_in)
        self._upload_expires_in = checked_expiry(upload_expires_in)

    def create(self, authorization: object | None = None) -> DataStore:
        if self._authorizer is None:
            return self.store
        store = self._authorizer(self.store, authorization)
        if not isinstance(store, DataStore):
            raise PermissionDenied("the authorizer gave no store", store=repr(self.store))
        return store

    def _signer(self, authorization: object | None) -> S3Store:
        """The store whose objects this caller's URLs and forms may name."""
        store = self.create(authorization)
        if not isinstance(store, S3Store):
            raise Unsupported(
                f"the authorizer gave {store!r}, which cannot presign: URLs and forms are "
                "signed inside an S3Store (or a namespace view of one)"
            )
        return store

    def download_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        expires_in: int | None = None,
        content_disposition: str | None = None,
    ) -> str:
        store = self._signer(authorization)
        params = _params(store, key)
        disposition = checked_disposition(content_disposition)
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        seconds = checked_expiry(expires_in, self._download_expires_in)
        return _presign(store, "get_object", key, params, seconds)

    def upload_url(
        self,
        key: str,
        *,
        authorization: object | None = None,
        content_type: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        store = self._signer(authorization)
        params = _params(store, key)
        if content_type is not None:
            params["ContentType"] = validate_content_type(content_type)
        seconds = checked_expiry(expires_in, self._upload_expires_in)
        return _presign(store, "put_object", key, params, seconds)

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
        item_key = form_key(key, key_prefix)
        fields: dict[str, str] = {}
        conditions: list[Any] = []
        if checked_max_size(max_size) is not None:
            conditions.append(["content-length-range", 0, max_size])
        if content_types is not None:
            condition, fields["Content-Type"] = _content_type_condition(content_types)
            conditions.append(condition)
        seconds = checked_expiry(expires_in, self._upload_expires_in)
        store = self._signer(authorization)
        with s3_errors(repr(store), item_key):
            signed = store.client.generate_presigned_post(
                Bucket=store.bucket,
                Key=store.object_root + item_key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=seconds,
            )
        policy = json.loads(base64.b64decode(signed["fields"]["policy"]))
        expires_at = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
        return UploadForm(
            url=signed["url"],
            fields={name: str(value) for name, value in signed["fields"].items()},
            key=item_key,
            expires_at=expires_at.replace(tzinfo=UTC),
            max_size=max_size,
            content_types=None if content_types is None else list(content_types),
        )


def _params(store: S3Store, key: str) -> dict[str, str]:
    return {"Bucket": store.bucket, "Key": store.object_root + validate_key(key)}


def _presign(store: S3Store, method: str, key: str, params: dict[str, str], seconds: int) -> str:
    with s3_errors(repr(store), key):
        url: str = store.client.generate_presigned_url(method, Params=params, ExpiresIn=seconds)
    return url


def _content_type_condition(content_types: list[str]) -> tuple[list[str], str]:
    """The policy condition, and the form's ``Content-Type`` field, for ``content_types``."""
    if isinstance(content_types, str) or len(content_types) != 1:
        raise Unsupported(
            "an S3 upload form allows one content type ('image/png') or one family "
            f"('image/'), not {content_types!r}"
        )
    (wanted,) = content_types
    if wanted.endswith(("/", "/*")):
        family = wanted.removesuffix("*")
        validate_content_type(family + "x")
        return ["starts-with", "$Content-Type", family], ""
    return ["eq", "$Content-Type", validate_content_type(wanted)], wanted
