"""Tink's AES-GCM-HKDF streaming AEAD, byte for byte, on ``cryptography``.

Wire format (Tink's ``AesGcmHkdfStreaming``, with AES-256 and HKDF-SHA256)::

    ciphertext = header || segment_0 || segment_1 || ... || segment_n
    header     = header_length (1 byte, = 40) || salt (32 bytes) || nonce_prefix (7 bytes)
    key        = HKDF-SHA256(ikm=key material, salt=salt, info=associated data, 32 bytes)
    segment_i  = AES-256-GCM(key, nonce_i, plaintext_i), its 16-byte tag at the end, no AAD
    nonce_i    = nonce_prefix || i as 4 bytes big-endian || 1 if i is the last segment else 0

Every segment but the last has exactly ``segment_size`` bytes of ciphertext, the first
counting the header: so the first holds ``segment_size - 40 - 16`` bytes of plaintext and the
others ``segment_size - 16``. The last holds 0 to that many; an empty plaintext is one empty
last segment (its tag alone). The associated data enters only the key derivation, so a
ciphertext read under other associated data fails its first tag. The segment number and the
last-segment flag in each nonce make a reordered, truncated or extended stream fail too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import IntegrityError, InvalidArgument, InvalidArgumentType, TooLarge

__all__ = [
    "HEADER_SIZE",
    "KEY_SIZE",
    "TAG_SIZE",
    "Geometry",
    "SegmentDecrypter",
    "SegmentEncrypter",
    "decrypt_bytes",
    "encrypt_bytes",
]

KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
HEADER_SIZE = 1 + KEY_SIZE + NONCE_PREFIX_SIZE
MAX_SEGMENTS = 2**32  # the segment number is 4 bytes


@dataclass(frozen=True)
class Geometry:
    """Where plaintext and ciphertext bytes lie, for one ciphertext segment size."""

    segment_size: int

    def __post_init__(self) -> None:
        if isinstance(self.segment_size, bool) or not isinstance(self.segment_size, int):
            raise InvalidArgumentType(
                f"segment_size must be an int, not {type(self.segment_size).__name__}"
            )
        if not HEADER_SIZE + TAG_SIZE < self.segment_size <= 2**31:
            raise InvalidArgument(f"segment_size must be {HEADER_SIZE + TAG_SIZE + 1} to 2**31")

    @property
    def first_plain(self) -> int:
        return self.segment_size - HEADER_SIZE - TAG_SIZE

    @property
    def plain(self) -> int:
        return self.segment_size - TAG_SIZE

    def segment_count(self, plain_size: int) -> int:
        if plain_size <= self.first_plain:
            return 1
        return 1 + -(-(plain_size - self.first_plain) // self.plain)

    def ciphertext_size(self, plain_size: int) -> int:
        return HEADER_SIZE + plain_size + TAG_SIZE * self.segment_count(plain_size)

    def plaintext_size(self, cipher_size: int) -> int | None:
        """The plaintext size of a ciphertext of ``cipher_size`` bytes; None if none has it."""
        if cipher_size < HEADER_SIZE + TAG_SIZE:
            return None
        if cipher_size <= self.segment_size:
            return cipher_size - HEADER_SIZE - TAG_SIZE
        rest = cipher_size - self.segment_size
        full, last = divmod(rest, self.segment_size)
        if last == 0:  # the last segment is full
            return self.first_plain + full * self.plain
        if last < TAG_SIZE:
            return None
        return self.first_plain + full * self.plain + last - TAG_SIZE

    def plain_start(self, index: int) -> int:
        """Where segment ``index``'s plaintext starts in the plaintext."""
        return 0 if index == 0 else self.first_plain + (index - 1) * self.plain

    def plain_stop(self, index: int, plain_size: int) -> int:
        """Where segment ``index``'s plaintext ends, in a plaintext of ``plain_size`` bytes."""
        return min(
            plain_size, self.plain_start(index) + (self.plain if index else self.first_plain)
        )

    def cipher_start(self, index: int) -> int:
        """Where segment ``index`` starts in the ciphertext (segment 0 after the header)."""
        return HEADER_SIZE if index == 0 else index * self.segment_size

    def segment_at(self, plain_offset: int) -> int:
        """The segment that holds plaintext byte ``plain_offset``."""
        if plain_offset < self.first_plain:
            return 0
        return 1 + (plain_offset - self.first_plain) // self.plain


