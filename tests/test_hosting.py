"""The hosting app against real HTTP clients: signed URLs and forms that cannot be bent,
ranges and conditional requests, quotas enforced while the body streams, and a client that
goes away mid-upload leaving nothing."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from persisty_blobs import (
    DataStore,
    IntegrityError,
    InvalidArgument,
    PermissionDenied,
    QuotaExceeded,
    TransientError,
    open_store,
)
from persisty_blobs.server import HostedDataStoreFactory, create_app
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.stores.http import HttpStore
from persisty_blobs.stores.sql import SqlStore

from .http_support import ROOT, SECRET, served, serving, token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("hosted")
    with served(root, quota=str(64 * 1024), cors="http://127.0.0.1") as url:
        yield url, root


@pytest.fixture
def user(server: tuple[str, Path]) -> tuple[str, str, DataStore]:
    """(url, token, the server-side store of that token), like the app's authorize does."""
    url, root = server
    name = token()
    with HttpStore(url, token=name) as store:
        store.count()  # the server makes the principal's store on first use
    return url, name, DirectoryStore(root / name)


def factory(url: str, root: Path, principal: str | None = None) -> HostedDataStoreFactory:
    store = DirectoryStore(root / "default")
    authorizer = None
    if principal is not None:
        authorizer = lambda store, who: store.namespace(who)  # noqa: E731
    return HostedDataStoreFactory(store, secret=SECRET, base_url=url, authorizer=authorizer)


def test_requests_without_a_valid_token_get_401(server: tuple[str, Path]) -> None:
    url, _ = server
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic x"}):
        assert httpx.get(f"{url}/v1/items/x", headers=headers).status_code == 401
    with pytest.raises(PermissionDenied):
        HttpStore(url, token="wrong")


def test_a_password_in_a_url_is_never_shown(server: tuple[str, Path]) -> None:
    import sqlalchemy as sa

    from persisty_blobs.sync import SyncState

    from .conftest import server_url

    url, _ = server
    # The URL's credentials go to the server in place of the token (httpx's rule): refused.
    with pytest.raises(PermissionDenied) as refused:
        HttpStore(url.replace("://", "://proxy:s3cret@"), token=token())
    assert "proxy@127.0.0.1" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    with pytest.raises(InvalidArgument, match="no query"):  # its requests would drop it
        HttpStore(f"{url}/?token={token()}")
    database = sa.make_url(server_url("postgresql")).set(password="s3cret")  # trust: any works
    prefix = f"shown{secrets.token_hex(4)}"
    state = SyncState(database.render_as_string(hide_password=False), table_prefix=prefix)
    in_query = database.set(password=None).update_query_dict({"password": "s3cret"})
    try:
        assert "s3cret" not in repr(state)
        blobs = SqlStore(in_query.render_as_string(hide_password=False), table_prefix=prefix + "b")
        blobs.close()
        assert "s3cret" not in repr(blobs)
        with pytest.raises(TransientError) as down:  # nothing listens on port 1
            SyncState(in_query.set(port=1).render_as_string(hide_password=False))
        assert "s3cret" not in str(down.value)
        for refused_url in ("file:///x?token=s3cret", "http:///v1?token=s3cret"):
            with pytest.raises(InvalidArgument) as bad:
                open_store(refused_url)
            assert "s3cret" not in str(bad.value)
        assert "password=***" in repr(blobs)
    finally:
        with state.engine.begin() as connection:
            for table in (state.tables.items, state.tables.runs, state.tables.schema):
                table.drop(connection)
            for name in ("schema", "items", "versions", "chunks", "flags"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}b_{name} CASCADE")
        state.close()


