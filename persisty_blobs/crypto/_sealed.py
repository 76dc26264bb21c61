"""What an ``EncryptedStore`` keeps in its inner item's metadata: the key id and segment size
in the clear, and a sealed record of the plaintext's content type, metadata, size, checksum
and segment size.

The record is AES-256-GCM under a key that HKDF derives from the item's key for this purpose
alone, with a random 12-byte nonce; its associated data binds it to the item's namespace and
key. It also holds the salt of the content's header, so a record moved onto another version
of the same key is caught when the content is read. The clear values are hints for stores
that read no record; every one of them is checked against the record, since the storage can
change them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import DecryptionError, IntegrityError, InvalidArgument
from .keyring import Keyring
from .streaming import Geometry

__all__ = [
    "KEY_ID",
    "SEAL",
    "SEGMENT",
    "Record",
    "associated_data",
    "naming",
    "open_record",
    "seal",
]

KEY_ID = "persisty-key"
SEGMENT = "persisty-segment"
SEAL = "persisty-seal"
_NONCE_SIZE = 12
_LABEL = b"persisty-blobs metadata"


@dataclass(frozen=True)
class Record:
    content_type: str
    metadata: Mapping[str, str]
    size: int | None  # None until the content has streamed
    checksum: str | None
    salt: str  # hex of the content header's salt
    segment_size: int


def associated_data(namespace: str, key: str) -> bytes:
    """Binds a ciphertext to where it belongs. Neither part may contain NUL, so the encoding
    is unambiguous."""
    return b"persisty-blobs 1\x00" + namespace.encode() + b"\x00" + key.encode()


@contextmanager
def naming(key: str, store: str) -> Iterator[None]:
    """The format and the seal know neither the key nor the store: their errors get both here,
    where the layer knows them."""
    try:
        yield
    except (IntegrityError, DecryptionError) as error:
        if error.key is not None:
            raise
        raise type(error)(error.message, key=key, store=store) from None


def _aead(key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(key))


def seal(record: Record, key: bytes, key_id: str, bound_to: bytes) -> dict[str, str]:
    """The inner item's metadata for ``record``."""
    plain = json.dumps(
        {
            "t": record.content_type,
            "m": dict(record.metadata),
            "s": record.size,
            "c": record.checksum,
            "v": record.salt,
            "g": record.segment_size,
        },
        separators=(",", ":"),
        ensure_ascii=False,  # UTF-8, not \u escapes: they would take up to 3 times the room
    ).encode()
    nonce = os.urandom(_NONCE_SIZE)
    sealed = nonce + _aead(key).encrypt(nonce, plain, bound_to)
    return {
        KEY_ID: key_id,
        SEGMENT: str(record.segment_size),
        SEAL: base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("="),
    }


def open_record(metadata: Mapping[str, str], keyring: Keyring, bound_to: bytes) -> Record:
    """The record in an inner item's metadata. ``DecryptionError`` if ``keyring`` lacks its
    key; ``IntegrityError`` if any part of the metadata was changed or lost."""
    key_id, text = metadata.get(KEY_ID), metadata.get(SEAL)
    if key_id is None and text is None:
        raise IntegrityError(
            "the item has no EncryptedStore metadata: it was not written through an "
            "EncryptedStore, or the storage lost its metadata (a DirectoryStore drops it when "
            "a file is changed in place)"
        )
    if key_id is None or text is None:
        raise IntegrityError("the item's EncryptedStore metadata is incomplete")
    key = keyring.key(key_id)
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        plain = _aead(key).decrypt(sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:], bound_to)
    except (InvalidTag, ValueError):
        raise IntegrityError(
            "the item's sealed metadata failed authentication: changed, or moved from another key"
        ) from None
    data = json.loads(plain)
    segment_size = _clear_segment_size(metadata.get(SEGMENT))
    # Records written before the segment size was sealed too have no "g".
    if data.get("g", segment_size) != segment_size:
        raise IntegrityError("the item's segment size was changed")
    return Record(
        content_type=data["t"],
        metadata=data["m"],
        size=data["s"],
        checksum=data["c"],
        salt=data["v"],
        segment_size=segment_size,
    )


def _clear_segment_size(text: str | None) -> int:
    if text is None or not (text.isascii() and text.isdigit()):
        raise IntegrityError(f"the item's segment size {text!r} is not a number")
    try:
        return Geometry(int(text)).segment_size
    except InvalidArgument:
        raise IntegrityError(f"the item's segment size {text} is out of range") from None
