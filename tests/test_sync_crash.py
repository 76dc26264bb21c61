"""Crash safety and shared work: a run killed with SIGKILL at random points is finished by the
next run without a resync, without copying again what completed and without losing a change;
three processes sharing a PostgreSQL state transfer each item once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs.stores.directory import DirectoryStore
from persisty_blobs.sync import Replicator, SyncState

from .conftest import server_url
from .sync_support import contents

ROOT = Path(__file__).resolve().parent.parent


def worker(
    a: Path,
    b: Path,
    state: str,
    log: Path,
    concurrency: int = 4,
    prefix: str = "pbsync",
    pause: float = 0.0,
) -> subprocess.Popen[bytes]:
    arguments = [str(a), str(b), state, str(log), str(concurrency), prefix, str(pause)]
    return subprocess.Popen([sys.executable, "-m", "tests.sync_worker", *arguments], cwd=ROOT)


def diverged(
    a_dir: Path, b_dir: Path, state: SyncState, items: int
) -> dict[tuple[str, str], bytes]:
    """Two synced directories, then changes on both sides; returns what both must end with."""
    rng = random.Random(7)
    with DirectoryStore(a_dir) as a, DirectoryStore(b_dir) as b:
        for index in range(items):
            a.put(f"dir{index % 7}/item-{index:04}", rng.randbytes(rng.randrange(1, 4000)))
        assert Replicator(a, b, state, pair="crash").run().ok
        expected = contents(a)
        keys = sorted(key for _, key in expected)
        rng.shuffle(keys)
        edits_a, edits_b = keys[:60], keys[60:120]
        deletes_a, deletes_b = keys[120:150], keys[150:180]
        for side, edits, deletes, name in (
            (a, edits_a, deletes_a, "a"),
            (b, edits_b, deletes_b, "b"),
        ):
            for key in edits:
                data = rng.randbytes(rng.randrange(1, 4000))
                side.put(key, data)
                expected["", key] = data
            for key in deletes:
                side.delete(key)
                del expected["", key]
            for index in range(60):
                key = f"new-{name}/{index:03}"
                data = rng.randbytes(rng.randrange(1, 4000))
                side.put(key, data)
                expected["", key] = data
    return expected


def lines(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
def test_killed_at_random_points_the_next_run_converges(tmp_path: Path) -> None:
    a_dir, b_dir, log = tmp_path / "a", tmp_path / "b", tmp_path / "log"
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    state = SyncState(state_url)
    expected = diverged(a_dir, b_dir, state, 500)
    rng = random.Random(11)
    for _ in range(20):
        process = worker(a_dir, b_dir, state_url, log)
        kill_after = lines(log) + rng.randrange(-5, 30)  # below: while planning or starting
        deadline = time.monotonic() + (rng.uniform(0.1, 1.0) if kill_after < lines(log) else 10)
        while lines(log) < kill_after and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
    final = worker(a_dir, b_dir, state_url, log)
    assert final.wait(timeout=120) == 0
    with DirectoryStore(a_dir) as a, DirectoryStore(b_dir) as b:
        assert contents(a) == expected
        assert contents(b) == expected
        assert Replicator(a, b, state, pair="crash").plan() == []
    done = Counter(
        line.split(" ", 1)[1]
        for line in log.read_text().splitlines()
        if line.startswith(("upload", "download"))
    )
    needed = 60 + 60 + 60 + 60  # edits and new items on each side
    # A kill loses at most the transfers in flight (4) and those not yet committed to the
    # state; those are found equal on both sides next time and adopted, not copied again.
    assert sum(done.values()) <= needed + 20 * 4
    assert not any(".conflict-" in key for _, key in expected)


@pytest.mark.slow
def test_three_processes_share_one_postgresql_state_and_copy_each_item_once(
    tmp_path: Path, table_prefix: str
) -> None:
    url = server_url("postgresql")
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    with DirectoryStore(a_dir) as a:
        for index in range(300):
            a.put(f"item-{index:04}", os.urandom(2000))
    logs = [tmp_path / f"log{number}" for number in range(3)]
    try:
        # The three open the new state at once: its tables are created once, by one of them.
        # Each pauses 10 ms per item: the first to start cannot finish before the others join.
        processes = [worker(a_dir, b_dir, url, log, 2, table_prefix, 0.01) for log in logs]
        assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
        done = Counter(
            line for log in logs if log.exists() for line in log.read_text().splitlines()
        )
        assert len(done) == 300
        assert set(done.values()) == {1}
        assert sum(1 for log in logs if log.exists() and log.read_text()) >= 2
        with DirectoryStore(a_dir) as a, DirectoryStore(b_dir) as b:
            assert contents(a) == contents(b)
    finally:
        state = SyncState(url, table_prefix=table_prefix)
        with state.engine.begin() as connection:
            for table in ("items", "runs", "schema"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table_prefix}_{table}")
        state.close()


def test_two_states_on_one_sqlite_file_never_lease_one_action_twice(tmp_path: Path) -> None:
    """Two processes running one pair on one SQLite state: each leases what the other has
    not (two SyncState objects are two connections, as two processes have)."""
    import threading

    from persisty_blobs.stores.memory import MemoryStore
    from persisty_blobs.sync import _runs

    path = tmp_path / "state.db"
    a, b = MemoryStore(), MemoryStore()
    for index in range(600):
        a.put(f"k{index:04}", b"x")
    planner = SyncState(path)
    replicator = Replicator(a, b, planner)
    run_id, _ = _runs.begin_run(planner, replicator.pair, f"{a!r} <-> {b!r}")
    replicator._record(run_id, None)  # the plan, recorded and activated as run() does
    leased: Counter[str] = Counter()
    together = threading.Barrier(2)

    def lease(state: SyncState) -> None:
        while True:
            try:
                together.wait(timeout=10)
            except threading.BrokenBarrierError:
                return
            claims = state.claim(replicator.pair, run_id, 32, deletes=False)
            leased.update(claim.key for claim in claims)
            if not claims:
                together.abort()
                return

    workers = [threading.Thread(target=lease, args=(SyncState(path),)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(leased) == 600
    assert max(leased.values()) == 1


def test_a_state_whose_connection_is_lost_raises_a_transient_error(table_prefix: str) -> None:
    import sqlalchemy as sa

    from persisty_blobs import TransientError
    from persisty_blobs.stores.memory import MemoryStore

    url = server_url("postgresql")
    state = SyncState(url, table_prefix=table_prefix)
    backends: list[int] = []

    @sa.event.listens_for(state.engine, "connect")
    def remember(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.append(cursor.fetchone()[0])

    state.engine.dispose()  # every connection from now on is remembered
    admin = sa.create_engine(url)
    try:
        a, b = MemoryStore(), MemoryStore()
        a.put("one", b"1")
        assert Replicator(a, b, state).run().ok
        a.put("two", b"2")
        with admin.begin() as connection:  # the server restarts the state's backends
            for backend in backends:
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(TransientError, match="out of reach"):
            Replicator(a, b, state).run()
        assert Replicator(a, b, state).run().ok  # the next run goes on
        assert contents(a) == contents(b)
    finally:
        with admin.begin() as connection:
            for table in ("items", "runs", "schema"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table_prefix}_{table}")
        admin.dispose()
        state.close()


def test_ctrl_c_during_a_statement_of_the_state_stays_a_keyboard_interrupt() -> None:
    import sqlalchemy as sa

    state = SyncState(":memory:")
    many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(KeyboardInterrupt), state.engine.connect() as connection:
            connection.execute(sa.text(f"{many} SELECT count(*) FROM c")).scalar()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        state.close()


def test_processes_opening_a_new_sqlite_state_at_once_all_open_it(tmp_path: Path) -> None:
    import threading

    for attempt in range(5):
        path = tmp_path / f"state{attempt}.db"
        errors: list[BaseException] = []

        def open_state(path: Path = path, errors: list[BaseException] = errors) -> None:
            try:
                SyncState(path).close()
            except BaseException as error:
                errors.append(error)

        openers = [threading.Thread(target=open_state) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
        assert errors == []
