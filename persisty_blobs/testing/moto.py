"""An S3 endpoint for tests: moto's ``ThreadedMotoServer`` on loopback, used through boto3
over real HTTP exactly as AWS is. Needs ``moto[server]``.

The server runs in a child process, so what it stores counts neither in the test process's
memory nor against its GIL::

    from persisty_blobs.testing.moto import moto_server, moto_client

    with moto_server() as endpoint_url:
        client = moto_client(endpoint_url)
        client.create_bucket(Bucket="photos")
        store = S3Store("photos", client=client)
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["moto_client", "moto_server"]

_SERVE = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it, or dies
server.stop()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start the server; yield its endpoint URL (``http://127.0.0.1:<port>``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a log line per request; errors reach the client anyway
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"moto's server did not start (exit code {process.wait()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def moto_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client for the server, with the fake credentials moto accepts."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            **{
                "signature_version": "s3v4",
                "retries": {"mode": "standard", "max_attempts": 3},
                **config,
            }
        ),
    )
