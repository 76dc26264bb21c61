"""SqlStore when things go wrong: a server refusing, cutting or black-holing connections
(through a TCP proxy in this module), permanent failures that no retry fixes, and a missing
extra. Whatever happens, nothing but a ``BlobError`` leaves a public method."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from persisty_blobs import (
    BlobError,
    DataStore,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TransientError,
)
from persisty_blobs.stores import SqlStore

from .conftest import server_url


class TcpProxy:
    """A loopback proxy to ``target`` that forwards, cuts every connection, refuses new ones,
    or stops forwarding while keeping connections open (a black hole)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._mode = "forward"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept, self._listener)

    def _spawn(self, target: Callable[..., None], *arguments: Any) -> None:
        thread = threading.Thread(target=target, args=arguments, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self._sockets.append(client)
            if self._mode == "black hole":
                continue  # accepted, never answered
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets.append(upstream)
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: cut closed the socket
            while not self._stopped:
                if self._mode != "forward":  # leave the bytes in the kernel's buffers
                    time.sleep(0.02)
                    continue
                if not select.select([source], [], [], 0.05)[0] or self._mode != "forward":
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def url(self, url: str) -> str:
        return sa.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def forward(self) -> None:
        self._mode = "forward"
        if self._listener is None:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._spawn(self._accept, self._listener)

    def black_hole(self) -> None:
        self._mode = "black hole"

    def cut(self) -> None:
        """End every open connection; new ones are still forwarded."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def refuse(self) -> None:
        """Cut every connection and refuse new ones (nothing listens on the port)."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        self.cut()

    def close(self) -> None:
        self._stopped = True
        self.refuse()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def proxied(server_database: str, table_prefix: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of each server in turn, and the server's URL through it."""
    url = sa.make_url(server_database)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 0))
    try:
        yield proxy, proxy.url(server_database)
    finally:
        proxy.close()


BIG = bytes(range(256)) * 40  # 10 chunks of 1,000 bytes


def _calls(store: DataStore) -> dict[str, Callable[[], object]]:
    """Every public method of a store, on items that exist (the small one and a big one)."""
    return {
        "get": lambda: store.get("small"),
        "exists": lambda: store.exists("small"),
        "read_bytes small": lambda: store.read_bytes("small"),
        "open small": lambda: store.open("small").close(),
        "read_bytes big": lambda: store.read_bytes("big"),
        "put": lambda: store.put("new", b"new content"),
        "put big": lambda: store.put("new", BIG),
        "delete": lambda: store.delete("small"),
        "list": lambda: list(store.list()),
        "scan": lambda: list(store.scan()),
        "count": lambda: store.count(),
        "copy": lambda: store.copy("big", "copied"),
        "set_flags": lambda: store.set_flags("small", ["pending"]),
        "get_flags": lambda: store.get_flags("small"),
        "namespaces": lambda: store.namespaces(),
        "vacuum": lambda: store.vacuum(),  # type: ignore[attr-defined]
    }


def _fail_as_transient(store: DataStore, limit: float, only: tuple[str, ...] = ()) -> None:
    for name, call in _calls(store).items():
        if only and name not in only:
            continue
        started = time.monotonic()
        with pytest.raises(TransientError):
            call()
        assert time.monotonic() - started < limit, name


def _fill(store: DataStore) -> None:
    store.put("small", b"small content")
    store.put("big", BIG)


def test_a_refused_then_restored_server(proxied: tuple[TcpProxy, str], table_prefix: str) -> None:
    proxy, url = proxied
    with SqlStore(url, chunk_size=1000, table_prefix=table_prefix, connect_timeout=2) as store:
        _fill(store)
        proxy.refuse()
        _fail_as_transient(store, limit=10)
        proxy.forward()
        assert store.read_bytes("small") == b"small content"
        assert store.read_bytes("big") == BIG


def test_connections_cut_mid_read_and_mid_write(
    proxied: tuple[TcpProxy, str], table_prefix: str
) -> None:
    proxy, url = proxied
    with SqlStore(url, chunk_size=1000, table_prefix=table_prefix) as store:
        _fill(store)
        with store.open("big") as reader:
            assert reader.read(1500) == BIG[:1500]
            proxy.cut()
            with pytest.raises(TransientError):
                reader.read()

        def cut_half_way() -> Iterator[bytes]:
            yield b"w" * (5 * 1024 * 1024)  # past the first batch of chunks
            proxy.cut()
            yield b"w" * 1000

        with pytest.raises(TransientError):
            store.put("half", cut_half_way())
        assert store.get("half") is None

        def write_across_a_cut() -> None:
            with store.writer("written") as writer:
                writer.write(b"before the cut")
                proxy.cut()

        with pytest.raises(TransientError):
            write_across_a_cut()
        assert store.get("written") is None  # a retry, on a new connection
        assert store.read_bytes("big") == BIG


