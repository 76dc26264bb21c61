"""Attachments benchmark: ``AttachmentQueue`` beside ``Replicator`` alone, in the same run.

1,000 attachments of 100 KiB, a local directory store and a remote one. Two steps, each
measured in its own process, subject and baseline alternating: the saves (the time until
1,000 ``save`` calls have returned, beside 1,000 plain puts to the local store) and the drain
(one ``sync_now`` that uploads them all, beside one ``Replicator`` run of the same items at
the same concurrency). Also the worker: ``python -m bench.attachments STEP DIR``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._harness import RESULTS, Measurement, Row, measure, peak_rss

COUNT, SIZE, CONCURRENCY = 1000, 100 * 1024, 4
NS = "attachments"
STEPS = {
    "saves": ("queue-save", "local-put"),
    "drain": ("queue-drain", "replicator-run"),
}


def run(_size: int, repeats: int) -> list[Row]:
    """Runs both steps and prints their table (sizes are fixed: the issue's)."""
    rows = []
    for step, (subject, baseline) in STEPS.items():
        runs: dict[str, list[Measurement]] = {subject: [], baseline: []}
        for _ in range(repeats):
            for operation in (baseline, subject):
                with tempfile.TemporaryDirectory() as work:
                    runs[operation].append(measure(operation, work, worker="bench.attachments"))
        mine = statistics.median(run.seconds for run in runs[subject])
        theirs = statistics.median(run.seconds for run in runs[baseline])
        rows.append(
            {
                "name": f"{step}: {COUNT:,} x {SIZE // 1024} KiB",
                "seconds": mine,
                "baseline": baseline,
                "baseline_seconds": theirs,
                "ratio": theirs / mine,
                "peak_rss_mib": max(run.peak_rss for run in runs[subject]) / 2**20,
            }
        )
    print("| step | AttachmentQueue | baseline | baseline time | ratio | peak RSS |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['name']} | {row['seconds']:.2f} s | {row['baseline']} "
            f"| {row['baseline_seconds']:.2f} s | {row['ratio']:.2f}x "
            f"| {row['peak_rss_mib']:.1f} MiB |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attachments.json").write_text(json.dumps(rows, indent=2))
    return []


# The worker: one step in this process ------------------------------------------------------


def _open(work: str) -> Any:
    from persisty_blobs.stores import DirectoryStore
    from persisty_blobs.sync import BlobManager, SyncState

    root = Path(work)
    return BlobManager(
        DirectoryStore(root / "local"),
        DirectoryStore(root / "remote"),
        state=SyncState(root / "state.db"),
        concurrency=CONCURRENCY,
    )


def _payloads() -> list[bytes]:
    return [os.urandom(SIZE) for _ in range(COUNT)]


def _queue(manager: Any) -> Any:
    from persisty_blobs.attachments import AttachmentQueue

    return AttachmentQueue(manager, namespace=NS, concurrency=CONCURRENCY)


def _save_all(queue: Any, payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for index, data in enumerate(payloads):
        queue.save(data, media_type="image/jpeg", id=f"photo-{index:04}.jpg")
    return time.perf_counter() - started


def _put_all(manager: Any, payloads: list[bytes]) -> float:
    local = manager.local.namespace(NS)
    started = time.perf_counter()
    for index, data in enumerate(payloads):
        local.put(f"photo-{index:04}.jpg", data, content_type="image/jpeg")
    return time.perf_counter() - started


def step(operation: str, work: str) -> float:
    manager = _open(work)
    payloads = _payloads()
    if operation == "queue-save":
        return _save_all(_queue(manager), payloads)
    if operation == "local-put":
        return _put_all(manager, payloads)
    if operation == "queue-drain":
        queue = _queue(manager)
        _save_all(queue, payloads)
        started = time.perf_counter()
        queue.sync_now()
        seconds = time.perf_counter() - started
        assert len(queue.attachments("synced")) == COUNT
        return seconds
    assert operation == "replicator-run"
    _put_all(manager, payloads)
    started = time.perf_counter()
    report = manager.replicator([NS]).run()
    seconds = time.perf_counter() - started
    assert report.ok
    assert manager.remote.namespace(NS).count() == COUNT
    return seconds


if __name__ == "__main__":
    seconds = step(*sys.argv[1:])
    peak = peak_rss()
    print(json.dumps({"seconds": seconds, "peak_rss": peak}))
