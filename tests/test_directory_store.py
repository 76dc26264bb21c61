import gc
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs import (
    BlobError,
    Flag,
    InvalidArgument,
    InvalidArgumentType,
    InvalidKey,
    NotFound,
    PermissionDenied,
    Unsupported,
    open_store,
)
from persisty_blobs import _liveness as liveness_module
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores.directory import _adoption as adoption_module
from persisty_blobs.stores.directory import _fileio as fileio_module
from persisty_blobs.stores.directory import _recovery as recovery_module
from persisty_blobs.stores.directory._names import encode_segment
from persisty_blobs.testing import StoreConformance


class TestDirectoryStoreConformance(StoreConformance):
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
    photo = b"\xff\xd8jpeg" * 20_000
    (root / "photo.jpg").write_bytes(photo)
    (root / "data").write_bytes(b"")
    for path in (root / "photo.jpg", root / "docs" / "readme.md"):
        settled = path.stat().st_mtime_ns - 3600 * 10**9  # a hash is kept for settled files
        os.utime(path, ns=(settled, settled))
    store = DirectoryStore(root)
    items = {item.key: item for item in store.list()}
    assert sorted(items) == ["data", "docs/readme.md", "photo.jpg"]
    assert items["docs/readme.md"].content_type == "text/markdown"
    assert items["photo.jpg"].content_type == "image/jpeg"
    assert items["data"].content_type == "application/octet-stream"
    assert items["photo.jpg"].checksum == "sha256:" + hashlib.sha256(photo).hexdigest()
    assert items["docs/readme.md"].checksum == "sha256:" + hashlib.sha256(b"# hello").hexdigest()
    assert store.read_bytes("docs/readme.md") == b"# hello"
    sidecars = [path for path in (root / ".persisty-blobs" / "meta").rglob("*") if path.is_file()]
    assert len(sidecars) == 1, "only the large file's hash is kept"

    hashed: list[int] = []
    real_hash = fileio_module.sha256_of_fd

    def counting_hash(fd: int, size: int) -> str:
        hashed.append(fd)
        return real_hash(fd, size)

    monkeypatch.setattr(adoption_module, "sha256_of_fd", counting_hash)
    again = store.get("photo.jpg")
    assert again is not None
    assert again.etag == items["photo.jpg"].etag
    assert hashed == [], "the checksum of an unchanged large file is remembered"
    small = store.get("docs/readme.md")
    assert small == items["docs/readme.md"]
    assert len(hashed) == 1, "a small one is hashed again: cheaper than a sidecar"
    hashed.clear()

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
    if existing:
        with DirectoryStore(root) as setup:
            setup.put("victim.bin", b"the old content")
    store = DirectoryStore(root)
    child = subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(root)])
    kill_once_writing(child, root, 8 * 2**20)
    assert temp_files(root), "the killed writer left its temp file behind"

    if existing:
        assert store.read_bytes("victim.bin") == b"the old content"
        assert [item.key for item in store.list()] == ["victim.bin"]
    else:
        assert store.get("victim.bin") is None
        assert list(store.list()) == []

    reopened = DirectoryStore(root)
    assert temp_files(root) == []
    assert list((root / ".persisty-blobs" / "tmp").iterdir()) == []
    assert reopened.count() == (1 if existing else 0)


def kill_once_writing(child: subprocess.Popen[bytes], root: Path, size: int = 0) -> None:
    """SIGKILL ``child`` once its temp file holds ``size`` bytes."""
    try:
        deadline = time.monotonic() + 60
        while not temp_files(root) or temp_files(root)[0].stat().st_size < size:
            assert child.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".persisty-blobs.tmp-*") if path.is_file()]


def test_open_store_file_url(root: Path) -> None:
    store = open_store(root.as_uri())
    assert isinstance(store, DirectoryStore)
    store.put("via-url", b"x")
    assert (root / "via-url").read_bytes() == b"x"
    with pytest.raises(ValueError, match="absolute"):
        open_store("file://relative/path")


