"""Conformance: listing order, prefixes, paging, flags filter, counting and namespaces."""

from __future__ import annotations

import pytest

from ..errors import InvalidKey, Unsupported
from ..item import Flag
from ..store import DataStore
from ._support import PAGE, by_utf8, keys


class ListingTests:
    def test_a_key_and_a_key_below_it(self, store: DataStore) -> None:
        store.put("a", b"file")
        if store.capabilities.nested_keys:
            store.put("a/b", b"below")
            assert keys(store.list()) == ["a", "a/b"]
            return
        with pytest.raises(Unsupported, match="a/b"):
            store.put("a/b", b"below")
        store.put("c/d", b"below")
        with pytest.raises(Unsupported, match="'c'"):
            store.put("c", b"file")
        assert keys(store.list()) == ["a", "c/d"]
        assert store.read_bytes("a") == b"file"

    def test_ascending_utf8_byte_order(self, store: DataStore) -> None:
        names = ["b", "a-b", "B", "a/b", "a0", "é", "z", "~", "ñ/x", "Z", "鍵", "🎉", "_", "a.b"]
        for name in names:
            store.put(name, b"x")
        assert keys(store.list()) == by_utf8(names)

    def test_keys_differing_in_case_or_trailing_space_are_distinct(self, store: DataStore) -> None:
        # Case-insensitive or PAD SPACE collations (MySQL's) would merge these.
        names = ["a", "a ", "A", "a  ", "ä", "a\u0308"]
        for index, name in enumerate(names):
            store.put(name, bytes([index]))
        assert keys(store.list()) == by_utf8(names)
        assert [store.read_bytes(name) for name in names] == [bytes([i]) for i in range(6)]

    def test_prefix_is_a_string_prefix_not_a_folder_match(self, store: DataStore) -> None:
        for name in ["a/x", "a/y/z", "ab", "a-b", "b/a/x"]:
            store.put(name, b"x")
        assert keys(store.list("a/")) == ["a/x", "a/y/z"]
        assert keys(store.list("a")) == ["a-b", "a/x", "a/y/z", "ab"]
        assert keys(store.list("a/y")) == ["a/y/z"]
        assert keys(store.list("nothing")) == []
        assert store.count("a/") == 2

    def test_after_is_exclusive_and_limit_stops(self, store: DataStore) -> None:
        names = [f"k{index:02d}" for index in range(20)]
        for name in names:
            store.put(name, b"x")
        assert keys(store.list(after="k04")) == names[5:]
        assert keys(store.list(after="k04x")) == names[5:]
        assert keys(store.list(after="k04", limit=3)) == names[5:8]
        assert keys(store.list(limit=0)) == []
        assert keys(store.list(after="k19")) == []
        assert keys(store.list("k1", after="k15")) == names[16:]

    def test_many_items_page_and_count(self, store: DataStore) -> None:
        store.list_page_size = PAGE
        names = [f"many/{index:03d}" for index in range(8 * PAGE + 3)]
        for name in names:
            store.put(name, b"")
        assert keys(store.list()) == names
        assert store.count() == len(names)
        assert store.count("many/01") == 10
        assert keys(store.list(after=names[2 * PAGE - 1])) == names[2 * PAGE :]
        assert keys(store.list(limit=2 * PAGE + 1)) == names[: 2 * PAGE + 1]
        namespace = store.namespace("paged")
        for name in names[: PAGE * 2]:
            namespace.put(name, b"")
        assert keys(namespace.list()) == names[: PAGE * 2]

    def test_changes_between_pages_do_not_break_paging(self, store: DataStore) -> None:
        store.list_page_size = PAGE
        names = [f"p/{index:03d}" for index in range(6 * PAGE)]
        for name in names:
            store.put(name, b"")
        seen = []
        for item in store.list():
            seen.append(item.key)
            if len(seen) == PAGE + 1:
                store.delete(names[4 * PAGE])
                store.put(names[3 * PAGE] + "x", b"")
                store.delete(names[1])
        assert seen == sorted(set(seen))
        untouched = set(names) - {names[4 * PAGE], names[1]}
        assert untouched <= set(seen)
        assert names[1] in seen  # already listed before it was deleted
        assert names[3 * PAGE] + "x" in seen  # added ahead of the listing

    def test_flag_filter_pages(self, store: DataStore) -> None:
        store.list_page_size = PAGE
        for index in range(4 * PAGE):
            store.put(f"f{index:02d}", b"x", flags=[Flag.PENDING] if index % 3 == 0 else [])
        expected = [f"f{index:02d}" for index in range(0, 4 * PAGE, 3)]
        assert keys(store.list(flag=Flag.PENDING)) == expected
        assert store.count(flag=Flag.PENDING) == len(expected)

    def test_flag_filter_and_count(self, store: DataStore) -> None:
        for index in range(10):
            store.put(f"f{index}", b"x")
        for index in (1, 4, 7):
            store.set_flags(f"f{index}", [Flag.PENDING])
        store.set_flags("f4", [Flag.PENDING, Flag.FAILED])
        assert keys(store.list(flag=Flag.PENDING)) == ["f1", "f4", "f7"]
        assert keys(store.list(flag="failed")) == ["f4"]
        assert keys(store.list(flag=Flag.PROCESSED)) == []
        assert store.count(flag=Flag.PENDING) == 3
        assert store.count() == len(list(store.list())) == 10


