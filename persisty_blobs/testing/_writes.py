"""Conformance: preconditions, atomicity, validation, keys, copy and flags."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..errors import (
    AlreadyExists,
    IntegrityError,
    InvalidArgument,
    InvalidFlags,
    InvalidKey,
    InvalidMetadata,
    NotFound,
    PreconditionFailed,
)
from ..item import DataItem, Flag
from ..store import DataStore
from ._support import (
    INVALID_KEYS,
    WEIRD_KEYS,
    assert_empty,
    assert_stored,
    by_utf8,
    keys,
    payload,
    pieces,
    sha256,
)


class Boom(Exception):
    """Raised by a test half way through a write."""


def _failing_after(data: bytes, fail_at: int) -> Iterator[bytes]:
    for index, piece in enumerate(pieces(data, 4096)):
        if index == fail_at:
            raise Boom("the source failed half way")
        yield piece


class PreconditionTests:
    def test_content_that_differs_from_the_expected_checksum_is_not_written(
        self, store: DataStore
    ) -> None:
        data = payload(store.chunk_size + 3, seed=12)
        began = time.monotonic()
        kept = store.put("checked", b"old")
        with pytest.raises(IntegrityError, match="checked"):
            store.put("checked", pieces(data), checksum=sha256(data[:-1] + b"?"))
        assert store.read_bytes("checked") == b"old"
        assert_stored(store, "checked", kept, began)
        assert store.put("checked", pieces(data), checksum=sha256(data)).checksum == sha256(data)

    @pytest.mark.parametrize("checked", [True, False])
    @pytest.mark.parametrize("written", ["less", "more"])
    def test_content_of_another_size_than_announced_is_not_written(
        self, store: DataStore, written: str, checked: bool
    ) -> None:
        data = payload(store.chunk_size + 3, seed=13)
        began = time.monotonic()
        kept = store.put("announced", b"old")
        content = data[:-1] if written == "less" else data + b"!"

        def write(content: bytes) -> DataItem | None:
            checksum = sha256(content) if checked else None
            with store.writer("announced", size=len(data), checksum=checksum) as writer:
                for piece in pieces(content):
                    writer.write(piece)
            return writer.item

        # With a checksum announced too, it is not the content announced.
        with pytest.raises(IntegrityError if checked else InvalidArgument, match="announced"):
            write(content)
        assert_stored(store, "announced", kept, began)
        assert store.read_bytes("announced") == b"old"
        began = time.monotonic()
        assert_stored(store, "announced", write(data), began)
        assert store.read_bytes("announced") == data

    def test_create_only(self, store: DataStore) -> None:
        created = store.put("once", b"first", if_none_match="*")
        with pytest.raises(AlreadyExists, match="once"):
            store.put("once", b"second", if_none_match="*")
        assert store.read_bytes("once") == b"first"
        stored = store.get("once")
        assert stored is not None
        assert stored.etag == created.etag

    def test_if_match(self, store: DataStore) -> None:
        first = store.put("guarded", b"v1")
        with pytest.raises(PreconditionFailed, match="guarded"):
            store.put("guarded", b"v2", if_match="not-the-etag")
        assert store.read_bytes("guarded") == b"v1"
        second = store.put("guarded", b"v2", if_match=first.etag)
        assert store.read_bytes("guarded") == b"v2"
        with pytest.raises(PreconditionFailed):
            store.put("guarded", b"v3", if_match=first.etag)
        with pytest.raises(PreconditionFailed):
            store.put("never-written", b"x", if_match=second.etag)
        assert store.get("never-written") is None

    def test_precondition_fails_before_the_body_is_read(self, store: DataStore) -> None:
        store.put("taken", b"x")
        consumed: list[bytes] = []

        def body() -> Iterator[bytes]:
            consumed.append(b"started")
            yield b"y"

        with pytest.raises(AlreadyExists):
            store.put("taken", body(), if_none_match="*")
        assert consumed == []

    def test_delete_if_match(self, store: DataStore) -> None:
        item = store.put("deletable", b"content")
        with pytest.raises(PreconditionFailed):
            store.delete("deletable", if_match="wrong")
        assert store.read_bytes("deletable") == b"content"
        assert store.delete("deletable", if_match=item.etag) is True
        assert store.get("deletable") is None


class AtomicityTests:
    def test_writer_commits_on_clean_exit(self, store: DataStore) -> None:
        data = payload(2 * store.chunk_size + 5, seed=6)
        with store.writer("written", content_type="text/plain") as writer:
            for part in pieces(data, 3000):
                writer.write(part)
            assert store.get("written") is None
        assert writer.item is not None
        assert writer.item.size == len(data)
        assert store.read_bytes("written") == data

    @pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
    def test_writer_left_by_an_exception_leaves_nothing(
        self, store: DataStore, existing: bool
    ) -> None:
        if existing:
            store.put("target", b"the old content")
        data = payload(2 * store.chunk_size + 11, seed=7)

        def interrupted_write() -> None:
            with store.writer("target") as writer:
                writer.write(data)
                raise Boom("interrupted")

        with pytest.raises(Boom):
            interrupted_write()
        self._assert_untouched(store, existing)

    @pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
    def test_generator_that_fails_half_way_leaves_nothing(
        self, store: DataStore, existing: bool
    ) -> None:
        if existing:
            store.put("target", b"the old content")
        data = payload(3 * store.chunk_size, seed=8)
        with pytest.raises(Boom):
            store.put("target", _failing_after(data, fail_at=len(data) // 4096 // 2))
        self._assert_untouched(store, existing)

    def test_half_written_item_is_invisible(self, store: DataStore) -> None:
        store.put("visible", b"v")
        with store.writer("half") as writer:
            writer.write(payload(store.chunk_size + 1, seed=9))
            assert store.get("half") is None
            assert not store.exists("half")
            with pytest.raises(KeyError):
                store.open("half")
            assert keys(store.list()) == ["visible"]
            assert store.count() == 1
        assert keys(store.list()) == ["half", "visible"]

    def test_aborted_writer_and_dropped_writer_leave_nothing(self, store: DataStore) -> None:
        writer = store.writer("aborted")
        writer.write(b"partial")
        writer.abort()
        dropped = store.writer("dropped")
        dropped.write(b"partial")
        del dropped
        assert store.get("aborted") is None
        assert store.get("dropped") is None
        assert_empty(store)

    @staticmethod
    def _assert_untouched(store: DataStore, existing: bool) -> None:
        if existing:
            assert store.read_bytes("target") == b"the old content"
            assert keys(store.list()) == ["target"]
        else:
            assert store.get("target") is None
            assert_empty(store)


class ValidationTests:
    @pytest.mark.parametrize("key", WEIRD_KEYS)
    def test_weird_but_valid_keys_round_trip(self, store: DataStore, key: str) -> None:
        item = store.put(key, key.encode())
        assert item.key == key
        assert store.read_bytes(key) == key.encode()
        assert keys(store.list()) == [key]
        sibling = key[:-1] + "Z"  # as long and as odd as the key itself
        copied = store.copy(key, sibling)
        assert copied.key == sibling
        assert store.read_bytes(sibling) == key.encode()
        assert keys(store.list()) == by_utf8([key, sibling])
        assert keys(store.scan()) == by_utf8([key, sibling])

    def test_all_weird_keys_together(self, store: DataStore) -> None:
        for key in WEIRD_KEYS:
            store.put(key, b"x")
        assert keys(store.list()) == by_utf8(WEIRD_KEYS)

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
    def test_invalid_keys_raise_before_any_io(self, store: DataStore, key: Any) -> None:
        started: list[bool] = []

        def body() -> Iterator[bytes]:
            started.append(True)
            yield b"x"

        calls: list[Callable[[], object]] = [
            lambda: store.put(key, body()),
            lambda: store.writer(key),
            lambda: store.get(key),
            lambda: store.exists(key),
            lambda: store.open(key),
            lambda: store.delete(key),
            lambda: store.set_flags(key, []),
            lambda: store.copy(key, "valid"),
            lambda: store.copy("valid", key),
        ]
        store.put("valid", b"v")
        for call in calls:
            with pytest.raises(InvalidKey):
                call()
        assert started == []
        assert keys(store.list()) == ["valid"]

    @pytest.mark.parametrize(
        "metadata",
        [
            {"bad key": "v"},
            {"ünï": "v"},
            {"": "v"},
            {"k" * 65: "v"},
            {"Same": "1", "same": "2"},
            {"big": "x" * 2100},
            {"number": 1},
        ],
        ids=repr,
    )
    def test_invalid_metadata_writes_nothing(self, store: DataStore, metadata: Any) -> None:
        store.put("existing", b"old", metadata={"keep": "me"})
        for key in ("existing", "new"):
            with pytest.raises(InvalidMetadata):
                store.put(key, b"new", metadata=metadata)
        assert store.read_bytes("existing") == b"old"
        stored = store.get("existing")
        assert stored is not None
        assert dict(stored.metadata) == {"keep": "me"}
        assert store.get("new") is None

    @pytest.mark.parametrize(
        "content_type", ["text", "text/", "/plain", "text/plain; charset", "a b/c", "", 42]
    )
    def test_invalid_content_type_writes_nothing(self, store: DataStore, content_type: Any) -> None:
        with pytest.raises(InvalidMetadata):
            store.put("typed", b"x", content_type=content_type)
        assert store.get("typed") is None


class CopyTests:
    def test_copy_carries_everything(self, store: DataStore) -> None:
        data = payload(store.chunk_size + 3, seed=10)
        source = store.put("src", data, content_type="text/csv", metadata={"a": "1"})
        store.set_flags("src", [Flag.PENDING, Flag.FAILED])
        copied = store.copy("src", "dst")
        assert store.read_bytes("dst") == data
        assert copied.content_type == "text/csv"
        assert dict(copied.metadata) == {"a": "1"}
        assert copied.flags == {Flag.PENDING, Flag.FAILED}
        assert (copied.size, copied.checksum) == (source.size, source.checksum)
        stored = store.get("dst")
        assert stored is not None
        assert stored.flags == {Flag.PENDING, Flag.FAILED}

    def test_copy_carries_flags_given_at_write_time(self, store: DataStore) -> None:
        store.put("src", b"flagged", flags=[Flag.PROCESSING])
        assert store.copy("src", "dst").flags == {Flag.PROCESSING}
        assert store.get_flags("dst") == {Flag.PROCESSING}
        assert keys(store.list(flag=Flag.PROCESSING)) == ["dst", "src"]

    def test_copy_onto_itself_returns_the_item_unchanged(self, store: DataStore) -> None:
        began = time.monotonic()
        item = store.put("same", b"content", metadata={"m": "1"}, flags=[Flag.PENDING])
        assert store.copy("same", "same") == store.get("same")
        assert_stored(store, "same", item, began)
        assert store.read_bytes("same") == b"content"
        assert keys(store.list()) == ["same"]
        with pytest.raises(NotFound):
            store.copy("missing", "missing")

    def test_copy_overwrites_and_stays_independent(self, store: DataStore) -> None:
        store.put("src", b"source v1")
        store.put("dst", b"old destination", metadata={"old": "yes"})
        store.copy("src", "dst")
        assert store.read_bytes("dst") == b"source v1"
        stored = store.get("dst")
        assert stored is not None
        assert dict(stored.metadata) == {}
        store.put("src", b"source v2")
        store.set_flags("src", [Flag.PROCESSED])
        store.delete("src")
        assert store.read_bytes("dst") == b"source v1"
        assert store.get_flags("dst") == frozenset()


class FlagTests:
    def test_set_replace_clear(self, store: DataStore) -> None:
        store.put("flagged", b"x")
        assert store.get_flags("flagged") == frozenset()
        store.set_flags("flagged", [Flag.PENDING])
        assert store.get_flags("flagged") == {Flag.PENDING}
        store.set_flags("flagged", ["processing", Flag.FAILED])
        assert store.get_flags("flagged") == {Flag.PROCESSING, Flag.FAILED}
        store.set_flags("flagged", [])
        assert store.get_flags("flagged") == frozenset()
        assert store.read_bytes("flagged") == b"x"

    def test_flags_do_not_change_content_or_etag(self, store: DataStore) -> None:
        item = store.put("flagged", b"content")
        store.set_flags("flagged", [Flag.PROCESSED])
        stored = store.get("flagged")
        assert stored is not None
        assert (stored.etag, stored.checksum, stored.size) == (item.etag, item.checksum, 7)

    @pytest.mark.parametrize("flags", [["pending", "bogus"], [1], "pending", [None]], ids=repr)
    def test_invalid_flags_change_nothing(self, store: DataStore, flags: Any) -> None:
        store.put("flagged", b"x")
        store.set_flags("flagged", [Flag.PENDING])
        with pytest.raises(InvalidFlags):
            store.set_flags("flagged", flags)
        assert store.get_flags("flagged") == {Flag.PENDING}

    @pytest.mark.parametrize("how", ["put", "writer"])
    def test_flags_given_at_write_time(self, store: DataStore, how: str) -> None:
        flags = [Flag.PENDING, "processing"]
        if how == "put":
            item = store.put("flagged", b"x", flags=flags)
        else:
            with store.writer("flagged", flags=flags) as writer:
                writer.write(b"x")
            assert writer.item is not None
            item = writer.item
        expected = frozenset({Flag.PENDING, Flag.PROCESSING})
        assert item.flags == expected
        assert store.get_flags("flagged") == expected
        assert keys(store.list(flag=Flag.PROCESSING)) == ["flagged"]
        (entry,) = store.scan()
        if store.capabilities.flags_in_listing:
            assert entry.flags == expected
        else:
            assert entry.flags in (None, expected)
        assert store.put("flagged", b"y", flags=[]).flags == frozenset()
        assert store.get_flags("flagged") == frozenset()

    def test_invalid_flags_at_write_time_write_nothing(self, store: DataStore) -> None:
        with pytest.raises(InvalidFlags):
            store.put("flagged", b"x", flags=["bogus"])
        with pytest.raises(InvalidFlags):
            store.writer("flagged", flags="pending")
        assert store.get("flagged") is None

    def test_put_over_an_item_starts_without_flags(self, store: DataStore) -> None:
        store.put("flagged", b"v1")
        store.set_flags("flagged", [Flag.PROCESSED])
        item = store.put("flagged", b"v2")
        assert item.flags == frozenset()
        assert store.get_flags("flagged") == frozenset()
