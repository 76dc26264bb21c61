"""How ``S3Store`` lays items out as S3 objects.

Layout under the store's prefix (which ends with ``/`` unless it is empty)::

    {prefix}items/{key}                     the default namespace
    {prefix}namespaces/{name}/{key}         namespace ``name``

Namespace names have no ``/``, so no key of one namespace can name an object of another.

An object carries the rest of its item as S3 itself holds it: the content type as
``Content-Type``; user metadata as ``x-amz-meta-*`` with percent-encoded values (S3 sends
metadata as HTTP headers, which carry ASCII only); the SHA-256 as S3's own ``ChecksumSHA256``,
which S3 verifies when the object is written in one ``PutObject`` and computes when a
multipart object is copied onto itself (above 5 GiB, the metadata entry ``persisty.sha256``
holds it instead); and flags as object tags
``persisty-flag:{flag}=1``, which change without rewriting content and which lifecycle rules
can match.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidKey
from ...item import DataItem, Flag
from ...keys import validate_key

__all__ = [
    "CHECKSUM_METADATA",
    "METADATA_LIMIT",
    "Layout",
    "checksum_of",
    "decode_metadata",
    "encode_metadata",
    "flags_of",
    "item_of",
    "metadata_size",
    "sha256_header",
    "tag_set_of",
    "tagging_of",
]

_DEFAULT = "items/"
_NAMESPACES = "namespaces/"
_FLAG_TAG = "persisty-flag:"
#: The metadata entry that holds the SHA-256 of an object S3 cannot hold one for (a multipart
#: copy); user metadata names have no ".", so none can collide with it.
CHECKSUM_METADATA = "persisty.sha256"
METADATA_LIMIT = 2048  # S3's, for names and values together
_METADATA_SAFE = " !#$&'()*+,-./:;<=>?@[]^_`{|}~"  # printable ASCII that needs no escaping


class Layout:
    """Object keys of items, and items of object keys, under one store prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.namespaces = prefix + _NAMESPACES

    def root(self, namespace: str) -> str:
        """The prefix every object key of ``namespace`` starts with."""
        return f"{self.namespaces}{namespace}/" if namespace else self.prefix + _DEFAULT

    def object_key(self, namespace: str, key: str) -> str:
        return self.root(namespace) + key

    def item_key(self, namespace: str, object_key: str) -> str | None:
        """The item key of an object listed under ``root(namespace)``; None for an object
        whose name is no valid key (uploaded by other means, e.g. a ``${filename}`` with
        ``..``), which the store does not show."""
        key = object_key[len(self.root(namespace)) :]
        try:
            return validate_key(key)
        except InvalidKey:
            return None


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {name: _encoded(value) for name, value in metadata.items()}


def _encoded(value: str) -> str:
    """A value as an HTTP header can carry it: spaces at either end escaped, which a header
    would lose; those inside kept as they are (they count against S3's 2 KB)."""
    text = urllib.parse.quote(value, safe=_METADATA_SAFE)
    inside = text.strip(" ")
    if not inside:
        return "%20" * len(text)
    leading = len(text) - len(text.lstrip(" "))
    trailing = len(text) - len(text.rstrip(" "))
    return "%20" * leading + inside + "%20" * trailing


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {
        name.lower(): urllib.parse.unquote(value)
        for name, value in metadata.items()
        if name.lower() != CHECKSUM_METADATA
    }


def metadata_size(encoded: Mapping[str, str]) -> int:
    """The size S3 counts against its 2 KB of user metadata."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in encoded.items())


def tagging_of(flags: frozenset[Flag]) -> str:
    """The ``Tagging`` parameter (a URL query string) that gives an object ``flags``."""
    return urllib.parse.urlencode([(_FLAG_TAG + flag.value, "1") for flag in sorted(flags)])


def tag_set_of(flags: frozenset[Flag], others: list[dict[str, str]]) -> list[dict[str, str]]:
    """A full tag set: ``flags`` plus the object's tags that are not ours, kept as they are."""
    ours = [{"Key": _FLAG_TAG + flag.value, "Value": "1"} for flag in sorted(flags)]
    return [tag for tag in others if not tag["Key"].startswith(_FLAG_TAG)] + ours


def flags_of(tag_set: list[dict[str, str]]) -> frozenset[Flag]:
    values = {flag.value for flag in Flag}
    names = (tag["Key"].removeprefix(_FLAG_TAG) for tag in tag_set)
    return frozenset(Flag(name) for name in names if name in values)


def sha256_header(checksum: str) -> str:
    """S3's ``ChecksumSHA256`` (base64 of the digest) of our ``sha256:<hex>``."""
    return base64.b64encode(bytes.fromhex(checksum.removeprefix("sha256:"))).decode("ascii")


def checksum_of(response: Mapping[str, Any]) -> str | None:
    """Our checksum from S3's, when S3 holds the SHA-256 of the whole object (a multipart
    object's is a hash of its parts' hashes, which says nothing about the content as a
    whole), else from the metadata entry a multipart copy carries."""
    value = response.get("ChecksumSHA256")
    if value and response.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT" and "-" not in value:
        try:
            digest = base64.b64decode(value, validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) == 32:
            return "sha256:" + digest.hex()
    metadata = {name.lower(): text for name, text in (response.get("Metadata") or {}).items()}
    recorded = metadata.get(CHECKSUM_METADATA, "")
    hex_digits = recorded.removeprefix("sha256:")
    if recorded.startswith("sha256:") and len(hex_digits) == 64:
        with contextlib.suppress(ValueError):
            return "sha256:" + bytes.fromhex(hex_digits).hex()
    return None


def item_of(
    namespace: str, key: str, response: Mapping[str, Any], flags: frozenset[Flag]
) -> DataItem:
    """The item a ``HeadObject``, or a whole object's ``GetObject``, response describes."""
    updated: datetime = response["LastModified"]
    return DataItem(
        key=key,
        namespace=namespace,
        size=response.get("ContentLength", 0),
        etag=response["ETag"].strip('"'),
        content_type=response.get("ContentType") or "application/octet-stream",
        updated_at=updated.astimezone(UTC),
        checksum=checksum_of(response),
        metadata=decode_metadata(response.get("Metadata") or {}),
        flags=flags,
    )