def test_open_store_file_url_takes_the_constructors_options(root: Path) -> None:
    store = open_store(root.as_uri(), chunk_size=4096)
    assert store.chunk_size == 4096
    with pytest.raises(ValueError, match="positive"):
        open_store(root.as_uri(), chunk_size=0)
    with pytest.raises(InvalidArgument, match="options"):  # not ignored: refused
        open_store(root.as_uri() + "?durable=0")
    with pytest.raises(InvalidArgument, match="NUL"):
        open_store(root.as_uri() + "/a%00b")


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
    while list(state.glob("*.old")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(state.glob("*.old")) == []
    assert store.count() == 1


def _tree(path: Path) -> list[str]:
    return sorted(str(entry.relative_to(path)) for entry in path.rglob("*"))


def test_a_symlinked_folder_out_of_the_root_is_never_written_through(
    tmp_path: Path, root: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "kept.txt").write_bytes(b"kept")
    store = DirectoryStore(root)
    store.put("inside.txt", b"in")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "deep").mkdir()
    (root / "deep" / "link").symlink_to(outside, target_is_directory=True)
    before = _tree(outside)

    for key in ("link/victim/x", "link/new/x", "link/x", "deep/link/victim/x", "new/link/x"):
        if key.startswith("new/"):
            (root / "new").mkdir()
            (root / "new" / "link").symlink_to(outside, target_is_directory=True)
        with pytest.raises(PermissionDenied, match="outside"):
            store.put(key, b"planted")
        assert _tree(outside) == before, f"put({key!r}) created or removed nothing outside"
        with pytest.raises(PermissionDenied):
            store.delete(key)
        with pytest.raises(PermissionDenied):
            store.set_flags(key, [Flag.PENDING])
    with pytest.raises(PermissionDenied), store.writer("link/victim/y") as writer:
        writer.write(b"never")
    assert _tree(outside) == before, "nothing outside the root is created or removed"
    assert (outside / "victim").is_dir()
    left = list((root / ".persisty-blobs" / "tmp").iterdir())
    assert [path for path in left if path.suffix != ".journal"] == []
    assert temp_files(root) == []

    for prefix in ("link/", "link/victim/", "link/k", "deep/link/", "new/link/"):
        assert list(store.list(prefix)) == []
        assert store.count(prefix) == 0
        assert list(store.scan(prefix)) == []
    assert [item.key for item in store.list()] == ["inside.txt"]
    assert [entry.key for entry in store.scan()] == ["inside.txt"]
    assert store.count() == 1


