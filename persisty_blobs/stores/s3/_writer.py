"""``S3Store``'s writer: one ``PutObject`` below the multipart threshold, above it a multipart
upload fed as data arrives, its parts uploaded concurrently. A write whose size and checksum
the caller announced, up to a few parts, is one ``PutObject`` streamed as it comes instead
(``_streamed``).

Every byte is copied once, from the caller's chunk into a part buffer, and handed to botocore
as it is. At most ``max_concurrency`` parts of the store's writers are in flight at once; each
writer's next part fills meanwhile, so ``n`` writers hold at most
``(max_concurrency + n) * part_size`` bytes. Whatever goes wrong, and on
``abort``, the multipart upload is aborted: S3 then keeps neither an object nor the parts,
unless S3 cannot be reached to abort it (``S3Store.abort_incomplete_uploads`` cleans up).

A multipart object has no SHA-256 of its whole content: when the caller gave the checksum
beforehand (a sync copying an item does), the upload starts with it in the metadata entry
``persisty.sha256`` (the content is checked against it before the upload completes);
otherwise the completed object is copied onto itself (``_copy.record_checksum``) so that S3
holds its SHA-256 as it does for one ``PutObject``.

A conditional write whose response is lost is retried by botocore, and S3 answers the retry
with 412 (the object now exists, or has another etag). After a refusal of a retried request
the writer looks at the object: if it is the one it sent, the write succeeded.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...driver import DriverWriter, ItemHeader, WriteSpec
from ...errors import (
    AlreadyExists,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    TooLarge,
    TransientError,
)
from ...item import DataItem
from ._copy import record_checksum
from ._errors import retried, s3_errors
from ._layout import (
    CHECKSUM_METADATA,
    METADATA_LIMIT,
    encode_metadata,
    metadata_size,
    sha256_header,
    tagging_of,
)
from ._parts import Joined, Part
from ._streamed import StreamedPut, streams

if TYPE_CHECKING:
    from ._driver import S3Driver

__all__ = ["S3Writer"]

_MAX_PARTS = 10_000  # S3's limit
_COMMIT_ATTEMPTS = 5  # S3 answers 409 to a conditional write that races another: try again


def _raced(error: TransientError) -> bool:
    """Whether S3 refused a conditional write because another one to the key was under way."""
    response = getattr(error.__cause__, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalRequestConflict")


class S3Writer(DriverWriter):
    def __init__(self, driver: S3Driver, namespace: str, key: str, header: ItemHeader) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._object_key = driver.layout.object_key(namespace, key)
        self._header = header
        self._held: list[Part] = []  # full parts, before the multipart upload starts
        self._part = Part(driver.part_size)
        self._size = 0
        self._upload_id: str | None = None
        self._uploads: list[Future[dict[str, Any]]] = []
        self._failure: BaseException | None = None  # of the first part that failed
        self._in_flight = driver.parts_in_flight
        self._checksum_recorded = False  # in the upload's metadata, when it started
        self._streamed: StreamedPut | None = None
        self._tail = b""  # the streamed body's last byte, sent by the commit
        if streams(driver, header):
            assert header.size is not None
            assert header.checksum is not None
            request = {
                **self._common(header),
                **_conditions(header),
                "ContentLength": header.size,
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": sha256_header(header.checksum),
            }
            self._streamed = StreamedPut(driver, request, header.size)

    def _common(self, header: ItemHeader | WriteSpec) -> dict[str, Any]:
        common: dict[str, Any] = {
            "Bucket": self._driver.bucket,
            "Key": self._object_key,
            "ContentType": header.content_type,
            "Metadata": encode_metadata(header.metadata),
        }
        if header.flags:
            common["Tagging"] = tagging_of(header.flags)
        return common

    # Content -------------------------------------------------------------------------------

    def write(self, chunk: memoryview) -> None:
        self._size += len(chunk)
        if self._streamed is not None:
            self._relay(chunk)
            return
        while chunk:
            if self._part.full:
                self._part_full()
            chunk = chunk[self._part.append(chunk) :]

    def _relay(self, chunk: memoryview) -> None:
        assert self._streamed is not None
        announced = self._header.size
        assert announced is not None  # streamed only when announced
        if self._size > announced:
            # Content that differs from the checksum announced with it: as the store says.
            raise IntegrityError(
                f"more than the announced {announced} bytes", key=self._key, store=self._driver.name
            )
        if self._size == announced and chunk:
            self._tail = bytes(chunk[-1:])
            chunk = chunk[:-1]
        with self._put_errors(self._header):
            self._streamed.write(chunk)

    def _part_full(self) -> None:
        """The part buffer is full and more data follows: a part of the upload, or held
        until the size passes the threshold."""
        full, self._part = self._part, Part(self._driver.part_size)
        if self._upload_id is not None:
            self._send_part(full)
            return
        self._held.append(full)
        if self._size > self._driver.multipart_threshold:
            self._start_multipart()

    def _start_multipart(self) -> None:
        driver = self._driver
        common = self._common(self._header)
        expected = self._header.checksum
        if expected is not None:
            room = METADATA_LIMIT - metadata_size(common["Metadata"])
            if len(CHECKSUM_METADATA) + len(expected) <= room:
                common["Metadata"][CHECKSUM_METADATA] = expected
                self._checksum_recorded = True
        with s3_errors(driver.name, self._key):
            started = driver.client.create_multipart_upload(**common, ChecksumAlgorithm="CRC32")
        self._upload_id = started["UploadId"]
        held, self._held = self._held, []
        for part in held:
            self._send_part(part)

    def _send_part(self, part: Part) -> None:
        if self._failure is not None:
            raise self._failure
        number = len(self._uploads) + 1
        if number > _MAX_PARTS:
            raise TooLarge(
                f"more than {_MAX_PARTS} parts of {self._driver.part_size} bytes: S3's limit; "
                "give S3Store a larger part_size",
                key=self._key,
                store=self._driver.name,
            )
        self._in_flight.acquire()
        try:
            upload = self._driver.pool.submit(self._upload_part, number, part)
        except BaseException:
            self._in_flight.release()
            raise
        upload.add_done_callback(self._part_done)
        self._uploads.append(upload)

    def _part_done(self, upload: Future[dict[str, Any]]) -> None:
        # Here, not in the upload itself: a part cancelled before it started (abort) must
        # give its permit back too, or the store's other writers would wait for it forever.
        self._in_flight.release()
        if self._failure is None and not upload.cancelled():
            self._failure = upload.exception()

    def _upload_part(self, number: int, part: Part) -> dict[str, Any]:
        with s3_errors(self._driver.name, self._key):
            sent = self._driver.client.upload_part(
                Bucket=self._driver.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=Joined([part]),
                ChecksumAlgorithm="CRC32",
            )
        done = {"PartNumber": number, "ETag": sent["ETag"]}
        if "ChecksumCRC32" in sent:
            done["ChecksumCRC32"] = sent["ChecksumCRC32"]
        return done

    # Commit --------------------------------------------------------------------------------

    def commit(self, spec: WriteSpec) -> DataItem:
        if self._streamed is not None:
            return self._commit_streamed(spec)
        if self._upload_id is None and spec.size > self._driver.multipart_threshold:
            self._start_multipart()  # the last part took the size past the threshold
        etag, updated_at = self._send(spec)
        if self._upload_id is None or self._checksum_recorded:
            # Recorded when the upload started: the content was checked against it since.
            return self._item(spec, etag, updated_at, spec.checksum)
        # A multipart object has no SHA-256 of its whole content until it is copied onto
        # itself, which makes S3 compute one (and check ours against it).
        recorded = record_checksum(self._driver, self._namespace, self._key, spec, etag)
        if recorded is None:
            return self._item(spec, etag, updated_at, None)
        etag, updated_at = recorded
        return self._item(spec, etag, updated_at, spec.checksum)

    def _commit_streamed(self, spec: WriteSpec) -> DataItem:
        """End the streamed ``PutObject`` with its last byte: the content has passed every
        check, and its header went first, so the commit cannot change it."""
        assert self._streamed is not None
        sent = self._header
        assert (spec.content_type, spec.metadata, spec.flags) == (
            sent.content_type, sent.metadata, sent.flags,
        )  # fmt: skip
        try:
            with self._put_errors(spec):
                response = self._streamed.finish(self._tail)
        except TransientError:
            # The response may be what was lost: then the object is this writer's.
            landed = self._landed(spec)
            if landed is None:
                raise
            return landed
        return self._item(spec, response["ETag"].strip('"'), _date_of(response), spec.checksum)

    def _send(self, spec: WriteSpec) -> tuple[str, datetime]:
        """Put or complete the object; its etag and time."""
        conditions = _conditions(spec)
        attempt = 0
        while True:
            try:
                with self._put_errors(spec):
                    if self._upload_id is None:
                        response = self._put_whole(spec, conditions)
                    else:
                        response = self._complete(conditions)
                return response["ETag"].strip('"'), _date_of(response)
            except (AlreadyExists, PreconditionFailed, NotFound) as refused:
                # The refusal may answer a retry of a request that S3 carried out, whose
                # response was lost (a completed upload is gone: 404): then the object is
                # this writer's.
                landed = self._landed(spec) if attempt or retried(refused) else None
                if landed is not None:
                    return landed.etag, landed.updated_at
                raise
            except TransientError as failed:
                # botocore has retried everything else a retry can fix.
                attempt += 1
                if attempt == _COMMIT_ATTEMPTS or not _raced(failed):
                    raise

    @contextlib.contextmanager
    def _put_errors(self, header: ItemHeader | WriteSpec) -> Iterator[None]:
        """S3's errors for a write of ``header``, where 404 answers ``if_match`` on a key that
        is missing: a failed precondition."""
        try:
            with s3_errors(self._driver.name, self._key, create_only=header.if_none_match):
                yield
        except NotFound as missing:
            if header.if_match is None:
                raise
            raise PreconditionFailed(
                f"if_match={header.if_match!r} failed: the item is missing",
                key=self._key,
                store=self._driver.name,
            ) from missing

    def _landed(self, spec: WriteSpec) -> DataItem | None:
        """The current item if it is the one this writer sent: the same SHA-256 for a put,
        the etag that S3 derives from exactly these parts for a multipart upload."""
        current = self._driver.stat(self._namespace, self._key)
        if current is None:
            return None
        if self._upload_id is None:
            ours = (current.checksum, current.content_type, dict(current.metadata)) == (
                spec.checksum,
                spec.content_type,
                dict(spec.metadata),
            )
        else:
            ours = current.etag == self._multipart_etag()
        return current if ours else None

    def _multipart_etag(self) -> str:
        """S3's etag of a multipart object: the MD5 of its parts' MD5s, and their count."""
        digests = b"".join(
            bytes.fromhex(done.result()["ETag"].strip('"')) for done in self._uploads
        )
        return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(self._uploads)}"

    def _put_whole(self, spec: WriteSpec, conditions: dict[str, str]) -> Any:
        body = Joined([*self._held, self._part])
        # Sent whole at the commit, so from the spec: a layer may seal metadata that covers
        # the content (EncryptedStore's checksum), which only the spec has.
        return self._driver.client.put_object(
            **self._common(spec),
            **conditions,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha256_header(spec.checksum),
        )

    def _complete(self, conditions: dict[str, str]) -> Any:
        if self._part.filled:
            self._send_part(self._part)
            self._part = Part(self._driver.part_size)
        parts = [upload.result() for upload in self._uploads]
        return self._driver.client.complete_multipart_upload(
            Bucket=self._driver.bucket,
            Key=self._object_key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
            **conditions,
        )

    def _item(
        self, spec: WriteSpec, etag: str, updated_at: datetime, checksum: str | None
    ) -> DataItem:
        # What a later stat says: a multipart object keeps the header it began with unless
        # the copy that recorded its checksum wrote the spec's.
        sent: ItemHeader | WriteSpec = spec if checksum is not None else self._header
        return DataItem(
            key=self._key,
            namespace=self._namespace,
            size=spec.size,
            etag=etag,
            content_type=sent.content_type,
            updated_at=updated_at,
            checksum=checksum,
            metadata=dict(sent.metadata),
            flags=sent.flags,
        )

    def abort(self) -> None:
        if self._streamed is not None:
            self._streamed.cut()
        self._held.clear()
        self._part = Part(self._driver.part_size)
        for upload in self._uploads:
            upload.cancel()
        for upload in self._uploads:
            with contextlib.suppress(BaseException):
                upload.exception()  # wait: a part still uploading would outlive the abort
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            with contextlib.suppress(Exception):
                self._driver.client.abort_multipart_upload(
                    Bucket=self._driver.bucket, Key=self._object_key, UploadId=upload_id
                )


def _conditions(header: ItemHeader | WriteSpec) -> dict[str, str]:
    if header.if_none_match:
        return {"IfNoneMatch": "*"}
    if header.if_match is not None:
        return {"IfMatch": f'"{header.if_match}"'}
    return {}


def _date_of(response: Any) -> datetime:
    """When S3 wrote the object, by the ``Date`` of its response (S3's own clock)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    moment = email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
    return moment.astimezone(UTC)