class NamespaceTests:
    def test_same_key_in_two_namespaces(self, store: DataStore) -> None:
        alice, bob = store.namespace("alice"), store.namespace("bob")
        alice.put("notes.txt", b"alice's")
        bob.put("notes.txt", b"bob's")
        store.put("notes.txt", b"default")
        assert alice.read_bytes("notes.txt") == b"alice's"
        assert bob.read_bytes("notes.txt") == b"bob's"
        assert store.read_bytes("notes.txt") == b"default"
        item = alice.get("notes.txt")
        assert item is not None
        assert item.namespace == "alice"
        assert store.namespace("").read_bytes("notes.txt") == b"default"

    def test_listing_counting_and_deleting_stay_inside(self, store: DataStore) -> None:
        alice, bob = store.namespace("alice"), store.namespace("bob")
        for name in ("a", "b", "c"):
            alice.put(name, b"x")
        bob.put("b", b"y")
        store.put("z", b"z")
        assert keys(alice.list()) == ["a", "b", "c"]
        assert keys(bob.list()) == ["b"]
        assert keys(store.list()) == ["z"]
        assert (alice.count(), bob.count(), store.count()) == (3, 1, 1)
        assert bob.delete("b") is True
        assert alice.read_bytes("b") == b"x"
        assert bob.delete("a") is False
        assert alice.exists("a")

    def test_namespaces_lists_them(self, store: DataStore) -> None:
        assert store.namespaces() == []
        store.namespace("photos").put("p", b"x")
        store.namespace("docs").put("d", b"x")
        assert store.namespaces() == ["docs", "photos"]
        store.put("root-item", b"x")
        assert store.namespaces() == ["", "docs", "photos"]
        store.namespace("docs").delete("d")
        assert store.namespaces() == ["", "photos"]

    def test_copy_and_flags_inside_a_namespace(self, store: DataStore) -> None:
        space = store.namespace("space")
        space.put("one", b"1")
        space.set_flags("one", [Flag.PENDING])
        space.copy("one", "two")
        assert keys(space.list(flag=Flag.PENDING)) == ["one", "two"]
        assert store.get("two") is None

    def test_invalid_namespace_names(self, store: DataStore) -> None:
        for name in ["a/b", "..", ".", "bad\\name", "x" * 1025]:
            with pytest.raises(InvalidKey):
                store.namespace(name)
