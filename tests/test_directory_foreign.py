"""DirectoryStore and files another program wrote: ``open`` reads a settled one without hashing
it first (a sync's copy then reads it once: the target hashes what it receives), a change made
to it while it is read fails the read, one changed moments ago (which a coarse file system
clock could hide) is hashed first and checked against a second read, and a checksum ``get``
learns is remembered without losing flags set meanwhile."""

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from persisty_blobs import Flag, IntegrityError, PreconditionFailed
from persisty_blobs.stores import DirectoryStore, MemoryStore
from persisty_blobs.stores.directory import _adoption as adoption_module
from persisty_blobs.stores.directory import _fileio as fileio_module
from persisty_blobs.streams import feed
from persisty_blobs.sync import Replicator, SyncState

CONTENT = os.urandom(300 * 1024)  # large enough for its checksum to be remembered
CHECKSUM = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


HOUR_NS = 3600 * 10**9


def written_long_ago(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    stamp = path.stat().st_mtime_ns - HOUR_NS
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "store" / "video").mkdir(parents=True)
    written_long_ago(tmp_path / "store" / "video" / "clip.bin", CONTENT)
    return tmp_path / "store"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The store's own hashes of whole files (not those made while a reader streams)."""
    made: list[int] = []
    real = fileio_module.sha256_of_fd

    def counted(fd: int, size: int) -> str:
        made.append(size)
        return real(fd, size)

    monkeypatch.setattr(adoption_module, "sha256_of_fd", counted)
    return made


def test_reads_of_another_programs_file_hash_nothing_and_get_remembers_its_hash(
    root: Path, hashes: list[int]
) -> None:
    store = DirectoryStore(root)
    with store.open("video/clip.bin") as reader:
        assert reader.item.checksum is None, "not known before the content is read"
        assert reader.read(1000) == CONTENT[:1000]
        assert reader.read() == CONTENT[1000:]
    assert store.read_bytes("video/clip.bin", 10, 20) == CONTENT[10:20]
    with store.open("video/clip.bin") as reader:
        reader.read(100)
        reader.seek(200_000)
        assert reader.read() == CONTENT[200_000:]
    assert hashes == []
    for _ in range(2):
        item = store.get("video/clip.bin")
        assert item is not None
        assert item.checksum == CHECKSUM
    assert hashes == [len(CONTENT)], "hashed once by get, then remembered"
    with store.open("video/clip.bin") as reader:
        assert reader.item.checksum == CHECKSUM


