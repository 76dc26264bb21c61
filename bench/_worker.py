"""One measured operation, in its own process: prints {"seconds", "peak_rss"} as JSON."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

from persisty_blobs import DataStore, open_store
from persisty_blobs.stores import DirectoryStore

from ._harness import peak_rss


def raw_copy(source: str, target: str) -> None:
    """The baseline write: shutil.copyfileobj into a new file, then fsync (the same
    durability a store's put gives)."""
    with open(source, "rb") as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer)
        writer.flush()
        os.fsync(writer.fileno())


def raw_read(source: str) -> None:
    with open(source, "rb") as reader, open(os.devnull, "wb") as sink:
        shutil.copyfileobj(reader, sink)


def directory_put(source: str, root: str) -> None:
    with open(source, "rb") as reader:
        DirectoryStore(root).put("big.bin", reader)


def directory_get(root: str) -> None:
    with DirectoryStore(root).open("big.bin") as reader, open(os.devnull, "wb") as sink:
        shutil.copyfileobj(reader, sink)


def _put(store: DataStore, source: str) -> None:
    with open(source, "rb") as reader, store:
        store.put("big.bin", reader)


def _get(store: DataStore) -> None:
    with store, store.open("big.bin") as reader, open(os.devnull, "wb") as sink:
        shutil.copyfileobj(reader, sink)


# The SQL stores are imported in the functions: main() imports them before the clock starts.


def sql_put(source: str, url: str, prefix: str = "blobs") -> None:
    from persisty_blobs.stores.sql import SqlStore

    _put(SqlStore(url, table_prefix=prefix), source)


def sql_get(url: str, prefix: str = "blobs") -> None:
    from persisty_blobs.stores.sql import SqlStore

    _get(SqlStore(url, table_prefix=prefix))


def sqlcipher_put(source: str, path: str, key: str) -> None:
    from persisty_blobs.stores.sqlcipher import SqlCipherStore

    _put(SqlCipherStore(path, key), source)


def sqlcipher_get(path: str, key: str) -> None:
    from persisty_blobs.stores.sqlcipher import SqlCipherStore

    _get(SqlCipherStore(path, key))


_RAW_BLOB_ROW = 256 * 1024 * 1024
_BLOCK = 64 * 1024  # what shutil.copyfileobj reads at a time on Linux, as the store side does


