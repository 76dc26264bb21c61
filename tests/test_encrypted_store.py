"""EncryptedStore over every store: the conformance suite, and what the storage behind it can
and cannot do: learn nothing but sizes and key names, and change nothing unnoticed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs import (
    DataStore,
    DecryptionError,
    Flag,
    IntegrityError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidMetadata,
    Unsupported,
)
from persisty_blobs.crypto import EncryptedStore, Keyring
from persisty_blobs.crypto.streaming import HEADER_SIZE, Geometry, SegmentEncrypter
from persisty_blobs.stores import DirectoryStore, MemoryStore, S3Store
from persisty_blobs.stores.s3 import S3DataStoreFactory
from persisty_blobs.testing import StoreConformance
from persisty_blobs.testing._support import Workers, pieces
from persisty_blobs.testing.moto import moto_client

from .sync_support import Faulty
from .test_s3_store import S3_RSS_BUDGET, new_store

MiB = 1024 * 1024
SEGMENT = 100  # three segments hold 44 + 84 + 84 bytes of plaintext
GEOMETRY = Geometry(SEGMENT)


class TestEncryptedOverMemory(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[EncryptedStore]:
        with EncryptedStore(MemoryStore(), Keyring.generate(), segment_size=64 * 1024) as store:
            yield store


class TestEncryptedOverDirectory(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EncryptedStore]:
        with EncryptedStore(DirectoryStore(tmp_path / "store"), Keyring.generate()) as store:
            yield store


class TestEncryptedOverS3(StoreConformance):
    """Over a remote whose listing has no metadata, whose clock is the server's and whose
    writes go in parts. (Over SQL it ran as over memory: the layer sees only the store's
    contract, and the chunks are the inner store's own affair.)"""

    rss_budget = S3_RSS_BUDGET

    @pytest.fixture
    def store(self, s3_endpoint: str, s3_bucket: str) -> Iterator[EncryptedStore]:
        with EncryptedStore(new_store(s3_endpoint, s3_bucket), Keyring.generate()) as store:
            yield store

    def test_overwriters_and_readers_never_see_a_mix(self, store: DataStore) -> None:
        # AWS answers a GetObject with one whole version. moto stores a new object before its
        # metadata (responses.put_object: backend.put_object, then set_metadata), so a read in
        # between sees an item without its sealed record; and it closes an overwritten
        # object's buffer under a read in progress (a 500).
        pytest.skip("moto's PutObject is not atomic under concurrent reads")


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
    """The plaintext a reader hands out before it raises IntegrityError (it must raise, and
    name the key and the store)."""
    released = bytearray()

    def read_in_tens() -> None:
        with store.open(key) as reader:
            while part := reader.read(10):
                released.extend(part)

    with pytest.raises(IntegrityError) as caught:
        read_in_tens()
    assert (caught.value.key, caught.value.store) == (key, repr(store))
    return bytes(released)


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
    assert (caught.value.key, caught.value.store) == ("k", repr(stranger))
    # Without any of the layer's metadata, nothing tells a file that another program wrote
    # from an item whose metadata the storage lost: neither can be authenticated.
    inner.put("plain", b"x")
    with pytest.raises(IntegrityError, match="no EncryptedStore metadata") as lost:
        stranger.get("plain")
    assert (lost.value.key, lost.value.store) == ("plain", repr(stranger))


def test_a_store_sealed_under_another_ring_takes_no_writes_from_this_one(
    inner: MemoryStore,
) -> None:
    mine = Keyring.generate()
    EncryptedStore(inner, mine).put("docs/diary", b"mine")
    stranger = EncryptedStore(inner, Keyring.generate())  # a wrong keyring file
    with pytest.raises(DecryptionError, match="wrong keyring"):
        stranger.put("docs/note", b"would be readable by neither ring alone")
    assert [entry.key for entry in inner.scan()] == ["docs/diary"]
    stranger.put("pics/cat", b"a folder of its own")  # two rings' folders in one store
    stranger.namespace("theirs").put("docs/note", b"a namespace of its own")
    rotated = EncryptedStore(inner, mine.rotated(os.urandom(32)))  # keeps the old key
    rotated.put("docs/note", b"after a rotation")
    assert rotated.read_bytes("docs/diary") == b"mine"


def test_segments_are_written_while_the_cipher_still_views_the_last_one(
    inner: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cryptography may release its view of a buffer after encrypt_into returns (seen in
    # two of a dozen runs of the suite: BufferError as the first segment's buffer grew).
    views: list[memoryview] = []
    encrypt_into = SegmentEncrypter.encrypt_into

    def keeping_its_view(self: SegmentEncrypter, plain: memoryview, *args: Any, **kw: Any) -> None:
        views.append(plain)
        encrypt_into(self, plain, *args, **kw)

    monkeypatch.setattr(SegmentEncrypter, "encrypt_into", keeping_its_view)
    store = EncryptedStore(inner, Keyring.generate(), segment_size=SEGMENT)
    data = os.urandom(10 * SEGMENT)
    store.put("several segments", pieces(data, 7))
    assert store.read_bytes("several segments") == data
    assert len(views) > 2


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
    # Sealed as UTF-8: "é" takes 2 bytes of the budget, not the 6 of a JSON escape.
    store.put("accents", b"x", metadata={"note": "é" * 500})
    assert store.get("accents").metadata == {"note": "é" * 500}  # type: ignore[union-attr]
    with pytest.raises(InvalidMetadata, match=r"about 1\.2 KiB"):
        store.put("too-much", b"x", metadata={"note": "a" * 1700})
    assert inner.get("too-much") is None


def test_the_budget_of_the_committed_record_is_checked_before_content_is_read(
    store: EncryptedStore, inner: MemoryStore
) -> None:
    # The record that commits holds the size and checksum, which the record sent ahead lacks:
    # metadata that fits only without them must fail before the content streams.
    def fits(length: int) -> bool:
        try:
            store.put("probe", b"x", metadata={"note": "a" * length})
        except InvalidMetadata:
            return False
        return True

    length = next(length for length in range(1100, 1700) if not fits(length))
    read: list[int] = []

    def content() -> Iterator[bytes]:
        read.append(1)
        yield os.urandom(4 * MiB)

    with pytest.raises(InvalidMetadata) as caught:
        store.put("big", content(), metadata={"note": "a" * length})
    assert (caught.value.key, caught.value.store) == ("big", repr(store))
    assert read == []
    assert inner.get("big") is None


def tamper_metadata(inner: DataStore, key: str, **changes: str | None) -> None:
    """Rewrite the inner item with some clear metadata changed (None: removed)."""
    item = inner.get(key)
    assert item is not None
    metadata = dict(item.metadata)
    for name, value in changes.items():
        metadata.pop(name.replace("_", "-"), None)
        if value is not None:
            metadata[name.replace("_", "-")] = value
    inner.put(key, inner.read_bytes(key), metadata=metadata, content_type=item.content_type)


@pytest.mark.parametrize("segment", ["0", "99999999999", "²", " 100", "200", None])
def test_a_tampered_segment_size_is_an_integrity_error(
    store: EncryptedStore, inner: MemoryStore, segment: str | None
) -> None:
    store.put("doc", os.urandom(300))
    tamper_metadata(inner, "doc", persisty_segment=segment)
    for call in (store.get, store.read_bytes):
        with pytest.raises(IntegrityError) as caught:
            call("doc")
        assert (caught.value.key, caught.value.store) == ("doc", repr(store))
    assert store.exists("doc")


def unreadable_items(store: EncryptedStore, inner: MemoryStore) -> list[str]:
    """Items of every way an item cannot be authenticated, between readable ones."""
    for name in ("a", "b-segment", "c-seal", "d-key", "e-foreign", "f-size", "g"):
        store.put(name, name.encode() * 50)
    tamper_metadata(inner, "b-segment", persisty_segment="²")
    tamper_metadata(inner, "c-seal", persisty_seal="AAAA")
    elsewhere = MemoryStore()  # another ring's item, put here as it is
    EncryptedStore(elsewhere, Keyring.generate()).put("d-key", b"another ring's")
    sealed = elsewhere.get("d-key")
    assert sealed is not None
    inner.put("d-key", elsewhere.read_bytes("d-key"), metadata=sealed.metadata)
    inner.put("e-foreign", b"written by another program")
    item = inner.get("f-size")
    assert item is not None
    inner.put("f-size", inner.read_bytes("f-size")[:-1], metadata=item.metadata)
    return ["b-segment", "c-seal", "d-key", "e-foreign", "f-size"]


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_unreadable_items_never_break_listing_scanning_or_counting(
    store: EncryptedStore, inner: MemoryStore, page_size: int
) -> None:
    bad = unreadable_items(store, inner)
    store.list_page_size = page_size
    assert [item.key for item in store.list()] == ["a", "g"]
    assert [item.key for item in store.list(limit=1)] == ["a"]
    entries = list(store.scan())
    assert [entry.key for entry in entries] == ["a", *bad, "g"]
    assert [entry.key for entry in entries if entry.checksum is None] == bad
    assert store.count() == 7
    assert all(store.exists(key) for key in bad)
    assert not store.exists("missing")
    for key in bad:
        with pytest.raises((IntegrityError, DecryptionError)) as caught:
            store.get(key)
        assert (caught.value.key, caught.value.store) == (key, repr(store))


def test_a_byte_changed_in_place_on_a_directory_store(tmp_path: Path) -> None:
    store = EncryptedStore(DirectoryStore(tmp_path / "store"), Keyring.generate())
    store.put("doc", os.urandom(5000))
    store.put("other", b"fine")
    path = tmp_path / "store" / "doc"
    written = path.stat()
    with open(path, "r+b") as file:
        file.seek(3000)
        byte = file.read(1)
        file.seek(3000)
        file.write(bytes([byte[0] ^ 1]))
    for mtime in (written.st_mtime_ns, written.st_mtime_ns + 10**9):
        # Same mtime: the store keeps the item's metadata and the segment fails. Another
        # mtime: the store takes the file as another program's and drops the metadata.
        os.utime(path, ns=(written.st_atime_ns, mtime))
        with pytest.raises(IntegrityError) as caught:
            store.read_bytes("doc")
        assert (caught.value.key, caught.value.store) == ("doc", repr(store))
    with pytest.raises(IntegrityError):
        store.get("doc")
    assert [item.key for item in store.list()] == ["other"]
    assert [(entry.key, entry.checksum is None) for entry in store.scan()] == [
        ("doc", True),
        ("other", False),
    ]
    assert store.exists("doc")


def no_content_reads(inner: DataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object) -> None:
        raise AssertionError("scan read content")

    monkeypatch.setattr(inner._driver, "open_range", refused)


def test_scan_gives_plaintext_sizes_inner_etags_and_sealed_checksums(
    store: EncryptedStore, inner: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plaintexts = {f"k{size}": os.urandom(size) for size in (0, 44, 45, 300)}
    for key, plaintext in plaintexts.items():
        store.put(key, plaintext, flags=["pending"])
    items = {item.key: item for item in store.list()}
    no_content_reads(inner, monkeypatch)
    entries = list(store.scan())
    assert [entry.key for entry in entries] == sorted(plaintexts)
    for entry in entries:
        inner_item = inner.get(entry.key)
        assert inner_item is not None
        assert entry.size == len(plaintexts[entry.key])
        assert entry.etag == inner_item.etag == items[entry.key].etag
        assert entry.checksum == "sha256:" + hashlib.sha256(plaintexts[entry.key]).hexdigest()
        assert entry.checksum != inner_item.checksum
        assert entry.flags == frozenset({Flag.PENDING})


def test_scan_over_a_listing_without_metadata_has_no_checksum(
    inner: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store whose listing carries no metadata, as S3's ListObjectsV2.
    inner._driver.capabilities = dataclasses.replace(inner.capabilities, checksums_in_listing=False)
    store = EncryptedStore(inner, Keyring.generate(), segment_size=SEGMENT)
    assert not store.capabilities.checksums_in_listing
    store.put("k", os.urandom(300))
    item = store.get("k")
    no_content_reads(inner, monkeypatch)
    [entry] = store.scan()
    assert item is not None
    assert (entry.key, entry.size, entry.etag, entry.checksum) == ("k", 300, item.etag, None)


def test_over_s3_scan_is_one_listing_and_multipart_items_have_their_checksum(
    s3_endpoint: str, s3_bucket: str
) -> None:
    inner = new_store(s3_endpoint, s3_bucket)
    store = EncryptedStore(inner, Keyring.generate())
    plaintexts = {"big": os.urandom(6 * MiB), "small": os.urandom(3000)}
    for key, plaintext in plaintexts.items():
        checksum = "sha256:" + hashlib.sha256(plaintext).hexdigest()
        # The S3 store writes the committed (sealed) metadata when it records a multipart
        # object's checksum, so the plaintext checksum is there too.
        assert store.put(key, plaintext).checksum == checksum
        assert store.get(key).checksum == checksum  # type: ignore[union-attr]
    entries = list(store.scan())
    assert [(entry.key, entry.size) for entry in entries] == [("big", 6 * MiB), ("small", 3000)]
    for entry in entries:
        assert entry.etag == store.get(entry.key).etag  # type: ignore[union-attr]
        if store.capabilities.checksums_in_listing:
            assert entry.checksum == store.get(entry.key).checksum  # type: ignore[union-attr]
        else:
            assert entry.checksum is None


def test_capabilities_are_the_inner_stores_but_presigning_and_server_side_copy(
    inner: MemoryStore,
) -> None:
    store = EncryptedStore(inner, Keyring.generate())
    assert store.capabilities == dataclasses.replace(
        inner.capabilities, presign=False, server_side_copy=False
    )
    assert store.chunk_size == store._encrypted.geometry.plain


def test_a_replayed_old_version_decrypts(store: EncryptedStore, inner: MemoryStore) -> None:
    # Documented (README, "What the encryption protects against"): the storage can roll an
    # item back to an older version of the same key; only state kept outside it can tell.
    store.put("doc", b"version one", metadata={"v": "1"})
    old = inner.get("doc")
    old_ciphertext = inner.read_bytes("doc")
    store.put("doc", b"version two", metadata={"v": "2"})
    assert old is not None
    inner.put("doc", old_ciphertext, metadata=old.metadata)
    assert store.read_bytes("doc") == b"version one"


def test_argument_errors_are_blob_errors(inner: MemoryStore) -> None:
    for segment_size in (10, 2**31 + 1):
        with pytest.raises(InvalidArgument):
            EncryptedStore(inner, Keyring.generate(), segment_size=segment_size)
    with pytest.raises(InvalidArgumentType):
        EncryptedStore(inner, Keyring.generate(), segment_size=True)
    with pytest.raises(InvalidArgumentType):
        EncryptedStore(inner, "not a key")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        EncryptedStore(inner, b"short")
    with pytest.raises(InvalidArgumentType):
        EncryptedStore("memory://", Keyring.generate())  # type: ignore[arg-type]


def test_a_store_slow_to_list_holds_up_no_other_encrypted_store() -> None:
    listing, release = threading.Event(), threading.Event()

    def slow_list(operation: str, key: str) -> None:
        if operation == "list":  # the first write into a folder looks at its first item
            listing.set()
            release.wait(10)

    slow, other = (
        EncryptedStore(inner, os.urandom(32)) for inner in (Faulty(fault=slow_list), MemoryStore())
    )
    writing = Workers()
    writing.start(slow.put, "folder/a", b"a")
    try:
        assert listing.wait(5)
        quick = Workers()
        quick.start(other.put, "folder/b", b"b")
        quick.join(timeout=5)  # fails the test if it waited for another store's listing
    finally:
        release.set()
        writing.join()
    assert slow.read_bytes("folder/a") == b"a"
