"""AttachmentQueue: PowerSync's attachment scenarios and LEAP Soledad's states walk, each over
a local SqlCipherStore with a remote EncryptedStore over a directory store, and with a remote
HttpStore on a live uvicorn server."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs import (
    DataStore,
    InvalidArgumentType,
    InvalidMetadata,
    Keyring,
    PermissionDenied,
    TransientError,
)
from persisty_blobs.attachments import (
    Attachment,
    AttachmentFlags,
    AttachmentQueue,
    AttachmentState,
)
from persisty_blobs.stores import DirectoryStore, SqlCipherStore
from persisty_blobs.stores.http import HttpStore
from persisty_blobs.sync import BlobManager, SyncState
from persisty_blobs.testing._support import Workers, run_threads

from .http_support import served, token
from .sync_support import Faulty

RAW_KEY = bytes.fromhex("6f" * 32)
NS = "attachments"
State = AttachmentState


class Setup:
    """One test's stores: a SqlCipherStore here, a fault-injecting remote there."""

    def __init__(self, root: Path, inner: DataStore, keyring: Keyring | None) -> None:
        self.root, self.keyring = root, keyring
        self.remote = Faulty(inner)
        self.local = SqlCipherStore(root / "local.db", RAW_KEY, chunk_size=64 * 1024)
        self.manager = BlobManager(
            self.local, self.remote, keyring=keyring, state=SyncState(root / "state.db")
        )
        self.queues: list[AttachmentQueue] = []

    def queue(self, **options: Any) -> AttachmentQueue:
        options.setdefault("retry_delay", 0.0)
        queue = AttachmentQueue(self.manager, **options)
        self.queues.append(queue)
        return queue

    @property
    def peer(self) -> DataStore:
        """The remote namespace as another device sees it (decrypting, when encrypted)."""
        return self.manager.remote.namespace(NS)

    def fault(self, rule: Callable[[str, str], BaseException | None]) -> None:
        self.remote.fault = rule

    def close(self) -> None:
        for queue in self.queues:
            queue.close()
        self.manager.close()
        self.local.close()
        self.remote.close()


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("served")) as url:
        yield url