def _raw_sqlite(database: str) -> sqlite3.Connection:
    """The same settings the SQL store uses: 64 KiB pages, WAL and durable commits."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA page_size = 65536")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def raw_blob_put(source: str, database: str) -> None:
    """The baseline: zeroblob rows filled with sqlite3's incremental blob I/O, in one
    transaction. Rows of 256 MiB, because SQLite caps a blob at 1e9 bytes."""
    connection = _raw_sqlite(database)
    connection.execute("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB)")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("DELETE FROM blobs")
    remaining = os.path.getsize(source)
    buffer = bytearray(1024 * 1024)
    with open(source, "rb", buffering=0) as reader:
        while remaining:
            length = min(remaining, _RAW_BLOB_ROW)
            insert = connection.execute("INSERT INTO blobs (data) VALUES (zeroblob(?))", (length,))
            assert insert.lastrowid is not None
            with connection.blobopen("blobs", "data", insert.lastrowid) as blob:
                while blob.tell() < length:
                    count = reader.readinto(memoryview(buffer)[: length - blob.tell()])
                    blob.write(memoryview(buffer)[:count])
            remaining -= length
    connection.execute("COMMIT")
    connection.close()


def raw_blob_get(database: str) -> None:
    connection = _raw_sqlite(database)
    row_ids = [row_id for (row_id,) in connection.execute("SELECT id FROM blobs ORDER BY id")]
    with open(os.devnull, "wb") as sink:
        for row_id in row_ids:
            with connection.blobopen("blobs", "data", row_id, readonly=True) as blob:
                while block := blob.read(_BLOCK):
                    sink.write(block)
    connection.close()


def read_all_items(url: str) -> None:
    """Read every item of a store, as a sync pass or a gallery page would."""
    with open_store(url) as store:
        for item in store.list():
            store.read_bytes(item.key)


# EncryptedStore over DirectoryStore, with a fixed key (a benchmark's, not a secret).
_BENCH_KEY = bytes(range(32))


def encrypted_put(source: str, root: str) -> None:
    from persisty_blobs.crypto import EncryptedStore

    _put(EncryptedStore(DirectoryStore(root), _BENCH_KEY), source)


def encrypted_get(root: str) -> None:
    from persisty_blobs.crypto import EncryptedStore

    _get(EncryptedStore(DirectoryStore(root), _BENCH_KEY))


# S3: the store and boto3's own transfer functions, on the same moto server.


def _s3_client(endpoint: str) -> Any:
    from persisty_blobs.testing.moto import moto_client

    return moto_client(endpoint)


def s3_put(source: str, endpoint: str, bucket: str) -> None:
    from persisty_blobs.stores.s3 import S3Store

    _put(S3Store(bucket, client=_s3_client(endpoint)), source)


def s3_get(endpoint: str, bucket: str) -> None:
    from persisty_blobs.stores.s3 import S3Store

    _get(S3Store(bucket, client=_s3_client(endpoint)))


def boto3_put(source: str, endpoint: str, bucket: str) -> None:
    with open(source, "rb") as reader:
        _s3_client(endpoint).upload_fileobj(reader, bucket, "raw/big.bin")


def boto3_put_checksummed(source: str, endpoint: str, bucket: str) -> None:
    client = _s3_client(endpoint)
    with open(source, "rb") as reader:
        client.upload_fileobj(reader, bucket, "raw/big.bin")
    client.copy_object(
        Bucket=bucket,
        Key="raw/big.bin",
        CopySource={"Bucket": bucket, "Key": "raw/big.bin"},
        ChecksumAlgorithm="SHA256",
        MetadataDirective="REPLACE",
    )


def boto3_get(endpoint: str, bucket: str) -> None:
    with open(os.devnull, "wb") as sink:
        _s3_client(endpoint).download_fileobj(bucket, "raw/big.bin", sink)


def s3_list(endpoint: str, bucket: str) -> None:
    from persisty_blobs.stores.s3 import S3Store

    with S3Store(bucket, client=_s3_client(endpoint)) as store:
        for _ in store.list():
            pass


def boto3_list(endpoint: str, bucket: str) -> None:
    paginator = _s3_client(endpoint).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="items/"):
        for _ in page["Contents"]:
            pass


OPERATIONS: dict[str, Callable[..., None]] = {
    "raw_copy": raw_copy,
    "raw_read": raw_read,
    "directory_put": directory_put,
    "directory_get": directory_get,
    "sql_put": sql_put,
    "sql_get": sql_get,
    "sqlcipher_put": sqlcipher_put,
    "sqlcipher_get": sqlcipher_get,
    "raw_blob_put": raw_blob_put,
    "raw_blob_get": raw_blob_get,
    "read_all_items": read_all_items,
    "encrypted_put": encrypted_put,
    "encrypted_get": encrypted_get,
    "s3_put": s3_put,
    "s3_get": s3_get,
    "boto3_put": boto3_put,
    "boto3_put_checksummed": boto3_put_checksummed,
    "boto3_get": boto3_get,
    "s3_list": s3_list,
    "boto3_list": boto3_list,
}


FROM_DISK = "--from-disk"


def _evict_from_page_cache(top: str) -> None:
    """Drop the file ``top``, or the files under it (written with fsync, so clean), from the
    page cache, so that the next read comes from the disk: what reading an item once, long
    after its put, costs."""
    paths = (
        [top]
        if os.path.isfile(top)
        else [
            os.path.join(directory, name) for directory, _, files in os.walk(top) for name in files
        ]
    )
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def main() -> None:
    operation, *arguments = sys.argv[1:]
    if FROM_DISK in arguments:
        arguments.remove(FROM_DISK)
        for argument in arguments:
            if os.path.exists(argument):
                _evict_from_page_cache(argument)
    # A SQL store is imported here, outside the timed part (importing SQLAlchemy and the
    # dialect it loads on first use of a URL takes longer than a 1 GiB read), and only when
    # used: the other benchmarks' RSS must not include it.
    if operation.startswith("sql"):
        importlib.import_module(f"persisty_blobs.stores.{operation.split('_')[0]}")
    elif any(argument.startswith("sqlite:") for argument in arguments):
        importlib.import_module("persisty_blobs.stores.sql")
    if operation.startswith("encrypted"):
        importlib.import_module("persisty_blobs.crypto")
    if operation.startswith(("s3", "boto3")):
        importlib.import_module("persisty_blobs.stores.s3")
        importlib.import_module("boto3.s3.transfer")
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.engine import make_url

        urls = [argument for argument in arguments if "://" in argument] or ["sqlite://"]
        for url in urls:
            make_url(url).get_dialect()
    started = time.perf_counter()
    OPERATIONS[operation](*arguments)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss()}))


if __name__ == "__main__":
    main()
