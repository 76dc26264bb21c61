"""Sync benchmark: ``Replicator`` against ``rclone sync`` on the same data in the same run.

10,000 files of 10 KiB and 100 files of 10 MiB, directory -> directory and directory -> S3
(moto on loopback): the first sync, a sync with nothing changed, and a sync after 1% of the
files changed and 1% were deleted. Each step runs in its own process. Beside the first copy to
a directory, the bounds: plain Python copies, with and without fsync, hashed and not; beside
the unchanged sync, a plain Python listing of both trees. On directories the unchanged and 1%
steps run ``--repeats`` rounds, rclone first in each (each 1% round changes other files), and
the table gives each side's median; the first copy runs once. Also the plan of many unchanged
items between two memory stores, to show how its cost grows.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._harness import Row

RESULTS = Path(__file__).parent / "results"
SETS = {"10,000 x 10 KiB": (10_000, 10 * 1024), "100 x 10 MiB": (100, 10 * 1024 * 1024)}


def step(operation: str, *arguments: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    # Each step starts with nothing left to write back: the last step's dirty pages (or a
    # removed tree's discards) would otherwise be flushed during this one, by its first fsync
    # or by the file system's next journal commit.
    os.sync()
    completed = subprocess.run(
        [sys.executable, "-m", "bench._sync_worker", operation, *arguments],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def fill(directory: Path, count: int, size: int) -> None:
    """The tree a user syncs: files last changed an hour ago (a tree written moments before a
    sync is hashed as it is listed, by the racy rule, which a real tree seldom is)."""
    earlier = time.time() - 3600
    for index in range(count):
        path = directory / f"d{index % 100:02}" / f"file-{index:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        os.utime(path, (earlier, earlier))


def change(directory: Path, count: int, size: int, number: int = 0) -> None:
    """1% of the files rewritten, another 1% deleted; each round ``number`` other files (the
    same on every tree holding the same names)."""
    files = sorted(directory.rglob("*.bin"))
    share = max(1, count // 100)
    stride = max(4, len(files) // share)
    first = (2 * number) % (stride - 1)
    for path in files[first::stride][:share]:
        path.write_bytes(os.urandom(size))
    for path in files[first + 1 :: stride][:share]:
        path.unlink()


def moto_env() -> tuple[Any, dict[str, str]]:
    from persisty_blobs.testing.moto import moto_server

    server = moto_server()
    endpoint = server.__enter__()
    env = dict(os.environ)
    # The endpoint is plain HTTP: rclone's S3 client refuses to start with a CA bundle set.
    env.pop("AWS_CA_BUNDLE", None)
    env.update(
        {
            "RCLONE_CONFIG_MOTO_TYPE": "s3",
            "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
            "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
            "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "test",
            "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "test",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    return server, env


def run(_size: int, repeats: int) -> list[Row]:
    """Runs every step and prints its table (sizes are fixed: the issue's data sets); each
    step on directories ``repeats`` times, alternating with rclone."""
    _print(_rows(repeats))
    return []


def _rows(repeats: int) -> list[dict[str, Any]]:
    if shutil.which("rclone") is None:
        print("rclone is not installed (apt-get install rclone): the sync benchmark needs it")
        return []
    rows: list[dict[str, Any]] = []
    server, env = moto_env()
    endpoint = env["RCLONE_CONFIG_MOTO_ENDPOINT"]
    try:
        for label, (count, size) in SETS.items():
            for target in ("directory", "s3"):
                rows += _pair(label, count, size, target, endpoint, env, repeats)
    finally:
        server.__exit__(None, None, None)
    for count in (100_000, 1_000_000):
        with tempfile.TemporaryDirectory() as work:
            result = step("plan", f"{count}", f"{work}/state.db")
            rows.append({"name": f"plan of {count:,} unchanged (memory)", **result})
    return rows


def _pair(
    label: str,
    count: int,
    size: int,
    target: str,
    endpoint: str,
    env: dict[str, str],
    repeats: int,
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        ours, theirs = root / "ours", root / "theirs"
        fill(ours, count, size)
        shutil.copytree(ours, theirs)
        bucket = f"bench-{os.getpid()}-{target}-{count}"
        if target == "s3":
            import boto3

            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
            client.create_bucket(Bucket=bucket)
            client.create_bucket(Bucket=bucket + "-rclone")
            our_target = f"s3://{bucket}?endpoint_url={endpoint}"
            their_target = f"moto:{bucket}-rclone"
        else:
            our_target = f"file://{root / 'ours-copy'}"
            their_target = str(root / "theirs-copy")
        # rclone does not fsync: on a directory the store runs both ways, durable and not.
        subjects = [("", our_target, "1")]
        if target == "directory":
            subjects.append((" (no fsync)", f"file://{root / 'ours-fast'}", "0"))
        for phase in ("first", "no change", "1% changed, 1% deleted"):
            # A first copy runs once: to run it again, the copies must go first, and the file
            # system then frees their blocks under whichever step comes next (rclone's took
            # four times as long). A round of S3 steps takes a minute; their ratios are far
            # from 1.0.
            rounds = repeats if target == "directory" and phase != "first" else 1
            samples: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
            for number in range(rounds):
                if phase.startswith("1%"):
                    change(ours, count, size, number)
                    change(theirs, count, size, number)
                other = step("rclone", str(theirs), their_target, env=env)
                measured = []
                for suffix, target_url, durable in subjects:
                    state = str(root / f"state{durable}.db")
                    mine = step("persisty", str(ours), target_url, state, durable, env=env)
                    measured.append((f"{label}, {target}{suffix}, {phase}", mine))
                if target == "directory" and phase == "first":
                    measured += _copy_bounds(label, ours, root)
                if target == "directory" and phase == "no change":
                    bound = step("listing", str(ours), str(root / "ours-copy"), env=env)
                    measured.append((f"{label}, bound: plain Python listing of both", bound))
                if target == "directory":
                    cli_target = f"file://{root / 'ours-cli'}"
                    command = step("cli", str(ours), cli_target, str(root / "cli-state"), env=env)
                    measured.append((f"{label}, directory (CLI), {phase}", command))
                for name, mine in measured:
                    samples.setdefault(name, []).append((mine, other))
                    print(_line(_row(name, [(mine, other)]), f"round {number + 1}"), flush=True)
            rows += [_row(name, pairs) for name, pairs in samples.items()]
    return rows


def _copy_bounds(label: str, ours: Path, root: Path) -> list[tuple[str, dict[str, Any]]]:
    """The first copy's bounds: plain Python copies with and without an fsync per file, each
    without and with a SHA-256 of what it copies; each the fastest of 1, 2 and 4 threads."""
    measured = []
    for hashed, hashing in (("0", ""), ("1", " + SHA-256")):
        for durable, fsynced in (("1", " + fsync"), ("0", "")):
            copies = str(root / f"ours-pycopy{durable}{hashed}")
            bound = step("pycopy", str(ours), copies, durable, hashed)
            measured.append((f"{label}, bound: plain Python copies{hashing}{fsynced}", bound))
    return measured


def _row(name: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The median of each side over the rounds (a round is one run of each, rclone first)."""
    seconds = statistics.median(mine["seconds"] for mine, _ in pairs)
    rclone_seconds = statistics.median(other["seconds"] for _, other in pairs)
    return {
        "name": name,
        "rounds": len(pairs),
        "seconds": seconds,
        "requests": pairs[0][0].get("requests", {}),
        "rclone_seconds": rclone_seconds,
        "ratio": rclone_seconds / seconds,
        "peak_rss": max(mine["peak_rss"] for mine, _ in pairs),
        "rclone_peak_rss": max(other["peak_rss"] for _, other in pairs),
    }


def _line(row: dict[str, Any], note: str = "") -> str:
    mib = 2**20
    if "rclone_seconds" in row:
        note = note or (f"median of {row['rounds']}" if row["rounds"] > 1 else "")
        return (
            f"| {row['name']:<46} | {row['seconds']:7.2f} s | {row['rclone_seconds']:7.2f} s "
            f"| {row['ratio']:5.2f}x | {row['peak_rss'] / mib:6.1f} MiB "
            f"| {row['rclone_peak_rss'] / mib:6.1f} MiB | {_requests(row)} | {note} |"
        )
    rss = f"{row['peak_rss'] / mib:6.1f} MiB" if "peak_rss" in row else ""
    return f"| {row['name']:<46} | {row['seconds']:7.2f} s | | | {rss} | | | |"


def _requests(row: dict[str, Any]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(row["requests"].items()))


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| step | persisty-blobs | rclone | ratio | peak RSS | rclone RSS | S3 requests | runs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(_line(row))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(json.dumps(rows, indent=2))
