import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs import Flag, InvalidKey, PermissionDenied, open_store
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores import _files as files_module
from persisty_blobs.stores import directory as directory_module
from persisty_blobs.testing import StoreConformance


class TestDirectoryStoreConformance(StoreConformance):
    nested_keys_coexist = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[DirectoryStore]:
        with DirectoryStore(tmp_path / "store") as store:
            yield store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_symlinks_that_leave_the_root_are_refused(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    store = DirectoryStore(root)
    store.put("inside/real.txt", b"fine")
    (root / "evil.txt").symlink_to(outside / "secret.txt")
    (root / "evil-dir").symlink_to(outside, target_is_directory=True)
    (root / "alias.txt").symlink_to(root / "inside" / "real.txt")

    for key in ("evil.txt", "evil-dir/secret.txt"):
        with pytest.raises(PermissionDenied, match="outside"):
            store.get(key)
        with pytest.raises(PermissionDenied):
            store.read_bytes(key)
    with pytest.raises(PermissionDenied):
        store.put("evil.txt", b"overwrite")
    with pytest.raises(PermissionDenied):
        store.put("evil-dir/new.txt", b"planted")
    with pytest.raises(PermissionDenied):
        store.delete("evil.txt")
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]
    assert (root / "evil.txt").is_symlink()

    assert store.read_bytes("alias.txt") == b"fine"
    assert [item.key for item in store.list()] == ["alias.txt", "inside/real.txt"]


def test_a_folder_of_existing_files_is_adopted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme.md").write_bytes(b"# hello")
    (root / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    (root / "data").write_bytes(b"")
    store = DirectoryStore(root)
    items = {item.key: item for item in store.list()}
    assert sorted(items) == ["data", "docs/readme.md", "photo.jpg"]
    assert items["docs/readme.md"].content_type == "text/markdown"
    assert items["photo.jpg"].content_type == "image/jpeg"
    assert items["data"].content_type == "application/octet-stream"
    assert items["photo.jpg"].checksum == "sha256:" + hashlib.sha256(b"\xff\xd8jpeg").hexdigest()
    assert store.read_bytes("docs/readme.md") == b"# hello"

    hashed: list[int] = []
    real_hash = files_module.sha256_of_fd

    def counting_hash(fd: int) -> str:
        hashed.append(fd)
        return real_hash(fd)

    monkeypatch.setattr(directory_module, "sha256_of_fd", counting_hash)
    again = store.get("photo.jpg")
    assert again is not None
    assert again.etag == items["photo.jpg"].etag
    assert hashed == [], "the etag of an unchanged file is cached"

    (root / "photo.jpg").write_bytes(b"edited by another program")
    edited = store.get("photo.jpg")
    assert edited is not None
    assert edited.etag != items["photo.jpg"].etag
    assert edited.size == len(b"edited by another program")
    assert len(hashed) == 1


def test_files_edited_in_place_lose_stale_metadata(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("notes.txt", b"v1", content_type="text/x-notes", metadata={"owner": "ada"})
    store.set_flags("notes.txt", [Flag.PENDING])
    with open(root / "notes.txt", "ab") as file:
        file.write(b" and more")
    item = store.get("notes.txt")
    assert item is not None
    assert item.size == len(b"v1 and more")
    assert item.checksum == "sha256:" + hashlib.sha256(b"v1 and more").hexdigest()
    assert item.content_type == "text/plain"
    assert dict(item.metadata) == {}
    assert item.flags == frozenset()


def test_keys_shaped_like_the_stores_own_files(root: Path) -> None:
    store = DirectoryStore(root)
    tricky = [".persisty-blobs", ".persisty-blobs~", "a/.persisty-blobs.tmp-1-2", ".persisty-x"]
    for key in tricky:
        store.put(key, key.encode())
    assert [item.key for item in store.list()] == sorted(tricky)
    for key in tricky:
        assert store.read_bytes(key) == key.encode()
    assert (root / ".persisty-blobs" / "lock").exists()  # the state folder is untouched


def test_a_segment_longer_than_a_file_name_is_an_invalid_key(root: Path) -> None:
    store = DirectoryStore(root)
    with pytest.raises(InvalidKey, match="longer than this file system allows"):
        store.put("x" * 256, b"data")
    assert store.count() == 0


def test_namespaces_live_apart_from_the_roots_files(root: Path) -> None:
    store = DirectoryStore(root)
    store.namespace("alice").put("a.txt", b"alice")
    store.put("b.txt", b"root")
    assert sorted(path.name for path in root.iterdir()) == [".persisty-blobs", "b.txt"]
    store.namespace("alice").delete("a.txt")
    assert store.namespaces() == [""]
    assert not (root / ".persisty-blobs" / "ns" / "alice").exists()


def test_deleting_prunes_empty_folders_but_not_the_root(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("deep/er/still/file", b"x")
    store.put("deep/other", b"y")
    store.delete("deep/er/still/file")
    assert not (root / "deep" / "er").exists()
    store.delete("deep/other")
    assert sorted(path.name for path in root.iterdir()) == [".persisty-blobs"]


CHILD_WRITER = """
import sys, time
from persisty_blobs.stores import DirectoryStore

def slow_blocks():
    block = b"n" * (1024 * 1024)
    for index in range(200):
        if index > 8:
            time.sleep(0.02)
        yield block

DirectoryStore(sys.argv[1]).put("victim.bin", slow_blocks())
"""


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_writer_killed_mid_write_leaves_nothing(root: Path, existing: bool) -> None:
    store = DirectoryStore(root)
    if existing:
        store.put("victim.bin", b"the old content")
    child = subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(root)])
    try:
        deadline = time.monotonic() + 60
        while not _temp_files(root) or _temp_files(root)[0].stat().st_size < 8 * 2**20:
            assert child.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert _temp_files(root), "the killed writer left its temp file behind"

    if existing:
        assert store.read_bytes("victim.bin") == b"the old content"
        assert [item.key for item in store.list()] == ["victim.bin"]
    else:
        assert store.get("victim.bin") is None
        assert list(store.list()) == []

    reopened = DirectoryStore(root)
    assert _temp_files(root) == []
    assert list((root / ".persisty-blobs" / "tmp").iterdir()) == []
    assert reopened.count() == (1 if existing else 0)


def _temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".persisty-blobs.tmp-*") if path.is_file()]


def test_open_store_file_url(root: Path) -> None:
    store = open_store(root.as_uri())
    assert isinstance(store, DirectoryStore)
    store.put("via-url", b"x")
    assert (root / "via-url").read_bytes() == b"x"
    with pytest.raises(ValueError, match="absolute"):
        open_store("file://relative/path")


def test_overwriting_a_large_item_releases_the_old_file(root: Path) -> None:
    store = DirectoryStore(root)
    old, new = b"o" * (9 * 2**20), b"n" * (9 * 2**20)
    store.put("large.bin", old)
    with store.open("large.bin") as reader:
        store.put("large.bin", new)
        assert reader.read() == old  # a reader keeps the version it opened
    assert store.read_bytes("large.bin") == new
    state = root / ".persisty-blobs" / "tmp"
    deadline = time.monotonic() + 10
    while list(state.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(state.iterdir()) == []
    assert store.count() == 1
