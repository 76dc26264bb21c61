"""BlobManager: LEAP Soledad's client scenarios, correct where Soledad is not; and encrypted
replication through an EncryptedStore over S3."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from persisty_blobs import EncryptedStore, Flag, Keyring, PreconditionFailed, TransientError
from persisty_blobs.stores.memory import MemoryStore
from persisty_blobs.sync import (
    BlobManager,
    Priority,
    Replicator,
    Status,
    SyncAborted,
    SyncState,
)

from .sync_support import Faulty, contents

MARKER = b"PLAINTEXT-MARKER-4f1d"


@pytest.fixture
def manager(tmp_path: Path) -> BlobManager:
    return BlobManager(
        MemoryStore(),
        MemoryStore(),
        keyring=Keyring.generate(),
        state=SyncState(tmp_path / "state.db"),
        retry_delay=0.001,
    )


def test_put_queues_uploads_listed_by_priority_and_sync_sends_them(manager: BlobManager) -> None:
    manager.put("low", b"1", priority="low")
    manager.put("urgent", b"2", priority=Priority.URGENT)
    manager.put("medium", b"3")
    manager.put("high", b"4", priority=3)
    manager.put("private", b"5", local_only=True)
    pending = manager.local_list(status=Status.PENDING_UPLOAD)
    assert pending == ["urgent", "high", "medium", "low"]
    assert manager.local_list(status=Status.LOCAL_ONLY) == ["private"]
    assert manager.sync().ok
    assert sorted(manager.remote_list()) == ["high", "low", "medium", "urgent"]
    assert manager.count() == 4
    assert manager.sync_progress()["SYNCED"] == 4
    assert manager.sync_progress()["LOCAL_ONLY"] == 1


def test_refresh_keeps_priorities_of_pending_downloads(tmp_path: Path) -> None:
    down = threading.Event()
    # Listed, but not read: a download fails, the sync goes on.
    remote = Faulty(
        fault=lambda op, key: TransientError("x") if down.is_set() and op == "read" else None
    )
    manager = BlobManager(
        MemoryStore(),
        remote,
        keyring=Keyring.generate(),
        state=SyncState(tmp_path / "state.db"),
        retry_delay=0.001,
        max_attempts=1,
    )
    for key in ("a", "b", "c"):
        manager.remote.put(key, b"remote " + key.encode())
    manager.set_priority("b", "urgent")
    down.set()
    manager.sync()
    assert manager.state.item(manager.pair, "", "b").priority is Priority.URGENT  # type: ignore[union-attr]
    assert manager.local_list(status=Status.FAILED_DOWNLOAD)[0] == "b"
    down.clear()
    assert manager.sync().ok
    assert manager.get("b").read() == b"remote b"  # type: ignore[union-attr]


def test_get_downloads_now_when_missing_locally(manager: BlobManager) -> None:
    manager.remote.put("doc", b"from the server")
    reader = manager.get("doc")
    assert reader is not None
    assert reader.read() == b"from the server"
    assert manager.local.read_bytes("doc") == b"from the server"
    assert manager.get("missing") is None
    assert manager.sync().ok
    assert manager.sync_progress()["SYNCED"] == 1


def with_remote_that_goes_down(tmp_path: Path) -> tuple[BlobManager, Faulty, threading.Event]:
    """A manager whose remote fails every call while the event is set."""
    down = threading.Event()
    remote = Faulty(fault=lambda op, key: TransientError("down") if down.is_set() else None)
    manager = BlobManager(
        MemoryStore(), remote, state=SyncState(tmp_path / "s.db"), retry_delay=0.01
    )
    return manager, remote, down


def test_delete_while_the_remote_is_down_is_carried_out_by_a_later_sync(tmp_path: Path) -> None:
    manager, remote, down = with_remote_that_goes_down(tmp_path)
    manager.put("doc", b"x")
    assert manager.sync().ok
    down.set()
    manager.delete("doc")
    assert manager.local_list(status=Status.PENDING_DELETE) == ["doc"]
    down.clear()
    assert remote.exists("doc")
    assert manager.sync().ok
    assert not remote.exists("doc")
    assert manager.sync_progress()["PENDING_DELETE"] == 0


def test_a_delete_of_an_item_another_client_changed_deletes_nothing(tmp_path: Path) -> None:
    local, remote = MemoryStore(), MemoryStore()
    manager = BlobManager(local, remote, state=SyncState(tmp_path / "s.db"))
    manager.put("doc", b"mine")
    assert manager.sync().ok
    remote.put("doc", b"another client's edit")
    with pytest.raises(PreconditionFailed):
        manager.delete("doc")
    assert local.read_bytes("doc") == b"mine"  # not half done
    assert remote.read_bytes("doc") == b"another client's edit"
    assert manager.sync().ok  # the edit comes here; the caller decides again
    assert local.read_bytes("doc") == b"another client's edit"
    manager.delete("doc")
    assert not local.exists("doc")
    assert not remote.exists("doc")


def test_a_delete_of_an_item_another_client_deleted_is_done(tmp_path: Path) -> None:
    local, remote = MemoryStore(), MemoryStore()
    manager = BlobManager(local, remote, state=SyncState(tmp_path / "s.db"))
    manager.put("doc", b"mine")
    assert manager.sync().ok
    remote.delete("doc")  # another client's delete
    manager.delete("doc")
    assert not local.exists("doc")
    assert manager.sync().ok
    assert manager.count() == 0


def test_deletes_asked_for_are_not_stopped_by_the_guard_after_a_run_held_them(
    tmp_path: Path,
) -> None:
    manager, remote, down = with_remote_that_goes_down(tmp_path)
    for index in range(4):
        manager.put(f"doc{index}", b"x")
    assert manager.sync().ok
    remote.fault = lambda op, key: TransientError("x") if down.is_set() and op != "list" else None
    down.set()
    for index in range(3):  # 3 of 4: over the guard's half, but asked for
        manager.delete(f"doc{index}")
    manager.put("new", b"n")
    assert not manager.sync().ok  # the upload fails: the queued deletes are held back
    down.clear()
    assert manager.sync().ok
    assert sorted(entry.key for entry in remote.scan()) == ["doc3", "new"]


def test_an_item_downloaded_moments_after_it_was_written_can_be_deleted(tmp_path: Path) -> None:
    local, remote = MemoryStore(), MemoryStore()
    manager = BlobManager(local, remote, state=SyncState(tmp_path / "s.db"))
    remote.put("photo.jpg", b"another device's upload, just now")
    reader = manager.get("photo.jpg")
    assert reader is not None
    reader.close()
    manager.delete("photo.jpg")
    assert not local.exists("photo.jpg")
    assert not remote.exists("photo.jpg")
    assert manager.sync().ok


def test_statuses_count_only_queued_items(tmp_path: Path) -> None:
    manager = BlobManager(MemoryStore(), MemoryStore(), state=SyncState(tmp_path / "s.db"))
    manager.set_priority("report.pdf", "urgent")  # before the file exists anywhere
    replicator = manager.replicator()
    assert replicator.status("report.pdf") is None
    assert sum(manager.sync_progress().values()) == 0
    manager.local.put("report.pdf", b"%PDF")
    manager.local.put("notes.txt", b"n")
    assert manager.local_list() == ["report.pdf", "notes.txt"]  # the priority is kept
    assert manager.sync().ok
    assert replicator.status("report.pdf") is Status.SYNCED
    assert manager.sync_progress()["SYNCED"] == 2


def test_flags_of_an_item_only_the_remote_holds_wait_for_the_remote(tmp_path: Path) -> None:
    manager, remote, down = with_remote_that_goes_down(tmp_path)
    remote.put("doc", b"x")
    down.set()
    with pytest.raises(TransientError):
        manager.set_flags("doc", [Flag.PROCESSED])
    down.clear()
    manager.set_flags("doc", [Flag.PROCESSED])
    assert remote.get_flags("doc") == {Flag.PROCESSED}


def test_server_side_deletes_propagate(manager: BlobManager) -> None:
    manager.put("doc", b"x")
    manager.put("keep", b"y")
    assert manager.sync().ok
    manager.remote.delete("doc")
    assert manager.sync().ok
    assert not manager.local.exists("doc")
    assert manager.local.exists("keep")


def test_flags_filter_the_remote_list(manager: BlobManager) -> None:
    for key in ("a", "b", "c"):
        manager.put(key, b"x")
    assert manager.sync().ok
    manager.set_flags("b", [Flag.PROCESSING])
    assert manager.remote_list(filter_flag=Flag.PROCESSING) == ["b"]
    assert manager.get_flags("b") == {Flag.PROCESSING}
    assert manager.sync().ok
    assert manager.local.get_flags("b") == {Flag.PROCESSING}


def test_namespaces_and_count(manager: BlobManager) -> None:
    manager.put("x", b"1", namespace="alice")
    manager.put("x", b"2", namespace="bob")
    manager.put("y", b"3", namespace="bob")
    assert manager.sync().ok
    assert manager.count(namespace="bob") == 2
    assert manager.remote_list(namespace="alice") == ["x"]
    assert manager.get("x", namespace="bob").read() == b"2"  # type: ignore[union-attr]


def test_a_tampered_blob_fails_after_three_tries_and_the_rest_sync(tmp_path: Path) -> None:
    raw = MemoryStore()
    keyring = Keyring.generate()
    writer = BlobManager(MemoryStore(), raw, keyring=keyring, state=SyncState(tmp_path / "w.db"))
    for key in ("a", "b", "c"):
        writer.put(key, MARKER + key.encode() * 100)
    assert writer.sync().ok
    item = raw.get("b")
    assert item is not None
    tampered = bytearray(raw.read_bytes("b"))
    tampered[-20] ^= 1
    raw.put("b", bytes(tampered), metadata=item.metadata)
    counting = Faulty(raw)
    reader = BlobManager(
        MemoryStore(),
        counting,
        keyring=keyring,
        state=SyncState(tmp_path / "r.db"),
        retry_delay=0.001,
    )
    report = reader.sync()
    assert [key for _, key, _, _ in report.failures] == ["b"]
    assert counting.counts.reads["b"] == 3
    assert reader.local_list(status=Status.FAILED_DOWNLOAD) == ["b"]
    assert sorted(entry.key for entry in reader.local.scan()) == ["a", "c"]


def test_encrypted_replication_over_s3(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    from persisty_blobs.stores.s3 import S3Store
    from persisty_blobs.testing.moto import moto_client

    keyring = Keyring.generate()
    bucket = S3Store(s3_bucket, client=moto_client(s3_endpoint))
    laptop, phone = MemoryStore(), MemoryStore()
    laptop.put("notes/today.txt", MARKER + b" laptop", metadata={"title": MARKER.decode()})
    phone.namespace("photos").put("cat.jpg", MARKER + b" phone")
    to_laptop = Replicator(laptop, EncryptedStore(bucket, keyring), SyncState(tmp_path / "l.db"))
    to_phone = Replicator(phone, EncryptedStore(bucket, keyring), SyncState(tmp_path / "p.db"))
    for replicator in (to_laptop, to_phone, to_laptop):
        assert replicator.run().ok
    assert contents(laptop) == contents(phone)
    assert len(contents(laptop)) == 2
    for namespace in bucket.namespaces():
        for item in bucket.namespace(namespace).list():
            assert MARKER not in bucket.namespace(namespace).read_bytes(item.key)
            assert not any(MARKER.decode() in value for value in item.metadata.values())
    assert to_laptop.plan() == []
    assert to_phone.plan() == []


def test_a_first_sync_to_s3_puts_and_an_unchanged_one_only_lists(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    from persisty_blobs.stores.s3 import S3Store
    from persisty_blobs.testing.moto import moto_client

    client = moto_client(s3_endpoint)
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    local = MemoryStore()
    for index in range(30):
        local.namespace("photos" if index % 3 else "").put(f"item-{index}", b"x" * index)
    with S3Store(s3_bucket, client=client) as bucket:
        replicator = Replicator(
            local, EncryptedStore(bucket, Keyring.generate()), SyncState(tmp_path / "s.db")
        )
        assert replicator.run().ok
        # One conditional PutObject per small item, no HEAD before it.
        assert set(calls) == {"ListObjectsV2", "PutObject"}, Counter(calls)
        assert calls.count("PutObject") == 30
        calls.clear()
        report = replicator.run()
    assert report.ok
    assert report.done == {}
    assert calls
    assert set(calls) == {"ListObjectsV2"}, calls


def test_deleting_a_key_never_synced_from_here_leaves_the_remote_alone(tmp_path: Path) -> None:
    remote = MemoryStore()
    bob = BlobManager(MemoryStore(), remote, state=SyncState(tmp_path / "bob.db"))
    bob.put("report.txt", b"bob's report")
    assert bob.sync().ok
    alice = BlobManager(MemoryStore(), remote, state=SyncState(tmp_path / "alice.db"))
    alice.put("report.txt", b"alice's draft", local_only=True)
    alice.delete("report.txt")
    assert remote.read_bytes("report.txt") == b"bob's report"


def test_an_unreadable_remote_blob_fails_alone(tmp_path: Path) -> None:
    raw, keyring = MemoryStore(), Keyring.generate()
    remote = EncryptedStore(raw, keyring)
    remote.put("same-size", b"remote!")
    item = raw.get("same-size")
    assert item is not None
    damaged = {name: value[:-4] + "AAAA" for name, value in item.metadata.items()}
    raw.put("same-size", raw.read_bytes("same-size"), metadata=damaged)
    local = MemoryStore()
    local.put("same-size", b"local!!")
    local.put("new", b"new on a")
    report = Replicator(local, remote, SyncState(tmp_path / "s.db"), retry_delay=0.001).run()
    assert [key for _, key, _, _ in report.failures] == ["same-size"]
    assert remote.read_bytes("new") == b"new on a"
    assert local.read_bytes("same-size") == b"local!!"


def test_a_state_kept_for_two_other_stores_is_refused(tmp_path: Path) -> None:
    state = SyncState(tmp_path / "s.db")
    a, b = MemoryStore(), MemoryStore()
    a.put("x", b"1")
    assert Replicator(a, b, state, pair="laptop").run().ok
    elsewhere = Faulty(MemoryStore())
    with pytest.raises(SyncAborted, match="laptop"):
        Replicator(a, elsewhere, state, pair="laptop").run()
    assert a.exists("x")
