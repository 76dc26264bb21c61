"""SqlCipherStore: the conformance suite, and nothing readable on disk without the key."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persisty_blobs import BlobError, DecryptionError, open_store
from persisty_blobs.stores import SqlCipherStore
from persisty_blobs.testing import StoreConformance

PASSPHRASE = "correct horse battery staple"
RAW_KEY = bytes.fromhex("6f" * 32)
MARKER = "Zq7MarkerVisibleOnlyInPlaintext"


class TestSqlCipherStoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlCipherStore]:
        # A raw key: a passphrase costs a PBKDF2 derivation on every new connection.
        with SqlCipherStore(tmp_path / "blobs.db", RAW_KEY, chunk_size=64 * 1024) as store:
            yield store


def database_files(path: Path) -> list[Path]:
    return [
        candidate for candidate in path.parent.iterdir() if candidate.name.startswith(path.name)
    ]


def test_nothing_readable_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "secret.db"
    needle = MARKER.encode()
    with SqlCipherStore(path, PASSPHRASE, chunk_size=4096) as store:
        store.put(f"folder/{MARKER}.txt", needle * 1000, metadata={"note": MARKER})
        store.namespace(MARKER.lower()).put("plain", needle)
        store.put("content-type", b"x", content_type=f"text/x-{MARKER.lower()}")
        files = database_files(path)
        assert {file.name for file in files} >= {"secret.db", "secret.db-wal"}
        for file in files:  # while the WAL still holds the writes
            data = file.read_bytes()
            assert needle not in data, file.name
            assert needle.lower() not in data, file.name
    for file in database_files(path):
        assert needle not in file.read_bytes(), file.name
    with SqlCipherStore(path, PASSPHRASE) as reopened:
        assert reopened.get(f"folder/{MARKER}.txt") is not None


def test_wrong_key_or_plain_sqlite_raise_decryption_error_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keyed.db"
    SqlCipherStore(path, PASSPHRASE).close()
    with pytest.raises(DecryptionError, match="wrong key"):
        SqlCipherStore(path, "not the passphrase")
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DecryptionError, match="not a database"):
        SqlCipherStore(plain, PASSPHRASE)
    assert "ERROR" not in capfd.readouterr().err


def test_raw_key_and_key_checks(tmp_path: Path) -> None:
    raw = bytes(range(32))
    with SqlCipherStore(tmp_path / "raw.db", raw) as store:
        store.put("a", b"raw-keyed")
        assert raw.hex() not in repr(store)
    with SqlCipherStore(tmp_path / "raw.db", raw) as store:
        assert store.read_bytes("a") == b"raw-keyed"
    with pytest.raises(DecryptionError):
        SqlCipherStore(tmp_path / "raw.db", bytes(32))
    for bad, error in (("", ValueError), (b"short", ValueError), (42, TypeError)):
        with pytest.raises(error, match=r"key|passphrase"):
            SqlCipherStore(tmp_path / "bad.db", bad)  # type: ignore[arg-type]


def test_rekey_in_place(tmp_path: Path) -> None:
    path = tmp_path / "rekeyed.db"
    with SqlCipherStore(path, PASSPHRASE, chunk_size=1000) as store:
        for index in range(20):
            store.put(f"item-{index:02}", bytes([index]) * 2500)
        store.rekey("the new passphrase")
        assert store.read_bytes("item-07") == bytes([7]) * 2500
    with pytest.raises(DecryptionError):
        SqlCipherStore(path, PASSPHRASE)
    with SqlCipherStore(path, "the new passphrase") as reopened:
        assert reopened.count() == 20
        assert all(
            reopened.read_bytes(f"item-{index:02}") == bytes([index]) * 2500 for index in range(20)
        )


def test_open_store_takes_the_key_as_an_option(tmp_path: Path) -> None:
    url = f"sqlcipher://{tmp_path / 'opened.db'}"
    store = open_store(url, key=PASSPHRASE, chunk_size=4096)
    assert isinstance(store, SqlCipherStore)
    assert PASSPHRASE not in repr(store)
    store.close()
    with pytest.raises(ValueError, match="key= option"):
        open_store(url)
    with pytest.raises(ValueError, match="pass key= as an option"):
        open_store(f"{url}?key=secret", key=PASSPHRASE)


REKEY = """
import sys
from persisty_blobs.stores import SqlCipherStore
with SqlCipherStore(sys.argv[1], sys.argv[2]) as store:
    store.rekey(sys.argv[3])
"""


def _every_call_is_a_blob_error(store: SqlCipherStore) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get("small"),
        lambda: store.exists("small"),
        lambda: store.read_bytes("small"),
        lambda: store.read_bytes("big"),
        lambda: store.put("new", b"new"),
        lambda: store.delete("small"),
        lambda: list(store.list()),
        lambda: list(store.scan()),
        lambda: store.count(),
        lambda: store.set_flags("small", ["pending"]),
        lambda: store.namespaces(),
        lambda: store.vacuum(),
    ]
    for call in calls:
        with pytest.raises(BlobError):
            call()


def test_another_process_rekeys_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rekeyed.db"
    with SqlCipherStore(path, PASSPHRASE, chunk_size=1000) as store:
        store.put("small", b"small")
        store.put("big", b"b" * 5000)
        assert store.read_bytes("small") == b"small"  # the pool holds a connection
        subprocess.run(
            [sys.executable, "-c", REKEY, str(path), PASSPHRASE, "the other key"], check=True
        )
        _every_call_is_a_blob_error(store)
    with SqlCipherStore(path, "the other key") as reopened:
        assert reopened.read_bytes("big") == b"b" * 5000


def test_the_file_is_replaced_under_the_store(tmp_path: Path) -> None:
    path = tmp_path / "replaced.db"
    with SqlCipherStore(path, PASSPHRASE, chunk_size=1000) as store:
        store.put("small", b"small")
        store.put("big", b"b" * 5000)
        with SqlCipherStore(tmp_path / "other.db", "another passphrase") as other:
            other.put("small", b"other")
        for suffix in ("", "-wal", "-shm"):
            source = tmp_path / f"other.db{suffix}"
            if source.exists():
                os.replace(source, tmp_path / f"replaced.db{suffix}")
        for call in (
            lambda: store.get("small"),
            lambda: store.read_bytes("big"),
            lambda: store.put("new", b"x"),
            lambda: list(store.list()),
        ):
            with contextlib.suppress(BlobError):  # anything but a BlobError fails the test
                call()