def test_a_symlinked_folder_inside_the_root_is_followed_but_not_listed(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("real/a.txt", b"a")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    store.put("alias/b.txt", b"b")
    assert (root / "real" / "b.txt").read_bytes() == b"b"
    assert store.read_bytes("alias/a.txt") == b"a"
    assert [item.key for item in store.list()] == ["real/a.txt", "real/b.txt"]
    assert store.delete("alias/b.txt")
    assert store.delete("alias/a.txt")
    assert (root / "alias").is_symlink(), "pruning never removes a link"


def test_a_symlink_never_leads_from_one_namespace_into_another(root: Path) -> None:
    store = DirectoryStore(root)
    bob, alice = store.namespace("bob"), store.namespace("alice")
    bob.put("private.txt", b"bob's")
    alice.put("notes.txt", b"alice's")
    state = root / ".persisty-blobs"
    bobs = next(path for path in (state / "ns").iterdir() if "bob" in path.name)
    (root / "bobs").symlink_to(bobs, target_is_directory=True)  # planted by another user
    (root / "state").symlink_to(state, target_is_directory=True)
    (root / "bobs.txt").symlink_to(bobs / "private.txt")
    (bobs / "to-alice").symlink_to(bobs.parent / next(
        path.name for path in (state / "ns").iterdir() if "alice" in path.name
    ))  # fmt: skip
    for attempt in (
        lambda: store.read_bytes("bobs/private.txt"),
        lambda: store.put("bobs/private.txt", b"mallory's"),
        lambda: store.read_bytes("bobs.txt"),
        lambda: store.put("state/lock", b"x"),
        lambda: bob.read_bytes("to-alice/notes.txt"),
    ):
        with pytest.raises(PermissionDenied, match="another namespace"):
            attempt()
    assert bob.read_bytes("private.txt") == b"bob's"
    assert [entry.key for entry in store.scan()] == []
    store.put("data/private", b"the default namespace's")
    (state / "ns" / encode_segment("eve")).symlink_to(root / "data", target_is_directory=True)
    with pytest.raises(PermissionDenied, match="another namespace"):  # a namespace's own folder
        store.namespace("eve").read_bytes("private")


def test_a_writer_in_another_pid_namespace_keeps_its_temp_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = liveness_module.local_owner()
    if here is None:
        pytest.skip("no boot id or PID namespace to tell owners apart on this system")
    boot, namespace, _ = here.split(":")
    dead_here = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_here.wait()
    # A live writer in another PID namespace: its PID names no process here.
    with monkeypatch.context() as patched:
        patched.setattr(os, "getpid", lambda: dead_here.pid)
        patched.setattr(
            liveness_module, "local_owner", lambda: f"{boot}:{int(namespace) + 1}:{dead_here.pid}"
        )
        store = DirectoryStore(root)
        writer = store.writer("a/live.bin")
        writer.write(b"still writing")
        writer.flush()
    temps = temp_files(root)
    assert len(temps) == 1
    DirectoryStore(root)  # cleans up after dead writers only
    assert temp_files(root) == temps
    writer.close()
    assert store.read_bytes("a/live.bin") == b"still writing"


def _dead_owner() -> str:
    here = liveness_module.local_owner()
    if here is None:
        pytest.skip("no boot id or PID namespace to tell owners apart on this system")
    boot, namespace, _ = here.split(":")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{boot}:{namespace}:{dead.pid}"


def test_a_dead_writers_records_and_folders_are_removed_on_open(root: Path) -> None:
    store = DirectoryStore(root)
    owner = _dead_owner()
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / ".persisty-blobs.tmp-0123").write_bytes(b"partial")
    state = root / ".persisty-blobs" / "tmp"
    record = {"folders": ["a", "b"], "keep": 0, "temp": ".persisty-blobs.tmp-0123"}
    (state / f"{owner}~0001.write").write_text(json.dumps(record))
    (state / f"{owner}~0002.side").write_text("{}")
    lying = {"folders": ["a"], "keep": 0, "temp": "kept.txt"}
    (root / "a" / "kept.txt").write_bytes(b"a user's file")
    (state / f"{owner}~0003.write").write_text(json.dumps(lying))
    DirectoryStore(root)
    assert list(state.iterdir()) == []
    assert _tree(root / "a") == ["kept.txt"], "only the store's own temp file is removed"
    store.delete("a/kept.txt")
    store.put("a", b"a file where the folder was")
    assert store.read_bytes("a") == b"a file where the folder was"


CHILD_STUCK_WRITER = """
import sys, time
from persisty_blobs.stores import DirectoryStore

def stuck():
    yield b"x" * 4096
    time.sleep(600)

DirectoryStore(sys.argv[1]).put("a/b/c", stuck())
"""


@pytest.mark.slow
def test_a_killed_put_below_a_key_does_not_block_the_key(root: Path) -> None:
    DirectoryStore(root)
    child = subprocess.Popen([sys.executable, "-c", CHILD_STUCK_WRITER, str(root)])
    kill_once_writing(child, root)
    assert (root / "a" / "b").is_dir()
    store = DirectoryStore(root)
    assert not (root / "a").exists()
    store.put("a", b"fine")
    assert [item.key for item in store.list()] == ["a"]


CHILD_WRITES_THEN_STUCK = """
import sys
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores.directory import _recovery

_recovery._ENTRIES = 4
store = DirectoryStore(sys.argv[1], durable=False)
for index in range(10):
    store.put(f"done/{index}", b"kept")
print("done", flush=True)
exec(sys.argv[2])
"""


@pytest.mark.slow
def test_a_killed_process_leaves_its_finished_writes_and_loses_its_unfinished_one(
    root: Path,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITES_THEN_STUCK, str(root), CHILD_STUCK_WRITER],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    with child.stdout:
        assert child.stdout.readline() == b"done\n"
        kill_once_writing(child, root)
    journals = list((root / ".persisty-blobs" / "tmp").glob("*.journal"))
    assert len(journals) == 1, "full journals whose writers finished are gone"
    store = DirectoryStore(root)
    assert temp_files(root) == []
    assert not (root / "a").exists()
    assert list((root / ".persisty-blobs" / "tmp").iterdir()) == []
    assert [item.key for item in store.list()] == [f"done/{index}" for index in range(10)]


