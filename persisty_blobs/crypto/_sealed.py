"""What an ``EncryptedStore`` keeps in its inner item's metadata: the key id and segment size
in the clear, and a sealed record of the plaintext's content type, metadata, size and checksum.

The record is AES-256-GCM under a key that HKDF derives from the item's key for this purpose
alone, with a random 12-byte nonce; its associated data binds it to the item's namespace and
key. It also holds the salt of the content's header, so a record moved onto another version
of the same key is caught when the content is read.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import DecryptionError, IntegrityError

__all__ = [
    "KEY_ID",
    "SEAL",
    "SEGMENT",
    "Record",
    "associated_data",
    "open_record",
    "seal",
    "segment_size_of",
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


def associated_data(namespace: str, key: str) -> bytes:
    """Binds a ciphertext to where it belongs. Neither part may contain NUL, so the encoding
    is unambiguous."""
    return b"persisty-blobs 1\x00" + namespace.encode() + b"\x00" + key.encode()


def _aead(key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(key))


def seal(
    record: Record, key: bytes, key_id: str, segment_size: int, bound_to: bytes
) -> dict[str, str]:
    """The inner item's metadata for ``record``."""
    plain = json.dumps(
        {
            "t": record.content_type,
            "m": dict(record.metadata),
            "s": record.size,
            "c": record.checksum,
            "v": record.salt,
        },
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(_NONCE_SIZE)
    sealed = nonce + _aead(key).encrypt(nonce, plain, bound_to)
    return {
        KEY_ID: key_id,
        SEGMENT: str(segment_size),
        SEAL: base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("="),
    }


def open_record(metadata: Mapping[str, str], key: bytes, bound_to: bytes) -> Record:
    """The record in an inner item's metadata; ``IntegrityError`` if it was changed."""
    text = metadata.get(SEAL, "")
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        plain = _aead(key).decrypt(sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:], bound_to)
    except (InvalidTag, ValueError):
        raise IntegrityError(
            "the item's sealed metadata failed authentication: changed, or moved from another key"
        ) from None
    data = json.loads(plain)
    return Record(
        content_type=data["t"],
        metadata=data["m"],
        size=data["s"],
        checksum=data["c"],
        salt=data["v"],
    )


def segment_size_of(metadata: Mapping[str, str]) -> int:
    text = metadata.get(SEGMENT, "")
    if KEY_ID not in metadata or not text.isdigit():
        raise DecryptionError("the item was not written by an EncryptedStore")
    return int(text)
