"""Server-side copies: the content never passes through this process.

``CopyObject`` takes objects up to 5 GiB; a larger one is copied as a multipart upload of
``UploadPartCopy`` ranges, aborted on any error. Both copy the version the caller saw
(``CopySourceIfMatch``), so a concurrent overwrite cannot mix two versions into one copy.

The same copy, of an object onto itself, records a multipart object's SHA-256: S3 computes
the SHA-256 of a ``CopyObject``'s whole content (``ChecksumAlgorithm``), which a multipart
upload cannot have, and the store checks it against the one it computed while streaming.
Above ``CopyObject``'s limit the checksum goes into the metadata entry ``persisty.sha256``
instead (a name no user metadata can have), if S3's 2 KB of metadata leave room for it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...driver import WriteSpec
from ...errors import IntegrityError, PreconditionFailed, TransientError, Unsupported
from ...item import DataItem
from ._errors import retried, s3_errors
from ._layout import (
    CHECKSUM_METADATA,
    METADATA_LIMIT,
    encode_metadata,
    metadata_size,
    sha256_header,
    tagging_of,
)

if TYPE_CHECKING:
    from ._driver import S3Driver

__all__ = ["copy_object", "record_checksum"]

GiB = 1024**3
COPY_OBJECT_LIMIT = 5 * GiB  # the largest object CopyObject takes
COPY_PART_SIZE = 512 * 1024 * 1024


def copy_object(driver: S3Driver, namespace: str, source: DataItem, dst_key: str) -> None:
    """Copy ``source`` (as a HEAD described it) to ``dst_key`` of the same namespace, with its
    content type, metadata and flags."""
    layout = driver.layout
    target = layout.object_key(namespace, dst_key)
    copy_source = {"Bucket": driver.bucket, "Key": layout.object_key(namespace, source.key)}
    if_match = f'"{source.etag}"'
    try:
        with s3_errors(driver.name, source.key):
            if source.size <= COPY_OBJECT_LIMIT:
                driver.client.copy_object(
                    Bucket=driver.bucket,
                    Key=target,
                    CopySource=copy_source,
                    CopySourceIfMatch=if_match,
                    MetadataDirective="COPY",
                    TaggingDirective="COPY",
                    # S3 computes the copy's SHA-256 of its whole content, as a put records it.
                    ChecksumAlgorithm="SHA256",
                )
            else:
                metadata = encode_metadata(source.metadata)
                if source.checksum is not None:
                    metadata[CHECKSUM_METADATA] = source.checksum
                header = {
                    "ContentType": source.content_type,
                    "Metadata": metadata,
                    "Tagging": tagging_of(source.flags),
                }
                _copy_in_parts(driver, source.size, target, copy_source, if_match, header)
    except PreconditionFailed as changed:
        raise TransientError(
            "the source changed while it was copied", key=source.key, store=driver.name
        ) from changed


def record_checksum(
    driver: S3Driver, namespace: str, key: str, spec: WriteSpec, etag: str
) -> tuple[str, datetime] | None:
    """Copy the multipart object ``key`` (as completed, with ``etag``) onto itself so that S3
    holds ``spec.checksum`` of it; the new etag and time, or None if the object stays as it
    was without a checksum (S3 unreachable or unable, no room in the metadata, or another
    write replaced it meanwhile). ``IntegrityError`` if S3 holds other content than was sent.
    """
    target = driver.layout.object_key(namespace, key)
    metadata = encode_metadata(spec.metadata)
    if spec.size > COPY_OBJECT_LIMIT:
        if metadata_size(metadata) + len(CHECKSUM_METADATA) + len(spec.checksum) > METADATA_LIMIT:
            return None
        metadata[CHECKSUM_METADATA] = spec.checksum
    header = {"ContentType": spec.content_type, "Metadata": metadata}
    copy_source = {"Bucket": driver.bucket, "Key": target}
    # The destination is the source: both conditions keep a newer write from being replaced.
    conditions = {"CopySourceIfMatch": f'"{etag}"', "IfMatch": f'"{etag}"'}
    try:
        with s3_errors(driver.name, key):
            if spec.size > COPY_OBJECT_LIMIT:
                header["Tagging"] = tagging_of(spec.flags)
                _copy_in_parts(
                    driver, spec.size, target, copy_source, f'"{etag}"', header, overwrite=True
                )
                return _current(driver, namespace, key, spec.checksum)
            copied = driver.client.copy_object(
                Bucket=driver.bucket,
                Key=target,
                CopySource=copy_source,
                MetadataDirective="REPLACE",
                TaggingDirective="COPY",
                ChecksumAlgorithm="SHA256",
                **header,
                **conditions,
            )
    except PreconditionFailed as refused:
        # Another write came first, or this copy did and botocore retried it.
        return _current(driver, namespace, key, spec.checksum) if retried(refused) else None
    except (TransientError, Unsupported):
        return None
    result = copied["CopyObjectResult"]
    if result.get("ChecksumSHA256") != sha256_header(spec.checksum):
        raise IntegrityError(
            f"S3 computed the SHA-256 {result.get('ChecksumSHA256')!r} of the uploaded parts, "
            f"not the {spec.checksum} of what was sent",
            key=key,
            store=driver.name,
        )
    return result["ETag"].strip('"'), result["LastModified"].astimezone(UTC)


def _current(
    driver: S3Driver, namespace: str, key: str, checksum: str
) -> tuple[str, datetime] | None:
    """The etag and time of the object if it holds ``checksum``."""
    current = driver.stat(namespace, key)
    if current is None or current.checksum != checksum:
        return None
    return current.etag, current.updated_at


def _copy_in_parts(
    driver: S3Driver,
    size: int,
    target: str,
    copy_source: dict[str, str],
    if_match: str,
    header: dict[str, Any],
    *,
    overwrite: bool = False,
) -> None:
    """``UploadPartCopy`` ranges of the source version ``if_match``; with ``overwrite`` the
    target is the source, and the completion too is conditional on that version."""
    client = driver.client
    started = client.create_multipart_upload(Bucket=driver.bucket, Key=target, **header)
    upload_id = started["UploadId"]

    def copy_part(number: int) -> dict[str, Any]:
        first = (number - 1) * COPY_PART_SIZE
        last = min(first + COPY_PART_SIZE, size) - 1
        copied = client.upload_part_copy(
            Bucket=driver.bucket,
            Key=target,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=copy_source,
            CopySourceRange=f"bytes={first}-{last}",
            CopySourceIfMatch=if_match,
        )
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

    try:
        numbers = range(1, -(-size // COPY_PART_SIZE) + 1)
        parts = list(driver.pool.map(copy_part, numbers))
        client.complete_multipart_upload(
            Bucket=driver.bucket,
            Key=target,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            **({"IfMatch": if_match} if overwrite else {}),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=driver.bucket, Key=target, UploadId=upload_id)
        raise
