"""SqlStore on SQLite, PostgreSQL and MariaDB over real connections: the conformance suite, and
what is peculiar to chunked SQL storage."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from persisty_blobs import (
    AlreadyExists,
    DecryptionError,
    Flag,
    InvalidArgument,
    PreconditionFailed,
    TransientError,
    Unsupported,
    open_store,
)
from persisty_blobs.stores import SqlStore
from persisty_blobs.testing import StoreConformance

from .conftest import drop_tables, server_url

BACKENDS = ["sqlite", "postgresql", "mariadb"]


def make_url(backend: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'blobs.db'}" if backend == "sqlite" else server_url(backend)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path, table_prefix: str) -> Iterator[str]:
    url = make_url(request.param, tmp_path)
    yield url
    if request.param != "sqlite":
        drop_tables(url, table_prefix)


@pytest.fixture(scope="session")
def emptied_tables() -> Iterator[dict[str, str]]:
    """Per server, tables this worker empties for each conformance test instead of making and
    dropping five tables each time (a tenth of a second per test)."""
    prefixes: dict[str, str] = {}
    yield prefixes
    for url, prefix in prefixes.items():
        drop_tables(url, prefix)


class TestSqlStoreConformance(StoreConformance):
    @pytest.fixture(params=BACKENDS)
    def store(
        self, request: pytest.FixtureRequest, tmp_path: Path, emptied_tables: dict[str, str]
    ) -> Iterator[SqlStore]:
        url = make_url(request.param, tmp_path)
        if request.param == "sqlite":
            prefix = "blobs"
        else:
            prefix = emptied_tables.setdefault(url, f"c{secrets.token_hex(6)}")
            _empty(url, prefix)
        with SqlStore(url, chunk_size=64 * 1024, table_prefix=prefix) as store:
            yield store


def _empty(url: str, prefix: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            if sa.inspect(connection).has_table(f"{prefix}_items"):
                for suffix in ("flags", "chunks", "versions", "items"):
                    connection.exec_driver_sql(f"DELETE FROM {prefix}_{suffix}")
    finally:
        engine.dispose()


def rows(store: SqlStore, table: str) -> int:
    prefix = store._driver.tables.items.name.removesuffix("_items")  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        return int(
            connection.exec_driver_sql(f"SELECT count(*) FROM {prefix}_{table}").scalar_one()
        )


def test_ranged_read_fetches_only_the_chunks_that_cover_it(
    database: str, table_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = bytes(range(256)) * 40  # 10,240 bytes: chunks 0..10 of 1,000
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        store.put("ranged", content)
        runner = store._driver.database  # type: ignore[attr-defined]
        run_query = runner.fetch_rows
        chunk_rows: list[int] = []

        def counting(connection: Any, query: Any, values: dict[str, Any], key: str) -> list[Any]:
            found: list[Any] = run_query(connection, query, values, key)
            # A chunk's row (its data, or its rowid for blob I/O) is the only kind with a seq.
            chunk_rows.extend(row.seq for row in found if "seq" in row._fields)
            return found

        monkeypatch.setattr(runner, "fetch_rows", counting)
        assert store.read_bytes("ranged", 2500, 4200) == content[2500:4200]
        assert chunk_rows == [2, 3, 4]
        chunk_rows.clear()
        assert store.read_bytes("ranged", 9999, None) == content[9999:]
        assert chunk_rows == [9, 10]
        chunk_rows.clear()
        assert store.read_bytes("ranged", 100, 100) == b""
        assert chunk_rows == []


def test_overwrite_and_delete_remove_old_chunks(database: str, table_prefix: str) -> None:
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        store.put("item", b"x" * 5500)
        assert rows(store, "chunks") == 6
        store.put("item", b"y" * 1500)
        assert rows(store, "chunks") == 2
        assert rows(store, "versions") == 1
        store.delete("item")
        assert (rows(store, "chunks"), rows(store, "versions")) == (0, 0)


def test_failed_write_leaves_no_chunks(database: str, table_prefix: str) -> None:
    def broken() -> Iterator[bytes]:
        yield b"z" * 5000
        raise RuntimeError("source failed")

    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        with pytest.raises(RuntimeError, match="source failed"):
            store.put("broken", broken())
        assert store.get("broken") is None
        assert (rows(store, "chunks"), rows(store, "versions")) == (0, 0)


def test_reader_keeps_its_version_while_the_key_is_overwritten(
    database: str, table_prefix: str
) -> None:
    old = bytes(range(256)) * 100
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        store.put("moving", old)
        with store.open("moving") as reader:
            head = reader.read(1500)
            store.put("moving", b"new content")
            store.delete("moving")
            assert head + reader.read() == old
        assert store.vacuum() == 0


KILLED_WRITER = """
import os, signal, sys
from persisty_blobs.stores import SqlStore
store = SqlStore(sys.argv[1], chunk_size=1000, table_prefix=sys.argv[2])
def blocks():
    for _ in range(6):  # past the first 4 MiB batch of chunks
        yield b"k" * 1024 * 1024
    os.kill(os.getpid(), signal.SIGKILL)