def test_a_black_holed_server_times_out(proxied: tuple[TcpProxy, str], table_prefix: str) -> None:
    proxy, url = proxied
    options: dict[str, Any] = {"connect_timeout": 2, "read_timeout": 1}
    with SqlStore(url, chunk_size=1000, table_prefix=table_prefix, **options) as store:
        _fill(store)
        proxy.black_hole()
        # Every call waits out a timeout here: one of each kind of statement is enough (the
        # refused and cut tests call every method).
        _fail_as_transient(store, limit=8, only=("get", "read_bytes big", "put big", "scan"))
        proxy.forward()
        proxy.cut()  # the black-holed connections end; new ones are forwarded
        assert store.read_bytes("big") == BIG


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_server_that_refuses_at_open_is_transient(backend: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    url = sa.make_url(server_url(backend)).set(port=port).render_as_string(False)
    with pytest.raises(TransientError, match="onnect"):
        SqlStore(url, connect_timeout=2)


@pytest.mark.parametrize(
    ("backend", "change", "error", "named"),
    [
        ("postgresql", {"username": "no_such_role"}, PermissionDenied, "no_such_role"),
        ("postgresql", {"database": "no_such_database"}, NotFound, "no_such_database"),
        ("mariadb", {"password": "wrong password"}, PermissionDenied, "Access denied"),
        ("mariadb", {"username": "no_such_user"}, PermissionDenied, "no_such_user"),
        ("mariadb", {"database": "no_such_database"}, NotFound, "no_such_database"),
        ("postgresql", {"query": {"sslmode": "bogus"}}, InvalidArgument, "sslmode"),
        ("postgresql", {"query": {"no_such_option": "1"}}, InvalidArgument, "no_such_option"),
    ],
)
def test_permanent_failures_are_not_transient(
    backend: str, change: dict[str, object], error: type[BlobError], named: str
) -> None:
    url = sa.make_url(server_url(backend)).set(**change).render_as_string(False)  # type: ignore[arg-type]
    with pytest.raises(error, match=named) as raised:
        SqlStore(url)
    assert not isinstance(raised.value, TransientError)


def test_a_missing_sqlite_folder_names_the_path_and_the_absolute_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound) as relative:
        SqlStore("sqlite:///missing/blobs.db")
    message = str(relative.value)
    assert str(tmp_path / "missing" / "blobs.db") in message
    assert f"sqlite:///{tmp_path}/missing/blobs.db" in message  # four slashes: absolute
    with pytest.raises(NotFound, match="folder does not exist") as absolute:
        SqlStore(f"sqlite:///{tmp_path}/missing/blobs.db")
    assert "four slashes" not in str(absolute.value)


@pytest.mark.parametrize("url", ["foo://x", "not a url", "postgresql+nodriver://x/y"])
def test_a_url_no_dialect_reads_is_invalid(url: str) -> None:
    with pytest.raises(InvalidArgument):
        SqlStore(url)


MISSING_MODULE = """
import sys
sys.modules[sys.argv[1]] = None
import persisty_blobs as pb
from persisty_blobs.errors import Unsupported
for attempt in (lambda: pb.stores.SqlStore, lambda: pb.open_store(sys.argv[2])):
    try:
        attempt()
    except Unsupported as error:
        print(error)
    else:
        print("no error")
"""


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("sqlalchemy", "sqlite:///blobs.db", "persisty-blobs[sql]"),
        ("psycopg", "postgresql://postgres@127.0.0.1/test", "persisty-blobs[sql]"),
        ("sqlcipher3", "sqlcipher:///blobs.db", "persisty-blobs[sqlcipher]"),
    ],
)
def test_a_missing_extra_is_unsupported_naming_it(module: str, url: str, extra: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MISSING_MODULE, module, url],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert extra in lines[1], lines
    if module == "sqlalchemy":
        assert extra in lines[0], lines
