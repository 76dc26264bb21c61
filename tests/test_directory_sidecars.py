"""DirectoryStore's sidecars: in a file's own extended attribute where the file system has
them, in a sidecar file under ``.persisty-blobs/meta/`` where it has none or the attribute has
no room, and never trusted for more than a put could have written."""

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs import Flag
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores.directory import _sidecars as sidecars_module
from persisty_blobs.testing import StoreConformance

ATTRIBUTE = "user.persisty-blobs"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def without_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a platform without extended attributes (macOS, Windows): sidecar files only."""
    monkeypatch.setattr(sidecars_module, "_PLATFORM_HAS_ATTRIBUTES", False)


class TestDirectoryStoreWithSidecarFilesConformance(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path, without_attributes: None) -> Iterator[DirectoryStore]:
        with DirectoryStore(tmp_path / "store") as store:
            yield store


def sidecar_files(root: Path) -> list[Path]:
    return [path for path in (root / ".persisty-blobs" / "meta").rglob("*") if path.is_file()]


def attribute(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, ATTRIBUTE)
    except OSError:
        return None


def test_a_written_file_keeps_its_sidecar_in_its_own_attribute(root: Path) -> None:
    store = DirectoryStore(root)
    plain = store.put("plain.bin", b"content")
    raw = attribute(root / "plain.bin")
    assert raw is not None
    # Small enough for the inode itself: no block of its own, and one read per listed file.
    assert len(raw) <= 64
    described = store.put("doc.txt", b"hello", content_type="text/x-own", metadata={"a": "b"})
    assert sidecar_files(root) == []
    store.set_flags("doc.txt", {Flag.PENDING, Flag.FAILED})
    assert sidecar_files(root) == []
    item = store.get("doc.txt")
    assert item is not None
    assert (item.content_type, item.metadata) == ("text/x-own", {"a": "b"})
    assert item.flags == {Flag.PENDING, Flag.FAILED}
    assert item.checksum == described.checksum == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.get("plain.bin") == plain
    entries = {entry.key: entry for entry in store.scan()}
    assert entries["doc.txt"].flags == frozenset({Flag.PENDING, Flag.FAILED})
    assert entries["plain.bin"].checksum == plain.checksum
    assert entries["plain.bin"].etag == plain.etag


def test_a_copy_of_the_files_with_their_attributes_keeps_their_sidecars(
    root: Path, tmp_path: Path
) -> None:
    store = DirectoryStore(root)
    store.put(
        "docs/a.txt", b"a", content_type="text/x-a", metadata={"m": "1"}, flags=[Flag.PENDING]
    )
    shutil.copytree(root, tmp_path / "copy")  # as cp -a: content, mtime and attributes
    copied = DirectoryStore(tmp_path / "copy").get("docs/a.txt")
    original = store.get("docs/a.txt")
    assert copied is not None
    assert original is not None
    assert (copied.content_type, copied.metadata, copied.flags) == (
        "text/x-a", {"m": "1"}, frozenset({Flag.PENDING}),
    )  # fmt: skip
    assert (copied.checksum, copied.etag) == (original.checksum, original.etag)


def test_a_sidecar_too_large_for_an_attribute_goes_in_a_file(root: Path) -> None:
    store = DirectoryStore(root)
    metadata = {"note": "€" * 680}  # 2 KiB, six times that escaped: more than ext4 holds
    item = store.put("k.txt", b"content", metadata=metadata)
    files = sidecar_files(root)
    # Wherever the file system found room, the sidecar is in one place only.
    assert (attribute(root / "k.txt") is None) == (len(files) == 1)
    store.set_flags("k.txt", {Flag.PROCESSED})
    again = store.get("k.txt")
    assert again is not None
    assert (again.metadata, again.checksum, again.etag) == (metadata, item.checksum, item.etag)
    assert again.flags == {Flag.PROCESSED}
    assert [entry.flags for entry in store.scan()] == [frozenset({Flag.PROCESSED})]
    store.delete("k.txt")
    assert sidecar_files(root) == []


def test_a_store_written_with_sidecar_files_reads_on_with_attributes(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as files_only:
        files_only.setattr(sidecars_module, "_PLATFORM_HAS_ATTRIBUTES", False)
        old = DirectoryStore(root).put("old.txt", b"old", metadata={"a": "b"}, flags=[Flag.PENDING])
    assert len(sidecar_files(root)) == 1
    store = DirectoryStore(root)
    assert store.get("old.txt") == old
    store.set_flags("old.txt", {Flag.PROCESSED})
    assert store.get_flags("old.txt") == {Flag.PROCESSED}
    store.put("old.txt", b"new")
    assert sidecar_files(root) == [], "the replaced file's sidecar file went with it"
    assert attribute(root / "old.txt") is not None


def _forged(root: Path, kind: str) -> bytes:
    file_stat = (root / "k.txt").stat()
    digest = hashlib.sha256(b"other content").digest()
    header = struct.Struct("<BqqB32s")
    valid = header.pack(1, file_stat.st_size, file_stat.st_mtime_ns, 0, digest)
    described = {"content_type": "text/plain", "metadata": {}}
    return {
        "garbage": b"\xff" * 80,
        "short": valid[:20],
        "version": header.pack(9, file_stat.st_size, file_stat.st_mtime_ns, 0, digest),
        "flag bits": header.pack(1, file_stat.st_size, file_stat.st_mtime_ns, 0x80, digest),
        "content type": valid + json.dumps(described | {"content_type": "a\r\nb: c"}).encode(),
        "metadata": valid + json.dumps(described | {"metadata": {"X\r\n": "v"}}).encode(),
        "fields": valid + json.dumps(described | {"adopted": True}).encode(),
        "stale": header.pack(1, file_stat.st_size, file_stat.st_mtime_ns + 1, 0, digest),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    ["garbage", "short", "version", "flag bits", "content type", "metadata", "fields", "stale"],
)
def test_an_attribute_that_is_no_sidecar_is_ignored(root: Path, kind: str) -> None:
    store = DirectoryStore(root)
    store.put("k.txt", b"content", metadata={"a": "b"})
    os.setxattr(root / "k.txt", ATTRIBUTE, _forged(root, kind))
    item = store.get("k.txt")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(b"content").hexdigest()
    assert (item.metadata, item.content_type, item.flags) == ({}, "text/plain", frozenset())
    assert [entry.key for entry in store.scan()] == ["k.txt"]


def test_a_file_edited_in_place_is_hashed_again(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("k.txt", b"content", metadata={"a": "b"})
    with open(root / "k.txt", "r+b") as edited:  # keeps the inode and its attribute
        edited.write(b"CONTENT")
    item = store.get("k.txt")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(b"CONTENT").hexdigest()
    assert item.metadata == {}
    (entry,) = store.scan()
    assert entry.etag == item.etag


def _sidecar_path(root: Path, file: Path) -> Path:
    inode = file.stat().st_ino
    return root / ".persisty-blobs" / "meta" / f"{inode % 256:02x}" / str(inode)


def _temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".persisty-blobs.tmp-*") if path.is_file()]


def test_a_link_planted_where_a_new_sidecar_goes_is_replaced_not_written_through(
    root: Path, tmp_path: Path, without_attributes: None
) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_bytes(b"outside the root")
    store = DirectoryStore(root)
    writer = store.writer("k.txt", metadata={"a": "b"})
    writer.write(b"content")
    (temp,) = _temp_files(root)
    planted = _sidecar_path(root, temp)
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(victim)
    writer.close()
    assert victim.read_bytes() == b"outside the root"
    item = store.get("k.txt")
    assert item is not None
    assert item.metadata == {"a": "b"}


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "forged", "fields"])
def test_a_sidecar_file_that_is_no_sidecar_is_ignored(
    root: Path, kind: str, without_attributes: None
) -> None:
    store = DirectoryStore(root)
    store.put("k.txt", b"content", metadata={"a": "b"})
    path = _sidecar_path(root, root / "k.txt")
    path.unlink()
    size, mtime = (root / "k.txt").stat().st_size, (root / "k.txt").stat().st_mtime_ns
    if kind == "fifo":
        os.mkfifo(path)  # would block a reader
    elif kind == "device":
        path.symlink_to("/dev/zero")  # would never end
    elif kind == "folder":
        path.mkdir()
    elif kind == "forged":
        forged = {"size": size, "mtime_ns": mtime, "checksum": "sha256:forged"}
        forged |= {"content_type": "text/plain\r\nSet-Cookie: a=b", "metadata": {"X\r\n": "v"}}
        path.write_text(json.dumps(forged))
    else:
        checksum = "sha256:" + hashlib.sha256(b"other").hexdigest()
        unknown = {"size": size, "mtime_ns": mtime, "checksum": checksum, "in_attribute": True}
        path.write_text(json.dumps(unknown))
    item = store.get("k.txt")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(b"content").hexdigest()
    assert (item.metadata, item.content_type) == ({}, "text/plain")
    assert [entry.key for entry in store.scan()] == ["k.txt"]