def test_a_sync_state_tells_two_users_stores_at_one_url_apart(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    from persisty_blobs.stores.memory import MemoryStore
    from persisty_blobs.sync import Replicator, SyncAborted, SyncState

    url, _ = server
    alice, bob = token(), token()
    local, state = MemoryStore(), SyncState(tmp_path / "state.db")
    local.put("photo.jpg", b"alice's")
    with HttpStore(url, token=alice) as remote:
        assert Replicator(local, remote, state, pair="phone").run().ok
        assert alice not in repr(remote)  # the store is named by a digest only
        runs = state.tables.runs
        with state.engine.begin() as connection:  # as recorded before stores named theirs
            connection.execute(runs.update().values(sides=f"{local!r} <-> HttpStore({url!r})"))
        assert Replicator(local, remote, state, pair="phone").run().ok
    with HttpStore(url, token=bob) as other, pytest.raises(SyncAborted, match="another name"):
        Replicator(local, other, state, pair="phone").run()
    assert local.read_bytes("photo.jpg") == b"alice's"


def test_ranges_conditional_requests_and_errors(user: tuple[str, str, DataStore]) -> None:
    url, name, _ = user
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {name}"}) as client:
        check_ranges_and_conditions(client)


def check_ranges_and_conditions(client: httpx.Client) -> None:
    put = client.put(
        "/v1/items/docs/a%20b.txt",
        content=b"0123456789",
        headers={"content-type": "text/plain", "x-persisty-meta-title": "caf%C3%A9"},
    )
    assert put.status_code == 201
    etag = put.headers["etag"]
    whole = client.get("/v1/items/docs/a%20b.txt")
    assert (whole.status_code, whole.content, whole.headers["content-type"]) == (
        200,
        b"0123456789",
        "text/plain",
    )
    assert whole.headers["x-persisty-meta-title"] == "caf%C3%A9"
    part = client.get("/v1/items/docs/a%20b.txt", headers={"range": "bytes=2-4"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (
        206,
        b"234",
        "bytes 2-4/10",
    )
    tail = client.get("/v1/items/docs/a%20b.txt", headers={"range": "bytes=-3"})
    assert (tail.status_code, tail.content) == (206, b"789")
    beyond = client.get("/v1/items/docs/a%20b.txt", headers={"range": "bytes=10-"})
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, "bytes */10")
    same = client.get("/v1/items/docs/a%20b.txt", headers={"if-none-match": etag})
    assert same.status_code == 304
    since = client.get(
        "/v1/items/docs/a%20b.txt", headers={"if-modified-since": whole.headers["last-modified"]}
    )
    assert since.status_code == 304
    stale = client.put("/v1/items/docs/a%20b.txt", content=b"x", headers={"if-match": '"nope"'})
    assert (stale.status_code, stale.json()["error"]) == (412, "PreconditionFailed")
    exists = client.put("/v1/items/docs/a%20b.txt", content=b"x", headers={"if-none-match": "*"})
    assert (exists.status_code, exists.json()["error"]) == (412, "AlreadyExists")
    changed = client.put(
        "/v1/items/docs/a%20b.txt",
        content=b"0123456789 changed on the way",
        headers={"x-persisty-checksum": "sha256:" + hashlib.sha256(b"sent").hexdigest()},
    )
    assert (changed.status_code, changed.json()["error"]) == (422, "IntegrityError")
    garbled = client.put(
        "/v1/items/docs/a%20b.txt", content=b"x", headers={"x-persisty-checksum": "md5:x"}
    )
    assert garbled.status_code == 400
    assert client.get("/v1/items/docs/a%20b.txt").content == b"0123456789"
    fresh = client.put("/v1/items/docs/a%20b.txt", content=b"abcdefghij", headers={"if-match": "*"})
    assert fresh.status_code == 201
    nowhere = client.put("/v1/items/nowhere", content=b"x", headers={"if-match": "*"})
    assert nowhere.status_code == 412
    resumed = client.get(
        "/v1/items/docs/a%20b.txt", headers={"range": "bytes=5-", "if-range": etag}
    )
    assert (resumed.status_code, resumed.content) == (200, b"abcdefghij")  # changed: all of it
    current = client.get(
        "/v1/items/docs/a%20b.txt",
        headers={"range": "bytes=5-", "if-range": fresh.headers["etag"]},
    )
    assert (current.status_code, current.content) == (206, b"fghij")
    dated = client.get(
        "/v1/items/docs/a%20b.txt",
        headers={"range": "bytes=5-", "if-range": fresh.headers["last-modified"]},
    )
    assert dated.status_code == 200  # a date is too weak a validator to resume by
    described = client.put(
        "/v1/metadata/docs/a%20b.txt", json={"metadata": {"k": "v"}}, headers={"if-match": "*"}
    )
    assert described.status_code == 200
    bad = client.get("/v1/items/a/../b")
    assert bad.status_code in (400, 404)
    missing = client.get("/v1/items/missing")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
    assert "store" not in missing.json()["message"].lower()


def test_a_get_of_a_file_another_program_wrote_carries_its_checksum(
    server: tuple[str, Path], user: tuple[str, str, DataStore]
) -> None:
    url, name, _ = user
    content = b"written beside the server" * 1000
    path = server[1] / name / "theirs.bin"
    path.write_bytes(content)
    long_ago = path.stat().st_mtime_ns - 3600 * 10**9  # settled: open does not hash it
    os.utime(path, ns=(long_ago, long_ago))
    checksum = "sha256:" + hashlib.sha256(content).hexdigest()
    with HttpStore(url, token=name) as store, store.open("theirs.bin") as reader:
        assert reader.item.checksum == checksum, "so a client can check the body end to end"
        assert reader.read() == content


def test_quota_is_enforced_while_the_body_streams(user: tuple[str, str, DataStore]) -> None:
    url, name, server_side = user
    with HttpStore(url, token=name) as store:
        store.put("kept", b"k" * 1000)

        def body() -> Iterator[bytes]:
            for _ in range(100):
                yield b"x" * 1024

        response = httpx.put(
            f"{url}/v1/items/big", content=body(), headers={"authorization": f"Bearer {name}"}
        )
        assert (response.status_code, response.json()["error"]) == (507, "QuotaExceeded")
        with pytest.raises(QuotaExceeded):
            store.put("big", b"y" * 70_000)
        assert [entry.key for entry in server_side.scan()] == ["kept"]


def test_a_client_that_goes_away_mid_upload_leaves_the_old_item(
    user: tuple[str, str, DataStore],
) -> None:
    url, name, server_side = user
    with HttpStore(url, token=name) as store:
        store.put("doc", b"old")
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"PUT /v1/items/doc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + name.encode()
            + b"\r\nContent-Length: 50000\r\n\r\n"
            + b"n" * 20000
        )
        time.sleep(0.3)
    time.sleep(0.5)
    assert server_side.read_bytes("doc") == b"old"
    assert [entry.key for entry in server_side.scan()] == ["doc"]


def test_signed_urls_work_and_cannot_be_bent(server: tuple[str, Path]) -> None:
    url, root = server
    hosted = factory(url, root, "alice")
    alice = hosted.create("alice")
    bob = hosted.create("bob")
    alice.put("photo.jpg", b"alice's photo")
    bob.put("photo.jpg", b"bob's photo")
    download = hosted.download_url(
        "photo.jpg", authorization="alice", content_disposition="attachment"
    )
    got = httpx.get(download)
    assert (got.status_code, got.content) == (200, b"alice's photo")
    assert got.headers["content-disposition"] == "attachment"
    upload = hosted.upload_url("new.txt", authorization="alice", content_type="text/plain")
    assert (
        httpx.put(upload, content=b"hi", headers={"content-type": "text/plain"}).status_code == 201
    )
    assert alice.read_bytes("new.txt") == b"hi"
    # What the signature does not cover is not taken from the uploader: flags, metadata.
    unsigned = hosted.upload_url("page.html", authorization="alice")
    sent = httpx.put(
        unsigned,
        content=b"<script>alert(1)</script>",
        headers={
            "content-type": "text/html",
            "x-persisty-flags": "processed",
            "x-persisty-meta-owner": "mallory",
        },
    )
    assert sent.status_code == 201
    stored = alice.get("page.html")
    assert stored is not None
    assert (stored.flags, dict(stored.metadata)) == (frozenset(), {})
    page = httpx.get(hosted.download_url("page.html", authorization="alice"))
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"] == "sandbox"  # no script runs on this origin

    def bent(signed: str, **changes: str) -> str:
        parts = urllib.parse.urlsplit(signed)
        query = dict(urllib.parse.parse_qsl(parts.query))
        path = changes.pop("path", parts.path)
        query.update(changes)
        return urllib.parse.urlunsplit(
            parts._replace(path=path, query=urllib.parse.urlencode(query))
        )

    refused = [
        httpx.get(bent(download, signature="A" * 43)),
        httpx.get(bent(download, path="/v1/signed/other.jpg")),
        httpx.get(bent(download, namespace="bob")),
        httpx.get(bent(download, expires=str(int(time.time()) + 99999))),
        httpx.get(bent(download, disposition="inline")),
        httpx.put(
            bent(upload, content_type="text/html"),
            content=b"<script>",
            headers={"content-type": "text/html"},
        ),
        httpx.put(
            bent(upload, path="/v1/signed/other.txt"),
            content=b"x",
            headers={"content-type": "text/plain"},
        ),
        httpx.put(download, content=b"overwrite"),
    ]
    assert [response.status_code for response in refused] == [403] * 8
    expiring = hosted.download_url("photo.jpg", authorization="alice", expires_in=1)
    time.sleep(2.1)
    assert httpx.get(expiring).status_code == 403
    assert alice.read_bytes("photo.jpg") == b"alice's photo"
    assert not alice.exists("other.txt")
    assert not alice.exists("other.jpg")
    assert bob.read_bytes("photo.jpg") == b"bob's photo"


def post_form(form: dict[str, Any], name: str, data: bytes, content_type: str) -> httpx.Response:
    fields = dict(form["fields"])
    return httpx.post(
        str(form["url"]), data=fields, files={str(form["file_field"]): (name, data, content_type)}
    )


def test_upload_forms_enforce_their_policy_while_the_file_streams(server: tuple[str, Path]) -> None:
    url, root = server
    hosted = factory(url, root, "carol")
    carol = hosted.create("carol")
    form = hosted.upload_form(
        authorization="carol", key_prefix="uploads/", max_size=1000, content_types=["image/"]
    ).as_json()
    ok = post_form(form, "cat.png", b"\x89PNG" * 10, "image/png")
    assert ok.status_code == 204
    assert carol.read_bytes("uploads/cat.png") == b"\x89PNG" * 10
    assert carol.get("uploads/cat.png").content_type == "image/png"  # type: ignore[union-attr]
    too_big = post_form(form, "big.png", b"x" * 5000, "image/png")
    assert (too_big.status_code, too_big.json()["error"]) == (413, "TooLarge")
    wrong_type = post_form(form, "page.html", b"<html>", "text/html")
    assert wrong_type.status_code == 415
    fields: dict[str, str] = form["fields"]
    moved = dict(form, fields=dict(fields, key="elsewhere/${filename}"))
    assert post_form(moved, "x.png", b"x", "image/png").status_code == 403
    widened = dict(form, fields=dict(fields, policy=fields["policy"] + "x"))
    assert post_form(widened, "x.png", b"x", "image/png").status_code == 403
    # A whole body whose file part never closes is a malformed form, not one to retry.
    unclosed = b"".join(
        b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, value in fields.items()
    ) + (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="cut.png"\r\n'
        b"Content-Type: image/png\r\n\r\nhalf a file"
    )
    cut = httpx.post(
        form["url"], content=unclosed, headers={"content-type": "multipart/form-data; boundary=XX"}
    )
    assert (cut.status_code, cut.json()["error"]) == (400, "InvalidArgument")
    assert sorted(entry.key for entry in carol.scan()) == ["uploads/cat.png"]


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.mark.slow
def test_an_item_of_twice_the_budget_each_way_in_bounded_memory(tmp_path: Path) -> None:
    # 256 MiB: a side that held the item would pass the 100 MiB twice over (the benchmark
    # moves 1 GiB each way).
    with serving(tmp_path) as (url, server):
        completed = subprocess.run(
            [sys.executable, "-m", "tests.http_transfer_worker", url, token(), str(2**28)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        client_rss = int(completed.stdout.split()[-1])
        server_rss = _peak_rss(server.pid)
    print(f"peak RSS: client {client_rss / 2**20:.1f} MiB, server {server_rss / 2**20:.1f} MiB")
    assert client_rss < 100 * 2**20, client_rss
    assert server_rss < 100 * 2**20, server_rss


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_uploads_that_have_barely_begun_hold_no_memory_ahead_of_their_data(
    tmp_path: Path,
) -> None:
    # Anyone may start posting a form: what a request holds must follow what it has sent.
    head = (
        b"POST /v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
        b"Content-Type: multipart/form-data; boundary=XX\r\n\r\n--XX\r\n"
    )
    with serving(tmp_path) as (url, server):
        address = urllib.parse.urlsplit(url)
        before = _rss(server.pid)
        connections = []
        try:
            for _ in range(100):
                connection = socket.create_connection((address.hostname, address.port))
                connection.sendall(head)
                connections.append(connection)
            time.sleep(1.0)  # let the server read each request's first bytes
            held = _rss(server.pid) - before
        finally:
            for connection in connections:
                connection.close()
    assert held < 40 * 2**20, f"100 idle uploads hold {held / 2**20:.0f} MiB"


def test_quota_holds_against_copies_and_concurrent_uploads(
    user: tuple[str, str, DataStore],
) -> None:
    url, name, server_side = user
    headers = {"authorization": f"Bearer {name}"}
    with HttpStore(url, token=name) as store:
        store.put("a", b"x" * 40_000)
        with pytest.raises(QuotaExceeded):
            store.copy("a", "b")
        store.put("a", b"y" * 40_000)  # replacing an item frees its room
        store.delete("a")

        def upload(index: int) -> int:
            body = b"z" * 20_000
            return httpx.put(f"{url}/v1/items/u{index}", content=body, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(upload, range(8)))
    assert statuses.count(201) == 3
    assert sum(entry.size for entry in server_side.scan()) <= 64 * 1024


def test_uploads_to_one_namespace_take_turns_and_hold_up_no_other(
    server: tuple[str, Path],
) -> None:
    url, root = server
    made = factory(url, root, principal="any")
    put_url = made.upload_url("slow.bin", authorization="qa")
    form = made.upload_form("form.bin", authorization="qa")
    elsewhere = made.upload_form("other.bin", authorization="qb")
    started, release = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield b"p" * 20_000
        started.set()
        release.wait(20)
        yield b"p" * 20_000

    def post(posted: Any, size: int) -> int:
        files = {"file": ("f.bin", b"f" * size)}
        return httpx.post(posted.url, data=posted.fields, files=files, timeout=10).status_code

    stalled = made.upload_form("stalled.bin", authorization="qc")
    fields = b"".join(
        b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, value in stalled.fields.items()
    )
    port = int(url.rsplit(":", 1)[1])
    with (
        ThreadPoolExecutor(2) as pool,
        socket.create_connection(("127.0.0.1", port)) as stall,
        socket.create_connection(("127.0.0.1", port)) as unsigned,
    ):
        # A form that names a namespace but never sends its policy holds nothing.
        unsigned.sendall(
            b"POST /v1/upload?namespace=qa HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: multipart/form-data; boundary=XX\r\n\r\n--XX\r\n"
        )
        # A form whose file stops coming: it holds its own namespace's turn, no one else's.
        stall.sendall(
            b"POST /v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: multipart/form-data; boundary=XX\r\n\r\n"
            + fields
            + b'--XX\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nxx'
        )
        put = pool.submit(lambda: httpx.put(put_url, content=body(), timeout=30).status_code)
        assert started.wait(10)
        time.sleep(0.2)  # the first bytes reach the server
        assert post(elsewhere, 40_000) == 204  # another namespace's upload is not held up
        same = pool.submit(post, form, 40_000)  # one to its own namespace waits its turn
        time.sleep(0.2)
        release.set()
        statuses = sorted([put.result(), same.result()])
    assert statuses == [201, 507]  # the second one saw the first one's bytes (64 KiB quota)
    used = DirectoryStore(root / "default").namespace("qa")
    assert sum(entry.size for entry in used.scan()) <= 64 * 1024


def test_a_form_larger_than_a_batch_takes_its_turn_and_keeps_every_byte(tmp_path: Path) -> None:
    with served(tmp_path, quota=str(4 * 2**20)) as url:
        made = factory(url, tmp_path, principal="any")
        data = os.urandom(3 * 2**20)  # several of the parser's batches
        form = made.upload_form("big.bin", authorization="qd")
        posted = httpx.post(form.url, data=form.fields, files={"file": ("b", data)}, timeout=30)
        assert posted.status_code == 204
        namespace = DirectoryStore(tmp_path / "default").namespace("qd")
        assert namespace.read_bytes("big.bin") == data
        again = made.upload_form("again.bin", authorization="qd")
        files = {"file": ("a", data)}
        refused = httpx.post(again.url, data=again.fields, files=files, timeout=30)
        assert (refused.status_code, refused.json()["error"]) == (507, "QuotaExceeded")
        assert [entry.key for entry in namespace.scan()] == ["big.bin"]


def test_an_upload_that_stalls_is_cut_off_and_gives_back_its_turn(tmp_path: Path) -> None:
    with served(tmp_path, quota=str(2**20), body_timeout="1") as url:
        made = factory(url, tmp_path, principal="any")
        port = int(url.rsplit(":", 1)[1])
        stalled_url = urllib.parse.urlsplit(made.upload_url("stalled.bin", authorization="qe"))
        with socket.create_connection(("127.0.0.1", port)) as stall:
            stall.sendall(
                f"PUT {stalled_url.path}?{stalled_url.query} HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: 1000\r\n\r\npartial".encode()
            )
            started = time.monotonic()
            after = made.upload_url("after.bin", authorization="qe")
            assert httpx.put(after, content=b"x", timeout=30).status_code == 201
            assert time.monotonic() - started < 20  # given back after the body timeout
            assert stall.recv(100).startswith(b"HTTP/1.1 503")
        with pytest.raises(InvalidArgument):
            create_app(DirectoryStore(tmp_path / "x"), secret=SECRET, body_timeout=0)


def test_answers_for_odd_requests(user: tuple[str, str, DataStore]) -> None:
    url, name, _ = user
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {name}"}) as client:
        etag = client.put("/v1/items/empty", content=b"").headers["etag"]
        assert client.get("/v1/items/empty", headers={"range": "bytes=-5"}).status_code == 416
        assert (
            client.get("/v1/items/empty", headers={"if-none-match": f"W/{etag}"}).status_code == 304
        )
        old = client.get(
            "/v1/items/empty", headers={"if-modified-since": "Sun, 06 Nov 2094 08:49:37 -0000"}
        )
        assert old.status_code == 304
        assert client.get("/v1/items?limit=0").status_code == 400
        assert client.get("/v1/items?limit=" + "9" * 5000).status_code == 400
        assert (
            client.get(
                "/v1/items/empty", headers={"range": "bytes=" + "1" * 5000 + "-"}
            ).status_code
            == 200
        )
        missing = client.delete("/v1/items/missing")
        assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
        huge = client.put("/v1/flags/empty", content=b"[" * 100_000)
        assert (huge.status_code, huge.json()["error"]) == (413, "TooLarge")
        assert client.put("/v1/flags/empty", content=b"{nope").status_code == 400


class _Liar(http.server.BaseHTTPRequestHandler):
    """A server that answers a whole-item GET with 206 and part of the item."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/info"):
            body = b'{"version": 1, "chunk_size": 1024, "capabilities": {}}'
            self.send_response(200)
        else:
            body = b"0123456789"
            self.send_response(206)
            self.send_header("content-range", "bytes 0-9/100")
            self.send_header("etag", '"e"')
            self.send_header("x-persisty-updated-at", "2026-01-01T00:00:00+00:00")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_server_that_lies_about_ranges_gives_an_error_not_wrong_bytes() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with HttpStore(url, token="t") as store, pytest.raises(IntegrityError):
            store.read_bytes("x")
    finally:
        server.shutdown()
        server.server_close()


class _WrongBody(http.server.BaseHTTPRequestHandler):
    """A peer that answers a whole-item GET with ``body`` for an item of ``size`` bytes and
    ``checksum`` (chunked if ``chunked``: no length to check it by)."""

    body, size, checksum, chunked, status, encoding = b"", 0, "", False, 200, ""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/info"):
            body = b'{"version": 1, "chunk_size": 1024, "capabilities": {}}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.protocol_version = "HTTP/1.1"
        self.send_response(self.status)
        if self.encoding:
            self.send_header("content-encoding", self.encoding)
        self.send_header("etag", '"e"')
        self.send_header("x-persisty-size", str(self.size))
        self.send_header("x-persisty-checksum", self.checksum)
        self.send_header("x-persisty-updated-at", "2026-01-01T00:00:00+00:00")
        self.send_header("connection", "close")
        if self.chunked:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(self.body), self.body))
            return
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


_TEN = b"0123456789"


@pytest.mark.parametrize(
    ("body", "size", "checksum", "chunked", "status", "encoding"),
    [
        (_TEN, 100, "", False, 200, ""),  # shorter than the item, as its own length says
        (_TEN, 100, "", True, 200, ""),  # a chunked body that ends early
        (_TEN * 10, 10, "", False, 200, ""),  # longer than the item
        (_TEN, 10, "sha256:" + "0" * 64, False, 200, ""),  # not the item's checksum
        (_TEN, 10, "-", False, 302, ""),  # a redirect's page, described as the item
        (_TEN, 10, "-", False, 200, "gzip"),  # bytes still to decode, without a checksum
    ],
)
def test_a_peer_that_sends_other_content_than_the_item_gives_an_integrity_error(
    body: bytes, size: int, checksum: str, chunked: bool, status: int, encoding: str
) -> None:
    _WrongBody.body, _WrongBody.size, _WrongBody.chunked = body, size, chunked
    _WrongBody.status, _WrongBody.encoding = status, encoding
    _WrongBody.checksum = checksum or "sha256:" + hashlib.sha256(body).hexdigest()
    if checksum == "-":
        _WrongBody.checksum = ""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WrongBody)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for wrong in ({"retries": -1}, {"retries": 1.5}, {"timeout": 0}):
            with pytest.raises(InvalidArgument):
                HttpStore(url, token="t", **wrong)
        with HttpStore(url, token="t", timeout=None):  # reads without a deadline
            pass
        with HttpStore(url, token="t", retries=0) as store:
            with pytest.raises(IntegrityError):
                store.read_bytes("x")
            with pytest.raises(IntegrityError), store.open("x") as reader:
                reader.read()
    finally:
        server.shutdown()
        server.server_close()


class _Malformed(http.server.BaseHTTPRequestHandler):
    """A peer that answers every listing with ``answer``, a byte per ``pause`` seconds if set."""

    answer = b"{}"
    pause = 0.0

    def do_GET(self) -> None:
        if self.path.startswith("/v1/info"):
            self._answer(b'{"version": 1, "chunk_size": 1024, "capabilities": {}}', 0.0)
        else:
            self._answer(self.answer, self.pause)

    def _answer(self, body: bytes, pause: float) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if not pause:
            self.wfile.write(body)
            return
        for byte in body:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(pause)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def malformed() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Malformed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Malformed.answer, _Malformed.pause = b"{}", 0.0
        server.shutdown()
        server.server_close()


_ENTRY = {"key": "a", "size": 1, "etag": "e", "updated_at": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"entries": None},
        {"entries": {"a": 1}},
        {"entries": [{**_ENTRY, "key": 5, "checksum": None, "flags": None}]},
        {"entries": [{**_ENTRY, "key": "../escape", "checksum": None, "flags": None}]},
        {"entries": [{**_ENTRY, "updated_at": "2026-01-01T00:00:00", "checksum": None}]},
        {"entries": [{**_ENTRY, "size": -1, "checksum": None, "flags": None}]},
        {
            "entries": [
                {**_ENTRY, "key": f"k{i:05}", "checksum": None, "flags": None} for i in range(1001)
            ]
        },  # a peer that ignores the limit
    ],
)
def test_a_peer_that_answers_a_listing_wrongly_gives_an_integrity_error(
    malformed: str, answer: dict[str, Any]
) -> None:
    _Malformed.answer = json.dumps(answer).encode()
    with HttpStore(malformed, token="t") as store, pytest.raises(IntegrityError, match="malformed"):
        list(store.scan())


def test_a_peer_that_trickles_its_answer_times_out(malformed: str) -> None:
    _Malformed.answer, _Malformed.pause = b" " * 100 + b"{}", 0.05
    with HttpStore(malformed, token="t", timeout=0.2) as store:
        started = time.monotonic()
        with pytest.raises(TransientError, match="read timeouts"):
            store.count()
        assert time.monotonic() - started < 3  # each byte came within the read timeout


def test_the_server_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("short")
    (tmp_path / "secret").write_text("s" * 32)
    (tmp_path / "tokens").write_text("token-without-principal\n")
    for files in (
        ["--secret-file", "short"],
        ["--secret-file", "secret", "--tokens-file", "tokens"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "persisty_blobs.server", "memory://", *files],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("python -m persisty_blobs.server: InvalidArgument: ")
        assert len(done.stderr.splitlines()) == 1


def test_a_path_or_method_no_route_takes_answers_like_every_error(
    server: tuple[str, Path],
) -> None:
    url, _ = server
    missing = httpx.get(f"{url}/v1/nothing")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
    refused = httpx.request("PATCH", f"{url}/v1/items/k")
    assert (refused.status_code, refused.json()["error"]) == (405, "Unsupported")
    assert "PUT" in refused.headers["allow"]