@pytest.fixture(params=["encrypted-directory", "http"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    if request.param == "http":
        inner: DataStore = HttpStore(request.getfixturevalue("http_server"), token=token())
        keyring = None
    else:
        inner, keyring = DirectoryStore(tmp_path / "remote"), Keyring.generate()
    built = Setup(tmp_path, inner, keyring)
    yield built
    built.close()


@contextlib.contextmanager
def paused(setup: Setup, queue: AttachmentQueue, operation: str, key: str) -> Iterator[None]:
    """Runs ``queue.sync_now()`` on a thread and yields while its ``operation`` on ``key``
    is held at the remote."""
    reached, release = threading.Event(), threading.Event()

    def hold(op: str, held: str) -> None:
        if (op, held) == (operation, key):
            reached.set()
            assert release.wait(20)

    setup.fault(lambda op, held: hold(op, held))
    workers = Workers()
    workers.start(queue.sync_now)
    try:
        assert reached.wait(20)
        yield
    finally:
        release.set()
        workers.join()


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_soledad_states_walk_none_local_synced(setup: Setup) -> None:
    queue = setup.queue()
    assert queue.attachment_state("photo") is AttachmentFlags.NONE
    assert queue.state("photo") is None
    saved = queue.save(b"a photo", media_type="image/jpeg", id="photo", metadata={"w": "640"})
    assert (saved.state, saved.size, saved.checksum) == (
        State.QUEUED_UPLOAD,
        7,
        digest(b"a photo"),
    )
    assert queue.attachment_state("photo") is AttachmentFlags.LOCAL
    assert queue.is_dirty("photo")
    queue.sync_now()
    assert queue.attachment_state("photo") is AttachmentFlags.SYNCED
    assert AttachmentFlags.SYNCED == AttachmentFlags.LOCAL | AttachmentFlags.REMOTE
    assert not queue.is_dirty("photo")
    assert queue.state("photo") is State.SYNCED
    item = setup.peer.get("photo")
    assert item is not None
    assert (item.content_type, dict(item.metadata)) == ("image/jpeg", {"w": "640"})
    assert setup.peer.read_bytes("photo") == b"a photo"
    if setup.keyring is not None:  # ciphertext on the remote
        assert b"a photo" not in setup.remote.namespace(NS).read_bytes("photo")


def test_download_flow_on_watch_and_open_downloads_now(setup: Setup) -> None:
    for index in range(3):
        setup.peer.put(f"pic-{index}", b"picture %d" % index, content_type="image/png")
    queue = setup.queue()
    queue.watch(["pic-0", "pic-1"])
    assert [a.state for a in queue.attachments()] == [State.QUEUED_DOWNLOAD] * 2
    assert queue.attachment_state("pic-0") is AttachmentFlags.NONE
    queue.sync_now()
    synced = queue.attachments(State.SYNCED)
    assert [(a.id, a.media_type, a.size) for a in synced] == [
        ("pic-0", "image/png", 9),
        ("pic-1", "image/png", 9),
    ]
    assert setup.local.namespace(NS).read_bytes("pic-1") == b"picture 1"
    reads = dict(setup.remote.counts.reads)
    with queue.open("pic-0") as reader:
        assert reader.read() == b"picture 0"
    assert setup.remote.counts.reads == reads  # read locally
    with queue.open("pic-2") as reader:  # never watched: downloaded now
        assert reader.read() == b"picture 2"
    assert queue.attachment_state("pic-2") is AttachmentFlags.SYNCED


def test_cache_limit_zero_evicts_archived_locally_never_remotely(setup: Setup) -> None:
    queue = setup.queue(cache_limit=0)
    queue.save(b"uploaded", media_type="text/plain", id="old")
    queue.sync_now()
    queue.save(b"never uploaded", media_type="text/plain", id="new")
    queue.watch([])
    assert queue.state("old") is State.ARCHIVED
    assert queue.state("new") is State.QUEUED_UPLOAD  # uploaded first, then archived
    queue.sync_now()
    assert queue.attachments() == []
    assert list(setup.local.namespace(NS).scan()) == []
    assert setup.peer.read_bytes("old") == b"uploaded"
    assert setup.peer.read_bytes("new") == b"never uploaded"
    deletes = [a for a in setup.manager.replicator([NS]).plan() if a.kind.is_delete]
    assert deletes == []  # an eviction is never read as a delete by BlobManager.sync
    with queue.open("new") as reader:
        assert reader.read() == b"never uploaded"


def test_archived_id_referenced_again_is_synced_without_a_transfer(setup: Setup) -> None:
    setup.peer.put("theirs", b"downloaded once")
    queue = setup.queue(cache_limit=5)
    queue.save(b"uploaded once", media_type="text/plain", id="mine")
    queue.watch(["mine", "theirs"])
    queue.sync_now()
    reads, writes = dict(setup.remote.counts.reads), dict(setup.remote.counts.writes)
    queue.watch([])
    queue.sync_now()
    assert {a.state for a in queue.attachments()} == {State.ARCHIVED}
    queue.watch(["mine", "theirs"])
    assert {a.state for a in queue.attachments()} == {State.SYNCED}
    queue.sync_now()
    assert (setup.remote.counts.reads, setup.remote.counts.writes) == (reads, writes)
    assert queue.attachment_state("theirs") is AttachmentFlags.SYNCED


def test_cache_evicts_the_longest_archived_first(setup: Setup) -> None:
    queue = setup.queue(cache_limit=2)
    for name in ("a", "b", "c", "d"):
        queue.save(name.encode(), media_type="text/plain", id=name)
    queue.sync_now()
    for kept in (["b", "c", "d"], ["c", "d"], ["d"], []):
        queue.watch(kept)
        time.sleep(0.002)  # archived at distinct times
    queue.sync_now()
    assert [a.id for a in queue.attachments()] == ["c", "d"]
    assert sorted(e.key for e in setup.local.namespace(NS).scan()) == ["c", "d"]


def test_error_handler_true_retries_false_fails_and_others_go_on(setup: Setup) -> None:
    refused = {"retry-me", "give-up"}
    setup.fault(
        lambda op, key: PermissionDenied("no") if op == "write" and key in refused else None
    )
    seen: list[tuple[str, str]] = []

    def on_error(attachment: Attachment, error: BaseException) -> bool:
        seen.append((attachment.id, type(error).__name__))
        return attachment.id == "retry-me"

    queue = setup.queue(on_error=on_error)
    for name in ("give-up", "retry-me", "fine"):
        queue.save(name.encode(), media_type="text/plain", id=name)
    queue.sync_now()
    assert sorted(seen) == [("give-up", "PermissionDenied"), ("retry-me", "PermissionDenied")]
    assert queue.state("fine") is State.SYNCED
    failed = queue.attachment("give-up")
    assert failed is not None
    assert failed.state is State.FAILED
    assert failed.last_error is not None
    assert "PermissionDenied" in failed.last_error
    assert queue.attachment_state("give-up") is AttachmentFlags.LOCAL  # kept locally
    assert queue.is_dirty("give-up")
    retried = queue.attachment("retry-me")
    assert retried is not None
    assert (retried.state, retried.attempts) == (State.QUEUED_UPLOAD, 1)
    refused.clear()
    queue.sync_now()
    assert queue.state("retry-me") is State.SYNCED
    assert queue.state("give-up") is State.FAILED


def test_default_handler_retries_transient_errors_and_fails_others(setup: Setup) -> None:
    errors = {"flaky": TransientError("503"), "refused": PermissionDenied("403")}
    setup.fault(lambda op, key: errors.get(key) if op == "write" else None)
    queue = setup.queue()
    for name in ("flaky", "refused"):
        queue.save(name.encode(), media_type="text/plain", id=name)
    queue.watch(["flaky", "refused", "not-uploaded-yet"])
    queue.sync_now()
    assert queue.state("refused") is State.FAILED
    assert queue.state("flaky") is State.QUEUED_UPLOAD
    assert queue.state("not-uploaded-yet") is State.QUEUED_DOWNLOAD  # its author may upload
    errors.clear()
    setup.peer.put("not-uploaded-yet", b"here now")
    queue.sync_now()
    assert queue.state("flaky") is State.SYNCED
    assert queue.state("not-uploaded-yet") is State.SYNCED


def test_item_states_are_visible_mid_pass(setup: Setup) -> None:
    queue = setup.queue(concurrency=1)
    for name in ("first", "second", "third"):
        queue.save(name.encode(), media_type="text/plain", id=name)
    with paused(setup, queue, "write", "second"):
        states = [queue.state(name) for name in ("first", "second", "third")]
        assert states == [State.SYNCED, State.QUEUED_UPLOAD, State.QUEUED_UPLOAD]
        assert queue.save(b"late", media_type="text/plain", id="late").state is (
            State.QUEUED_UPLOAD
        )  # a save never waits behind a transfer
    assert {a.state for a in queue.attachments()} == {State.SYNCED, State.QUEUED_UPLOAD}
    queue.sync_now()
    assert {a.state for a in queue.attachments()} == {State.SYNCED}


def test_stop_returns_at_once_with_20000_queued_and_transfers_in_flight(setup: Setup) -> None:
    ids = [f"id-{index:05}" for index in range(20_000)]
    for id in ids[:8]:
        setup.peer.put(id, id.encode() * 1000)
    gate, entered = threading.Event(), threading.Event()

    def slow(op: str, key: str) -> None:
        if op == "read":
            entered.set()
            gate.wait(20)

    setup.fault(lambda op, key: slow(op, key))
    queue = setup.queue(concurrency=4)
    queue.watch(ids)
    queue.start()
    try:
        assert entered.wait(20)
        started = time.monotonic()
        queue.stop()
        elapsed = time.monotonic() - started
    finally:
        gate.set()
        queue.close()
    assert elapsed < 0.5
    assert queue.state("id-00000") is State.QUEUED_DOWNLOAD  # abandoned, resumed later
    assert list(setup.local.namespace(NS).scan()) == []  # nothing partial is visible
    setup.fault(lambda op, key: None)
    queue.watch(ids[:8])
    queue.sync_now()
    assert [a.state for a in queue.attachments()] == [State.SYNCED] * 8
    assert setup.local.namespace(NS).read_bytes("id-00003") == b"id-00003" * 1000


def test_concurrent_saves_of_one_id_leave_one_whole_attachment(setup: Setup) -> None:
    queue = setup.queue()
    contents = [bytes([index]) * 200_000 for index in range(6)]
    run_threads(6, lambda index: queue.save(contents[index], media_type="text/plain", id="one"))
    local = setup.local.namespace(NS).read_bytes("one")
    assert local in contents
    record = queue.attachment("one")
    assert record is not None
    assert (record.checksum, record.state) == (digest(local), State.QUEUED_UPLOAD)
    queue.sync_now()
    assert setup.peer.read_bytes("one") == local
    assert queue.state("one") is State.SYNCED


def test_saves_racing_deletes_of_one_id_leave_it_whole_or_gone(setup: Setup) -> None:
    queue = setup.queue()
    queue.save(b"first", media_type="text/plain", id="doc")
    queue.sync_now()

    def act(index: int) -> None:
        if index % 2:
            queue.delete("doc")
        else:
            queue.save(bytes([index]) * 50_000, media_type="text/plain", id="doc")

    run_threads(8, act)
    local = setup.local.namespace(NS).get("doc")
    record = queue.attachment("doc")
    assert record is not None
    if local is None:
        assert record.state is State.QUEUED_DELETE
    else:
        assert (record.state, record.checksum) == (State.QUEUED_UPLOAD, local.checksum)
    queue.sync_now()
    remote = setup.peer.get("doc")
    if local is None:
        assert (remote, queue.attachment("doc")) == (None, None)
    else:
        assert remote is not None
        assert remote.checksum == local.checksum
        assert queue.state("doc") is State.SYNCED


def test_delete_removes_locally_at_once_and_remotely_in_the_pass(setup: Setup) -> None:
    queue = setup.queue()
    queue.save(b"bye", media_type="text/plain", id="gone")
    queue.sync_now()
    queue.delete("gone")
    assert queue.state("gone") is State.QUEUED_DELETE
    assert queue.attachment_state("gone") is AttachmentFlags.REMOTE
    assert not setup.local.namespace(NS).exists("gone")
    queue.sync_now()
    assert queue.state("gone") is None
    assert setup.peer.get("gone") is None
    setup.peer.put("shared", b"another device's version")
    queue.save(b"never uploaded", media_type="text/plain", id="shared")
    queue.delete("shared")
    queue.sync_now()
    assert queue.state("shared") is None
    assert setup.peer.read_bytes("shared") == b"another device's version"  # not ours to delete


def test_a_local_blob_without_a_record_is_adopted(setup: Setup) -> None:
    # A save that died between writing the content and recording it.
    setup.local.namespace(NS).put("orphan", b"saved before a crash", content_type="text/plain")
    queue = setup.queue()
    queue.sync_now()
    assert queue.state("orphan") is State.SYNCED
    assert setup.peer.read_bytes("orphan") == b"saved before a crash"


def synced_doc(setup: Setup) -> AttachmentQueue:
    """A queue whose attachment "doc" (version 1) is uploaded."""
    queue = setup.queue()
    queue.save(b"version 1", media_type="text/plain", id="doc")
    queue.sync_now()
    return queue


def test_a_resave_that_died_before_its_record_is_uploaded(setup: Setup) -> None:
    synced_doc(setup)
    # A save of version 2 that died between writing the content and recording it.
    setup.local.namespace(NS).put("doc", b"version 2", content_type="text/plain")
    restarted = setup.queue()
    restarted.sync_now()
    assert restarted.state("doc") is State.SYNCED
    assert setup.peer.read_bytes("doc") == b"version 2"
    record = restarted.attachment("doc")
    assert record is not None
    assert record.checksum == digest(b"version 2")


def test_a_save_after_a_delete_outlives_the_pass_that_finishes_the_delete(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = setup.queue()
    queue.save(b"old", media_type="text/plain", id="doc")
    queue.sync_now()
    queue.delete("doc")
    local = queue.local

    class PassAfterTheWrite:
        """The local store, where a pass runs just after a save's write, before its record."""

        def __getattr__(self, name: str) -> Any:
            return getattr(local, name)

        def put(self, *args: Any, **kwargs: Any) -> Any:
            written = local.put(*args, **kwargs)
            queue.sync_now()  # finishes the delete queued before this save
            return written

    monkeypatch.setattr(queue, "local", PassAfterTheWrite())
    queue.save(b"new", media_type="text/plain", id="doc")
    monkeypatch.undo()
    assert setup.local.namespace(NS).read_bytes("doc") == b"new"
    queue.sync_now()
    assert queue.state("doc") is State.SYNCED
    assert setup.peer.read_bytes("doc") == b"new"


def test_a_save_after_a_delete_that_died_after_the_remote_delete_is_uploaded(
    setup: Setup,
) -> None:
    queue = synced_doc(setup)
    queue.delete("doc")
    setup.peer.delete("doc")  # the pass deleted it remotely, then died before recording it
    restarted = setup.queue()
    restarted.save(b"version 2", media_type="text/plain", id="doc")
    restarted.sync_now()
    assert restarted.state("doc") is State.SYNCED
    assert setup.peer.read_bytes("doc") == b"version 2"


def test_a_save_over_an_upload_that_died_before_its_record_replaces_it(setup: Setup) -> None:
    queue = synced_doc(setup)
    queue.save(b"version 2", media_type="text/plain", id="doc")
    setup.peer.put("doc", b"version 2")  # a pass sent it, then died before recording it
    restarted = setup.queue()
    restarted.save(b"version 3", media_type="text/plain", id="doc")
    restarted.save(b"version 3b", media_type="text/plain", id="doc")  # before any pass
    restarted.sync_now()
    assert restarted.state("doc") is State.SYNCED
    assert setup.peer.read_bytes("doc") == b"version 3b"
    restarted.save(b"version 4", media_type="text/plain", id="doc")
    setup.peer.put("doc", b"version 4")
    restarted.delete("doc")
    restarted.sync_now()
    assert (restarted.state("doc"), setup.peer.get("doc")) == (None, None)


def test_records_of_an_earlier_release_gain_the_new_column(tmp_path: Path) -> None:
    manager = BlobManager(
        DirectoryStore(tmp_path / "here"),
        DirectoryStore(tmp_path / "there"),
        state=SyncState(tmp_path / "state.db", table_prefix="2024s"),  # quoted in SQL
    )
    AttachmentQueue(manager).save(b"kept", media_type="text/plain", id="doc")
    with manager.state.engine.begin() as connection:
        connection.exec_driver_sql('ALTER TABLE "2024s_attachments" DROP unrecorded_checksums')
    queue = AttachmentQueue(manager)
    queue.sync_now()
    assert queue.state("doc") is State.SYNCED
    assert manager.remote.namespace(NS).read_bytes("doc") == b"kept"
    manager.close()


def test_one_watch_can_archive_one_attachment_and_queue_another(setup: Setup) -> None:
    queue = setup.queue()
    queue.save(b"photo", media_type="image/jpeg", id="photo")
    queue.sync_now()
    setup.peer.put("their.pdf", b"%PDF")
    queue.watch(["their.pdf"])
    assert (queue.state("photo"), queue.state("their.pdf")) == (
        State.ARCHIVED,
        State.QUEUED_DOWNLOAD,
    )
    queue.sync_now()
    assert setup.local.namespace(NS).read_bytes("their.pdf") == b"%PDF"


def test_bad_arguments_are_refused_before_anything_is_written(setup: Setup) -> None:
    queue = setup.queue()
    with pytest.raises(InvalidMetadata):
        queue.save(b"x", media_type="not a type", id="x")
    with pytest.raises(InvalidArgumentType):
        queue.watch("x")
    with pytest.raises(InvalidArgumentType):
        queue.save("text", media_type="text/plain", id="x")
    assert queue.attachments() == []
    assert list(setup.local.namespace(NS).scan()) == []


@pytest.mark.parametrize("change", ["unwatched", "deleted"])
def test_a_download_no_longer_wanted_midway_leaves_nothing_local(setup: Setup, change: str) -> None:
    setup.peer.put("late", b"arrives after it is dropped")
    queue = setup.queue()
    queue.watch(["late"])
    with paused(setup, queue, "read", "late"):
        if change == "unwatched":
            queue.watch([])
        else:
            queue.delete("late")
    queue.sync_now()
    assert queue.attachments() == []
    assert list(setup.local.namespace(NS).scan()) == []
