"""An S3 endpoint for tests: moto's ``ThreadedMotoServer`` on loopback, used through boto3
over real HTTP exactly as AWS is, and ``FaultyProxy``, which does to the traffic what a
network can. Needs ``moto[server]`` (and boto3, the ``s3`` extra).

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
import http.client
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from ..errors import Unsupported
from ..registry import require

__all__ = ["FaultyProxy", "moto_client", "moto_server"]

_SERVE = """
import functools
import sys
import threading

from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer

# S3 checks a conditional write and stores the object in one step; moto checks, then stores,
# so two create-only writes racing on its threads could both win. One lock makes each
# PutObject and CompleteMultipartUpload one step, as on S3.
_lock = threading.Lock()


def _atomic(method):
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _lock:
            return method(self, *args, **kwargs)

    return locked


S3Response.put_object = _atomic(S3Response.put_object)
S3Response._key_response_post = _atomic(S3Response._key_response_post)

# moto 5.2 lists its own package folder (a listdir and a stat per service) on every request,
# which cost more than the request itself: the list never changes while it runs.
from moto import backends

_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _modules

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it, or dies
server.stop()
"""

_INSTALL = "pip install 'moto[server]' 'persisty-blobs[s3]'"


@contextlib.contextmanager
def moto_server(*, check_credentials: bool = False) -> Iterator[str]:
    """Start the server; yield its endpoint URL (``http://127.0.0.1:<port>``). With
    ``check_credentials``, moto refuses access keys its IAM does not know, as AWS does."""
    for module in ("moto", "flask", "flask_cors", "boto3"):
        if importlib.util.find_spec(module) is None:
            raise Unsupported(f"persisty_blobs.testing.moto needs {module!r}: {_INSTALL}")
    environment = dict(os.environ)
    if check_credentials:
        environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a log line per request; errors reach the client anyway
        text=True,
        env=environment,
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
    boto3 = require("boto3", extra="s3")
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
                "retries": {"mode": "standard", "max_attempts": 5},
                **config,
            }
        ),
    )


class FaultyProxy:
    """An HTTP/1.1 proxy on loopback in front of an endpoint, which forwards every request
    until told to fail the way a network does:

    - ``lose_response_to("PUT /bucket/key ")``: the next request whose request line starts
      so reaches the server, and its response is lost (the connection closes instead);
    - ``strip_header = "range"``: requests lose that header on the way;
    - ``black_hole = True``: requests go nowhere and nothing comes back;
    - ``cut_after = n``: the connection of the next request with a body longer than ``n``
      bytes is cut after ``n`` of them, and nothing reaches the server.

    It keeps its clients' connections alive between requests, as AWS does (moto's server
    closes each one), and sends each request to the server on a connection of its own."""

    def __init__(self, upstream_url: str) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.strip_header: str | None = None
        self.black_hole = False
        self.cut_after: int | None = None
        self.lost = 0  # responses lost so far
        self.closed = threading.Event()
        self._lose: str | None = None
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def lose_response_to(self, request_start: str) -> None:
        with self._lock:
            self._lose = request_start

    def _loses(self, request_line: str) -> bool:
        with self._lock:
            if self._lose is None or not request_line.startswith(self._lose):
                return False
            self._lose = None
            self.lost += 1
            return True

    def close(self) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_HOP_BY_HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "content-length"}


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; also answers ``Expect: 100-continue``

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: FaultyProxy = self.server.proxy  # type: ignore[attr-defined]
        size = int(self.headers.get("Content-Length", 0))
        if proxy.cut_after is not None and size > proxy.cut_after:
            self.rfile.read(proxy.cut_after)
            proxy.cut_after = None
            self.close_connection = True  # with the rest unread: the client's send fails
            return
        body = self.rfile.read(size)
        if len(body) < size:  # the client cut its request short: nothing reaches the server
            self.close_connection = True
            return
        if proxy.black_hole:
            proxy.closed.wait()
            self.close_connection = True
            return
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            stripped = _HOP_BY_HOP | {(proxy.strip_header or "").lower()}
            for name, value in self.headers.items():
                if name.lower() not in stripped:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        if proxy._loses(self.requestline):
            self.close_connection = True
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward
