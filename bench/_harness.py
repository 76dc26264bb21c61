"""Runs each measured operation in a fresh process (so peak RSS is that operation's own),
alternating baseline and subject runs, and reports medians and ratios."""

from __future__ import annotations

import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_rss() -> int:
    """This process's own peak RSS. ru_maxrss survives exec, so on Linux it would report the
    benchmark runner's size at the fork when that is larger; VmHWM belongs to this image."""
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Measurement:
    seconds: float
    peak_rss: int  # bytes, of the whole worker process


@dataclass
class Row:
    name: str
    subject: str
    baseline: str
    size: int
    subject_mb_s: float
    baseline_mb_s: float
    ratio: float
    subject_peak_rss_mib: float
    baseline_peak_rss_mib: float
    unit: str = "MB/s"  # or "items/s", where size counts items


def measure(operation: str, *arguments: str, worker: str = "bench._worker") -> Measurement:
    """Run ``python -m <worker> <operation> <arguments>`` in a new interpreter."""
    completed = subprocess.run(
        [sys.executable, "-m", worker, operation, *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return Measurement(report["seconds"], report["peak_rss"])


def compare(
    name: str,
    size: int,
    subject: tuple[str, list[str]],
    baseline: tuple[str, list[str]],
    repeats: int,
    unit: str = "MB/s",
    worker: str = "bench._worker",
) -> Row:
    subject_runs: list[Measurement] = []
    baseline_runs: list[Measurement] = []
    for _ in range(repeats):
        baseline_runs.append(measure(baseline[0], *baseline[1], worker=worker))
        subject_runs.append(measure(subject[0], *subject[1], worker=worker))
    subject_seconds = statistics.median(run.seconds for run in subject_runs)
    baseline_seconds = statistics.median(run.seconds for run in baseline_runs)
    return Row(
        name=name,
        subject=subject[0],
        baseline=baseline[0],
        size=size,
        subject_mb_s=size / subject_seconds / (1e6 if unit == "MB/s" else 1),
        baseline_mb_s=size / baseline_seconds / (1e6 if unit == "MB/s" else 1),
        ratio=baseline_seconds / subject_seconds,
        subject_peak_rss_mib=max(run.peak_rss for run in subject_runs) / 2**20,
        baseline_peak_rss_mib=max(run.peak_rss for run in baseline_runs) / 2**20,
        unit=unit,
    )


def report(suite: str, rows: list[Row]) -> None:
    header = (
        f"| {'benchmark':<28} | {'persisty-blobs':>14} | {'baseline':>10} | {'ratio':>6} "
        f"| {'peak RSS':>9} | {'baseline RSS':>12} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(
            f"| {row.name:<28} | {row.subject_mb_s:>9.0f} {row.unit} "
            f"| {row.baseline_mb_s:>5.0f} {row.unit} "
            f"| {row.ratio:>5.2f}x | {row.subject_peak_rss_mib:>5.1f} MiB "
            f"| {row.baseline_peak_rss_mib:>8.1f} MiB |"
        )
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"{suite}.json"
    machine = {"python": platform.python_version(), "machine": platform.machine()}
    target.write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))
    print(f"\nwritten to {target}")
