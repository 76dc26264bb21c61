"""S3Store against moto's S3 server over real HTTP on loopback, through boto3: the
conformance suite, and what is peculiar to S3."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import socket
import threading
import time
import tracemalloc
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from persisty_blobs import (
    AlreadyExists,
    Entry,
    Flag,
    IntegrityError,
    InvalidMetadata,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
    TooLarge,
    TransientError,
    Unsupported,
    open_store,
)
from persisty_blobs.stores import S3Store
from persisty_blobs.stores.s3 import _copy
from persisty_blobs.stores.s3._driver import S3Driver
from persisty_blobs.stores.s3._errors import s3_errors
from persisty_blobs.testing import StoreConformance
from persisty_blobs.testing._support import assert_stored, payload, sha256
from persisty_blobs.testing.moto import moto_client

MiB = 1024 * 1024


#: Four 5 MiB parts in flight and one filling, and a malloc arena for each of the pool's
#: upload threads (botocore reads each part in 1 MiB pieces to sign it and checksum it).
S3_RSS_BUDGET = 96 * MiB


def new_store(endpoint: str, bucket: str, **options: Any) -> S3Store:
    settings = {"multipart_threshold": 5 * MiB, "part_size": 5 * MiB, **options}
    return S3Store(bucket, "app", client=moto_client(endpoint), **settings)


class TestS3StoreConformance(StoreConformance):
    rss_budget = S3_RSS_BUDGET

    @pytest.fixture
    def store(self, s3_endpoint: str, s3_bucket: str) -> Iterator[S3Store]:
        with new_store(s3_endpoint, s3_bucket) as store:
            yield store


@pytest.fixture
def store(s3_endpoint: str, s3_bucket: str) -> Iterator[S3Store]:
    with new_store(s3_endpoint, s3_bucket) as store:
        yield store


class Calls:
    """S3 operations as botocore sends them, with their parameters, counted from the client's
    own event hooks."""

    def __init__(self, client: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.s3.*", self._called)
        client.meta.events.register("before-call.s3.*", self._before)
        client.meta.events.register("after-call.s3.*", self._after)

    def _called(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.sent.append((model.name, dict(params)))

    def _before(self, **_: Any) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _after(self, **_: Any) -> None:
        with self._lock:
            self.in_flight -= 1

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


def dangling_uploads(store: S3Store) -> list[Any]:
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def blocks(total: int, size: int = MiB, fail_after: int | None = None) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise RuntimeError("the source failed")
        block = payload(min(size, total - sent), seed=sent)
        sent += len(block)
        yield block


def test_large_put_is_a_concurrent_multipart_upload_then_a_checksummed_copy(
    store: S3Store,
) -> None:
    calls = Calls(store.client)
    data = b"".join(blocks(23 * MiB))
    item = store.put("big.bin", blocks(23 * MiB), metadata={"a": "b"}, flags=[Flag.PENDING])
    assert calls.names().count("UploadPart") == 5  # 4 parts of 5 MiB and one of 3 MiB
    assert "PutObject" not in calls.names()
    assert 2 <= calls.most_in_flight <= 4 + 1  # the parts (max_concurrency 4) and nothing else
    # The object is copied onto itself, conditionally, for S3 to compute its SHA-256.
    names = calls.names()
    assert names[names.index("CompleteMultipartUpload") + 1 :] == ["CopyObject"]
    completed = next(p for name, p in calls.sent if name == "CompleteMultipartUpload")
    copied = next(p for name, p in calls.sent if name == "CopyObject")
    assert copied["CopySource"] == {"Bucket": store.bucket, "Key": "app/items/big.bin"}
    assert copied["ChecksumAlgorithm"] == "SHA256"
    assert copied["CopySourceIfMatch"] == copied["IfMatch"]
    assert "IfMatch" not in completed
    assert item.checksum == sha256(data)
    assert store.get("big.bin") == item
    assert (item.metadata, item.flags) == ({"a": "b"}, frozenset({Flag.PENDING}))
    assert store.read_bytes("big.bin") == data
    assert dangling_uploads(store) == []


def test_a_large_put_whose_checksum_is_given_records_it_when_the_upload_starts(
    store: S3Store,
) -> None:
    data = b"".join(blocks(23 * MiB))
    calls = Calls(store.client)
    began = time.monotonic()
    item = store.put("given.bin", blocks(23 * MiB), checksum=sha256(data), metadata={"a": "b"})
    assert "CopyObject" not in calls.names(), "no copy onto itself for S3 to compute it"
    started = next(p for name, p in calls.sent if name == "CreateMultipartUpload")
    assert started["Metadata"] == {"a": "b", "persisty.sha256": sha256(data)}
    assert item.checksum == sha256(data)
    assert_stored(store, "given.bin", item, began)
    assert item.metadata == {"a": "b"}
    assert store.read_bytes("given.bin") == data

    with pytest.raises(IntegrityError):
        store.put("lied.bin", blocks(23 * MiB), checksum=sha256(b"other content"))
    assert store.get("lied.bin") is None, "content that differs from the checksum is not kept"
    assert dangling_uploads(store) == []


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def write_announced(
    store: S3Store, key: str, content: bytes, announced: bytes, fail: bool = False
) -> None:
    """Write ``content`` a MiB at a time, announcing the size and checksum of ``announced``;
    then raise ``RuntimeError`` if ``fail``."""
    with store.writer(key, size=len(announced), checksum=sha256(announced)) as out:
        for start in range(0, len(content), MiB):
            out.write(content[start : start + MiB])
        if fail:
            raise RuntimeError("the source failed")


def test_a_write_whose_size_and_checksum_are_announced_is_one_streamed_put(
    store: S3Store,
) -> None:
    data = b"".join(blocks(13 * MiB + 5))
    calls = Calls(store.client)
    headers: list[dict[str, str]] = []
    store.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: headers.append(
            {name.lower(): _text(value) for name, value in request.headers.items()}
        ),
    )
    announced = {"size": len(data), "checksum": sha256(data), "metadata": {"a": "b"}}
    began = time.monotonic()
    with store.writer("big.bin", if_none_match="*", **announced) as out:  # type: ignore[arg-type]
        for start in range(0, len(data), MiB):
            out.write(data[start : start + MiB])
            assert calls.names().count("PutObject") == 1, "sent as it comes, from the first MiB"
    assert calls.names() == ["PutObject"], "its precondition went with it, no HeadObject first"
    assert out.item is not None
    assert_stored(store, "big.bin", out.item, began)
    assert (out.item.checksum, out.item.metadata) == (sha256(data), {"a": "b"})
    assert store.read_bytes("big.bin") == data
    # The payload goes unsigned, but its SHA-256 is in a header that is signed and S3 checks.
    (sent,) = headers
    assert sent["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert sent["x-amz-checksum-sha256"] == expected
    assert "x-amz-checksum-sha256" in sent["authorization"].split("SignedHeaders=")[1]
    assert sent["content-length"] == str(len(data))
    # Other requests of the client are signed as before.
    store.put("small", b"x" * 100)
    assert headers[-1]["x-amz-content-sha256"] == hashlib.sha256(b"x" * 100).hexdigest()


@pytest.mark.parametrize("fault", ["checksum", "short", "long", "source"])
def test_a_streamed_put_that_fails_its_checks_stores_nothing(store: S3Store, fault: str) -> None:
    data = b"".join(blocks(13 * MiB))
    began = time.monotonic()
    kept = store.put("big.bin", b"old")
    content = {
        "checksum": data[:-1] + b"?",
        "short": data[:-1],
        "long": data + b"?",
        "source": data[: 7 * MiB],
    }[fault]
    expected = RuntimeError if fault == "source" else IntegrityError
    with pytest.raises(expected):
        write_announced(store, "big.bin", content, data, fail=fault == "source")
    assert_stored(store, "big.bin", kept, began)
    assert store.read_bytes("big.bin") == b"old"
    assert dangling_uploads(store) == []
    write_announced(store, "big.bin", data, data)  # the store still works
    assert store.read_bytes("big.bin") == data


@pytest.mark.parametrize("condition", ["if_none_match", "if_match"])
def test_a_streamed_put_keeps_what_another_writer_stored_meanwhile(
    store: S3Store, condition: str
) -> None:
    data = b"".join(blocks(13 * MiB))
    old = store.put("big.bin", b"old")
    key = "new.bin" if condition == "if_none_match" else "big.bin"
    options = {"if_none_match": "*"} if condition == "if_none_match" else {"if_match": old.etag}
    refused = AlreadyExists if condition == "if_none_match" else PreconditionFailed
    writer = store.writer(key, size=len(data), checksum=sha256(data), **options)  # type: ignore[arg-type]
    writer.write(data[: 6 * MiB])
    began = time.monotonic()
    theirs = store.put(key, b"theirs")  # after the writer's own check of the precondition
    writer.write(data[6 * MiB :])
    with pytest.raises(refused):
        writer.close()
    assert_stored(store, key, theirs, began)
    assert store.read_bytes(key) == b"theirs"


@pytest.mark.parametrize("case", ["over PutObject's 5 GiB", "payload signing asked for"])
def test_an_announced_write_that_one_put_cannot_take_is_not_streamed(
    s3_endpoint: str, s3_bucket: str, case: str
) -> None:
    signing = case == "payload signing asked for"
    config = {"s3": {"payload_signing_enabled": True}} if signing else {}
    size = 13 * MiB if signing else 6 * 1024 * MiB
    part = 5 * MiB if signing else 2048 * MiB  # four parts of 2 GiB: 8 GiB
    client = moto_client(s3_endpoint, **config)
    with S3Store(
        s3_bucket, "app", client=client, multipart_threshold=part, part_size=part
    ) as store:
        calls = Calls(store.client)
        writer = store.writer("big.bin", size=size, checksum=sha256(b"x"))
        writer.write(payload(MiB))
        assert calls.names() == [], "held for a part, not streamed in one PutObject"
        writer.abort()


def test_a_streamed_put_if_match_on_an_item_deleted_meanwhile_fails_its_precondition(
    store: S3Store,
) -> None:
    data = b"".join(blocks(13 * MiB))
    old = store.put("big.bin", b"old")
    writer = store.writer("big.bin", size=len(data), checksum=sha256(data), if_match=old.etag)
    writer.write(data[: 6 * MiB])
    store.delete("big.bin")
    writer.write(data[6 * MiB :])
    with pytest.raises(PreconditionFailed, match="missing"):
        writer.close()
    assert store.get("big.bin") is None


def test_concurrent_writers_share_max_concurrency_parts_in_flight(
    s3_endpoint: str, s3_bucket: str
) -> None:
    # Memory is bounded by the store, not by how many writers a caller (a sync) runs at once.
    with new_store(s3_endpoint, s3_bucket, max_concurrency=2) as store:
        calls = Calls(store.client)
        uploading: dict[str, int] = {"now": 0, "most": 0}
        lock = threading.Lock()

        def part(delta: int, model: Any, **_: Any) -> None:
            if model.name == "UploadPart":
                with lock:
                    uploading["now"] += delta
                    uploading["most"] = max(uploading["most"], uploading["now"])

        store.client.meta.events.register("before-call.s3.UploadPart", lambda **kw: part(1, **kw))
        store.client.meta.events.register("after-call.s3.UploadPart", lambda **kw: part(-1, **kw))
        with ThreadPoolExecutor(4) as pool:
            items = list(pool.map(lambda n: store.put(f"big-{n}", blocks(11 * MiB)), range(4)))
    assert calls.names().count("UploadPart") == 4 * 3
    assert uploading["most"] == 2, "four writers, two parts in flight between them"
    assert all(item.size == 11 * MiB for item in items)


def test_a_part_cancelled_by_an_abort_gives_its_turn_back(s3_endpoint: str, s3_bucket: str) -> None:
    # The parts in flight are the store's, not the writer's: a part an abort cancels before
    # it started must not keep its turn, or every later upload waits forever.
    with new_store(s3_endpoint, s3_bucket, max_concurrency=1) as store:
        gate = threading.Event()
        driver = store._driver
        assert isinstance(driver, S3Driver)
        busy = [driver.pool.submit(gate.wait, 20) for _ in range(2)]  # every worker
        writer = store.writer("aborted.bin")
        writer.write(b"x" * (6 * MiB))  # the first part is queued behind the busy workers
        writer.abort()
        gate.set()
        for future in busy:
            future.result()
        done = threading.Event()

        def put() -> None:
            store.put("after.bin", blocks(11 * MiB))
            done.set()

        threading.Thread(target=put, daemon=True).start()
        assert done.wait(30), "an upload after the abort never got a turn"
        assert store.get("after.bin") is not None
        assert store.get("aborted.bin") is None


def test_an_upload_started_before_a_fork_is_refused_in_the_child(store: S3Store) -> None:
    writer = store.writer("parent.bin")
    writer.write(b"x" * (11 * MiB))  # parts in flight on the parent's threads
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(20)  # a hang ends the child with SIGALRM
        try:
            writer.close()
        except Unsupported:
            os._exit(0)
        except BaseException:
            os._exit(2)
        os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.write(b"y")
    writer.close()
    assert store.read_bytes("parent.bin") == b"x" * (11 * MiB) + b"y"


def test_an_item_of_several_parts_under_the_threshold_is_one_put(
    s3_endpoint: str, s3_bucket: str
) -> None:
    data = b"".join(blocks(12 * MiB))
    with new_store(s3_endpoint, s3_bucket, multipart_threshold=15 * MiB) as store:
        calls = Calls(store.client)
        item = store.put("three-parts.bin", blocks(12 * MiB))
        assert calls.names() == ["PutObject"]
        assert item.checksum == sha256(data)
        assert store.read_bytes("three-parts.bin") == data


def test_a_small_put_allocates_for_its_content_not_for_a_part(store: S3Store) -> None:
    store.put("warm", b"x")  # the client's own first-use allocations, out of the count
    tracemalloc.start()
    try:
        store.put("small", b"y" * 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB, f"a 10 kB put peaked at {peak / MiB:.1f} MiB (the part size is 5)"


def test_small_put_is_one_put_with_s3s_sha256(store: S3Store) -> None:
    calls = Calls(store.client)
    item = store.put("small.txt", b"hello", metadata={"note": "grüße 100%"})
    assert calls.names()[-1] == "PutObject"
    # AWS verifies the content against ChecksumSHA256 on receipt; moto only stores it.
    assert item.checksum == sha256(b"hello")
    head = store.client.head_object(
        Bucket=store.bucket, Key="app/items/small.txt", ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"note": "gr%C3%BC%C3%9Fe 100%25"}  # ASCII headers, round-trip
    assert store.get("small.txt").metadata == {"note": "grüße 100%"}  # type: ignore[union-attr]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failed_source_aborts_the_upload(store: S3Store, failure: type[BaseException]) -> None:
    def source() -> Iterator[bytes]:
        yield from blocks(12 * MiB)
        raise failure("stop")

    with pytest.raises(failure):
        store.put("broken.bin", source())
    assert store.get("broken.bin") is None
    assert dangling_uploads(store) == []


def test_a_failed_part_aborts_the_upload(store: S3Store) -> None:
    def refuse_part_two(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://gone")

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", refuse_part_two)
    with pytest.raises(TransientError):
        store.put("broken.bin", blocks(23 * MiB))
    assert store.get("broken.bin") is None
    assert dangling_uploads(store) == []


def test_ranged_open_fetches_only_that_range(store: S3Store) -> None:
    data = payload(3 * MiB)
    store.put("ranged.bin", data)
    calls = Calls(store.client)
    assert store.read_bytes("ranged.bin", 1000, 1010) == data[1000:1010]
    gets = [params for name, params in calls.sent if name == "GetObject"]
    assert [params["Range"] for params in gets] == ["bytes=1000-1009"]
    assert store.read_bytes("ranged.bin", MiB) == data[MiB:]


def test_flags_are_tags_and_foreign_tags_stay(store: S3Store) -> None:
    item = store.put("tagged.txt", b"x")
    key = "app/items/tagged.txt"
    store.client.put_object_tagging(
        Bucket=store.bucket, Key=key, Tagging={"TagSet": [{"Key": "team", "Value": "web"}]}
    )
    store.set_flags("tagged.txt", {Flag.PENDING})
    tags = store.client.get_object_tagging(Bucket=store.bucket, Key=key)["TagSet"]
    assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [
        ("persisty-flag:pending", "1"),
        ("team", "web"),
    ]
    assert store.get("tagged.txt").etag == item.etag  # type: ignore[union-attr]
    store.set_flags("tagged.txt", [])
    tags = store.client.get_object_tagging(Bucket=store.bucket, Key=key)["TagSet"]
    assert [tag["Key"] for tag in tags] == ["team"]


def test_namespaces_are_separate_prefixes(store: S3Store) -> None:
    store.put("namespaces/alice/x", b"default")
    store.namespace("alice").put("x", b"alice")
    listed = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert sorted(entry["Key"] for entry in listed) == [
        "app/items/namespaces/alice/x",
        "app/namespaces/alice/x",
    ]
    assert store.read_bytes("namespaces/alice/x") == b"default"
    assert store.namespace("alice").read_bytes("x") == b"alice"
    assert store.namespaces() == ["", "alice"]


def test_objects_with_invalid_keys_are_not_listed(store: S3Store) -> None:
    store.put("good", b"1")
    store.client.put_object(Bucket=store.bucket, Key="app/items/bad//key", Body=b"2")
    assert [item.key for item in store.list()] == ["good"]
    assert store.count() == 1


def test_copy_is_server_side(store: S3Store) -> None:
    source = store.put("source.bin", payload(2 * MiB), metadata={"a": "b"})
    store.set_flags("source.bin", {Flag.PROCESSED})
    calls = Calls(store.client)
    copied = store.copy("source.bin", "copy.bin")
    assert "CopyObject" in calls.names()
    assert "GetObject" not in calls.names()
    assert (copied.size, dict(copied.metadata), copied.flags) == (
        source.size,
        {"a": "b"},
        frozenset({Flag.PROCESSED}),
    )
    assert store.read_bytes("copy.bin") == payload(2 * MiB)


def test_copy_above_copyobjects_limit_goes_in_parts(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_copy, "COPY_OBJECT_LIMIT", 5 * MiB)
    monkeypatch.setattr(_copy, "COPY_PART_SIZE", 5 * MiB)
    data = b"".join(blocks(12 * MiB))
    store.put("source.bin", blocks(12 * MiB), content_type="video/mp4")
    calls = Calls(store.client)
    copied = store.copy("source.bin", "copy.bin")
    assert calls.names().count("UploadPartCopy") == 3
    assert copied.content_type == "video/mp4"
    # Above CopyObject's limit the SHA-256 of a multipart object lives in its metadata.
    assert copied.checksum == store.get("source.bin").checksum == sha256(data)  # type: ignore[union-attr]
    assert copied.metadata == {}
    assert store.read_bytes("copy.bin") == data
    assert dangling_uploads(store) == []


def test_if_match_on_a_missing_key_is_a_failed_precondition(store: S3Store) -> None:
    # S3 answers a conditional PutObject to a missing key with 404; the store says why.
    with pytest.raises(PreconditionFailed, match="missing"):
        store.put("never", b"x", if_match="0123")


def test_open_store_reads_the_url(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    url = f"s3://{s3_bucket}/photos/2026?endpoint_url={s3_endpoint}&region=us-east-1"
    with open_store(url) as store:
        assert isinstance(store, S3Store)
        store.put("a.jpg", b"jpeg")
        assert store.object_root == "photos/2026/items/"
        listed = store.client.list_objects_v2(Bucket=s3_bucket)["Contents"]
        assert [entry["Key"] for entry in listed] == ["photos/2026/items/a.jpg"]
    with pytest.raises(ValueError, match="unknown S3 URL parameter"):
        open_store(f"s3://{s3_bucket}?endpoint=x")


def test_an_unreachable_endpoint_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    client = moto_client(f"http://127.0.0.1:{port}", retries={"max_attempts": 1})
    with S3Store("bucket-x", client=client) as store, pytest.raises(TransientError):
        store.get("a")


def test_a_missing_bucket_is_not_found(s3_endpoint: str) -> None:
    store = S3Store("no-such-bucket", client=moto_client(s3_endpoint))
    with store, pytest.raises(NotFound, match="bucket"):
        store.put("a", b"x")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, NotFound),
        ("PreconditionFailed", 412, PreconditionFailed),
        ("AccessDenied", 403, PermissionDenied),
        ("SlowDown", 503, TransientError),
        ("InternalError", 500, TransientError),
        ("ConditionalRequestConflict", 409, TransientError),
        ("NotImplemented", 501, Unsupported),
        ("EntityTooLarge", 400, TooLarge),
        ("MetadataTooLarge", 400, InvalidMetadata),
        ("InvalidRange", 416, RangeNotSatisfiable),
    ],
)
def test_s3_errors_map_onto_the_tree(code: str, status: int, expected: type[Exception]) -> None:
    # Responses AWS sends that moto cannot be made to send; the mapping is what users rely on.
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    with pytest.raises(expected), s3_errors("S3Store('b', '')", "k"):
        raise botocore.exceptions.ClientError(response, "PutObject")


def test_an_answer_that_fails_its_checksum_is_an_integrity_error() -> None:
    failed = botocore.exceptions.FlexibleChecksumError(error_msg="Expected checksum x, got y")
    with pytest.raises(IntegrityError, match="failed its checksum"), s3_errors("S3Store", "k"):
        raise failed


def test_create_only_conflict_is_already_exists() -> None:
    response: Any = {
        "Error": {"Code": "PreconditionFailed"},
        "ResponseMetadata": {"HTTPStatusCode": 412},
    }
    with pytest.raises(AlreadyExists), s3_errors("S3Store('b', '')", "k", create_only=True):
        raise botocore.exceptions.ClientError(response, "PutObject")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Store("b", part_size=MiB)
    with pytest.raises(ValueError, match="multipart_threshold"):
        S3Store("b", multipart_threshold=5 * MiB, part_size=6 * MiB)
    with pytest.raises(ValueError, match="max_concurrency"):
        S3Store("b", max_concurrency=0)


def test_conditional_multipart_completion_sends_the_condition(store: S3Store) -> None:
    # AWS checks If-Match and If-None-Match on CompleteMultipartUpload; moto checks only the
    # latter, so here the condition is shown to be sent, and the outcome where moto decides.
    first = store.put("big.bin", blocks(12 * MiB))
    calls = Calls(store.client)
    second = store.put("big.bin", blocks(12 * MiB), if_match=first.etag)
    completions = [params for name, params in calls.sent if name == "CompleteMultipartUpload"]
    assert [params["IfMatch"] for params in completions] == [f'"{first.etag}"']
    with pytest.raises(AlreadyExists):
        store.put("big.bin", blocks(12 * MiB), if_none_match="*")
    assert store.get("big.bin") == second
    assert dangling_uploads(store) == []


def put_directly(endpoint: str, bucket: str, object_keys: list[str]) -> None:
    """Objects with one byte each, sent by eight plain HTTP connections: moto takes no
    signature, and botocore's work per request would double the time."""
    address = urllib.parse.urlsplit(endpoint)

    def send(keys: list[str]) -> None:
        connection = http.client.HTTPConnection(address.hostname or "", address.port)
        try:
            for key in keys:
                connection.request("PUT", f"/{bucket}/{urllib.parse.quote(key)}", body=b"x")
                with connection.getresponse() as response:
                    response.read()
                    assert response.status == 200
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [object_keys[start::8] for start in range(8)]))