def test_a_dead_process_journal_spares_the_folders_of_its_finished_writes(root: Path) -> None:
    owner = _dead_owner()
    (root / "inbox" / "new").mkdir(parents=True)  # made by a write that then committed
    entry = {"folders": ["inbox", "new"], "keep": 0, "temp": ".persisty-blobs.tmp-00ff"}
    state = root / ".persisty-blobs" / "tmp"
    state.mkdir(parents=True)
    (state / f"{owner}~0001.journal").write_text(json.dumps(entry) + "\n")
    DirectoryStore(root)
    assert (root / "inbox" / "new").is_dir(), "its temp file is gone: the folders are the user's"
    assert list(state.iterdir()) == []


def test_a_damaged_journal_does_not_keep_the_store_shut(root: Path) -> None:
    owner = _dead_owner()
    state = root / ".persisty-blobs" / "tmp"
    state.mkdir(parents=True)
    lines = [
        json.dumps({"folders": [], "keep": -1, "temp": ".persisty-blobs.tmp-0001"}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"folders": ["a"], "keep": 5, "temp": ".persisty-blobs.tmp-0002"}),
    ]
    (state / f"{owner}~0001.journal").write_text("\n".join(lines))
    os.mkfifo(state / f"{owner}~0002.journal")
    store = DirectoryStore(root)  # returns: no IndexError, RecursionError or blocked open
    store.put("a/b", b"fine")
    assert store.read_bytes("a/b") == b"fine"


def test_the_journals_of_forked_children_that_exit_at_once_are_swept(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery_module, "_ENTRIES", 2)
    state = root / ".persisty-blobs" / "tmp"
    with DirectoryStore(root) as store:
        store.put("parent-0", b"p")
        for child in range(3):
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child)
                try:
                    store.put(f"child-{child}", b"c")
                finally:
                    os._exit(0)  # as multiprocessing's children do: no atexit
            os.waitpid(pid, 0)
        # Each child's new journal swept its dead elder's: the parent's and the last child's.
        assert len(list(state.glob("*.journal"))) == 2
        for index in range(1, 4):
            store.put(f"parent-{index}", b"p")  # a new journal file sweeps the dead ones
        assert len(list(state.glob("*.journal"))) == 1
        assert store.count() == 7


def test_stores_dropped_without_close_hold_no_descriptor(tmp_path: Path) -> None:
    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd to count descriptors with")
    before = descriptors()
    for index in range(30):
        DirectoryStore(tmp_path / f"root-{index}").put("k", b"x")
    gc.collect()
    assert descriptors() < before + 10, "two descriptors per store were kept before"


def test_writes_leave_no_file_each_in_the_state_folder(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery_module, "_ENTRIES", 3)
    state = root / ".persisty-blobs" / "tmp"
    with DirectoryStore(root) as store:
        writer = store.writer("open/while/others/finish")
        writer.write(b"unfinished")
        for index in range(10):
            store.put(f"k{index}", b"x")
            assert len(list(state.iterdir())) <= 2, "the journal of the open writer, and one"
        writer.close()
        assert len(list(state.iterdir())) == 1
    assert list(state.iterdir()) == []
    assert DirectoryStore(root).count() == 11


