"""Conformance: ``scan``, the cheap listing a sync diff reads."""

from __future__ import annotations

from datetime import timedelta

from ..item import DataItem, Entry, Flag
from ..store import DataStore
from ._support import PAGE, WEIRD_KEYS, by_utf8, keys, payload


def assert_entry_matches(store: DataStore, entry: Entry, item: DataItem) -> None:
    """``entry`` says what ``get`` says; checksum and flags may be None where the store's
    capabilities say a listing cannot have them."""
    assert (entry.key, entry.size, entry.etag) == (item.key, item.size, item.etag)
    assert entry.updated_at.utcoffset() == timedelta(0)
    # A listing may carry a coarser timestamp than a stat (S3: milliseconds against seconds).
    assert abs(entry.updated_at - item.updated_at) < timedelta(seconds=1)
    capabilities = store.capabilities
    if capabilities.checksums_in_listing or entry.checksum is not None:
        assert entry.checksum == item.checksum
    if capabilities.flags_in_listing or entry.flags is not None:
        assert entry.flags == item.flags


class ScanTests:
    def test_scan_gives_what_get_gives(self, store: DataStore) -> None:
        store.put("a/one.txt", b"one", metadata={"m": "1"})
        store.put("a/two.bin", payload(3000), flags=[Flag.PENDING])
        store.put("b", b"")
        store.set_flags("b", [Flag.FAILED, Flag.PROCESSED])
        entries = list(store.scan())
        assert keys(entries) == ["a/one.txt", "a/two.bin", "b"]
        for entry in entries:
            assert isinstance(entry, Entry)
            item = store.get(entry.key)
            assert item is not None
            assert_entry_matches(store, entry, item)

    def test_scan_is_in_utf8_byte_order(self, store: DataStore) -> None:
        names = ["b", "a-b", "B", "a/b", "a0", "é", "z", "~", "ñ/x", "Z", "鍵", "🎉", "_", "a.b"]
        for name in names:
            store.put(name, b"x")
        assert keys(store.scan()) == by_utf8(names)

    def test_scan_prefix_and_after(self, store: DataStore) -> None:
        for name in ["a/x", "a/y/z", "ab", "a-b", "b/a/x"]:
            store.put(name, b"x")
        assert keys(store.scan("a/")) == ["a/x", "a/y/z"]
        assert keys(store.scan("a")) == ["a-b", "a/x", "a/y/z", "ab"]
        assert keys(store.scan("nothing")) == []
        assert keys(store.scan(after="a/x")) == ["a/y/z", "ab", "b/a/x"]
        assert keys(store.scan(after="a/xx")) == ["a/y/z", "ab", "b/a/x"]
        assert keys(store.scan("a", after="a/y/z")) == ["ab"]
        assert keys(store.scan(after="zzz")) == []

    def test_scan_pages(self, store: DataStore) -> None:
        store.list_page_size = PAGE
        names = [f"s/{index:03d}" for index in range(4 * PAGE + 2)]
        for name in names:
            store.put(name, b"x")
        store.put("t", b"after the prefix")
        assert keys(store.scan()) == [*names, "t"]
        assert keys(store.scan("s/")) == names
        assert keys(store.scan(after=names[PAGE - 1])) == [*names[PAGE:], "t"]
        assert keys(store.scan("s/", after=names[PAGE + 2])) == names[PAGE + 3 :]
        exact = [f"e/{index}" for index in range(PAGE)]  # a last page that is exactly full
        for name in exact:
            store.put(name, b"x")
        assert keys(store.scan("e/")) == exact

    def test_scan_survives_changes_between_pages(self, store: DataStore) -> None:
        store.list_page_size = PAGE
        names = [f"p/{index:03d}" for index in range(6 * PAGE)]
        for name in names:
            store.put(name, b"")
        seen = []
        for entry in store.scan():
            seen.append(entry.key)
            if len(seen) == PAGE + 1:
                store.delete(names[4 * PAGE])
                store.put(names[3 * PAGE] + "x", b"")
                store.delete(names[1])
        assert seen == sorted(set(seen))
        assert set(names) - {names[4 * PAGE], names[1]} <= set(seen)

    def test_scan_of_an_empty_store_and_namespaces(self, store: DataStore) -> None:
        assert list(store.scan()) == []
        alice = store.namespace("alice")
        alice.put("x", b"alice")
        store.put("y", b"default")
        assert keys(alice.scan()) == ["x"]
        assert keys(store.scan()) == ["y"]
        assert keys(store.namespace("bob").scan()) == []

    def test_hostile_keys_scan(self, store: DataStore) -> None:
        for key in WEIRD_KEYS:
            store.put(key, key.encode())
        entries = list(store.scan())
        assert keys(entries) == by_utf8(WEIRD_KEYS)
        for entry in entries:
            assert entry.size == len(entry.key.encode())
        assert keys(store.scan("emoji/")) == ["emoji/🎉🚀"]
