"""Data and helpers shared by the conformance suite's modules."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from ..item import DataItem
from ..store import DataStore

LONG_KEY = "/".join(["k" * 200] * 4 + ["l" * 220])  # 1024 bytes; each segment fits a file name
WEIRD_KEYS = [
    "with space",
    "quote'\"",
    "100%",
    "hash#tag",
    "question?mark",
    "plus+sign",
    "semi;colon,comma=equals&amp@at",
    "brackets[]{}()<>|*",
    "ünïcødé/ключ/鍵",
    "emoji/🎉🚀",
    ".hidden/...dots/trailing.",
    "~tilde/-dash/_under",
    "/".join(f"d{level}" for level in range(30)),
    LONG_KEY,
]
INVALID_KEYS: list[object] = [
    "",
    "/leading",
    "trailing/",
    "doubled//slash",
    ".",
    "..",
    "a/./b",
    "a/../b",
    "../escape",
    "back\\slash",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    "del\x7fete",
    "x" * 1025,
    "é" * 513,
    "lone\ud800surrogate",
    123,
    b"bytes",
    None,
]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def pieces(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def keys(items: Iterator[DataItem] | list[DataItem]) -> list[str]:
    return [item.key for item in items]


def by_utf8(strings: list[str]) -> list[str]:
    return sorted(strings, key=lambda text: text.encode("utf-8"))


def assert_empty(store: DataStore) -> None:
    assert list(store.list()) == []
    assert store.count() == 0
