"""HttpStore passes the whole conformance suite against a live uvicorn server over a SQL
store, and as the inner store of an EncryptedStore over a directory store (which runs every
call of the HTTP layer over the directory's capabilities too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs import DataStore, EncryptedStore, InvalidArgument, Keyring
from persisty_blobs.stores.http import HttpStore
from persisty_blobs.testing import StoreConformance

from .http_support import served, token


@pytest.fixture(scope="module")
def directory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("served")) as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("served-sql"), "sqlite") as url:
        yield url


class TestHttpOverSqlite(StoreConformance):
    @pytest.fixture
    def store(self, sqlite_server: str) -> Iterator[DataStore]:
        with HttpStore(sqlite_server, token=token()) as store:
            yield store


class TestEncryptedOverHttp(StoreConformance):
    @pytest.fixture
    def store(self, directory_server: str) -> Iterator[DataStore]:
        inner = HttpStore(directory_server, token=token())
        with EncryptedStore(inner, Keyring.generate()) as store:
            yield store


def test_open_store_takes_http_urls(directory_server: str, tmp_path: Path) -> None:
    from persisty_blobs import open_store

    with open_store(directory_server, token=token()) as store:
        store.put("x", b"over http")
        assert store.read_bytes("x") == b"over http"
    with pytest.raises(InvalidArgument, match="closed"):  # a new pool would leak its sockets
        store.get("x")
