"""Running a sync: priorities, retries, failures that block nothing, delete guards, trash and
progress; the faults come from a real layer over real stores."""

from __future__ import annotations

import _thread
import os
import threading
import time
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from persisty_blobs import (
    IntegrityError,
    InvalidArgument,
    InvalidArgumentType,
    NotFound,
    PermissionDenied,
    TransientError,
)
from persisty_blobs.stores import DirectoryStore, S3Store, SqlStore
from persisty_blobs.stores.memory import MemoryStore
from persisty_blobs.sync import (
    ActionKind,
    Priority,
    ProgressEvent,
    Replicator,
    Status,
    SyncAborted,
    SyncState,
    _runs,
)

from .conftest import drop_tables, server_url
from .sync_support import Faulty, contents


@pytest.fixture
def state(tmp_path: Path) -> SyncState:
    return SyncState(tmp_path / "state.db")


def filled(count: int, size: int = 10) -> MemoryStore:
    store = MemoryStore()
    for index in range(count):
        store.put(f"item-{index:04}", bytes([index % 256]) * size)
    return store


def test_content_to_hash_on_a_side_that_times_out_now_and_then_is_hashed_all_the_same(
    state: SyncState, tmp_path: Path
) -> None:
    hour_ago = time.time() - 3600
    for side in ("a", "b"):  # equal files another program wrote: the plan must hash them
        (tmp_path / side).mkdir()
        for index in range(20):
            path = tmp_path / side / f"photo-{index}.jpg"
            path.write_bytes(b"%d" % index * 100)
            os.utime(path, (hour_ago, hour_ago))
    failed: set[tuple[str, str]] = set()

    def once_each(operation: str, key: str) -> TransientError | None:
        if operation not in ("stat", "read") or (operation, key) in failed:
            return None
        failed.add((operation, key))
        return TransientError("timed out")

    b = Faulty(DirectoryStore(str(tmp_path / "b")), once_each)
    report = Replicator(DirectoryStore(str(tmp_path / "a")), b, state, retry_delay=0.001).run()
    assert report.done == {ActionKind.ADOPT: 20}
    assert failed


def recorded_before(state: SyncState, pair: str, sides: str) -> None:
    """A pair's stores as the previous version recorded them (names as they were then)."""
    _runs.end_run(state, pair, _runs.begin_run(state, pair, sides)[0])
    runs = state.tables.runs
    with state.engine.begin() as connection:
        connection.execute(runs.update().where(runs.c.pair == pair).values(sides=sides))


def test_one_failing_item_blocks_nothing_and_a_later_run_retries_it(state: SyncState) -> None:
    broken = {"item-0003"}
    remote = Faulty(fault=lambda op, key: PermissionDenied("no") if key in broken else None)
    local = filled(10)
    replicator = Replicator(local, remote, state, retry_delay=0.001)
    report = replicator.run()
    assert [(key, kind) for _, key, kind, _ in report.failures] == [
        ("item-0003", ActionKind.UPLOAD)
    ]
    assert report.count(ActionKind.UPLOAD) == 9
    assert remote.counts.writes.get("item-0003") is None  # refused at once, not retried
    assert replicator.status("item-0003") is Status.FAILED_UPLOAD
    assert "PermissionDenied" in (state.item("default", "", "item-0003").last_error or "")  # type: ignore[union-attr]
    broken.clear()
    assert replicator.run().ok
    assert contents(local) == contents(remote)
    assert replicator.status("item-0003") is Status.SYNCED


def test_transient_errors_are_retried_with_backoff_then_fail(state: SyncState) -> None:
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def flaky(operation: str, key: str) -> BaseException | None:
        if operation != "write":
            return None
        with lock:
            calls[key] = calls.get(key, 0) + 1
            count = calls[key]
        if key == "item-0000" and count <= 2:
            return TransientError("503")
        if key == "item-0001":
            return TransientError("down for good")
        return None

    local, remote = filled(3), Faulty(fault=flaky)
    report = Replicator(local, remote, state, max_attempts=4, retry_delay=0.001).run()
    assert calls["item-0000"] == 3
    assert calls["item-0001"] == 4
    assert [key for _, key, _, _ in report.failures] == ["item-0001"]
    assert remote.exists("item-0000")
    assert state.item("default", "", "item-0001").attempts == 4  # type: ignore[union-attr]


