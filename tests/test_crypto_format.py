"""The streaming AEAD format, byte for byte against Google's tink package, and the published
test vectors in tests/vectors/."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs import (
    DecryptionError,
    IntegrityError,
    InvalidArgument,
    InvalidArgumentType,
    Keyring,
)
from persisty_blobs.crypto.streaming import (
    TAG_SIZE,
    Geometry,
    SegmentDecrypter,
    SegmentEncrypter,
    decrypt_bytes,
    encrypt_bytes,
)

from .conftest import unavailable

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "aes_gcm_hkdf_streaming.json").read_text()
)


def tink_primitive(key: bytes, segment_size: int) -> Any:
    """tink's StreamingAead over exactly this key material (a RAW AesGcmHkdfStreamingKey)."""
    try:
        from tink import cleartext_keyset_handle, streaming_aead
        from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2
    except ImportError as error:
        unavailable(f"the compatibility tests need the tink package: {error}")
    streaming_aead.register()
    params = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
        ciphertext_segment_size=segment_size, derived_key_size=32, hkdf_hash_type=common_pb2.SHA256
    )
    tink_key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0, key_value=key, params=params
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                    value=tink_key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    return cleartext_keyset_handle.from_keyset(keyset).primitive(streaming_aead.StreamingAead)


def tink_decrypt(key: bytes, segment_size: int, ciphertext: bytes, associated_data: bytes) -> bytes:
    primitive = tink_primitive(key, segment_size)
    with primitive.new_decrypting_stream(io.BytesIO(ciphertext), associated_data) as stream:
        data: bytes = stream.read()
    return data


def tink_encrypt(key: bytes, segment_size: int, plaintext: bytes, associated_data: bytes) -> bytes:
    class Kept(io.BytesIO):
        kept = b""

        def close(self) -> None:
            self.kept = self.getvalue()
            super().close()

    sink = Kept()
    with tink_primitive(key, segment_size).new_encrypting_stream(sink, associated_data) as stream:
        stream.write(plaintext)
    return sink.kept


SIZES = [0, 1, 4096 - 56 - 1, 4096 - 56, 4096 - 56 + 1, 4096 * 3 - 56 - 32, 4096 * 3, 50_000]


@pytest.mark.parametrize("size", SIZES)
def test_tink_decrypts_what_we_write(size: int) -> None:
    key, plaintext, associated_data = os.urandom(32), os.urandom(size), b"ns\x00key"
    ciphertext = encrypt_bytes(key, associated_data, plaintext, 4096)
    assert len(ciphertext) == Geometry(4096).ciphertext_size(size)
    assert tink_decrypt(key, 4096, ciphertext, associated_data) == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_tink_writes(size: int) -> None:
    key, plaintext, associated_data = os.urandom(32), os.urandom(size), b"ns\x00key"
    ciphertext = tink_encrypt(key, 4096, plaintext, associated_data)
    assert Geometry(4096).plaintext_size(len(ciphertext)) == size
    assert decrypt_bytes(key, associated_data, ciphertext, 4096) == plaintext


@pytest.mark.parametrize(
    "vector",
    VECTORS["vectors"],
    ids=lambda vector: f"{vector['segment_size']}-{len(vector['plaintext']) // 2}",
)
def test_published_vectors(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(VECTORS["key"])
    plaintext = bytes.fromhex(vector["plaintext"])
    associated_data = bytes.fromhex(vector["associated_data"])
    expected = bytes.fromhex(vector["ciphertext"])
    written = encrypt_bytes(
        key,
        associated_data,
        plaintext,
        vector["segment_size"],
        salt=bytes.fromhex(VECTORS["salt"]),
        nonce_prefix=bytes.fromhex(VECTORS["nonce_prefix"]),
    )
    assert written == expected
    assert decrypt_bytes(key, associated_data, expected, vector["segment_size"]) == plaintext
    assert tink_decrypt(key, vector["segment_size"], expected, associated_data) == plaintext


def test_other_associated_data_fails() -> None:
    key = os.urandom(32)
    ciphertext = encrypt_bytes(key, b"here", b"secret", 4096)
    with pytest.raises(IntegrityError):
        decrypt_bytes(key, b"there", ciphertext, 4096)


def test_a_failed_segment_leaves_no_plaintext_in_the_buffer() -> None:
    # AES-GCM writes the plaintext before it checks the tag: decrypt_into must wipe it.
    key, plaintext = os.urandom(32), os.urandom(1000)
    encrypter = SegmentEncrypter(key, b"ad")
    sealed = bytearray(len(plaintext) + TAG_SIZE)
    encrypter.encrypt_into(memoryview(plaintext), memoryview(sealed), last=True)
    decrypter = SegmentDecrypter(key, b"ad", encrypter.header)
    buffer = bytearray(len(plaintext))
    decrypter.decrypt_into(0, memoryview(sealed), memoryview(buffer), last=True)
    assert buffer == plaintext
    sealed[-1] ^= 1
    buffer = bytearray(len(plaintext))
    with pytest.raises(IntegrityError):
        decrypter.decrypt_into(0, memoryview(sealed), memoryview(buffer), last=True)
    assert buffer == bytes(len(plaintext))


def test_keyring_ids_json_and_repr() -> None:
    first, second = os.urandom(32), os.urandom(32)
    ring = Keyring([first, second])
    assert ring.primary == first
    assert len(ring.ids) == 2
    assert Keyring([second, first]).ids == ring.ids[::-1]  # an id belongs to its key
    restored = Keyring.from_json(ring.to_json())
    assert (restored.ids, restored.primary) == (ring.ids, first)
    for text in (repr(ring), str(ring)):
        assert first.hex() not in text
        assert "primary=" in text
    with pytest.raises(DecryptionError, match="no key"):
        Keyring([second]).key(Keyring([first]).primary_id)
    # Argument errors are BlobErrors that are also ValueError / TypeError.
    with pytest.raises(InvalidArgument, match="32 random bytes"):
        Keyring([b"short"])
    with pytest.raises(InvalidArgument, match="at least one key"):
        Keyring([])
    with pytest.raises(InvalidArgumentType):
        Keyring(first)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType):
        Keyring([first.hex()])  # type: ignore[list-item]
    for text in ('{"keys": []}', "[]", "not json", '{"format": "persisty-blobs keyring 1"}'):
        with pytest.raises(InvalidArgument, match="not a keyring"):
            Keyring.from_json(text)


def test_passphrase_keys_are_repeatable() -> None:
    salt = b"0123456789abcdef"
    assert (
        Keyring.from_passphrase("correct horse", salt).ids
        == Keyring.from_passphrase("correct horse", salt).ids
    )
    assert (
        Keyring.from_passphrase("correct horse", salt).ids
        != Keyring.from_passphrase("correct horsf", salt).ids
    )
    with pytest.raises(InvalidArgument, match="salt"):
        Keyring.from_passphrase("x", b"short")
    with pytest.raises(InvalidArgument, match="passphrase"):
        Keyring.from_passphrase("", salt)
    with pytest.raises(InvalidArgumentType):
        Keyring.from_passphrase(b"bytes", salt)  # type: ignore[arg-type]
