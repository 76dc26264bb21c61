"""One measured sync step in its own process (peak RSS is its own); prints JSON.

``python -m bench._sync_worker persisty A_DIR B_URL STATE``: one ``Replicator.run``.
``python -m bench._sync_worker rclone SRC DST``: one ``rclone sync`` (its RSS is a child's).
``python -m bench._sync_worker cli SRC DST_URL STATE_DIR``: one ``persisty-blobs sync``.
``python -m bench._sync_worker plan COUNT STATE``: the plan of COUNT unchanged items between
two memory stores (setup untimed).
``python -m bench._sync_worker pycopy SRC DST DURABLE HASHED``: plain Python copies, fsynced or
not, hashed or not.
``python -m bench._sync_worker listing DIR...``: the trees listed as plainly as this store can.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._harness import peak_rss

if TYPE_CHECKING:
    from persisty_blobs import DataStore

_BLOCK = 1024 * 1024


def _peak_rss(children: bool = False) -> int:
    if children:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return peak_rss()


def persisty(a_dir: str, b_url: str, state: str, durable: str = "1") -> dict[str, Any]:
    from persisty_blobs.stores import DirectoryStore
    from persisty_blobs.sync import Replicator, SyncState

    requests: dict[str, int] = {}
    started = time.perf_counter()
    with DirectoryStore(a_dir) as a, _target(b_url, requests, durable == "1") as b:
        replicator = Replicator(a, b, SyncState(state), pair="bench", max_delete=1.0)
        report = replicator.run()
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"sync failed: {report.failures[:3]}")
    return {
        "seconds": seconds,
        "peak_rss": _peak_rss(),
        "bytes": report.bytes,
        "requests": requests,
    }


def _target(url: str, requests: dict[str, int], durable: bool) -> DataStore:
    """The store at ``url``; on S3, with every request counted by operation."""
    if not url.startswith("s3://"):
        from persisty_blobs import open_store

        return open_store(url, durable=durable)
    import boto3

    from persisty_blobs.stores.s3 import S3Store

    parsed = urllib.parse.urlsplit(url)
    endpoint = urllib.parse.parse_qs(parsed.query)["endpoint_url"][0]
    client = boto3.client("s3", endpoint_url=endpoint)

    def count(model: Any, **_: Any) -> None:
        requests[model.name] = requests.get(model.name, 0) + 1

    client.meta.events.register("before-call.s3", count)
    return S3Store(parsed.netloc, client=client)


def _command(arguments: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    subprocess.run(arguments, check=True, capture_output=True, env=env)
    return {"seconds": time.perf_counter() - started, "peak_rss": _peak_rss(children=True)}


def rclone(source: str, target: str) -> dict[str, Any]:
    return _command(["rclone", "sync", source, target])


def cli(source: str, target: str, state_dir: str) -> dict[str, Any]:
    """``persisty-blobs sync`` itself, start-up included."""
    command = [
        sys.executable,
        "-m",
        "persisty_blobs",
        "--quiet",
        "sync",
        "--max-delete",
        "1",
        f"file://{source}",
        target,
    ]
    return _command(command, env=dict(os.environ, PERSISTY_BLOBS_STATE_DIR=state_dir))


def plan(count: str, state_path: str) -> dict[str, Any]:
    from persisty_blobs.stores.memory import MemoryStore
    from persisty_blobs.sync import Replicator, SyncState

    total = int(count)
    a, b = MemoryStore(), MemoryStore()
    for store in (a, b):
        seed = store.put("seed", b"")
        for index in range(total):
            store.copy("seed", f"item-{index:08}")
        store.delete("seed")
    state = SyncState(state_path)
    rows = [
        {
            "pair": "bench",
            "namespace": "",
            "key": f"item-{index:08}",
            "base_checksum": seed.checksum,
            "base_size": 0,
            "base_etag_a": seed.etag,
            "base_etag_b": seed.etag,
            "base_flags": "",
            "status": "synced",
            "priority": 2,
            "attempts": 0,
        }
        for index in range(total)
    ]
    with state.engine.begin() as connection:
        connection.execute(state.tables.items.insert(), rows)
    del rows
    rss_before = _peak_rss()
    started = time.perf_counter()
    actions = Replicator(a, b, state, pair="bench").plan()
    seconds = time.perf_counter() - started
    assert actions == [], actions[:3]
    return {"seconds": seconds, "peak_rss": _peak_rss(), "setup_rss": rss_before}


def pycopy(source: str, target: str, durable: str = "0", hashed: str = "0") -> dict[str, Any]:
    """The least a Python sync can do: every file read, written to a temp file beside its
    target (fsynced if ``durable`` is "1") and renamed (atomic, no record); hashed as it is
    copied if ``hashed`` is "1" (SHA-256, as a store records every item's checksum; rclone
    checks an MD5 of each copy); the fastest of 1, 2 and 4 threads (more threads than cores
    can lose to the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [os.path.join(folder, name) for folder, _, names in os.walk(source) for name in names]
    timings = {}
    for threads in (1, 2, 4):
        copy_root = f"{target}-{threads}"

        def copy(path: str, copy_root: str = copy_root) -> None:
            destination = os.path.join(copy_root, os.path.relpath(path, source))
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            digest = hashlib.sha256() if hashed == "1" else None
            temp = destination + ".tmp"
            with open(path, "rb", buffering=0) as reader, open(temp, "wb") as writer:
                while block := reader.read(_BLOCK):
                    if digest is not None:
                        digest.update(block)
                    writer.write(block)
                if durable == "1":
                    writer.flush()
                    os.fsync(writer.fileno())
            os.replace(temp, destination)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(copy, paths))
        timings[threads] = time.perf_counter() - started
    best = min(timings, key=timings.__getitem__)
    return {"seconds": timings[best], "threads": best, "peak_rss": _peak_rss()}


def listing(*roots: str) -> dict[str, Any]:
    """The least a sync that reads this store's attributes lists: per file of each tree, an
    open, an fstat and a getxattr (no key checks, no order, no state, no diff)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    started = time.perf_counter()
    for root in roots:
        for folder, folders, names in os.walk(root):
            folders[:] = [name for name in folders if not name.startswith(".persisty-blobs")]
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name in names:
                    fd = os.open(name, flags, dir_fd=descriptor)
                    try:
                        os.fstat(fd)
                        with contextlib.suppress(OSError):
                            os.getxattr(fd, "user.persisty-blobs")
                    finally:
                        os.close(fd)
            finally:
                os.close(descriptor)
    return {"seconds": time.perf_counter() - started, "peak_rss": _peak_rss()}


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "listing": listing,
    "persisty": persisty,
    "rclone": rclone,
    "cli": cli,
    "pycopy": pycopy,
    "plan": plan,
}

if __name__ == "__main__":
    operation, *arguments = sys.argv[1:]
    print(json.dumps(STEPS[operation](*arguments)))
