"""``S3Store``'s writer: one ``PutObject`` below the multipart threshold, above it a multipart
upload fed as data arrives, its parts uploaded concurrently.

Every byte is copied once, from the caller's chunk into a part buffer, and handed to botocore
as it is. At most ``max_concurrency`` parts are in flight; the next one fills meanwhile, so a
writer holds at most ``(max_concurrency + 1) * part_size`` bytes. Whatever goes wrong, and on
``abort``, the multipart upload is aborted: S3 then keeps neither an object nor the parts.
"""

from __future__ import annotations

import contextlib
import email.utils
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..driver import DriverWriter, ItemHeader, WriteSpec
from ..errors import NotFound, PreconditionFailed, TooLarge, TransientError
from ..item import DataItem
from ._s3_objects import encode_metadata, s3_errors, sha256_header, tagging_of

if TYPE_CHECKING:
    from .s3 import S3Driver

__all__ = ["S3Writer"]

_MAX_PARTS = 10_000  # S3's limit
_COMMIT_ATTEMPTS = 5  # S3 answers 409 to a conditional write that races another: try again


class S3Writer(DriverWriter):
    def __init__(self, driver: S3Driver, namespace: str, key: str, header: ItemHeader) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._object_key = driver.layout.object_key(namespace, key)
        self._header = header
        self._held: list[bytearray] = []  # full parts, before the multipart upload starts
        self._part = bytearray(driver.part_size)
        self._filled = 0
        self._size = 0
        self._upload_id: str | None = None
        self._uploads: list[Future[dict[str, Any]]] = []
        self._failure: BaseException | None = None  # of the first part that failed
        self._in_flight = threading.Semaphore(driver.max_concurrency)

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
        while chunk:
            if self._filled == len(self._part):
                self._part_full()
            count = min(len(chunk), len(self._part) - self._filled)
            self._part[self._filled : self._filled + count] = chunk[:count]
            self._filled += count
            chunk = chunk[count:]

    def _part_full(self) -> None:
        """The part buffer is full and more data follows: a part of the upload, or held
        until the size passes the threshold."""
        full, self._part, self._filled = self._part, bytearray(self._driver.part_size), 0
        if self._upload_id is not None:
            self._send_part(full)
            return
        self._held.append(full)
        if self._size > self._driver.multipart_threshold:
            self._start_multipart()

    def _start_multipart(self) -> None:
        driver = self._driver
        with s3_errors(driver.name, self._key):
            started = driver.client.create_multipart_upload(
                **self._common(self._header), ChecksumAlgorithm="CRC32"
            )
        self._upload_id = started["UploadId"]
        held, self._held = self._held, []
        for part in held:
            self._send_part(part)

    def _send_part(self, part: bytearray) -> None:
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
        upload.add_done_callback(self._note_failure)
        self._uploads.append(upload)

    def _note_failure(self, upload: Future[dict[str, Any]]) -> None:
        if self._failure is None and not upload.cancelled():
            self._failure = upload.exception()

    def _upload_part(self, number: int, part: bytearray) -> dict[str, Any]:
        try:
            with s3_errors(self._driver.name, self._key):
                sent = self._driver.client.upload_part(
                    Bucket=self._driver.bucket,
                    Key=self._object_key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumAlgorithm="CRC32",
                )
            done = {"PartNumber": number, "ETag": sent["ETag"]}
            if "ChecksumCRC32" in sent:
                done["ChecksumCRC32"] = sent["ChecksumCRC32"]
            return done
        finally:
            self._in_flight.release()

    # Commit --------------------------------------------------------------------------------

    def commit(self, spec: WriteSpec) -> DataItem:
        if spec.if_none_match:
            conditions = {"IfNoneMatch": "*"}
        elif spec.if_match is not None:
            conditions = {"IfMatch": f'"{spec.if_match}"'}
        else:
            conditions = {}
        if self._upload_id is None and spec.size > self._driver.multipart_threshold:
            self._start_multipart()  # the last part took the size past the threshold
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                with s3_errors(self._driver.name, self._key, create_only=spec.if_none_match):
                    if self._upload_id is None:
                        response = self._put_whole(spec, conditions)
                    else:
                        response = self._complete(conditions)
                break
            except NotFound as missing:
                if spec.if_match is None:
                    raise
                # S3 answers a conditional write to a missing key with 404.
                raise PreconditionFailed(
                    f"if_match={spec.if_match!r} failed: the item is missing",
                    key=self._key,
                    store=self._driver.name,
                ) from missing
            except TransientError:
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise
        return self._item(spec, response)

    def _put_whole(self, spec: WriteSpec, conditions: dict[str, str]) -> Any:
        del self._part[self._filled :]
        body = self._part if not self._held else b"".join([*self._held, self._part])
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
        if self._filled:
            del self._part[self._filled :]
            self._send_part(self._part)
            self._part, self._filled = bytearray(), 0
        parts = [upload.result() for upload in self._uploads]
        return self._driver.client.complete_multipart_upload(
            Bucket=self._driver.bucket,
            Key=self._object_key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
            **conditions,
        )

    def _item(self, spec: WriteSpec, response: dict[str, Any]) -> DataItem:
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        updated_at = email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
        # What a later stat says: a multipart object has the header it began with, and no
        # SHA-256 of its whole content.
        sent: ItemHeader | WriteSpec = spec if self._upload_id is None else self._header
        return DataItem(
            key=self._key,
            namespace=self._namespace,
            size=spec.size,
            etag=response["ETag"].strip('"'),
            content_type=sent.content_type,
            updated_at=updated_at.astimezone(UTC),
            checksum=spec.checksum if self._upload_id is None else None,
            metadata=dict(sent.metadata),
            flags=sent.flags,
        )

    def abort(self) -> None:
        self._held.clear()
        self._part = bytearray()
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
