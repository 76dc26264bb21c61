"""SqlStore and SqlCipherStore against raw sqlite3 blob I/O and against DirectoryStore."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from ._harness import Row, compare
from .directory import make_source

SERVERS = {
    "PostgreSQL": os.environ.get(
        "PERSISTY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "MariaDB": os.environ.get(
        "PERSISTY_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
SMALL_ITEMS = 10_000
SMALL_SIZE = 10 * 1024
CIPHER_KEY = "bench passphrase"


def run(size: int, repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as scratch:
        source = Path(scratch) / "source.bin"
        make_source(source, size)
        store_url = f"sqlite:///{scratch}/store.db"
        raw_db = str(Path(scratch) / "raw.db")
        rows = [
            compare(
                "SqlStore(SQLite) put",
                size,
                ("sql_put", [str(source), store_url]),
                ("raw_blob_put", [str(source), raw_db]),
                repeats,
            ),
            compare(
                "SqlStore(SQLite) get",
                size,
                ("sql_get", [store_url]),
                ("raw_blob_get", [raw_db]),
                repeats,
            ),
        ]
        cipher_db = str(Path(scratch) / "cipher.db")
        rows += [
            compare(
                f"SqlCipherStore {verb} vs SqlStore",
                size,
                (f"sqlcipher_{verb}", [*arguments, cipher_db, CIPHER_KEY]),
                (f"sql_{verb}", [*arguments, store_url]),
                repeats,
            )
            for verb, arguments in (("put", [str(source)]), ("get", []))
        ]
        rows += _servers(source, size, raw_db, repeats)
        rows.append(_small_items(scratch, repeats))
        return rows


def _servers(source: Path, size: int, raw_db: str, repeats: int) -> list[Row]:
    """The same 1 GiB put and get on each reachable server, beside raw SQLite blob I/O."""
    import sqlalchemy as sa

    from persisty_blobs.stores import SqlStore

    rows = []
    for name, url in SERVERS.items():
        prefix = f"bench{secrets.token_hex(4)}"
        try:
            SqlStore(url, table_prefix=prefix).close()
        except Exception as error:
            print(f"{name} skipped: {error}")
            continue
        try:
            for verb, arguments, baseline in (
                ("put", [str(source), url, prefix], ("raw_blob_put", [str(source), raw_db])),
                ("get", [url, prefix], ("raw_blob_get", [raw_db])),
            ):
                label = f"SqlStore({name}) {verb}"
                rows.append(compare(label, size, (f"sql_{verb}", arguments), baseline, repeats))
        finally:
            engine = sa.create_engine(url)
            with engine.begin() as connection:
                for table in ("flags", "chunks", "versions", "items", "schema"):
                    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}_{table}")
            engine.dispose()
    return rows


def _small_items(scratch: str, repeats: int) -> Row:
    """10,000 items of 10 KiB read back one by one: SQLite against files."""
    from persisty_blobs.stores import DirectoryStore, SqlStore

    sql_url = f"sqlite:///{scratch}/small.db"
    directory = Path(scratch) / "small"
    block = os.urandom(SMALL_SIZE)
    with SqlStore(sql_url, chunk_size=64 * 1024) as sql, DirectoryStore(directory) as files:
        for index in range(SMALL_ITEMS):
            key = f"items/{index:05}.bin"
            sql.put(key, block)
            files.put(key, block)
    return compare(
        f"{SMALL_ITEMS:,} x 10 KiB read, SQLite vs files",
        SMALL_ITEMS * SMALL_SIZE,
        ("read_all_items", [sql_url]),
        ("read_all_items", [f"file://{directory}"]),
        repeats,
    )
