"""AttachmentQueue under crashes and corruption: a pass killed with SIGKILL leaves only whole
attachments visible and a restart finishes the work; a download that fails its
authentication never becomes visible.

Also the worker the crash test kills: ``python -m tests.test_attachments_crash LOCAL_DB
REMOTE_DIR STATE_DB KEY_HEX`` runs one pass over a slowed remote."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persisty_blobs import BlobError, DataStore, Keyring
from persisty_blobs.attachments import AttachmentQueue, AttachmentState
from persisty_blobs.stores import DirectoryStore, SqlCipherStore
from persisty_blobs.sync import BlobManager, SyncState

ROOT = Path(__file__).resolve().parent.parent
RAW_KEY = bytes.fromhex("6f" * 32)
NS = "attachments"


def open_manager(root: Path, key: bytes, remote: DataStore | None = None) -> BlobManager:
    return BlobManager(
        SqlCipherStore(root / "local.db", RAW_KEY, chunk_size=64 * 1024),
        remote if remote is not None else DirectoryStore(root / "remote"),
        keyring=Keyring([key]),
        state=SyncState(root / "state.db"),
    )


def close(manager: BlobManager) -> None:
    manager.close()
    manager.local.close()
    manager.remote.close()


def synced(root: Path) -> int:
    with sqlite3.connect(root / "state.db", timeout=10) as connection:
        query = "SELECT count(*) FROM pbsync_attachments WHERE state = 'synced'"
        count: int = connection.execute(query).fetchone()[0]
    connection.close()
    return count


def whole(manager: BlobManager, expected: dict[str, bytes]) -> tuple[set[str], set[str]]:
    """The ids each side holds, having checked that every one is whole."""
    held = []
    for side in (manager.local.namespace(NS), manager.remote.namespace(NS)):
        keys = {entry.key for entry in side.scan()}
        for key in keys:
            assert side.read_bytes(key) == expected[key], key
        held.append(keys)
    return held[0], held[1]


def test_sigkill_mid_pass_then_a_restart_finishes(tmp_path: Path) -> None:
    key = os.urandom(32)
    rng = random.Random(14)
    expected: dict[str, bytes] = {}
    manager = open_manager(tmp_path, key)
    queue = AttachmentQueue(manager)
    for index in range(50):
        expected[f"up-{index:03}"] = data = rng.randbytes(rng.randrange(1, 20_000))
        queue.save(data, media_type="application/octet-stream", id=f"up-{index:03}")
    for index in range(40):
        expected[f"down-{index:03}"] = data = rng.randbytes(rng.randrange(1, 20_000))
        manager.remote.namespace(NS).put(f"down-{index:03}", data)
    queue.watch(expected)
    close(manager)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.test_attachments_crash", str(tmp_path), key.hex()],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while synced(tmp_path) < 20 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    assert 20 <= synced(tmp_path) < len(expected)  # killed mid-pass

    manager = open_manager(tmp_path, key)
    try:
        local, _ = whole(manager, expected)  # nothing partial visible on either side
        assert {f"up-{index:03}" for index in range(50)} <= local
        queue = AttachmentQueue(manager)
        queue.sync_now()
        assert {a.state for a in queue.attachments()} == {AttachmentState.SYNCED}
        assert len(queue.attachments()) == len(expected)
        assert whole(manager, expected) == (set(expected), set(expected))
    finally:
        close(manager)


def test_a_download_failing_authentication_never_becomes_visible(tmp_path: Path) -> None:
    manager = open_manager(tmp_path, os.urandom(32))
    try:
        manager.remote.namespace(NS).put("doc", b"genuine " * 10_000)
        stored = tmp_path / "remote" / ".persisty-blobs" / "ns" / NS / "doc"
        before = stored.stat()
        sealed = bytearray(stored.read_bytes())
        sealed[len(sealed) // 2] ^= 0x40
        stored.write_bytes(sealed)
        # As bit rot would: same size and time, so the store still vouches for its metadata.
        os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
        queue = AttachmentQueue(manager)
        queue.watch(["doc"])
        queue.sync_now()
        failed = queue.attachment("doc")
        assert failed is not None
        assert failed.state is AttachmentState.FAILED
        assert failed.last_error is not None
        assert "authentication" in failed.last_error
        with pytest.raises(BlobError):
            queue.open("doc")
        assert list(manager.local.namespace(NS).scan()) == []
    finally:
        close(manager)


def _slow(operation: str, _key: str) -> None:
    if operation in ("read", "write"):
        time.sleep(0.01)


def main(root: str, key: str) -> None:
    from tests.sync_support import Faulty

    remote = DirectoryStore(Path(root) / "remote")
    manager = open_manager(Path(root), bytes.fromhex(key), Faulty(remote, _slow))
    AttachmentQueue(manager, concurrency=2).sync_now()
    close(manager)


if __name__ == "__main__":
    main(*sys.argv[1:])
