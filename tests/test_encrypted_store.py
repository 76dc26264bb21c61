"""EncryptedStore over every store: the conformance suite, and what the storage behind it can
and cannot do: learn nothing but sizes and key names, and change nothing unnoticed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs import DataStore, DecryptionError, IntegrityError, InvalidMetadata, Unsupported
from persisty_blobs.crypto import EncryptedStore, Keyring
from persisty_blobs.crypto.streaming import HEADER_SIZE, Geometry
from persisty_blobs.stores import DirectoryStore, MemoryStore, S3Store, SqlStore
from persisty_blobs.stores.s3 import S3DataStoreFactory
from persisty_blobs.testing import StoreConformance
from persisty_blobs.testing.moto import moto_client

MiB = 1024 * 1024
SEGMENT = 100  # three segments hold 44 + 84 + 84 bytes of plaintext
GEOMETRY = Geometry(SEGMENT)


class TestEncryptedOverMemory(StoreConformance):
    content_in_process = True

    @pytest.fixture
    def store(self) -> Iterator[EncryptedStore]:
        with EncryptedStore(MemoryStore(), Keyring.generate(), segment_size=64 * 1024) as store:
            yield store


class TestEncryptedOverDirectory(StoreConformance):
    nested_keys_coexist = False  # a file system's rule, which the layer keeps

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EncryptedStore]:
        with EncryptedStore(DirectoryStore(tmp_path / "store"), Keyring.generate()) as store:
            yield store


class TestEncryptedOverSqlAndS3(StoreConformance):
    @pytest.fixture(params=["sqlite", "s3"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EncryptedStore]:
        inner: DataStore
        if request.param == "sqlite":
            inner = SqlStore(f"sqlite:///{tmp_path / 'blobs.db'}", chunk_size=64 * 1024)
        else:
            endpoint = request.getfixturevalue("s3_endpoint")
            bucket = request.getfixturevalue("s3_bucket")
            client = moto_client(endpoint)
            inner = S3Store(
                bucket, "app", client=client, multipart_threshold=5 * MiB, part_size=5 * MiB
            )
        with EncryptedStore(inner, Keyring.generate()) as store:
            yield store


@pytest.fixture
def inner() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def store(inner: MemoryStore) -> EncryptedStore:
    return EncryptedStore(inner, Keyring.generate(), segment_size=SEGMENT)


def replace_ciphertext(
    inner: DataStore, key: str, ciphertext: bytes, to: str | None = None
) -> None:
    """What a hostile storage can do: put other bytes under the item's own metadata."""
    item = inner.get(key)
    assert item is not None
    inner.put(to or key, ciphertext, metadata=item.metadata, content_type=item.content_type)


def released_before_failure(store: DataStore, key: str) -> bytes:
    """The plaintext a reader hands out before it raises IntegrityError (it must raise)."""
    released = bytearray()
    try:
        with store.open(key) as reader:
            while part := reader.read(10):
                released += part
    except IntegrityError:
        return bytes(released)
    raise AssertionError("a damaged ciphertext was read without an error")


