"""``S3Store``: items as objects in an S3 bucket (or any S3-compatible service), through boto3.

The object layout, metadata, checksums and flags are described in ``_layout``; the driver
in ``_driver``; the streaming multipart writer in ``_writer``; presigned URLs and upload
forms in ``_factory``.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from ...errors import InvalidArgument, InvalidArgumentType
from ...keys import validate_prefix
from ...store import DataStore
from ._client import new_client
from ._driver import S3Driver
from ._errors import s3_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Store"]

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part but the last
_MAX_PART = 5 * 1024 * MiB
_URL_OPTIONS = {"endpoint_url": str, "region": str, "connect_timeout": float, "read_timeout": float}


class S3Store(DataStore):
    """Items in ``bucket`` under ``prefix``. Without ``client``, one is made with boto3's
    usual credential chain, ``endpoint_url`` and ``region``, botocore's standard retry mode
    (``max_attempts`` tries) before an error counts as transient, and ``connect_timeout`` and
    ``read_timeout`` (seconds) for each try. A ``client`` given keeps its own settings."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold: int = 8 * MiB,
        part_size: int = 8 * MiB,
        max_concurrency: int = 4,
        max_attempts: int = 5,
        connect_timeout: float = 10,
        read_timeout: float = 60,
    ) -> None:
        if not _MIN_PART <= part_size <= _MAX_PART:
            raise InvalidArgument(
                f"part_size must be 5 MiB to 5 GiB (S3's limits), not {part_size}"
            )
        if multipart_threshold < part_size:
            raise InvalidArgument("multipart_threshold must be at least part_size")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidArgument(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
        for name, seconds in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise InvalidArgument(f"{name} must be a number of seconds > 0, not {seconds!r}")
        if prefix:
            validate_prefix(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        owns_client = client is None  # a client the caller passed in stays open after close()
        if client is None:
            client = new_client(
                endpoint_url,
                region,
                max_concurrency=max_concurrency,
                max_attempts=max_attempts,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        driver = S3Driver(
            bucket, prefix, client, multipart_threshold, part_size, max_concurrency, owns_client
        )
        super().__init__(driver)

    @property
    def client(self) -> S3Client:
        """The boto3 client this store uses."""
        client: S3Client = self._s3.client
        return client

    @property
    def bucket(self) -> str:
        return self._s3.bucket

    @property
    def object_root(self) -> str:
        """What the S3 key of every item of this store's namespace starts with."""
        return self._s3.layout.root(self._namespace)

    @property
    def _s3(self) -> S3Driver:
        assert isinstance(self._driver, S3Driver)
        return self._driver

    def abort_incomplete_uploads(self, *, older_than: timedelta = timedelta(days=1)) -> int:
        """Abort the multipart uploads of this store's items (every namespace) that began
        more than ``older_than`` ago, by S3's clock as this machine sees it; return how many.

        A writer aborts its upload on every error, but not when S3 itself is unreachable:
        then the parts stay, and are billed, until this runs or a bucket lifecycle rule
        (``AbortIncompleteMultipartUpload``) removes them. An upload younger than
        ``older_than`` may still be in progress in another process."""
        if not isinstance(older_than, timedelta):
            raise InvalidArgumentType(
                f"older_than must be a timedelta, not {type(older_than).__name__}"
            )
        if older_than < timedelta(0):
            raise InvalidArgument(f"older_than must not be negative, not {older_than}")
        cutoff = datetime.now(UTC) - older_than
        driver, aborted = self._s3, 0
        paginator = driver.client.get_paginator("list_multipart_uploads")
        # The store's own two roots: with an empty prefix, the rest of the bucket is not ours.
        with s3_errors(driver.name):
            for root in (driver.layout.root(""), driver.layout.namespaces):
                for page in paginator.paginate(Bucket=driver.bucket, Prefix=root):
                    for upload in page.get("Uploads", []):
                        if upload["Initiated"] <= cutoff:
                            driver.client.abort_multipart_upload(
                                Bucket=driver.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                            )
                            aborted += 1
        return aborted

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``s3://bucket/prefix?endpoint_url=…&region=…&connect_timeout=…&read_timeout=…``;
        other options as keywords."""
        parts = urllib.parse.urlsplit(url)
        if not parts.netloc:
            raise InvalidArgument(f"an S3 URL names its bucket: s3://bucket/prefix, not {url!r}")
        query: dict[str, Any] = {}
        for name, value in urllib.parse.parse_qsl(parts.query):
            kind = _URL_OPTIONS.get(name)
            if kind is None:
                raise InvalidArgument(f"unknown S3 URL parameter {name!r}")
            try:
                query[name] = kind(value)
            except ValueError as error:
                raise InvalidArgument(f"bad S3 URL parameter {name}={value!r}") from error
        prefix = urllib.parse.unquote(parts.path.lstrip("/"))
        return cls(parts.netloc, prefix, **{**query, **options})