def test_prefixes_longer_than_a_file_name_list_nothing(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("x", b"x")
    for prefix in ("y" * 300 + "/", "y" * 300 + "/z", "a/" + "y" * 300 + "/b/"):
        assert list(store.list(prefix)) == []
        assert store.count(prefix) == 0
        assert list(store.scan(prefix)) == []
    assert [item.key for item in store.list(after="w" * 300 + "/v")] == ["x"]
    long_namespace = store.namespace("n" * 300)
    assert list(long_namespace.list()) == []
    assert long_namespace.count() == 0
    assert long_namespace.get("x") is None
    with pytest.raises(InvalidKey):
        long_namespace.put("x", b"x")


def test_errors_of_the_file_system_are_blob_errors(root: Path) -> None:
    store = DirectoryStore(root)
    store.put("a", b"file")
    with pytest.raises(Unsupported):
        store.put("a/b", b"below a file")
    (root / "loop").symlink_to("loop")
    with pytest.raises(BlobError):
        store.get("loop")
    with pytest.raises(BlobError):
        store.put("loop/x", b"x")
    assert [item.key for item in store.list()] == ["a"]


def test_scan_reads_no_content_and_gives_no_checksum_it_does_not_have(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(root)
    store.put("ours.txt", b"ours", flags=[Flag.PENDING])
    theirs_content = b"theirs" * 20_000  # large enough for its checksum to be remembered
    (root / "theirs.txt").write_bytes(theirs_content)
    settled = (root / "theirs.txt").stat().st_mtime_ns - 3600 * 10**9
    os.utime(root / "theirs.txt", ns=(settled, settled))
    hashed: list[int] = []

    def no_hashing(fd: int, size: int) -> str:
        hashed.append(fd)
        return "sha256:"

    monkeypatch.setattr(adoption_module, "sha256_of_fd", no_hashing)
    ours, theirs = store.scan()
    assert hashed == []
    assert ours.checksum == "sha256:" + hashlib.sha256(b"ours").hexdigest()
    assert ours.flags == frozenset({Flag.PENDING})
    assert theirs.checksum is None
    assert theirs.flags == frozenset()
    assert (theirs.size, theirs.key) == (len(theirs_content), "theirs.txt")
    monkeypatch.undo()

    item = store.get("theirs.txt")
    assert item is not None
    assert item.checksum == "sha256:" + hashlib.sha256(theirs_content).hexdigest()
    assert item.etag == theirs.etag, "the etag of another program's file is had without reading"
    store.set_flags("theirs.txt", [Flag.FAILED])
    _, adopted = store.scan()
    assert (adopted.etag, adopted.checksum) == (item.etag, item.checksum)
    assert adopted.flags == frozenset({Flag.FAILED})
    assert store.get("theirs.txt") == item.__class__(**{**item.__dict__, "flags": adopted.flags})

    (root / "theirs.txt").write_bytes(b"edited")
    _, edited = store.scan()
    assert edited.etag != item.etag
    assert (edited.checksum, edited.flags) == (None, frozenset())


def test_capabilities(root: Path) -> None:
    capabilities = DirectoryStore(root).capabilities
    assert not capabilities.nested_keys
    assert capabilities.local_clock
    assert capabilities.flags_in_listing
    assert capabilities.checksums_in_listing
    assert capabilities.shared_across_processes
    assert not capabilities.presign


def test_a_store_that_does_not_fsync_is_still_atomic_and_complete(tmp_path: Path) -> None:
    with open_store(f"file://{tmp_path / 'cache'}", durable=False) as store:
        store.put("a/b.txt", b"one", metadata={"k": "v"}, flags=["pending"])
        store.put("a/b.txt", b"two", if_match=store.get("a/b.txt").etag)  # type: ignore[union-attr]
        assert store.read_bytes("a/b.txt") == b"two"
        checksum = "sha256:" + hashlib.sha256(b"two").hexdigest()
        assert store.get("a/b.txt").checksum == checksum  # type: ignore[union-attr]
        assert store.delete("a/b.txt")
        assert list(store.scan()) == []
    with pytest.raises(InvalidArgumentType):
        DirectoryStore(tmp_path / "x", durable="no")  # type: ignore[arg-type]


def test_pipes_and_sockets_are_no_items_and_never_replaced(root: Path) -> None:
    store = DirectoryStore(root)
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(root / "sock"))
        (root / "to-sock").symlink_to(root / "sock")
        assert store.get("to-sock") is None
        for name in ("pipe", "sock"):
            assert store.get(name) is None
            assert not store.delete(name)
            with pytest.raises(NotFound):
                store.set_flags(name, [])
            with pytest.raises(Unsupported, match="pipe, socket or device"):
                store.put(name, b"over another program's")
        assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
        assert stat.S_ISSOCK((root / "sock").lstat().st_mode)
        assert [entry.key for entry in store.scan()] == []