def _derived(key: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=associated_data)
    return AESGCM(hkdf.derive(key))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= MAX_SEGMENTS:
        raise TooLarge("a stream has at most 2**32 segments")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SegmentEncrypter:
    """Encrypts one stream, segment by segment; ``header`` goes first."""

    def __init__(
        self,
        key: bytes,
        associated_data: bytes,
        *,
        salt: bytes | None = None,
        nonce_prefix: bytes | None = None,
    ) -> None:
        if len(key) < KEY_SIZE:
            raise ValueError(f"the key must have at least {KEY_SIZE} bytes")
        salt = os.urandom(KEY_SIZE) if salt is None else salt
        self._prefix = os.urandom(NONCE_PREFIX_SIZE) if nonce_prefix is None else nonce_prefix
        if len(salt) != KEY_SIZE or len(self._prefix) != NONCE_PREFIX_SIZE:
            raise ValueError("the salt has 32 bytes and the nonce prefix 7")
        self.header = bytes([HEADER_SIZE]) + salt + self._prefix
        self._aead = _derived(key, salt, associated_data)
        self._index = 0

    def encrypt(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        """The next segment's ciphertext; the caller sizes the plaintext (``Geometry``)."""
        return self._aead.encrypt(self._next_nonce(last), plaintext, None)

    def encrypt_into(self, plaintext: memoryview, ciphertext: memoryview, *, last: bool) -> None:
        """The next segment's ciphertext into ``ciphertext`` (exactly 16 bytes longer than
        ``plaintext``), without allocating."""
        self._aead.encrypt_into(self._next_nonce(last), plaintext, None, ciphertext)

    def _next_nonce(self, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._index, last)
        self._index += 1
        return nonce


class SegmentDecrypter:
    """Decrypts the segments of one stream, in any order, given its header."""

    def __init__(self, key: bytes, associated_data: bytes, header: bytes) -> None:
        if len(header) != HEADER_SIZE or header[0] != HEADER_SIZE:
            raise IntegrityError("the ciphertext's header is damaged")
        self._prefix = header[1 + KEY_SIZE :]
        self._aead = _derived(key, header[1 : 1 + KEY_SIZE], associated_data)

    def decrypt(self, index: int, ciphertext: bytes | memoryview, *, last: bool) -> bytes:
        """Segment ``index``'s plaintext, released only once its tag is verified."""
        try:
            return self._aead.decrypt(_nonce(self._prefix, index, last), ciphertext, None)
        except InvalidTag:
            raise _damaged(index) from None

    def decrypt_into(
        self, index: int, ciphertext: memoryview, plaintext: memoryview, *, last: bool
    ) -> None:
        """Segment ``index``'s plaintext into ``plaintext`` (exactly 16 bytes shorter than
        ``ciphertext``), without allocating. AES-GCM writes before it checks the tag, so on
        failure the buffer is wiped before ``IntegrityError`` leaves."""
        try:
            self._aead.decrypt_into(_nonce(self._prefix, index, last), ciphertext, None, plaintext)
        except InvalidTag:
            plaintext[:] = bytes(len(plaintext))
            raise _damaged(index) from None


def _damaged(index: int) -> IntegrityError:
    return IntegrityError(
        f"segment {index} failed authentication: the ciphertext was changed, "
        "truncated, extended, reordered or moved to another key"
    )


def encrypt_bytes(
    key: bytes,
    associated_data: bytes,
    plaintext: bytes,
    segment_size: int,
    *,
    salt: bytes | None = None,
    nonce_prefix: bytes | None = None,
) -> bytes:
    """A whole ciphertext at once, for data already in memory."""
    geometry = Geometry(segment_size)
    encrypter = SegmentEncrypter(key, associated_data, salt=salt, nonce_prefix=nonce_prefix)
    view = memoryview(plaintext)
    count = geometry.segment_count(len(plaintext))
    parts = [encrypter.header]
    for index in range(count):
        start, stop = geometry.plain_start(index), geometry.plain_stop(index, len(plaintext))
        parts.append(encrypter.encrypt(view[start:stop], last=index == count - 1))
    return b"".join(parts)


def decrypt_bytes(
    key: bytes, associated_data: bytes, ciphertext: bytes, segment_size: int
) -> bytes:
    """A whole plaintext at once; ``IntegrityError`` unless every segment authenticates."""
    geometry = Geometry(segment_size)
    size = geometry.plaintext_size(len(ciphertext))
    if size is None:
        raise IntegrityError("the ciphertext has an impossible length")
    decrypter = SegmentDecrypter(key, associated_data, ciphertext[:HEADER_SIZE])
    view = memoryview(ciphertext)
    count = geometry.segment_count(size)
    parts = []
    for index in range(count):
        stop = len(ciphertext) if index == count - 1 else geometry.cipher_start(index + 1)
        parts.append(
            decrypter.decrypt(
                index, view[geometry.cipher_start(index) : stop], last=index == count - 1
            )
        )
    return b"".join(parts)