def test_every_flipped_byte_is_caught_before_its_segment_is_released(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    plaintext = os.urandom(44 + 84 + 50)
    store.put("three", plaintext)
    original = inner.read_bytes("three")
    assert GEOMETRY.segment_count(len(plaintext)) == 3
    for position in range(len(original)):
        flipped = bytearray(original)
        flipped[position] ^= 0x01
        replace_ciphertext(inner, "three", bytes(flipped))
        damaged = 0 if position < HEADER_SIZE else (position // SEGMENT)
        released = released_before_failure(store, "three")
        # Only plaintext of segments before the damaged one, and only as it was written.
        assert plaintext.startswith(released), position
        assert len(released) <= GEOMETRY.plain_start(damaged), position


def test_reordered_truncated_extended_and_moved_ciphertexts_fail(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    plaintext = os.urandom(44 + 84 + 84)
    store.put("three", plaintext)
    original = inner.read_bytes("three")
    first, second, third = (
        original[:SEGMENT],
        original[SEGMENT : 2 * SEGMENT],
        original[2 * SEGMENT :],
    )
    assert len(second) == len(third) == SEGMENT
    for forged in (first + third + second, first + second, original + third):
        replace_ciphertext(inner, "three", forged)
        with pytest.raises(IntegrityError):
            store.read_bytes("three")
    replace_ciphertext(inner, "three", original)
    assert store.read_bytes("three") == plaintext
    replace_ciphertext(inner, "three", original, to="elsewhere")
    with pytest.raises(IntegrityError):
        store.read_bytes("elsewhere")
    with pytest.raises(IntegrityError):
        store.get("elsewhere")
    item = inner.get("three")
    assert item is not None
    inner.namespace("other").put("three", original, metadata=item.metadata)
    with pytest.raises(IntegrityError):
        store.namespace("other").read_bytes("three")


def test_metadata_of_another_version_is_caught(store: EncryptedStore, inner: MemoryStore) -> None:
    store.put("doc", b"version one")
    old = inner.get("doc")
    store.put("doc", b"version two")
    assert old is not None
    inner.put("doc", inner.read_bytes("doc"), metadata=old.metadata)
    with pytest.raises(IntegrityError, match="other content"):
        store.read_bytes("doc")


def test_the_storage_sees_only_sizes_and_key_names(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    marker = "MARKER-7f3a"
    store.put(
        "k",
        (marker * 50).encode(),
        content_type=f"text/x-{marker.lower()}",
        metadata={"note": marker},
    )
    stored = inner.get("k")
    assert stored is not None
    visible = inner.read_bytes("k") + repr(stored.metadata).encode() + stored.content_type.encode()
    assert marker.encode() not in visible
    assert marker.lower().encode() not in visible
    assert stored.content_type == "application/octet-stream"
    item = store.get("k")
    assert item is not None
    assert (item.content_type, dict(item.metadata)) == (
        f"text/x-{marker.lower()}",
        {"note": marker},
    )


def test_same_plaintext_twice_gives_different_ciphertexts(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    store.put("a", b"same")
    store.put("b", b"same")
    assert inner.read_bytes("a") != inner.read_bytes("b")


def test_a_wrong_key_is_a_decryption_error_not_tampering(inner: MemoryStore) -> None:
    EncryptedStore(inner, Keyring.generate()).put("k", b"secret")
    stranger = EncryptedStore(inner, Keyring.generate())
    with pytest.raises(DecryptionError) as caught:
        stranger.read_bytes("k")
    assert not isinstance(caught.value, IntegrityError)
    inner.put("plain", b"x")
    with pytest.raises(DecryptionError, match="not written by an EncryptedStore"):
        stranger.get("plain")


def test_ranged_reads_decrypt_only_the_covering_segments(
    store: EncryptedStore, inner: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plaintext = os.urandom(44 + 84 * 5)
    store.put("six", plaintext)
    ranges: list[tuple[int, int | None]] = []
    open_range = inner._driver.open_range

    def recording(namespace: str, key: str, start: int, end: int | None) -> Any:
        ranges.append((start, end))
        return open_range(namespace, key, start, end)

    monkeypatch.setattr(inner._driver, "open_range", recording)
    assert store.read_bytes("six", 44 + 84 + 10, 44 + 2 * 84 + 5) == plaintext[138:217]
    assert ranges == [(0, HEADER_SIZE), (2 * SEGMENT, 4 * SEGMENT)]  # segments 2 and 3


def test_rotation_and_reencrypt(inner: MemoryStore) -> None:
    old = Keyring.generate()
    EncryptedStore(inner, old).put("k", b"kept", metadata={"a": "1"})
    new_key = os.urandom(32)
    rotated = EncryptedStore(inner, old.rotated(new_key))
    assert rotated.read_bytes("k") == b"kept"  # the old key still decrypts
    item = rotated.reencrypt("k")
    assert (item.size, dict(item.metadata)) == (4, {"a": "1"})
    stored = inner.get("k")
    assert stored is not None
    assert stored.metadata["persisty-key"] == Keyring([new_key]).primary_id
    assert EncryptedStore(inner, Keyring([new_key])).read_bytes("k") == b"kept"
    with pytest.raises(DecryptionError):
        EncryptedStore(inner, old).read_bytes("k")


def test_copy_reencrypts_for_the_new_key(store: EncryptedStore, inner: MemoryStore) -> None:
    store.put("a", b"content")
    copied = store.copy("a", "b")
    assert store.read_bytes("b") == b"content"
    assert copied.checksum == store.get("a").checksum  # type: ignore[union-attr]
    assert inner.read_bytes("a") != inner.read_bytes("b")


def test_no_presigning_over_an_encrypted_store(s3_endpoint: str, s3_bucket: str) -> None:
    inner = S3Store(s3_bucket, client=moto_client(s3_endpoint))
    with pytest.raises(Unsupported, match="cannot hand its content to a browser"):
        S3DataStoreFactory(EncryptedStore(inner, Keyring.generate()))  # type: ignore[arg-type]


def test_a_namespace_view_is_refused_as_inner(inner: MemoryStore) -> None:
    with pytest.raises(ValueError, match="namespace view"):
        EncryptedStore(inner.namespace("alice"), Keyring.generate())


def test_the_metadata_budget_is_checked_before_anything_is_written(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    store.put("fits", b"x", metadata={"note": "a" * 1200})
    with pytest.raises(InvalidMetadata, match=r"about 1\.3 KiB"):
        store.put("too-much", b"x", metadata={"note": "a" * 1700})
    assert inner.get("too-much") is None
