"""S3Store where the network or the account misbehaves: responses lost on the way back, a
proxy that drops the Range header, a black-holed endpoint, a forked process, an outage in
the middle of a multipart upload, a misspelt bucket and wrong credentials. Each fault is
real: a TCP proxy between boto3 and moto's server (``FaultyProxy``), not a mock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from persisty_blobs import (
    AlreadyExists,
    IntegrityError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    TransientError,
)
from persisty_blobs.stores import S3Store
from persisty_blobs.testing._support import assert_stored, payload, sha256
from persisty_blobs.testing.moto import FaultyProxy, moto_client, moto_server

MiB = 1024 * 1024


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultyProxy]:
    with FaultyProxy(s3_endpoint) as proxy:
        yield proxy


def proxied_store(proxy: FaultyProxy, bucket: str, **config: Any) -> S3Store:
    client = moto_client(proxy.url, **config)
    return S3Store(bucket, "app", client=client, multipart_threshold=5 * MiB, part_size=5 * MiB)


@pytest.fixture
def store(proxy: FaultyProxy, s3_bucket: str) -> Iterator[S3Store]:
    with proxied_store(proxy, s3_bucket) as store:
        yield store


# Defect 5: a conditional write whose response is lost ------------------------------------


@pytest.mark.parametrize("condition", ["if_none_match", "if_match", "none"])
def test_a_put_whose_response_is_lost_succeeds(
    store: S3Store, proxy: FaultyProxy, condition: str
) -> None:
    old = store.put("a.txt", b"old")
    conditions = {
        "if_none_match": {"if_none_match": "*"},
        "if_match": {"if_match": old.etag},
        "none": {},
    }[condition]
    key = "b.txt" if condition == "if_none_match" else "a.txt"
    proxy.lose_response_to(f"PUT /{store.bucket}/app/items/{key} ")
    began = time.monotonic()
    item = store.put(key, b"new", metadata={"m": "1"}, **conditions)
    assert proxy.lost == 1  # botocore sent it again, and S3 refused the retry with 412
    assert_stored(store, key, item, began)
    assert (item.checksum, dict(item.metadata)) == (sha256(b"new"), {"m": "1"})
    assert store.read_bytes(key) == b"new"


def test_a_refusal_whose_response_is_lost_stays_a_refusal(
    store: S3Store, proxy: FaultyProxy
) -> None:
    old = store.put("a.txt", b"old")
    for conditions in ({"if_none_match": "*"}, {"if_match": old.etag}):
        key = "b.txt" if "if_none_match" in conditions else "a.txt"
        writer = store.writer(key, **conditions)  # type: ignore[arg-type]
        writer.__enter__()
        writer.write(b"mine")
        # Another writer comes first, after the early check and before the commit.
        began = time.monotonic()
        theirs = store.put(key, b"theirs")
        proxy.lose_response_to(f"PUT /{store.bucket}/app/items/{key} ")
        with pytest.raises((AlreadyExists, PreconditionFailed)):
            writer.__exit__(None, None, None)
        assert_stored(store, key, theirs, began)
    assert proxy.lost == 2


@pytest.mark.parametrize("lost", ["CompleteMultipartUpload", "CopyObject"])
def test_a_multipart_put_whose_response_is_lost_succeeds(
    store: S3Store, proxy: FaultyProxy, lost: str
) -> None:
    data = payload(12 * MiB)
    path = f"/{store.bucket}/app/items/big.bin"
    request = f"POST {path}?uploadId=" if lost == "CompleteMultipartUpload" else f"PUT {path} "
    proxy.lose_response_to(request)
    began = time.monotonic()
    item = store.put("big.bin", data, if_none_match="*")
    assert proxy.lost == 1
    assert_stored(store, "big.bin", item, began)
    assert item.checksum == sha256(data)
    assert store.read_bytes("big.bin") == data


def test_a_streamed_put_whose_response_is_lost_succeeds(store: S3Store, proxy: FaultyProxy) -> None:
    # botocore cannot send a streamed body again: the writer finds the object is its own.
    data = payload(12 * MiB)
    proxy.lose_response_to(f"PUT /{store.bucket}/app/items/big.bin ")
    began = time.monotonic()
    with store.writer("big.bin", size=len(data), checksum=sha256(data), if_none_match="*") as out:
        out.write(data)
    assert proxy.lost == 1
    assert_stored(store, "big.bin", out.item, began)
    assert store.read_bytes("big.bin") == data


def test_a_streamed_put_whose_connection_fails_is_transient_and_stores_nothing(
    store: S3Store, proxy: FaultyProxy
) -> None:
    data = payload(12 * MiB)

    def write() -> None:
        with store.writer("big.bin", size=len(data), checksum=sha256(data)) as out:
            out.write(data)

    proxy.cut_after = 3 * MiB
    with pytest.raises(TransientError):
        write()
    assert store.get("big.bin") is None
    write()  # the next try sends it whole
    assert store.read_bytes("big.bin") == data


# Defect 10: a server that ignores Range -------------------------------------------------


def test_a_range_the_server_ignored_is_an_error_not_wrong_bytes(
    store: S3Store, proxy: FaultyProxy
) -> None:
    store.put("ranged.bin", payload(100_000))
    proxy.strip_header = "range"
    with pytest.raises(IntegrityError, match="ignored the range"):
        store.read_bytes("ranged.bin", 1000, 1010)
    with store.open("ranged.bin") as reader:
        reader.seek(5000)
        with pytest.raises(IntegrityError):
            reader.read(10)
    proxy.strip_header = None
    assert store.read_bytes("ranged.bin", 1000, 1010) == payload(100_000)[1000:1010]


# Section 5: timeouts, a missing bucket, credentials --------------------------------------


def test_a_black_holed_endpoint_times_out_as_transient(
    proxy: FaultyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    options: Any = {"region": "us-east-1", "read_timeout": 1, "max_attempts": 2}
    with S3Store("bucket-x", endpoint_url=proxy.url, **options) as store:
        proxy.black_hole = True
        started = time.monotonic()
        with pytest.raises(TransientError):
            store.get("a")
        assert time.monotonic() - started < 10
        sent: list[str] = []
        store.client.meta.events.register("before-send.s3", lambda **_: sent.append("sent"))
        with pytest.raises(TransientError):
            store.put("small", b"x")
        assert len(sent) == 2, "max_attempts tries in all, not retried over botocore's retries"


def test_timeouts_have_defaults() -> None:
    with S3Store("bucket-x", region="us-east-1") as store:
        config: Any = store.client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (10, 60)


def test_a_missing_bucket_fails_loudly(s3_endpoint: str) -> None:
    with S3Store("no-such-bucket", client=moto_client(s3_endpoint)) as store:
        for use in (store.get, store.exists, store.delete):
            with pytest.raises(NotFound, match="bucket 'no-such-bucket' does not exist"):
                use("a")
        with pytest.raises(NotFound, match="bucket"):
            store.put("a", b"x")
        with pytest.raises(NotFound, match="bucket"):
            list(store.scan())


def test_wrong_credentials_are_permission_denied() -> None:
    with (
        moto_server(check_credentials=True) as endpoint,
        S3Store("bucket-x", client=moto_client(endpoint)) as store,
    ):
        for use in (
            lambda: store.get("a"),
            lambda: store.put("a", b"x"),
            lambda: list(store.scan()),
        ):
            with pytest.raises(PermissionDenied):
                use()


# Fork safety --------------------------------------------------------------------------


def test_a_forked_child_gets_its_own_connections(store: S3Store) -> None:
    rounds = 100
    with store:  # through the proxy: connections kept alive, as AWS keeps them
        for side in ("parent", "child"):
            for index in range(rounds):
                store.put(f"{side}/{index}", f"{side} {index}".encode())
        assert store.read_bytes("parent/0") == b"parent 0"  # a pooled connection, inherited

        def check(side: str) -> bool:
            return all(
                store.read_bytes(f"{side}/{index}") == f"{side} {index}".encode()
                and store.put(f"{side}/{index}", f"{side} {index}".encode()).size > 0
                for index in range(rounds)
            )

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                code = 0 if check("child") else 1
            finally:
                os._exit(code)
        try:
            parent_ok = check("parent")
        finally:
            _, status = os.waitpid(pid, 0)
        assert parent_ok
        assert os.waitstatus_to_exitcode(status) == 0


# Defect 12: an outage during a multipart upload ------------------------------------------


def test_abort_incomplete_uploads_cleans_up_after_an_outage(
    proxy: FaultyProxy, s3_endpoint: str, s3_bucket: str
) -> None:
    def source() -> Iterator[bytes]:
        yield payload(11 * MiB)
        proxy.black_hole = True  # S3 goes away: neither the rest nor the abort reach it
        yield payload(MiB)

    config: Any = {"read_timeout": 1, "retries": {"mode": "standard", "max_attempts": 1}}
    with proxied_store(proxy, s3_bucket, **config) as cut_off, pytest.raises(TransientError):
        cut_off.put("big.bin", source())
    with S3Store(s3_bucket, "app", client=moto_client(s3_endpoint)) as store:
        store.client.create_multipart_upload(Bucket=s3_bucket, Key="app/not-an-item")
        store.client.create_multipart_upload(Bucket=s3_bucket, Key="other/upload")
        uploads = store.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert sorted(upload["Key"] for upload in uploads) == [
            "app/items/big.bin",
            "app/not-an-item",
            "other/upload",
        ]
        # moto dates every upload 2010-11-10 (AWS: when it began): younger than 20 years.
        assert store.abort_incomplete_uploads(older_than=timedelta(days=20 * 365)) == 0
        assert store.abort_incomplete_uploads(older_than=timedelta(0)) == 1
        uploads = store.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert sorted(upload["Key"] for upload in uploads) == ["app/not-an-item", "other/upload"]
        assert store.get("big.bin") is None


# Section 5: the test server's own dependencies ------------------------------------------


def test_the_moto_helper_names_what_to_install() -> None:
    script = (
        "import sys; sys.modules['moto'] = None\n"
        "from persisty_blobs.testing.moto import moto_server\n"
        "from persisty_blobs import Unsupported\n"
        "try:\n"
        "    moto_server().__enter__()\n"
        "except Unsupported as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'moto[server]'" in done.stdout


def test_a_password_in_the_endpoint_never_reaches_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    options: Any = {"region": "us-east-1", "connect_timeout": 1, "max_attempts": 1}
    with (
        S3Store("b", endpoint_url="http://user:s3cret@127.0.0.1:1/", **options) as store,
        pytest.raises(TransientError) as failed,
    ):
        store.get("k")
    assert "s3cret" not in str(failed.value)
    assert "s3cret" not in "".join(traceback.format_exception(failed.value))
    assert "s3cret" not in repr(store)
