"""The diff's rules, each cell of the table, conflicts, flags and directions, between real
stores with a real state database."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from persisty_blobs import DataStore, Flag, InvalidArgument, TransientError
from persisty_blobs import driver as driver_module
from persisty_blobs.stores.memory import MemoryStore
from persisty_blobs.sync import ActionKind, Replicator, Status, SyncAborted, SyncState
from persisty_blobs.sync import diff as diff_module
from persisty_blobs.sync.diff import Policy

from .conftest import drop_tables, server_url
from .sync_support import Faulty, contents


@pytest.fixture
def state(tmp_path: Path) -> SyncState:
    return SyncState(tmp_path / "state.db")


def synced(a: DataStore, b: DataStore, state: SyncState, **options: object) -> Replicator:
    """A replicator whose first run has made ``a`` and ``b`` equal."""
    replicator = Replicator(a, b, state, retry_delay=0.01, **options)  # type: ignore[arg-type]
    report = replicator.run()
    assert report.ok, report.failures
    assert contents(a) == contents(b)
    return replicator


def kinds(replicator: Replicator) -> dict[str, ActionKind]:
    return {action.key: action.kind for action in replicator.plan()}


def only_uploaded(
    replicator: Replicator, target: DataStore, key: str, content: bytes, adopted: list[str]
) -> None:
    """The plan uploads ``key`` and adopts the new etags of ``adopted``; the run moves
    ``content`` alone, and leaves nothing to do."""
    assert kinds(replicator) == {key: ActionKind.UPLOAD} | dict.fromkeys(adopted, ActionKind.ADOPT)
    report = replicator.run()
    assert report.ok
    assert report.bytes == len(content)
    assert target.read_bytes(key) == content
    assert replicator.plan() == []


def test_first_sync_copies_both_ways_and_then_nothing_is_planned(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("only-a", b"A", metadata={"who": "a"}, flags=[Flag.PENDING])
    b.put("only-b", b"B", content_type="text/plain")
    replicator = synced(a, b, state)
    assert b.get("only-a").metadata == {"who": "a"}  # type: ignore[union-attr]
    assert b.get_flags("only-a") == {Flag.PENDING}
    assert a.get("only-b").content_type == "text/plain"  # type: ignore[union-attr]
    assert replicator.plan() == []
    assert replicator.progress()[Status.SYNCED] == 2


def test_every_cell_of_the_rules_table(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    for key in ("uu", "uc", "ud", "cu", "cc-same", "cc-diff", "du", "dd"):
        a.put(key, b"base " + key.encode())
    replicator = synced(a, b, state, conflict="prefer-b")
    b.put("uc", b"b changed")
    b.delete("ud")
    a.put("cu", b"a changed")
    a.put("cc-same", b"same change")
    b.put("cc-same", b"same change")
    a.put("cc-diff", b"a's")
    b.put("cc-diff", b"b's")
    a.delete("du")
    a.delete("dd")
    b.delete("dd")
    assert kinds(replicator) == {
        "uc": ActionKind.DOWNLOAD,
        "ud": ActionKind.DELETE_A,
        "cu": ActionKind.UPLOAD,
        "cc-same": ActionKind.ADOPT,
        "cc-diff": ActionKind.DOWNLOAD,  # conflict, b preferred
        "du": ActionKind.DELETE_B,
        "dd": ActionKind.FORGET,
    }
    report = replicator.run()
    assert report.ok
    assert report.bytes == len(b"b changed") + len(b"a changed") + len(b"b's")
    assert contents(a) == contents(b)
    assert a.read_bytes("cc-diff") == b"b's"
    assert replicator.plan() == []


@pytest.mark.parametrize(
    ("policy", "winner"), [("prefer-a", b"a's"), ("prefer-b", b"b's"), ("newer", b"b's")]
)
def test_conflict_policies_pick_one_version(state: SyncState, policy: str, winner: bytes) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    replicator = synced(a, b, state, conflict=policy)
    a.put("doc", b"a's")
    b.put("doc", b"b's")  # later: "newer" picks it
    assert replicator.run().ok
    assert a.read_bytes("doc") == b.read_bytes("doc") == winner
    assert [entry.key for entry in a.scan()] == ["doc"]


def test_keep_both_keeps_the_loser_under_a_conflict_name_on_both_sides(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    replicator = synced(a, b, state)
    a.put("doc", b"a's")
    b.put("doc", b"b's")
    assert replicator.run().ok
    keys = [entry.key for entry in a.scan()]
    assert keys[0] == "doc"
    assert len(keys) == 2
    assert keys[1].startswith("doc.conflict-a-")
    assert contents(a) == contents(b)
    assert a.read_bytes(keys[1]) == b"a's"
    assert a.read_bytes("doc") == b"b's"
    assert replicator.plan() == []


@pytest.mark.parametrize("listed", ["with checksums", "without (another program's file)"])
def test_a_keep_both_cut_short_is_finished_by_the_next_run(
    state: SyncState, tmp_path: Path, listed: str
) -> None:
    from persisty_blobs.stores import DirectoryStore

    folder = tmp_path / "a"
    a = Faulty(MemoryStore() if listed == "with checksums" else DirectoryStore(folder))
    b = MemoryStore()
    replicator = synced(a, b, state, max_attempts=2)
    if listed == "with checksums":
        a.put("doc.txt", b"a's edit")
    else:  # listed without a checksum, and of another size than b's: nothing hashes it
        (folder / "doc.txt").write_bytes(b"a's edit")
    b.put("doc.txt", b"b's longer edit")
    # b takes the loser's copy; a refuses its own copy, then comes back
    a.fault = lambda operation, key: TransientError("down") if operation == "write" else None
    assert not replicator.run().ok
    a.fault = lambda operation, key: None
    report = replicator.run()
    assert report.ok, report.failures
    assert contents(a) == contents(b)
    assert sorted(contents(a).values()) == [b"a's edit", b"b's longer edit"]
    assert replicator.plan() == []


def test_conflicts_of_one_second_keep_every_loser_under_its_own_name(
    state: SyncState, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    replicator = synced(a, b, state)
    # Every edit in one second (ahead: a store's clock never goes back).
    second = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    monkeypatch.setattr(driver_module, "utc_now", lambda: second)
    name = f"doc.conflict-a-{second.strftime('%Y%m%dT%H%M%SZ')}"
    a.put("doc", b"a edit 1")
    b.put("doc", b"b edit 1")
    a.put(f"{name}-2", b"the user's own file")  # a name taken
    assert replicator.run().ok
    a.put("doc", b"a edit 2")
    b.put("doc", b"b edit 2")
    assert replicator.run().ok
    assert replicator.plan() == []
    assert contents(a) == contents(b)
    kept = {key: value for (_, key), value in contents(a).items() if ".conflict-a-" in key}
    assert kept == {
        name: b"a edit 1",
        f"{name}-2": b"the user's own file",
        f"{name}-3": b"a edit 2",
    }


def test_manual_conflicts_wait_for_the_caller(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    replicator = synced(a, b, state, conflict="manual")
    a.put("doc", b"a's")
    b.put("doc", b"b's")
    report = replicator.run()
    assert report.conflicts == 1
    assert replicator.status("doc") is Status.CONFLICT
    assert a.read_bytes("doc") == b"a's"
    assert b.read_bytes("doc") == b"b's"
    replicator.resolve("doc", "a")
    assert replicator.run().ok
    assert b.read_bytes("doc") == b"a's"
    assert replicator.status("doc") is Status.SYNCED


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_resolution_holds_for_the_two_versions_it_was_made_for(
    database: str, tmp_path: Path, table_prefix: str
) -> None:
    url = server_url("postgresql") if database == "postgresql" else f"sqlite:///{tmp_path}/s.db"
    state = SyncState(url, table_prefix=table_prefix)
    try:
        a, b = MemoryStore(), MemoryStore()
        for key in ("k", "k2"):
            a.put(key, b"base")
        replicator = synced(a, b, state, conflict="manual")
        for key in ("k", "k2"):
            a.put(key, b"a1")
            b.put(key, b"b1")
        assert replicator.run().conflicts == 2
        with pytest.raises(InvalidArgument, match="not in conflict"):
            replicator.resolve("missing", "a")
        replicator.resolve("k", "a")
        replicator.resolve("k2", "b")
        b.put("k", b"b2, which whoever chose never saw")
        a.put("k2", b"a2, made after the choice")
        assert replicator.run().conflicts == 2  # neither is overwritten
        assert b.read_bytes("k") == b"b2, which whoever chose never saw"
        assert a.read_bytes("k2") == b"a2, made after the choice"
        replicator.resolve("k", "a")  # chosen again, having seen it
        assert replicator.run().done == {ActionKind.UPLOAD: 1}
        assert b.read_bytes("k") == b"a1"
    finally:
        state.close()
        if database == "postgresql":
            drop_tables(url, table_prefix)


def test_a_conflict_whose_plan_a_stopped_run_discarded_can_still_be_resolved(
    state: SyncState,
) -> None:
    a, b = MemoryStore(), MemoryStore()
    for index in range(10):
        a.put(f"item-{index}", b"x")
    replicator = synced(a, b, state, conflict="manual", max_delete=Fraction(1, 2))
    a.put("doc", b"a's")
    b.put("doc", b"b's")
    assert replicator.run().conflicts == 1
    for index in range(8):
        a.delete(f"item-{index}")
    with pytest.raises(SyncAborted, match="max_delete"):
        replicator.run()  # its plan, the conflict's with it, is discarded
    replicator.resolve("doc", "a")
    assert Replicator(a, b, state, conflict="manual", force=True).run().ok
    assert b.read_bytes("doc") == b"a's"


def test_change_against_delete_the_change_wins(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("x", b"base")
    a.put("y", b"base")
    replicator = synced(a, b, state)
    a.put("x", b"edited on a")
    b.delete("x")
    a.delete("y")
    b.put("y", b"edited on b")
    assert kinds(replicator) == {"x": ActionKind.UPLOAD, "y": ActionKind.DOWNLOAD}
    assert replicator.run().ok
    assert b.read_bytes("x") == b"edited on a"
    assert a.read_bytes("y") == b"edited on b"


def test_identical_content_without_a_base_is_adopted_without_a_transfer(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    for index in range(5):
        a.put(f"k{index}", b"same %d" % index)
        b.put(f"k{index}", b"same %d" % index)
    b.put("k4", b"different")
    replicator = Replicator(a, b, state)
    plan = kinds(replicator)
    assert [plan[f"k{index}"] for index in range(4)] == [ActionKind.ADOPT] * 4
    assert plan["k4"] is ActionKind.KEEP_BOTH
    report = replicator.run()
    assert report.count(ActionKind.ADOPT) == 4
    assert report.bytes == len(b"same 4") + len(b"different")


@pytest.mark.parametrize("policy", ["keep-both", "newer", "prefer-b"])
def test_an_etag_that_moved_without_the_content_is_no_change(
    state: SyncState, policy: Policy
) -> None:
    from persisty_blobs import EncryptedStore, Keyring

    keyring = Keyring.generate()
    a, remote = MemoryStore(), MemoryStore()
    b = EncryptedStore(remote, keyring)
    for index in range(3):
        a.put(f"doc{index}", b"original %d" % index)
    synced(a, b, state, conflict=policy)
    a.put("doc0", b"edited offline")
    rotated = EncryptedStore(remote, keyring.rotated(os.urandom(32)))
    for index in range(3):  # another device rotates the remote's keys: new ciphertext
        rotated.reencrypt(f"doc{index}")
    replicator = Replicator(a, rotated, state, conflict=policy)  # the new ring too
    only_uploaded(replicator, rotated, "doc0", b"edited offline", adopted=["doc1", "doc2"])


def test_a_tree_restored_from_a_copy_is_hashed_not_copied_again(
    tmp_path: Path, state: SyncState
) -> None:
    from persisty_blobs.stores import DirectoryStore

    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        (photos / f"p{index}.jpg").write_bytes(b"picture %d" % index)
        os.utime(photos / f"p{index}.jpg", (1_600_000_000, 1_600_000_000))  # not racy
    remote = MemoryStore()
    with DirectoryStore(photos) as a:
        synced(a, remote, state)
    # Restored from a backup: the same files and times, new inodes (new etags); one file was
    # edited before the backup, keeping its size and time.
    os.rename(photos, tmp_path / "lost")
    (tmp_path / "lost" / "p2.jpg").write_bytes(b"edited  p2")
    os.utime(tmp_path / "lost" / "p2.jpg", (1_600_000_000, 1_600_000_000))
    shutil.copytree(tmp_path / "lost", photos)
    with DirectoryStore(photos) as a:
        replicator = Replicator(a, remote, state)
        only_uploaded(replicator, remote, "p2.jpg", b"edited  p2", adopted=["p0.jpg", "p1.jpg"])


def test_flag_changes_move_without_content_and_b_wins_when_both_change(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("one", b"1")
    a.put("two", b"2")
    replicator = synced(a, b, state)
    a.set_flags("one", [Flag.PROCESSING])
    a.set_flags("two", [Flag.PROCESSING])
    b.set_flags("two", [Flag.PROCESSED])
    assert kinds(replicator) == {"one": ActionKind.FLAGS_B, "two": ActionKind.FLAGS_A}
    report = replicator.run()
    assert report.bytes == 0
    assert b.get_flags("one") == {Flag.PROCESSING}
    assert a.get_flags("two") == b.get_flags("two") == {Flag.PROCESSED}
    assert replicator.plan() == []


def test_content_written_while_flags_are_copied_is_never_taken_as_synced(
    state: SyncState,
) -> None:
    inner = MemoryStore()
    a, b = Faulty(inner), MemoryStore()
    a.put("doc", b"v1")
    replicator = synced(a, b, state)
    b.set_flags("doc", [Flag.PENDING])

    def edit_meanwhile(operation: str, key: str) -> None:
        if operation == "flags":
            inner.put(key, b"edited on a meanwhile")

    a.fault = edit_meanwhile
    assert not replicator.run().ok
    a.fault = lambda operation, key: None
    assert kinds(replicator) == {"doc": ActionKind.UPLOAD}
    assert replicator.run().ok
    assert b.read_bytes("doc") == b"edited on a meanwhile"


def test_the_same_content_written_meanwhile_with_other_flags_keeps_them(
    state: SyncState,
) -> None:
    inner = MemoryStore()
    a, b = MemoryStore(), Faulty(inner)
    a.put("doc", b"v1")
    replicator = synced(a, b, state)
    a.put("doc", b"v2", flags=[Flag.PENDING])

    def another_writer(operation: str, key: str) -> None:
        if operation == "write" and not inner.get_flags(key):
            inner.put(key, b"v2", flags=[Flag.PROCESSED])  # just before the sync's write

    b.fault = another_writer
    replicator.run()
    b.fault = lambda operation, key: None
    assert replicator.run().ok
    assert a.get_flags("doc") == b.get_flags("doc") == {Flag.PROCESSED}  # b's win


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_push_and_pull_never_write_to_the_source(state: SyncState, direction: str) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("shared", b"base")
    Replicator(a, b, state).run()
    a.put("a-new", b"A")
    b.put("b-new", b"B")
    a.put("shared", b"a edit")
    b.put("shared", b"b edit")
    source, target = (a, b) if direction == "push" else (b, a)
    before = contents(source)
    replicator = Replicator(a, b, state, direction=direction)  # type: ignore[arg-type]
    assert replicator.run().ok
    assert contents(source) == before
    assert contents(target)["", "shared"] == before["", "shared"]
    new_key = "a-new" if direction == "push" else "b-new"
    assert contents(target)["", new_key] == before["", new_key]


def test_namespaces_are_separate_items_everywhere(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.namespace("alice").put("doc", b"alice's")
    a.namespace("bob").put("doc", b"bob's")
    a.put("doc", b"default")
    replicator = synced(a, b, state)
    assert b.namespace("alice").read_bytes("doc") == b"alice's"
    assert b.namespace("bob").read_bytes("doc") == b"bob's"
    assert replicator.status("doc", namespace="alice") is Status.SYNCED
    a.namespace("alice").delete("doc")
    assert kinds(replicator) == {"doc": ActionKind.DELETE_B}
    only_bob = Replicator(a, b, state, namespaces=["bob"])
    assert only_bob.plan() == []
    assert replicator.run().ok
    assert b.namespace("bob").exists("doc")
    assert not b.namespace("alice").exists("doc")


def test_flag_limits_a_run_to_items_carrying_it(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("flagged", b"1", flags=[Flag.PENDING])
    a.put("plain", b"2")
    report = Replicator(a, b, state, flag="pending").run()
    assert report.count(ActionKind.UPLOAD) == 1
    assert [entry.key for entry in b.scan()] == ["flagged"]


def test_a_flag_run_guards_deletes_within_its_scope(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    for index in range(20):
        a.put(f"other/{index}", b"x")
    for index in range(6):
        a.put(f"inbox/{index}", b"y", flags=[Flag.PENDING])
    synced(a, b, state)
    for index in range(6):
        a.delete(f"inbox/{index}")
    with pytest.raises(SyncAborted, match="delete 6 of 6"):
        Replicator(a, b, state, flag=Flag.PENDING).run()
    assert len(list(b.scan("inbox/"))) == 6


def test_plan_writes_nothing_to_either_store_or_the_state(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    a.put("x", b"1")
    b.put("y", b"2")
    replicator = Replicator(a, b, state)
    before = contents(a), contents(b)
    assert len(replicator.plan()) == 2
    assert (contents(a), contents(b)) == before
    assert list(replicator.items()) == []


def test_files_another_program_wrote_are_hashed_once_and_adopted(tmp_path: Path) -> None:
    from persisty_blobs.stores.directory import DirectoryStore

    for side in ("a", "b"):
        (tmp_path / side / "photos").mkdir(parents=True)
        (tmp_path / side / "photos" / "cat.jpg").write_bytes(b"the same cat")
    (tmp_path / "b" / "photos" / "dog.jpg").write_bytes(b"a dog")
    for path in tmp_path.glob("*/photos/*.jpg"):  # settled: their etags are trusted
        settled = path.stat().st_mtime_ns - 3600 * 10**9
        os.utime(path, ns=(settled, settled))
    state = SyncState(tmp_path / "state.db")
    with DirectoryStore(tmp_path / "a") as a_dir, DirectoryStore(tmp_path / "b") as b_dir:
        a, b = Faulty(a_dir), Faulty(b_dir)
        assert next(a.scan()).checksum is None
        replicator = Replicator(a, b, state)
        assert kinds(replicator) == {
            "photos/cat.jpg": ActionKind.ADOPT,
            "photos/dog.jpg": ActionKind.DOWNLOAD,
        }
        report = replicator.run()
        assert report.ok
        assert report.bytes == len(b"a dog")
        base = state.item("default", "", "photos/cat.jpg")
        assert base is not None
        assert base.checksum == "sha256:" + hashlib.sha256(b"the same cat").hexdigest()
        a.counts.reads.clear()
        b.counts.reads.clear()
        assert replicator.plan() == []
        assert a.counts.reads == b.counts.reads == {}


def test_a_namespace_gone_from_one_side_stops_the_run(state: SyncState) -> None:
    a, b = MemoryStore(), MemoryStore()
    for index in range(10):
        a.namespace("taxes").put(f"t{index}", b"t")
    for index in range(30):
        a.namespace("photos").put(f"p{index}", b"p")
    synced(a, b, state)
    for index in range(10):
        b.namespace("taxes").delete(f"t{index}")
    with pytest.raises(SyncAborted, match="namespace 'taxes'"):
        Replicator(a, b, state).run()
    assert len(list(a.namespace("taxes").scan())) == 10


def test_a_conflict_on_the_longest_key_keeps_both_under_a_fitted_name(state: SyncState) -> None:
    key = "/".join(["k" * 200] * 4 + ["photo-" + "x" * 210 + ".jpg"])
    assert len(key.encode()) == 1024
    a, b = MemoryStore(), MemoryStore()
    a.put(key, b"base")
    replicator = synced(a, b, state)
    a.put(key, b"a's")
    b.put(key, b"b's")
    assert replicator.run().ok
    kept = [entry.key for entry in a.scan() if entry.key != key]
    assert len(kept) == 1
    assert kept[0].endswith(".jpg" + kept[0].rpartition(".jpg")[2])
    assert ".conflict-a-" in kept[0]
    assert a.read_bytes(kept[0]) == b.read_bytes(kept[0]) == b"a's"


def test_a_resolution_outlives_a_failed_transfer(state: SyncState) -> None:
    a, remote = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    b = Faulty(remote)
    replicator = synced(a, b, state, conflict="manual")
    a.put("doc", b"a's")
    b.put("doc", b"b's")
    replicator.run()
    replicator.resolve("doc", "a")
    b.fault = lambda operation, key: TransientError("down") if operation == "write" else None
    assert not Replicator(a, b, state, conflict="manual", max_attempts=1).run().ok
    b.fault = lambda operation, key: None
    assert Replicator(a, b, state, conflict="manual").run().ok
    assert b.read_bytes("doc") == b"a's"


def test_a_failed_item_whose_sides_went_back_to_the_base_is_synced_again(
    state: SyncState,
) -> None:
    a, remote = MemoryStore(), MemoryStore()
    a.put("doc", b"base")
    b = Faulty(remote)
    replicator = synced(a, b, state, max_attempts=1)
    a.put("doc", b"edit")
    b.fault = lambda operation, key: TransientError("down") if operation == "write" else None
    assert not replicator.run().ok
    assert replicator.progress()[Status.FAILED_UPLOAD] == 1
    a.put("doc", b"base")  # the same etag as the base's on both sides: no transfer left
    b.fault = lambda operation, key: None
    assert replicator.run().ok
    assert replicator.progress()[Status.SYNCED] == 1
    assert b.counts.writes == {"doc": 1}  # the first sync's: nothing copied since


def test_a_file_the_plan_cannot_read_fails_alone(tmp_path: Path) -> None:
    from persisty_blobs import PermissionDenied
    from persisty_blobs.stores.directory import DirectoryStore

    for side in ("a", "b"):  # files another program wrote: the plan reads them to compare
        (tmp_path / side).mkdir()
        for key, data in (("both", (side * 5).encode()), ("readable", b"same")):
            (tmp_path / side / key).write_bytes(data)
    a = Faulty(DirectoryStore(tmp_path / "a"))
    a.fault = lambda op, key: PermissionDenied("denied") if key == "both" else None
    b = DirectoryStore(tmp_path / "b")
    report = Replicator(a, b, SyncState(tmp_path / "state.db")).run()
    assert [(key, kind) for _, key, kind, _ in report.failures] == [("both", ActionKind.UPLOAD)]
    assert report.done == {ActionKind.ADOPT: 1}
    assert b.read_bytes("both") == b"bbbbb"  # the readable side is never written


def test_content_that_no_longer_matches_its_checksum_is_never_copied(tmp_path: Path) -> None:
    from persisty_blobs.stores.directory import DirectoryStore

    state = SyncState(tmp_path / "state.db")
    with DirectoryStore(tmp_path / "a") as a:
        a.put("doc.txt", b"the original")
        path = tmp_path / "a" / "doc.txt"
        stat = path.stat()
        with open(path, "r+b") as file:  # rot in place: same size, same mtime
            file.write(b"THE")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        b = MemoryStore()
        report = Replicator(a, b, state, retry_delay=0.001).run()
        assert [(key, kind) for _, key, kind, _ in report.failures] == [
            ("doc.txt", ActionKind.UPLOAD)
        ]
        assert "IntegrityError" in report.failures[0][3]
        assert not b.exists("doc.txt")


def test_a_file_changed_again_within_its_clock_tick_after_a_sync_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a coarse file system clock (FAT, ext4 with small inodes) another program's rewrite
    of the same size within the second of the version synced keeps its etag (inode, size,
    mtime): the base marks such a recent version, and the next run checks its content."""
    from persisty_blobs.stores.directory import DirectoryStore

    path = tmp_path / "a" / "report.txt"
    path.parent.mkdir()
    path.write_bytes(b"version 1")
    state = SyncState(tmp_path / "state.db")
    with DirectoryStore(tmp_path / "a") as a_dir:
        a, b = Faulty(a_dir), MemoryStore()
        replicator = synced(a, b, state)
        tick = path.stat()
        path.write_bytes(b"version 2")
        os.utime(path, ns=(tick.st_atime_ns, tick.st_mtime_ns))  # as the coarse clock would
        assert kinds(replicator) == {"report.txt": ActionKind.UPLOAD}
        assert replicator.run().ok
        assert b.read_bytes("report.txt") == b"version 2"

        # Unchanged since: each run checks the content (no transfer) until the version has
        # settled, and then trusts its etag again.
        assert kinds(replicator) == {"report.txt": ActionKind.ADOPT}
        assert replicator.run().ok
        assert b.read_bytes("report.txt") == b"version 2"
        monkeypatch.setattr(diff_module, "SETTLE_SECONDS", 0.0)
        assert kinds(replicator) == {"report.txt": ActionKind.ADOPT}
        assert replicator.run().ok
        a.counts.reads.clear()
        assert replicator.plan() == []
        assert a.counts.reads == {}, "a settled version's etag is trusted again"


def test_a_settled_file_is_trusted_by_its_etag(tmp_path: Path) -> None:
    from persisty_blobs.stores.directory import DirectoryStore

    path = tmp_path / "a" / "old.txt"
    path.parent.mkdir()
    path.write_bytes(b"written long ago")
    settled = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(settled, settled))
    state = SyncState(tmp_path / "state.db")
    with DirectoryStore(tmp_path / "a") as a_dir:
        a = Faulty(a_dir)
        replicator = synced(a, MemoryStore(), state)
        a.counts.reads.clear()
        assert replicator.plan() == []
        assert a.counts.reads == {}
