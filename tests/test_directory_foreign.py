"""DirectoryStore and files another program wrote: ``open`` reads such a file without hashing
it first (a sync's copy then reads it once: the target hashes what it receives), a change made
to it while it is read fails the read, and a checksum ``get`` learns is remembered without
losing flags set meanwhile."""

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest

from persisty_blobs import Flag, PreconditionFailed
from persisty_blobs.stores import DirectoryStore, MemoryStore
from persisty_blobs.stores.directory import _adoption as adoption_module
from persisty_blobs.stores.directory import _fileio as fileio_module
from persisty_blobs.sync import Replicator, SyncState

CONTENT = os.urandom(300 * 1024)  # large enough for its checksum to be remembered
CHECKSUM = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "store" / "video").mkdir(parents=True)
    (tmp_path / "store" / "video" / "clip.bin").write_bytes(CONTENT)
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
def test_a_file_changed_while_it_is_read_fails_the_read(root: Path, edit: str) -> None:
    store = DirectoryStore(root)
    path = root / "video" / "clip.bin"
    with store.open("video/clip.bin") as reader:
        assert reader.read(1000) == CONTENT[:1000]
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
    (root / "video" / "clip.bin").write_bytes(large)
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