def test_a_download_that_fails_authentication_is_tried_three_times(state: SyncState) -> None:
    remote = Faulty(
        filled(4), fault=lambda op, key: IntegrityError("tag") if key == "item-0002" else None
    )
    local = MemoryStore()
    report = Replicator(local, remote, state, retry_delay=0.001).run()
    assert remote.counts.reads.get("item-0002") is None  # the fault comes before the read count
    assert [key for _, key, _, _ in report.failures] == ["item-0002"]
    assert Replicator(local, remote, state).status("item-0002") is Status.FAILED_DOWNLOAD
    assert sorted(entry.key for entry in local.scan()) == ["item-0000", "item-0001", "item-0003"]


def test_not_found_fails_at_once_instead_of_forever(state: SyncState) -> None:
    attempts: list[str] = []

    def vanished(operation: str, key: str) -> BaseException | None:
        if operation != "read":
            return None
        attempts.append(key)
        return NotFound("gone")

    report = Replicator(MemoryStore(), Faulty(filled(1), vanished), state, retry_delay=0.001).run()
    assert attempts == ["item-0000"]
    assert report.failures[0][2] is ActionKind.DOWNLOAD


@pytest.mark.parametrize("trash", [None, "trash"])
def test_a_write_whose_response_was_lost_is_not_made_again(
    state: SyncState, trash: str | None
) -> None:
    inner = MemoryStore()
    a, b = filled(2), Faulty(inner)
    assert Replicator(a, b, state).run().ok
    a.put("item-0000", b"changed")
    a.put("new", b"new")
    lost: set[str] = set()

    def lose_the_response(operation: str, key: str) -> BaseException | None:
        if operation != "write" or key in lost or not a.exists(key):  # not a trash copy
            return None
        lost.add(key)
        inner.put(key, a.read_bytes(key))  # the write landed; its answer never came back
        return TransientError("connection reset")

    b.fault = lose_the_response
    report = Replicator(a, b, state, retry_delay=0.01, trash=trash).run()
    assert report.ok, report.failures
    assert lost == {"item-0000", "new"}
    synced = {where: data for where, data in contents(b).items() if where[0] != "trash"}
    assert contents(a) == synced
    kept = [data for (namespace, _), data in contents(b).items() if namespace == "trash"]
    assert kept == ([] if trash is None else [bytes([0]) * 10])  # one copy, before the write
    assert Replicator(a, b, state, trash=trash).plan() == []


def test_highest_priority_first_and_a_raise_mid_run_goes_next(state: SyncState) -> None:
    local = filled(12)
    order: list[str] = []
    replicator = Replicator(local, MemoryStore(), state, concurrency=1)
    replicator.plan()
    for key in ("item-0005", "item-0009"):
        state.mark("default", "", key, Status.PENDING_UPLOAD, priority="high")

    def record(event: ProgressEvent) -> None:
        if event.kind == "done":
            order.append(event.key)
            if len(order) == 3:
                replicator.set_priority("item-0011", Priority.URGENT)

    assert replicator.run(progress=record).ok
    assert order[:2] == ["item-0005", "item-0009"]
    assert order[3] == "item-0011"


def test_a_progress_callback_that_raises_stops_the_run_and_keeps_what_it_did(
    state: SyncState,
) -> None:
    local, remote = filled(40), MemoryStore()
    replicator = Replicator(local, remote, state, concurrency=3)

    class Stop(Exception):
        pass

    done: list[str] = []

    def stop_after_five(event: ProgressEvent) -> None:
        if event.kind == "done":
            done.append(event.key)
            if len(done) == 5:
                raise Stop

    with pytest.raises(Stop):
        replicator.run(progress=stop_after_five)
    copied = sorted(entry.key for entry in remote.scan())
    assert 5 <= len(copied) < 40
    assert [key for key in copied if replicator.status(key) is not Status.SYNCED] == []
    report = replicator.run()
    assert report.ok
    assert report.done == {ActionKind.UPLOAD: 40 - len(copied)}


def test_a_callback_that_raises_on_a_failure_loses_no_other_result(state: SyncState) -> None:
    together = threading.Barrier(4)

    def fail_one_of_four(operation: str, key: str) -> BaseException | None:
        if operation == "write" and key < "item-0004":
            together.wait(5)  # four transfers finish at once, one of them failing
            return PermissionDenied("refused") if key == "item-0003" else None
        return None

    class Stop(Exception):
        pass

    def stop_on_failure(event: ProgressEvent) -> None:
        if event.kind == "failed":
            raise Stop

    remote = Faulty(fault=fail_one_of_four)
    replicator = Replicator(filled(40), remote, state, concurrency=4)
    with pytest.raises(Stop):
        replicator.run(progress=stop_on_failure)
    copied = [entry.key for entry in remote.scan()]
    assert {"item-0000", "item-0001", "item-0002"} <= set(copied)
    assert [key for key in copied if replicator.status(key) is not Status.SYNCED] == []
    assert replicator.status("item-0003") is Status.FAILED_UPLOAD


