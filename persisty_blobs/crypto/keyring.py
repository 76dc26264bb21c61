"""``Keyring``: the keys an ``EncryptedStore`` encrypts and decrypts with.

The first key is the primary: it encrypts every new item. Each item records the id of its
key, so any key of the ring decrypts it without trial and error; an item whose key is not in
the ring raises ``DecryptionError``. A key id is derived from the key (HMAC-SHA256 of a fixed
label, 8 bytes in hex), so the same key has the same id in every ring, and the id reveals
nothing of the key.

Passphrases go through scrypt with N = 2**17, r = 8, p = 1 (128 MiB, about half a second
here: OWASP's recommended minimum) and a salt of at least 16 bytes that the caller keeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable

from ..errors import DecryptionError, InvalidArgument, InvalidArgumentType
from .streaming import KEY_SIZE

__all__ = ["Keyring"]

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_ID_LABEL = b"persisty-blobs key id"
_FORMAT = "persisty-blobs keyring 1"


def key_id(key: bytes) -> str:
    return hmac.new(key, _ID_LABEL, hashlib.sha256).digest()[:8].hex()


class Keyring:
    """Keys by id, primary first. ``repr`` and ``str`` show ids only, never key material."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        if isinstance(keys, bytes | str):
            raise InvalidArgumentType("a keyring takes a list of keys: Keyring([key])")
        materials = list(keys)
        if not materials:
            raise InvalidArgument("a keyring needs at least one key")
        self._keys: dict[str, bytes] = {}
        for key in materials:
            if not isinstance(key, bytes):
                raise InvalidArgumentType(f"a key is bytes, not {type(key).__name__}")
            if len(key) != KEY_SIZE:
                raise InvalidArgument(f"each key is {KEY_SIZE} random bytes (Keyring.generate())")
            self._keys.setdefault(key_id(key), key)
        self.primary_id = key_id(materials[0])

    @classmethod
    def generate(cls) -> Keyring:
        """A ring of one new random key."""
        return cls([os.urandom(KEY_SIZE)])

    @classmethod
    def from_passphrase(cls, passphrase: str, salt: bytes) -> Keyring:
        """A ring of the key scrypt derives from ``passphrase`` and ``salt`` (keep the salt;
        16 random bytes or more, e.g. ``os.urandom(16)``)."""
        if not isinstance(passphrase, str) or not isinstance(salt, bytes):
            raise InvalidArgumentType("the passphrase is a str and the salt bytes")
        if not passphrase:
            raise InvalidArgument("the passphrase is a non-empty str")
        if len(salt) < 16:
            raise InvalidArgument("the salt is at least 16 bytes")
        key = hashlib.scrypt(
            passphrase.encode(),
            salt=salt,
            n=SCRYPT_N,
            r=SCRYPT_R,
            p=SCRYPT_P,
            maxmem=256 * 1024 * 1024,
            dklen=KEY_SIZE,
        )
        return cls([key])

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    @property
    def primary(self) -> bytes:
        return self._keys[self.primary_id]

    def key(self, wanted: str) -> bytes:
        """The key with id ``wanted``; ``DecryptionError`` if the ring lacks it."""
        found = self._keys.get(wanted)
        if found is None:
            raise DecryptionError(f"the keyring has no key {wanted!r}: a wrong or missing key")
        return found

    def rotated(self, new_primary: bytes) -> Keyring:
        """This ring with ``new_primary`` first; the old keys still decrypt."""
        return Keyring([new_primary, *self._keys.values()])

    def to_json(self) -> str:
        """The ring with its key material, for a secret store: treat the text as a secret."""
        keys = [base64.b64encode(key).decode("ascii") for key in self._keys.values()]
        return json.dumps({"format": _FORMAT, "keys": keys})

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT!r} document")
            return cls([base64.b64decode(key, validate=True) for key in data["keys"]])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidArgument(f"not a keyring: {error}") from None

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary_id!r}, keys={len(self._keys)})"