store.put("killed", blocks())
"""


def test_killed_writer_leaves_orphans_that_the_next_open_removes(
    database: str, table_prefix: str
) -> None:
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        store.put("killed", b"before")
        child = subprocess.run(
            [sys.executable, "-c", KILLED_WRITER, database, table_prefix], check=False
        )
        assert child.returncode == -signal.SIGKILL
        assert store.read_bytes("killed") == b"before"
        assert [item.key for item in store.list()] == ["killed"]
        assert rows(store, "chunks") > 1  # the dead writer's chunks, invisible
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as reopened:
        assert rows(reopened, "chunks") == 1
        assert reopened.read_bytes("killed") == b"before"


def _contend(url: str, prefix: str, mode: str, etag: str, index: int) -> str:
    with SqlStore(url, table_prefix=prefix) as store:
        try:
            if mode == "create":
                store.put("race", f"process {index}".encode(), if_none_match="*")
            else:
                store.put("race", f"process {index}".encode(), if_match=etag)
        except (AlreadyExists, PreconditionFailed):
            return "lost"
        return "won"


@pytest.mark.parametrize("mode", ["create", "replace"])
def test_four_processes_race_and_one_wins(
    server_database: str, table_prefix: str, mode: str
) -> None:
    with SqlStore(server_database, table_prefix=table_prefix) as store:
        etag = "" if mode == "create" else store.put("race", b"original").etag
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            arguments = [(server_database, table_prefix, mode, etag, index) for index in range(4)]
            outcomes = pool.starmap(_contend, arguments)
        assert sorted(outcomes) == ["lost"] * 3 + ["won"]
        assert store.read_bytes("race").startswith(b"process ")


def _open_schema(url: str, prefix: str) -> int:
    with SqlStore(url, table_prefix=prefix) as store:
        store.put(f"from-{multiprocessing.current_process().name}", b"x")
        return store.count()


def test_schema_is_created_once_when_processes_start_together(
    database: str, table_prefix: str
) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        counts = pool.starmap(_open_schema, [(database, table_prefix)] * 4)
    assert max(counts) == 4
    with SqlStore(database, table_prefix=table_prefix) as store:
        assert store.count() == 4


def test_a_newer_schema_is_refused(database: str, table_prefix: str) -> None:
    SqlStore(database, table_prefix=table_prefix).close()
    engine = sa.create_engine(database)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {table_prefix}_schema SET version = 99")
    engine.dispose()
    with pytest.raises(Unsupported, match="schema version 99"):
        SqlStore(database, table_prefix=table_prefix)


def test_sqlite_uses_wal_and_maps_a_held_lock_to_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with SqlStore(f"sqlite:///{path}", busy_timeout=0.2) as store:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        import sqlite3

        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientError, match="locked"):
                store.put("blocked", b"x")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.get("blocked") is None
        store.put("blocked", b"now it works")


def test_sqlite_large_put_lets_other_writers_in_between_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with SqlStore(url, busy_timeout=2) as writer, SqlStore(url, busy_timeout=2) as other:
        committed_meanwhile: list[bool] = []

        def slow_source() -> Iterator[bytes]:
            for index in range(24):
                yield b"s" * (1024 * 1024)
                if index == 12:
                    # Runs on another thread: the put's own thread is parked in this generator.
                    thread = threading.Thread(target=lambda: other.put("meanwhile", b"m"))
                    thread.start()
                    thread.join()
                    committed_meanwhile.append(other.exists("meanwhile"))

        writer.put("large", slow_source())
        assert committed_meanwhile == [True]
        assert writer.read_bytes("meanwhile") == b"m"


def test_a_file_that_is_not_a_database_raises_decryption_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is a text file, not SQLite " * 64)
    with pytest.raises(DecryptionError, match="not a database"):
        SqlStore(f"sqlite:///{path}")


def test_open_store_and_chunk_size_checks(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'opened.db'}", chunk_size=4096)
    assert isinstance(store, SqlStore)
    assert store.chunk_size == 4096
    store.close()
    with pytest.raises(ValueError, match="chunk_size"):
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", chunk_size=0)
    with pytest.raises(ValueError, match="SQLite file"):
        SqlStore("sqlite://")
    with pytest.raises(ValueError, match="table_prefix"):
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", table_prefix="bad; drop")


def _hammer(store: SqlStore, who: str, shared: dict[str, bytes]) -> list[str]:
    """300 reads and writes; what came back wrong."""
    wrong = []
    keys = sorted(shared)
    for index in range(300):
        if index % 5 == 0:
            key, content = f"{who}/{index % 7}", f"{who} {index} ".encode() * (1 + index % 40)
            store.put(key, content)
        else:
            key = keys[index % len(keys)]
            content = shared[key]
        if store.read_bytes(key) != content:
            wrong.append(key)
    return wrong


def test_a_forked_child_and_its_parent_each_read_their_own_content(
    database: str, table_prefix: str
) -> None:
    with SqlStore(database, chunk_size=1000, table_prefix=table_prefix) as store:
        shared = {f"shared/{index}": bytes([index]) * (100 + 300 * index) for index in range(12)}
        for key, content in shared.items():
            store.put(key, content)
        assert store.read_bytes("shared/0") == shared["shared/0"]  # the pool holds a connection
        child = os.fork()
        if child == 0:  # pragma: no cover (the child's outcome is its exit status)
            status = 1
            try:
                status = 2 if _hammer(store, "child", shared) else 0
            finally:
                os._exit(status)
        try:
            wrong_in_parent = _hammer(store, "parent", shared)
        finally:
            _, status = os.waitpid(child, 0)
        assert (wrong_in_parent, os.waitstatus_to_exitcode(status)) == ([], 0)


def test_mariadb_refuses_a_chunk_size_over_its_packet_limit(table_prefix: str) -> None:
    url = server_url("mariadb")
    try:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            limit = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        engine.dispose()
        too_large = min(16 * 1024 * 1024, limit // 2)
        with pytest.raises(InvalidArgument) as refused:
            SqlStore(url, chunk_size=too_large, table_prefix=table_prefix)
        assert str(too_large) in str(refused.value)
        assert str(limit) in str(refused.value)
        largest = (limit - 1024) // 2
        with SqlStore(url, chunk_size=largest, table_prefix=table_prefix) as store:
            content = os.urandom(largest) + b"tail"
            store.put("largest", content)
            assert store.read_bytes("largest") == content
    finally:
        drop_tables(url, table_prefix)


def test_too_long_names_are_clear_errors(database: str) -> None:
    with pytest.raises(InvalidArgument, match="at most 48 characters"):
        SqlStore(database, table_prefix="p" * 49)
    with SqlStore(database, table_prefix="p" * 48) as store:
        store.put("a", b"long prefix")
        assert store.read_bytes("a") == b"long prefix"
    if not database.startswith("sqlite"):
        drop_tables(database, "p" * 48)


def test_mysql_identifier_too_long_is_not_transient(table_prefix: str) -> None:
    url = server_url("mariadb")
    try:
        with SqlStore(url, table_prefix=table_prefix) as store:
            runner = store._driver.database  # type: ignore[attr-defined]
            with (
                pytest.raises(InvalidArgument, match="too long"),
                runner.errors(),
                store.engine.connect() as connection,
            ):
                connection.exec_driver_sql(f"CREATE TABLE {table_prefix}_long ({'x' * 70} INT)")
    finally:
        drop_tables(url, table_prefix)


def _file_bytes(path: Path) -> int:
    return sum(part.stat().st_size for part in path.parent.glob(f"{path.name}*"))


@pytest.mark.parametrize("made", ["new", "before incremental vacuum"])
def test_vacuum_gives_the_space_back_to_the_file_system(tmp_path: Path, made: str) -> None:
    path = tmp_path / "shrinks.db"
    if made != "new":
        import sqlite3

        old = sqlite3.connect(path)
        old.execute("CREATE TABLE earlier (x)")  # auto_vacuum can no longer change by itself
        old.close()
    with SqlStore(f"sqlite:///{path}") as store:
        for index in range(8):
            store.put(f"big/{index}", os.urandom(1024 * 1024))
        store.put("kept", b"small")
        grown = _file_bytes(path)
        for index in range(8):
            store.delete(f"big/{index}")
        assert store.vacuum() == 0  # each delete removed its version already
        assert _file_bytes(path) < grown // 4
        assert store.read_bytes("kept") == b"small"
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2  # INCREMENTAL


def test_scan_takes_one_query_per_page_with_checksums_and_flags(
    database: str, table_prefix: str
) -> None:
    with SqlStore(database, table_prefix=table_prefix) as store:
        flags: tuple[frozenset[Flag], ...] = (frozenset(), frozenset({Flag.PENDING}))
        written = {
            f"k{index:02}": store.put(f"k{index:02}", b"%d" % index, flags=flags[index % 2])
            for index in range(25)
        }
        statements: list[str] = []
        sa.event.listen(
            store.engine,
            "before_cursor_execute",
            lambda *arguments: statements.append(arguments[2]),
        )
        store.list_page_size = 10
        entries = list(store.scan())
        assert len(statements) == 3
        assert [entry.key for entry in entries] == sorted(written)
        for entry in entries:
            item = written[entry.key]
            assert (entry.size, entry.etag, entry.checksum, entry.flags, entry.updated_at) == (
                item.size,
                item.etag,
                item.checksum,
                item.flags,
                item.updated_at,
            )
        assert store.capabilities.flags_in_listing
        assert store.capabilities.checksums_in_listing


def test_plain_mysql_and_mariadb_urls_use_the_sql_extras_driver(table_prefix: str) -> None:
    url = server_url("mariadb")
    try:
        for scheme in ("mysql", "mariadb"):
            plain = scheme + url[url.index("://") :]
            with open_store(plain, table_prefix=table_prefix) as store:
                store.put("k", scheme.encode())
                assert store.read_bytes("k") == scheme.encode()
                assert f"{scheme}+pymysql://" in repr(store)
    finally:
        drop_tables(url, table_prefix)
