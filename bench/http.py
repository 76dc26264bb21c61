"""HTTP benchmark: ``HttpStore`` put and get of one large item against plain httpx streaming to
and from a Starlette endpoint that writes a file (and serves it with ``FileResponse``), both
served by one uvicorn process on loopback; and many requests for a small item."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._harness import Row, compare

ROOT = Path(__file__).resolve().parent.parent


def _serve(root: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench._http_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=dict(os.environ, BENCH_ROOT=root),
    )


def _started(port: int, server: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's server did not start") from None
            time.sleep(0.05)


def run(size: int, repeats: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as root:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = _serve(root, port)
        try:
            url = _started(port, server)
            for name, subject, baseline in (
                ("put", "store_put", "plain_put"),
                ("get", "store_get", "plain_get"),
            ):
                rows.append(
                    compare(
                        f"HttpStore {name}",
                        size,
                        (subject, [url, str(size)]),
                        (baseline, [url, str(size)]),
                        repeats,
                        worker="bench._http_worker",
                    )
                )
            count = 10_000
            rows.append(
                compare(
                    f"{count:,} GETs of 1 KiB",
                    count,
                    ("store_small", [url, str(count)]),
                    ("plain_small", [url, str(count)]),
                    1,
                    unit="req/s",
                    worker="bench._http_worker",
                )
            )
        finally:
            server.terminate()
            server.wait()
    return rows
