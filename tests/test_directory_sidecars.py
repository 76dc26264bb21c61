"""DirectoryStore's sidecars: in a file's own extended attribute where the file system has
them, in a sidecar file under ``.persisty-blobs/meta/`` where it has none or the attribute has
no room, and never trusted for more than a put could have written."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs import Flag
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores.directory import _sidecars as sidecars_module
from persisty_blobs.testing import StoreConformance
from tests.test_directory_store import temp_files

ATTRIBUTE = "user.persisty-blobs"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def without_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a platform without extended attributes (macOS, Windows): sidecar files only."""
    monkeypatch.setattr(sidecars_module, "PLATFORM_HAS_ATTRIBUTES", False)


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
        files_only.setattr(sidecars_module, "PLATFORM_HAS_ATTRIBUTES", False)
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
    header = struct.Struct("<BqqBB32s")  # version, size, mtime, flags, content type, SHA-256

    def packed(version: int = 1, mtime: int = 0, bits: int = 0, code: int = 2) -> bytes:
        mtime_ns = file_stat.st_mtime_ns + mtime
        return header.pack(version, file_stat.st_size, mtime_ns, bits, code, digest)

    return {
        "garbage": b"\xff" * 80,
        "short": packed()[:20],
        "version": packed(version=9),
        "flag bits": packed(bits=0x80),
        "content type number": packed(code=200),
        "no content type": packed(code=0),
        "content type": packed(code=0) + json.dumps({"content_type": "a\r\nb: c"}).encode(),
        "padded content type": packed(code=0) + json.dumps({"content_type": " text/x "}).encode(),
        "two content types": packed() + json.dumps({"content_type": "text/x"}).encode(),
        "metadata": packed() + json.dumps({"metadata": {"X\r\n": "v"}}).encode(),
        "fields": packed() + json.dumps({"adopted": True}).encode(),
        "stale": packed(mtime=1),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "short",
        "version",
        "flag bits",
        "content type number",
        "no content type",
        "content type",
        "padded content type",
        "two content types",
        "metadata",
        "fields",
        "stale",
    ],
)
def test_an_attribute_that_is_no_sidecar_is_ignored(root: Path, kind: str) -> None:
    store = DirectoryStore(root)
    store.put("k.txt", b"content", metadata={"a": "b"}, content_type="text/x-mine")
    os.setxattr(root / "k.txt", ATTRIBUTE, _forged(root, kind))
    item = store.get("k.txt")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(b"content").hexdigest()
    assert (item.metadata, item.content_type, item.flags) == ({}, "text/plain", frozenset())
    assert [entry.key for entry in store.scan()] == ["k.txt"]


def test_a_well_formed_attribute_is_read_as_written(root: Path) -> None:
    # The forgeries above differ from this one only where the test names.
    store = DirectoryStore(root)
    store.put("k.txt", b"content")
    file_stat = (root / "k.txt").stat()
    size, mtime = file_stat.st_size, file_stat.st_mtime_ns
    written = struct.pack("<BqqBB32s", 1, size, mtime, 0, 2, hashlib.sha256(b"content").digest())
    assert attribute(root / "k.txt") == written, "the layout the forgeries use"
    digest = hashlib.sha256(b"other content").digest()
    packed = struct.pack("<BqqBB32s", 1, size, mtime, 1, 3, digest)
    os.setxattr(root / "k.txt", ATTRIBUTE, packed + b'{"metadata":{"m":"v"}}')
    item = store.get("k.txt")
    assert item is not None
    assert item.checksum == "sha256:" + digest.hex()
    assert (item.content_type, item.metadata, item.flags) == (
        "application/json", {"m": "v"}, frozenset({Flag.PENDING}),
    )  # fmt: skip


def test_a_renamed_file_keeps_its_content_type(root: Path) -> None:
    store = DirectoryStore(root)
    for key, content_type in (("a.txt", "text/plain"), ("b.bin", "text/x-mine")):
        store.put(key, b"content", content_type=content_type)
    (root / "a.txt").rename(root / "a.json")
    (root / "b.bin").rename(root / "b.txt")
    assert [(item.key, item.content_type) for item in store.list()] == [
        ("a.json", "text/plain"),
        ("b.txt", "text/x-mine"),
    ]


def test_a_file_leased_by_another_program_is_still_scanned(root: Path) -> None:
    # Samba's kernel oplocks are leases: opening the file without blocking fails meanwhile.
    store = DirectoryStore(root)
    store.put("a.txt", b"a")
    store.put("b.txt", b"b")
    before = list(store.scan())
    hold = [sys.executable, "-c", _HOLD_LEASE, str(root / "a.txt")]
    with subprocess.Popen(hold, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "leased"
            # The same entries, checksum and etag included: a sync sees no change.
            assert list(store.scan()) == before
        finally:
            holder.kill()


_HOLD_LEASE = """
import fcntl, os, signal, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
signal.signal(signal.SIGIO, lambda *_: None)  # asked to let go: hold on until killed
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
print("leased", flush=True)
time.sleep(60)
"""


def test_a_mount_without_attributes_inside_the_root_changes_nothing_elsewhere(
    root: Path,
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a file system without user attributes needs root and unshare")
    script = _MIXED_FILE_SYSTEMS.format(root=str(root))
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["same", "attribute", "file", "same"]


_MIXED_FILE_SYSTEMS = """
import os, subprocess
from persisty_blobs.stores import DirectoryStore
root = {root!r}
os.makedirs(root + "/ramfs")
subprocess.run(["mount", "-t", "ramfs", "ramfs", root + "/ramfs"], check=True)
store = DirectoryStore(root)
before = store.put("a.txt", b"hello", metadata={{"m": "v"}}, content_type="text/x-mine")
store.put("ramfs/b.txt", b"on ramfs", metadata={{"m": "w"}})  # no attribute there
print("same" if store.get("a.txt") == before else "changed")
store.put("c.txt", b"after")
print("attribute" if "user.persisty-blobs" in os.listxattr(root + "/c.txt") else "file")
on_ramfs = store.get("ramfs/b.txt")
print("file" if on_ramfs.metadata == {{"m": "w"}} and on_ramfs.checksum else "lost")
print("same" if DirectoryStore(root).get("a.txt") == before else "changed")
"""


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


def test_a_link_planted_where_a_new_sidecar_goes_is_replaced_not_written_through(
    root: Path, tmp_path: Path, without_attributes: None
) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_bytes(b"outside the root")
    store = DirectoryStore(root)
    writer = store.writer("k.txt", metadata={"a": "b"})
    writer.write(b"content")
    (temp,) = temp_files(root)
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