@pytest.mark.slow
def test_scan_is_the_listing_alone(store: S3Store, s3_endpoint: str) -> None:
    count = 1_200  # two pages of ListObjectsV2
    keys = [f"many/{index:05d}" for index in range(count)]
    put_directly(s3_endpoint, store.bucket, [f"app/items/{key}" for key in keys])
    calls = Calls(store.client)
    entries = list(store.scan())
    assert [entry.key for entry in entries] == keys
    assert set(calls.names()) == {"ListObjectsV2"}
    assert len(calls.names()) <= count // 1000 + 1
    first = store.get(keys[0])
    assert first is not None
    assert entries[0] == Entry(key=keys[0], size=1, etag=first.etag, updated_at=first.updated_at)
    assert (entries[0].checksum, entries[0].flags) == (None, None)


def test_capabilities(store: S3Store) -> None:
    capabilities = store.capabilities
    assert (capabilities.presign, capabilities.server_side_copy) == (True, True)
    assert (capabilities.flags_in_listing, capabilities.checksums_in_listing) == (False, False)
    assert capabilities.local_clock is False


def test_copy_onto_itself_leaves_the_item(store: S3Store) -> None:
    began = time.monotonic()
    item = store.put("a.txt", b"a", flags=[Flag.PENDING])
    calls = Calls(store.client)
    assert store.copy("a.txt", "a.txt") == store.get("a.txt")
    assert_stored(store, "a.txt", item, began)
    assert "CopyObject" not in calls.names()
    with pytest.raises(NotFound):
        store.copy("missing", "missing")


def test_namespaces_leave_out_names_no_namespace_could_have(store: S3Store, s3_bucket: str) -> None:
    store.namespace("good").put("a", b"1")
    for stray in ("app/namespaces/../x", "app/namespaces/a\\b/x", "app/namespaces//x"):
        store.client.put_object(Bucket=s3_bucket, Key=stray, Body=b"put by another program")
    assert store.namespaces() == ["good"]


def test_metadata_keeps_the_spaces_at_either_end(store: S3Store) -> None:
    metadata = {"padded": "  both ends  ", "blank": " ", "inside": "a b"}
    store.put("k", b"x", metadata=metadata)
    assert store.get("k").metadata == metadata  # type: ignore[union-attr]
    with store.open("k") as reader:
        assert reader.item.metadata == metadata
