"""Server-side copy for ``S3Store``: the content never passes through this process.

``CopyObject`` takes objects up to 5 GiB; a larger one is copied as a multipart upload of
``UploadPartCopy`` ranges, aborted on any error. Both copy the version the caller saw
(``CopySourceIfMatch``), so a concurrent overwrite cannot mix two versions into one copy.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import PreconditionFailed, TransientError
from ..item import DataItem
from ._s3_objects import encode_metadata, s3_errors, tagging_of

if TYPE_CHECKING:
    from .s3 import S3Driver

__all__ = ["copy_object"]

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
                _copy_in_parts(driver, source, target, copy_source, if_match)
    except PreconditionFailed as changed:
        raise TransientError(
            "the source changed while it was copied", key=source.key, store=driver.name
        ) from changed


def _copy_in_parts(
    driver: S3Driver, source: DataItem, target: str, copy_source: dict[str, str], if_match: str
) -> None:
    client = driver.client
    started = client.create_multipart_upload(
        Bucket=driver.bucket,
        Key=target,
        ContentType=source.content_type,
        Metadata=encode_metadata(source.metadata),
        Tagging=tagging_of(source.flags),
    )
    upload_id = started["UploadId"]

    def copy_part(number: int) -> dict[str, Any]:
        first = (number - 1) * COPY_PART_SIZE
        last = min(first + COPY_PART_SIZE, source.size) - 1
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
        numbers = range(1, -(-source.size // COPY_PART_SIZE) + 1)
        parts = list(driver.pool.map(copy_part, numbers))
        client.complete_multipart_upload(
            Bucket=driver.bucket,
            Key=target,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=driver.bucket, Key=target, UploadId=upload_id)
        raise
