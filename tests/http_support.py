"""A uvicorn server in a child process, for the hosting tests: the store's real peer."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def served(root: Path, kind: str = "directory", **settings: str) -> Iterator[str]:
    """The URL of ``tests.http_app`` served by uvicorn over stores of ``kind`` under ``root``."""
    with serving(root, kind, **settings) as (url, _):
        yield url


@contextlib.contextmanager
def serving(
    root: Path, kind: str = "directory", **settings: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``served``, with the server's process."""
    port = free_port()
    env = dict(os.environ, PB_TEST_ROOT=str(root), PB_TEST_STORE=kind, PB_TEST_SECRET=SECRET)
    env.update({f"PB_TEST_{name.upper()}": value for name, value in settings.items()})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.http_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=10)


def token() -> str:
    """A new principal, with a new empty store on the server."""
    return f"t-{secrets.token_hex(8)}"