@pytest.mark.parametrize("edit", ["rewritten in place", "truncated", "appended to"])
@pytest.mark.parametrize("start", [0, 1000])
def test_a_file_changed_while_it_is_read_fails_the_read(root: Path, edit: str, start: int) -> None:
    store = DirectoryStore(root)
    path = root / "video" / "clip.bin"
    with store.open("video/clip.bin", start) as reader:
        assert reader.read(1000) == CONTENT[start : start + 1000]
        with open(path, "r+b") as file:
            if edit == "rewritten in place":
                file.write(os.urandom(len(CONTENT)))
            elif edit == "truncated":
                file.truncate(len(CONTENT) // 2)
            else:
                file.seek(0, os.SEEK_END)
                file.write(b"more")
        stamp = path.stat().st_mtime_ns + 10_000_000  # a change within the clock's tick
        os.utime(path, ns=(stamp, stamp))
        with pytest.raises(PreconditionFailed, match="changed by another program"):
            reader.read()
    now = path.read_bytes()
    item = store.get("video/clip.bin")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(now).hexdigest()


def test_a_whole_read_then_a_change_is_no_error(root: Path) -> None:
    store = DirectoryStore(root)
    with store.open("video/clip.bin") as reader:
        assert reader.read() == CONTENT
        (root / "video" / "clip.bin").write_bytes(b"changed after the read")
        assert reader.read() == b"", "the version read was whole"


def test_a_file_changed_moments_ago_is_hashed_first_and_its_hash_not_remembered(
    root: Path, hashes: list[int]
) -> None:
    """A same-size change within one tick of a coarse file system clock keeps size and mtime:
    only the hash taken first, checked against what the copy reads, can tell."""
    path = root / "video" / "clip.bin"
    path.write_bytes(CONTENT)  # now: not settled
    store = DirectoryStore(root)
    target = MemoryStore()
    with store.open("video/clip.bin") as reader:
        assert reader.item.checksum == CHECKSUM
        before = path.stat()
        with open(path, "r+b") as file:
            file.write(b"X" * 1000)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as a coarse clock would
        with pytest.raises(IntegrityError):
            target.put("clip.bin", reader, checksum=reader.item.checksum)
    assert target.get("clip.bin") is None
    for _ in range(2):
        assert store.get("video/clip.bin") is not None
    assert len(hashes) == 3, "hashed on each call: a hash of an unsettled file is not kept"


def test_flags_set_while_get_hashes_the_file_are_kept(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(root)
    real = fileio_module.sha256_of_fd

    def flagged_meanwhile(fd: int, size: int) -> str:
        store.set_flags("video/clip.bin", [Flag.PENDING])
        return real(fd, size)

    monkeypatch.setattr(adoption_module, "sha256_of_fd", flagged_meanwhile)
    item = store.get("video/clip.bin")
    assert item is not None
    assert item.checksum == CHECKSUM
    monkeypatch.undo()
    item = store.get("video/clip.bin")
    assert item is not None
    assert item.flags == frozenset({Flag.PENDING}), "the hash remembered did not drop them"
    assert item.checksum == CHECKSUM


def test_a_sync_reads_another_programs_file_once(
    root: Path, tmp_path: Path, hashes: list[int]
) -> None:
    target = MemoryStore()
    with DirectoryStore(root) as local:
        replicator = Replicator(local, target, SyncState(tmp_path / "state.db"))
        report = replicator.run()
        assert report.ok
        assert hashes == [], "copied as it was read, checked by the target's own hash"
        copied = target.get("video/clip.bin")
        assert copied is not None
        assert copied.checksum == CHECKSUM
        base = replicator.state.item("default", "", "video/clip.bin")
        assert base is not None
        assert base.checksum == CHECKSUM
        assert replicator.plan() == []


def test_a_sync_to_s3_hashes_first_to_send_one_request(
    root: Path, tmp_path: Path, hashes: list[int], s3_endpoint: str, s3_bucket: str
) -> None:
    from persisty_blobs.stores.s3 import S3Store
    from persisty_blobs.testing.moto import moto_client

    large = os.urandom(6 * 1024 * 1024)
    written_long_ago(root / "video" / "clip.bin", large)
    client = moto_client(s3_endpoint)
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    mib = 1024 * 1024
    with (
        DirectoryStore(root) as local,
        S3Store(s3_bucket, client=client, multipart_threshold=5 * mib, part_size=5 * mib) as s3,
    ):
        assert Replicator(local, s3, SyncState(tmp_path / "state.db")).run().ok
        assert hashes == [len(large)]
        # The precondition (if_none_match) travels with the put: no HeadObject before it.
        assert set(calls) == {"ListObjectsV2", "PutObject"}, Counter(calls)
        assert calls.count("PutObject") == 1
        assert s3.read_bytes("video/clip.bin") == large


def test_a_download_by_the_blob_manager_records_the_checksum(root: Path, tmp_path: Path) -> None:
    from persisty_blobs.sync import BlobManager

    small = b"a file another program wrote"
    written_long_ago(root / "note.txt", small)
    with DirectoryStore(root) as remote:
        manager = BlobManager(MemoryStore(), remote, state=SyncState(tmp_path / "state.db"))
        reader = manager.get("note.txt")
        assert reader is not None
        with reader:
            assert reader.read() == small
        base = manager.state.item(manager.pair, "", "note.txt")
        assert base is not None
        assert base.checksum == "sha256:" + hashlib.sha256(small).hexdigest()


def test_a_hash_that_outlasts_the_files_settling_is_not_remembered(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a file is settled is decided before its hash starts: one that settles while a
    long hash runs may have been changed within its clock tick behind the hash."""
    path = root / "video" / "clip.bin"
    changed = path.stat().st_mtime_ns
    clock = {"now": changed + 10**9}  # one second after its last change: not settled
    settled_by_clock = staticmethod(lambda stat: clock["now"] - stat.st_mtime_ns >= 3 * 10**9)
    monkeypatch.setattr(adoption_module.Adopter, "settled", settled_by_clock)
    real = fileio_module.sha256_of_fd

    def long_hash(fd: int, size: int) -> str:
        clock["now"] = changed + 60 * 10**9  # a minute later, when the hash ends
        return real(fd, size)

    monkeypatch.setattr(adoption_module, "sha256_of_fd", long_hash)
    store = DirectoryStore(root)
    assert store.get("video/clip.bin") is not None
    monkeypatch.setattr(adoption_module, "sha256_of_fd", _no_hash)
    with pytest.raises(AssertionError, match="hashed again"):
        store.get("video/clip.bin")


def _no_hash(fd: int, size: int) -> str:
    raise AssertionError("hashed again")


def test_a_copy_within_the_store_checks_a_source_changed_while_it_is_copied(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "video" / "clip.bin"
    path.write_bytes(CONTENT)  # changed moments ago: hashed when opened
    real_feed = feed

    def rewritten_meanwhile(writer: Any, data: Any) -> None:
        before = path.stat()
        with open(path, "r+b") as file:
            file.write(b"X" * 1000)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as a coarse clock would
        real_feed(writer, data)

    monkeypatch.setattr("persisty_blobs.store.feed", rewritten_meanwhile)
    store = DirectoryStore(root)
    with pytest.raises(IntegrityError):
        store.copy("video/clip.bin", "video/copy.bin")
    assert store.get("video/copy.bin") is None