def test_transfers_cut_short_by_ctrl_c_are_given_back_not_failed(state: SyncState) -> None:
    stopping = threading.Event()

    class Interrupted(Exception):
        pass

    def interrupt_at_the_tenth(event: ProgressEvent) -> None:
        if event.kind == "done" and event.key == "item-0009":
            stopping.set()
            _thread.interrupt_main()
        if event.kind == "bytes" and stopping.is_set():
            raise Interrupted  # what the command line's check raises on the workers

    remote = Faulty()
    replicator = Replicator(filled(200, size=1000), remote, state, concurrency=4)
    with pytest.raises(KeyboardInterrupt):
        replicator.run(progress=interrupt_at_the_tenth)
    assert replicator.progress().get(Status.FAILED_UPLOAD, 0) == 0
    report = replicator.run()
    assert report.ok
    assert len(list(remote.scan())) == 200


def test_ctrl_c_while_the_workers_start_ends_the_ones_started(
    state: SyncState, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = threading.Thread.start

    def interrupted_after_the_first(thread: threading.Thread) -> None:
        start(thread)
        if thread.name == "pb-sync_0":
            raise KeyboardInterrupt  # what the command line's SIGINT handler raises, here

    remote = Faulty()  # its calls may wait: the run starts several workers
    replicator = Replicator(filled(20, size=1000), remote, state, concurrency=4)
    monkeypatch.setattr(threading.Thread, "start", interrupted_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        replicator.run()
    monkeypatch.undo()
    alive = [thread.name for thread in threading.enumerate() if thread.name.startswith("pb-")]
    assert alive == [], "a worker left waiting keeps the process from exiting"
    assert replicator.run().ok
    assert len(list(remote.scan())) == 20


def test_stores_whose_calls_never_wait_are_synced_on_one_thread(state: SyncState) -> None:
    threads: set[str] = set()

    def seen(event: ProgressEvent) -> None:
        if event.kind == "done":
            threads.add(threading.current_thread().name)

    report = Replicator(filled(50), MemoryStore(), state, concurrency=4).run(progress=seen)
    assert report.done == {ActionKind.UPLOAD: 50}
    assert len(threads) == 1, "more threads would only switch between themselves (the GIL)"


def test_a_run_whose_planner_went_silent_is_planned_again(state: SyncState) -> None:
    a, b = filled(3), MemoryStore()
    replicator = Replicator(a, b, state)
    sides, options = f"{a!r} <-> {b!r}", replicator._options()
    _, planner = _runs.begin_run(state, replicator.pair, sides, options)
    assert planner
    runs = state.tables.runs
    with state.engine.begin() as connection:  # a process on another machine, gone quiet
        connection.execute(
            runs.update().values(owner="x@other-boot:1:1", lease_until=time.time() + 0.3)
        )
    report = replicator.run()  # joins, waits for the lease to lapse, then plans
    assert report.ok
    assert contents(a) == contents(b)


def test_pairs_recorded_by_the_previous_version_stay_the_same_pairs(
    state: SyncState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    remote = repr(MemoryStore())
    now_and_then = {  # what a store is named now, and was named by the previous version
        repr(DirectoryStore("data")): "DirectoryStore('data')",
        repr(DirectoryStore(f"{tmp_path}/slash/")): f"DirectoryStore('{tmp_path}/slash/')",
        repr(SqlStore("sqlite:///t.db")): "SqlStore('sqlite:///t.db')",
        repr(SqlStore(f"sqlite:///{tmp_path}/p.db", table_prefix="other")): (
            f"SqlStore('sqlite:///{tmp_path}/p.db')"
        ),
    }
    for number, (now, then) in enumerate(now_and_then.items()):
        pair = f"pair-{number}"
        recorded_before(state, pair, f"{then} <-> {remote}")
        _runs.begin_run(state, pair, f"{now} <-> {remote}")  # not refused
    # Recorded by this version, a name is compared as it is: another table prefix is another.
    default, photos = (
        repr(SqlStore(f"sqlite:///{tmp_path}/q.db", table_prefix=prefix))
        for prefix in ("blobs", "photos")
    )
    _runs.end_run(state, "now", _runs.begin_run(state, "now", f"{default} <-> {remote}")[0])
    with pytest.raises(SyncAborted):
        _runs.begin_run(state, "now", f"{photos} <-> {remote}")


def test_a_live_run_is_joined_only_with_the_options_it_is_planned_with(state: SyncState) -> None:
    a, b = filled(3), MemoryStore()
    planned = Replicator(a, b, state, trash="kept")  # another process's run, being planned
    sides = f"{a!r} <-> {b!r}"
    run_id, _ = _runs.begin_run(state, planned.pair, sides, planned._options())
    for other in ({"direction": "pull", "trash": "kept"}, {}):  # a pull would upload its plan
        with pytest.raises(SyncAborted, match="in progress with other options"):
            Replicator(a, b, state, **other).run()  # type: ignore[arg-type]
    assert contents(b) == {}
    _runs.end_run(state, planned.pair, run_id)
    assert Replicator(a, b, state, direction="pull").run().ok  # once it ended: its own run
    assert contents(b) == {}


def test_a_pair_recorded_with_a_password_in_a_url_is_the_same_pair(state: SyncState) -> None:
    # Names of HttpStores once showed their URL's password; they leave it out now.
    shown = "MemoryStore() <-> HttpStore('http://me@host:1', store ab12)"
    recorded_before(state, "phone", shown.replace("me@", "me:s3cret@"))
    _runs.begin_run(state, "phone", shown)  # not refused
    with state.engine.connect() as connection:
        recorded = connection.execute(state.tables.runs.select()).mappings().one()["sides"]
    assert "s3cret" not in recorded  # the password is gone from the state too
    with pytest.raises(SyncAborted) as other:
        _runs.begin_run(state, "phone", shown.replace("host:1", "elsewhere:1"))
    assert "s3cret" not in str(other.value)


def test_a_pair_tells_its_stores_apart_by_where_they_are(
    state: SyncState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = DirectoryStore(str(tmp_path / "remote"))
    for checkout in ("one", "two"):
        (tmp_path / checkout).mkdir()
        monkeypatch.chdir(tmp_path / checkout)
        local = DirectoryStore("data")  # one relative path, two folders
        local.put("report", checkout.encode())
        if checkout == "one":
            assert Replicator(local, remote, state).run().ok
    with pytest.raises(SyncAborted, match="syncs DirectoryStore"):
        Replicator(local, remote, state).run()
    assert remote.read_bytes("report") == b"one"
    monkeypatch.chdir(tmp_path)
    assert "table_prefix='other'" in repr(SqlStore("sqlite:///data.db", table_prefix="other"))
    assert str(tmp_path) in repr(SqlStore("sqlite:///data.db"))

    def bucket(endpoint: str) -> S3Store:
        client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="k",
            aws_secret_access_key="s",
        )
        return S3Store("photos", client=client)

    on_aws, here = bucket("https://s3.us-east-1.amazonaws.com"), bucket("http://127.0.0.1:9")
    assert repr(on_aws) == "S3Store('photos', '')"  # a bucket's name is unique on AWS
    recorded_before(state, "s3", f"{remote!r} <-> {on_aws!r}")  # no endpoint named then
    _runs.begin_run(state, "s3", f"{remote!r} <-> {here!r}")  # the endpoint is added
    _runs.end_run(state, "aws", _runs.begin_run(state, "aws", f"{remote!r} <-> {on_aws!r}")[0])
    with pytest.raises(SyncAborted):  # recorded now: the same bucket elsewhere is another
        _runs.begin_run(state, "aws", f"{remote!r} <-> {here!r}")
    with pytest.raises(SyncAborted, match=r"127\.0\.0\.1:9"):
        _runs.begin_run(state, "s3", f"{remote!r} <-> {bucket('http://127.0.0.1:8')!r}")


def test_a_pair_forgotten_starts_afresh_keeps_its_trash_and_waits_for_a_live_run(
    state: SyncState,
) -> None:
    a, b = filled(3), MemoryStore()
    assert Replicator(a, b, state, trash="old").run().ok
    b.namespace("old").put("kept", b"a trash copy")  # what a run kept there
    a.delete("item-0000")
    _runs.forget_pair(state, "default")
    report = Replicator(a, b, state).run()  # no trash named: it is still the trash
    assert report.ok
    assert report.count(ActionKind.ADOPT) == 2
    assert "old" not in a.namespaces()
    assert b.exists("item-0000")  # a pair forgotten deletes nothing: it copies back
    assert a.exists("item-0000")
    _, planner = _runs.begin_run(state, "default", f"{a!r} <-> {b!r}")  # a live run elsewhere
    assert planner
    with pytest.raises(SyncAborted, match="in progress"):
        _runs.forget_pair(state, "default")


def test_leases_last_through_a_long_listing_and_a_long_transfer(
    state: SyncState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persisty_blobs.sync import _queue

    monkeypatch.setattr(_runs, "LEASE_SECONDS", 0.3)  # the run's, held by its planner
    monkeypatch.setattr(_queue, "_LEASE_SECONDS", 0.3)  # each action's
    slow = {"list": threading.Event(), "read": threading.Event()}

    def slowly(operation: str, key: str) -> None:
        if operation in slow:
            slow[operation].set()
            time.sleep(1.0)

    a, b = Faulty(filled(1), fault=slowly), MemoryStore()
    replicator = Replicator(a, b, state)
    running = threading.Thread(target=replicator.run)
    running.start()
    assert slow["list"].wait(5)
    time.sleep(0.6)  # twice the lease
    sides, options = f"{a!r} <-> {b!r}", replicator._options()
    _, second_planner = _runs.begin_run(state, replicator.pair, sides, options)
    assert slow["read"].wait(5)
    time.sleep(0.6)
    with state.engine.connect() as connection:
        row = connection.execute(state.tables.items.select()).mappings().one()
    checked = time.time()
    running.join()
    assert not second_planner
    assert row["lease_until"] > checked  # renewed while the transfer ran
    assert contents(a) == contents(b)


@pytest.mark.parametrize(
    "option",
    [
        {"force": "false"},  # a string from a config file would turn the guards off
        {"retry_delay": "1"},  # noticed only at the first retry, mid-run
        {"namespaces": "photos"},  # iterated letter by letter
        {"trash": ""},  # the default namespace: never synced, and mixed with the user's keys
        {"max_delete": "0.5"},
        {"concurrency": 2.5},
        {"pair": 5},
    ],
)
def test_bad_options_are_refused_before_anything_is_written(
    state: SyncState, option: dict[str, object]
) -> None:
    a, b = filled(2), MemoryStore()
    with pytest.raises((InvalidArgument, InvalidArgumentType)):
        Replicator(a, b, state, **option)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="SyncState"):
        Replicator(a, b, "state.db")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="unknown status"):
        Replicator(a, b, state).items(status="bogus")
    assert contents(b) == {}


def test_max_delete_stops_the_run_before_it_changes_anything(state: SyncState) -> None:
    local, remote = filled(10), MemoryStore()
    Replicator(local, remote, state).run()
    for index in range(6):
        local.delete(f"item-{index:04}")
    local.put("new", b"n")
    replicator = Replicator(local, remote, state)
    with pytest.raises(SyncAborted, match="delete 6 of 10"):
        replicator.run()
    assert len(contents(remote)) == 10
    assert not remote.exists("new")
    assert replicator.progress()[Status.PENDING_DELETE] == 0
    report = Replicator(local, remote, state, force=True).run()
    assert report.count(ActionKind.DELETE_B) == 6
    assert contents(local) == contents(remote)


def test_deletes_a_run_held_back_are_weighed_again_by_the_next(state: SyncState) -> None:
    a, b = filled(10), Faulty()
    assert Replicator(a, b, state).run().ok
    for index in range(5):
        a.delete(f"item-{index:04}")
    a.put("new.txt", b"new")
    b.fault = lambda operation, key: TransientError("x") if key == "new.txt" else None
    report = Replicator(a, b, state, max_attempts=1).run()
    assert report.deletes_skipped == 5
    b.fault = lambda operation, key: None
    for index in (5, 6):
        a.delete(f"item-{index:04}")
    for _ in range(2):  # a stopped run's plan is dropped: the next is stopped the same way
        with pytest.raises(SyncAborted, match="delete 7 of 10"):
            Replicator(a, b, state).run()
    assert len(list(b.scan("item-"))) == 10


def test_an_empty_listing_of_a_side_that_had_items_aborts(state: SyncState) -> None:
    local, remote = filled(3), MemoryStore()
    Replicator(local, remote, state).run()
    with pytest.raises(SyncAborted, match="listed no items"):
        Replicator(MemoryStore(), remote, state, max_delete=1.0).run()
    assert len(contents(remote)) == 3


def test_a_listing_error_aborts_before_any_change(state: SyncState) -> None:
    failing = {"on": False}
    remote = Faulty(fault=lambda op, key: TransientError("list") if failing["on"] else None)
    local = filled(3)
    Replicator(local, remote, state).run()
    local.put("new", b"n")
    failing["on"] = True
    with pytest.raises(TransientError):
        Replicator(local, remote, state).run()
    failing["on"] = False
    assert not remote.exists("new")


def test_deletes_wait_for_a_run_without_transient_failures(state: SyncState) -> None:
    local, remote = filled(4), Faulty(MemoryStore())
    Replicator(local, remote, state).run()
    local.delete("item-0000")
    local.put("item-0001", b"changed")
    remote.fault = lambda op, key: TransientError("503") if op == "write" else None
    report = Replicator(local, remote, state, max_attempts=2, retry_delay=0.001).run()
    assert report.deletes_skipped == 1
    assert remote.exists("item-0000")
    assert Replicator(local, remote, state).status("item-0000") is Status.PENDING_DELETE
    remote.fault = lambda op, key: None
    report = Replicator(local, remote, state).run()
    assert report.ok
    assert not remote.exists("item-0000")


def test_one_item_that_cannot_be_copied_holds_back_no_delete(state: SyncState) -> None:
    local, remote = filled(4), Faulty(MemoryStore())
    Replicator(local, remote, state).run()
    local.delete("item-0000")
    local.put("item-0001", b"changed")
    remote.fault = lambda op, key: PermissionDenied("no") if key == "item-0001" else None
    report = Replicator(local, remote, state, retry_delay=0.001).run()
    assert [key for _, key, _, _ in report.failures] == ["item-0001"]
    assert report.deletes_skipped == 0
    assert not remote.exists("item-0000")


def test_trash_keeps_what_a_run_deleted_or_overwrote(state: SyncState) -> None:
    local, remote = filled(2), MemoryStore()
    Replicator(local, remote, state, trash="trash").run()
    old = remote.read_bytes("item-0001")
    local.delete("item-0000")
    local.put("item-0001", b"new")
    assert Replicator(local, remote, state, trash="trash").run().ok
    kept = {
        entry.key.split("/", 1)[1]: remote.namespace("trash").read_bytes(entry.key)
        for entry in remote.namespace("trash").scan()
    }
    assert kept == {"@/item-0000": bytes([0]) * 10, "@/item-0001": old}
    assert "trash" not in local.namespaces()


def test_a_trash_namespace_is_never_synced_by_later_runs(state: SyncState) -> None:
    local, remote = filled(2), MemoryStore()
    Replicator(local, remote, state, trash="trash").run()
    local.delete("item-0000")
    assert Replicator(local, remote, state, trash="trash", direction="push").run().ok
    assert remote.namespace("trash").count() == 1
    later = Replicator(local, remote, state, direction="pull")  # no trash= given
    assert later.plan() == []
    assert "trash" not in local.namespaces()
    local.namespace("photos").put("cat.jpg", b"cat")
    assert Replicator(local, remote, state).run().ok
    with pytest.raises(InvalidArgument, match="holds items this pair syncs"):
        Replicator(local, remote, state, trash="photos").run()
    local.namespace("photos").put("dog.jpg", b"dog")
    assert Replicator(local, remote, state).run().ok  # photos is still synced
    assert remote.namespace("photos").read_bytes("dog.jpg") == b"dog"


def test_a_run_stopped_by_a_guard_leaves_its_trash_unremembered(state: SyncState) -> None:
    local, remote = filled(10), MemoryStore()
    assert Replicator(local, remote, state).run().ok
    for index in range(8):
        local.delete(f"item-{index:04}")
    with pytest.raises(SyncAborted):
        Replicator(local, remote, state, trash="tr").run()
    assert _runs.trash_namespaces(state, "default") == set()


def test_a_state_on_another_database_is_refused_before_it_makes_a_table(
    table_prefix: str,
) -> None:
    import sqlalchemy as sa

    from persisty_blobs import Unsupported

    from .conftest import server_url

    url = server_url("mariadb")
    with pytest.raises(Unsupported, match="SQLite or PostgreSQL"):
        SyncState(url, table_prefix=table_prefix)
    engine = sa.create_engine(url)
    try:
        assert not [name for name in sa.inspect(engine).get_table_names() if table_prefix in name]
    finally:
        engine.dispose()


def test_the_trash_of_a_namespace_with_the_longest_name_fits_a_file_name(
    state: SyncState, tmp_path: Path
) -> None:
    from persisty_blobs.stores.directory import DirectoryStore

    namespace = "n" * 255
    local, remote = MemoryStore(), DirectoryStore(tmp_path / "remote")
    local.namespace(namespace).put("doc.txt", b"v1")
    replicator = Replicator(local, remote, state, trash="trash")
    assert replicator.run().ok
    local.namespace(namespace).put("doc.txt", b"v2")
    assert replicator.run().ok
    assert remote.namespace(namespace).read_bytes("doc.txt") == b"v2"
    kept = [entry.key for entry in remote.namespace("trash").scan()]
    assert len(kept) == 1
    assert remote.namespace("trash").read_bytes(kept[0]) == b"v1"


def test_progress_events_and_the_report_add_up(state: SyncState) -> None:
    a, b = filled(5, size=100), MemoryStore()
    a.put("doc", b"a's")
    b.put("doc", b"b's")  # a conflict left for the caller: never carried out
    cut = {"item-0001"}

    def once(operation: str, key: str) -> TransientError | None:
        if operation == "write" and key in cut:  # after the copy said what it read
            cut.discard(key)
            return TransientError("cut off")
        return None

    events: list[ProgressEvent] = []
    replicator = Replicator(a, Faulty(b, once), state, conflict="manual", retry_delay=0.001)
    report = replicator.run(progress=events.append)
    planned = [event for event in events if event.kind == "planned"]
    assert [(event.items, event.bytes) for event in planned] == [(5, 500)]
    moved = {kind: sum(event.bytes for event in events if event.kind == kind) for kind in
             ("bytes", "retry", "failed")}  # fmt: skip
    assert moved == {"bytes": 600, "retry": 100, "failed": 0}
    assert len([event for event in events if event.kind == "done"]) == 5
    assert report.bytes == 500
    assert report.count(ActionKind.UPLOAD) == 5
    assert report.conflicts == 1
    assert report.seconds > 0


def test_a_change_made_during_the_run_is_never_overwritten(state: SyncState) -> None:
    local, other_writer = filled(1), MemoryStore()
    sneaked: list[str] = []

    def sneak(operation: str, key: str) -> BaseException | None:
        if operation == "write" and not sneaked:
            sneaked.append(key)
            remote.put(key, b"written by someone else")
        return None

    remote = Faulty(other_writer, sneak)
    report = Replicator(local, remote, state, retry_delay=0.001).run()
    assert not report.ok
    assert remote.read_bytes("item-0000") == b"written by someone else"
    assert Replicator(local, remote, state).plan()[0].kind is ActionKind.KEEP_BOTH


def test_a_state_of_schema_2_is_upgraded_in_place(tmp_path: Path) -> None:
    a, b = filled(3), MemoryStore()
    path = tmp_path / "old.db"
    Replicator(a, b, SyncState(path), pair="p").run()
    # Schema 2 differs from 6 by its queue index and three columns: put them back.
    engine = SyncState(path).engine
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX pbsync_claims")
        connection.exec_driver_sql(
            "CREATE INDEX pbsync_queue ON pbsync_items (pair, run_id, status, priority)"
        )
        connection.exec_driver_sql("ALTER TABLE pbsync_items DROP COLUMN requested")
        connection.exec_driver_sql("ALTER TABLE pbsync_runs DROP COLUMN trash")
        connection.exec_driver_sql("ALTER TABLE pbsync_runs DROP COLUMN options")
        connection.exec_driver_sql("UPDATE pbsync_schema SET version = 2")
        # Schema 2 took every queued delete for the caller's own (BlobManager.delete's).
        connection.exec_driver_sql(
            "UPDATE pbsync_items SET status = 'pending_delete' "
            "WHERE key IN ('item-0000', 'item-0001')"
        )
    engine.dispose()
    a.put("item-new", b"new")
    a.delete("item-0000")
    a.delete("item-0001")

    opened: list[SyncState] = []
    openers = [threading.Thread(target=lambda: opened.append(SyncState(path))) for _ in range(4)]
    for opener in openers:  # processes opening the old state at once upgrade it once
        opener.start()
    for opener in openers:
        opener.join()
    assert len(opened) == 4
    state = opened[0]
    with state.engine.connect() as connection:
        indexes = {row[1] for row in connection.exec_driver_sql("PRAGMA index_list(pbsync_items)")}
        version = connection.exec_driver_sql("SELECT version FROM pbsync_schema").scalar()
        columns = {
            row[1]
            for table in ("pbsync_items", "pbsync_runs")
            for row in connection.exec_driver_sql(f"PRAGMA table_info({table})")
        }
    assert version == 6
    assert columns >= {"requested", "trash", "options"}
    assert "pbsync_claims" in indexes
    assert "pbsync_queue" not in indexes
    report = Replicator(a, b, state, pair="p").run()  # 2 of 3 deleted: asked for, not guarded
    assert report.done == {ActionKind.UPLOAD: 1, ActionKind.DELETE_B: 2}, "the base is kept"
    assert contents(b) == contents(a)


def test_a_state_url_that_names_no_database_says_so(tmp_path: Path) -> None:
    for url in ("foo://bar", "postgresql+nodriver://x/y"):
        with pytest.raises(InvalidArgument, match="not a state database URL"):
            SyncState(url)
    with pytest.raises(NotFound, match="does not exist"):
        SyncState(tmp_path / "missing" / "state.db")


def test_rows_edited_by_hand_are_read_as_far_as_they_make_sense(state: SyncState) -> None:
    a, b = filled(3), MemoryStore()
    replicator = Replicator(a, b, state)
    assert replicator.run().ok
    items = state.tables.items
    with state.engine.begin() as connection:  # a priority and a status no library wrote
        connection.execute(items.update().where(items.c.key == "item-0000").values(priority=7))
        connection.execute(items.update().where(items.c.key == "item-0001").values(status="x"))
    a.put("item-0000", b"edited")
    assert replicator.run().done == {ActionKind.UPLOAD: 1}
    assert replicator.progress()[Status.SYNCED] == 2  # the row it cannot read is left out
    assert [item.key for item in replicator.items()] == ["item-0000", "item-0002"]
    assert contents(a) == contents(b)


def test_a_postgresql_state_of_schema_5_is_upgraded_in_place(table_prefix: str) -> None:
    url = server_url("postgresql")
    try:
        SyncState(url, table_prefix=table_prefix).close()
        engine = sa.create_engine(url)
        with engine.begin() as connection:  # schema 5: a short resolution, no run options
            items, runs = f"{table_prefix}_items", f"{table_prefix}_runs"
            connection.exec_driver_sql(
                f"ALTER TABLE {items} ALTER COLUMN resolution TYPE VARCHAR(10)"
            )
            connection.exec_driver_sql(f"ALTER TABLE {runs} DROP COLUMN options")
            connection.exec_driver_sql(f"UPDATE {table_prefix}_schema SET version = 5")
        engine.dispose()
        state = SyncState(url, table_prefix=table_prefix)
        a, b = MemoryStore(), MemoryStore()
        a.put("doc", b"a's")
        b.put("doc", b"b's")
        replicator = Replicator(a, b, state, conflict="manual")
        assert replicator.run().conflicts == 1
        replicator.resolve("doc", "b")  # a resolution longer than ten characters
        assert replicator.run().ok
        assert a.read_bytes("doc") == b"b's"
        state.close()
    finally:
        drop_tables(url, table_prefix)


def test_at_most_half_the_transfers_move_large_items_at_once(state: SyncState) -> None:
    large = 8 * 1024 * 1024
    lock = threading.Lock()
    moving = {"now": 0, "most": 0}

    def slow_large_reads(operation: str, key: str) -> None:
        if operation != "read" or not key.startswith("large"):
            return
        with lock:
            moving["now"] += 1
            moving["most"] = max(moving["most"], moving["now"])
        time.sleep(0.1)
        with lock:
            moving["now"] -= 1
        return

    a = Faulty(fault=slow_large_reads)
    for index in range(4):
        a.put(f"large-{index}", bytes([index]) * large)
        a.put(f"small-{index}", bytes([index]))
    b = MemoryStore()
    report = Replicator(a, b, state, pair="p", concurrency=4).run()
    assert report.done == {ActionKind.UPLOAD: 8}
    assert moving["most"] == 2, "each large item holds a store's buffers while it moves"
    assert contents(b) == contents(a)
