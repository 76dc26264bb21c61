"""Conformance: every bad per-call argument is a ``BlobError`` (so ``except BlobError`` catches
everything the library raises) that is also the ``ValueError`` or ``TypeError`` Python code
expects, raised before any I/O, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..errors import BlobError, InvalidFlags, InvalidKey
from ..store import DataStore

# (what is called, the call) on a store holding "k" = b"v"; each must raise ValueError.
_VALUE_ERRORS: list[tuple[str, Callable[[DataStore], object]]] = [
    ("open(start=-1)", lambda store: store.open("k", -1)),
    ("open(end=-1)", lambda store: store.open("k", 0, -1)),
    ("open(end < start)", lambda store: store.open("k", 10, 5)),
    ("read_bytes(-5, -1)", lambda store: store.read_bytes("k", -5, -1)),
    ("list(limit=-1)", lambda store: store.list(limit=-1)),
    ("list(flag='bogus')", lambda store: store.list(flag="bogus")),
    ("count(flag='bogus')", lambda store: store.count(flag="bogus")),
    ("list(prefix with NUL)", lambda store: store.list("bad\x00prefix")),
    ("scan(prefix with NUL)", lambda store: store.scan("bad\x00prefix")),
    ("scan(after with NUL)", lambda store: store.scan(after="bad\x00after")),
    ("put(if_none_match=etag)", lambda store: store.put("k", b"x", if_none_match="some-etag")),
    (
        "put(if_match and if_none_match)",
        lambda store: store.put("k", b"x", if_match="e", if_none_match="*"),
    ),
    ("writer(if_none_match=etag)", lambda store: store.writer("k", if_none_match="x")),
    ("put(flags=bogus)", lambda store: store.put("k", b"x", flags=["bogus"])),
    ("writer(flags=bogus)", lambda store: store.writer("k", flags=["bogus"])),
    ("set_flags(bogus)", lambda store: store.set_flags("k", ["bogus"])),
]
# The same for arguments of the wrong type: each must raise TypeError.
_TYPE_ERRORS: list[tuple[str, Callable[[DataStore], object]]] = [
    ("open(start=True)", lambda store: store.open("k", True)),
    ("open(end=True)", lambda store: store.open("k", 0, True)),
    ("open(start='1')", lambda store: store.open("k", "1")),  # type: ignore[arg-type]
    ("open(start=1.5)", lambda store: store.open("k", 1.5)),  # type: ignore[arg-type]
    ("list(limit=True)", lambda store: store.list(limit=True)),
    ("list(limit='3')", lambda store: store.list(limit="3")),  # type: ignore[arg-type]
    ("put(str)", lambda store: store.put("k", "text")),
    ("put(42)", lambda store: store.put("k", 42)),
    ("put([bytes, str])", lambda store: store.put("k", [b"ok", "text"])),
    ("put(if_match=5)", lambda store: store.put("k", b"x", if_match=5)),  # type: ignore[arg-type]
    ("delete(if_match=5)", lambda store: store.delete("k", if_match=5)),  # type: ignore[arg-type]
    ("set_flags(None)", lambda store: store.set_flags("k", None)),  # type: ignore[arg-type]
]


class ArgumentTests:
    @pytest.mark.parametrize(("name", "call"), _VALUE_ERRORS, ids=[n for n, _ in _VALUE_ERRORS])
    def test_bad_argument_is_a_blob_error_and_a_value_error(
        self, store: DataStore, name: str, call: Callable[[DataStore], object]
    ) -> None:
        self._check(store, call, ValueError)

    @pytest.mark.parametrize(("name", "call"), _TYPE_ERRORS, ids=[n for n, _ in _TYPE_ERRORS])
    def test_argument_of_a_wrong_type_is_a_blob_error_and_a_type_error(
        self, store: DataStore, name: str, call: Callable[[DataStore], object]
    ) -> None:
        self._check(store, call, TypeError)

    def test_messages_name_the_argument(self, store: DataStore) -> None:
        cases: list[tuple[str, Callable[[], object]]] = [
            ("start", lambda: store.open("k", -1)),
            ("end", lambda: store.open("k", 10, 5)),
            ("limit", lambda: store.list(limit=-1)),
            ("if_none_match", lambda: store.put("k", b"x", if_none_match="etag")),
            ("if_match", lambda: store.put("k", b"x", if_match="e", if_none_match="*")),
        ]
        for word, call in cases:
            with pytest.raises(BlobError, match=word):
                call()

    def test_bad_ranges_raise_before_any_io(self, store: DataStore) -> None:
        # The key is missing: a range error must come first, not NotFound.
        for start, end in [(-1, None), (0, -1), (10, 5), (-5, -1)]:
            with pytest.raises(ValueError, match=r"start|end"):
                store.open("not-there", start, end)

    def test_bad_data_writes_nothing(self, store: DataStore) -> None:
        for data in ("not bytes", iter([b"bytes", "then a str"]), 42):
            with pytest.raises(TypeError):
                store.put("text", data)
        assert store.get("text") is None

    def test_invalid_namespace_and_prefix_types(self, store: DataStore) -> None:
        bad: list[Any] = [123, None, b"bytes"]
        for value in bad:
            with pytest.raises(InvalidKey):
                store.namespace(value)
        with pytest.raises(InvalidFlags):
            store.list(flag=1)  # type: ignore[arg-type]

    @staticmethod
    def _check(store: DataStore, call: Callable[[DataStore], object], kind: type) -> None:
        item = store.put("k", b"v")
        with pytest.raises(BlobError) as caught:
            call(store)
        assert isinstance(caught.value, kind), type(caught.value).__mro__
        assert store.read_bytes("k") == b"v"
        stored = store.get("k")
        assert stored is not None
        assert (stored.etag, stored.flags) == (item.etag, item.flags)
        assert store.count() == 1
