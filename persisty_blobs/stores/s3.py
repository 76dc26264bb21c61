"""``S3Store``: items as objects in an S3 bucket (or any S3-compatible service), through boto3.

The object layout, metadata, checksums and flags are described in ``_s3_objects``; the
streaming multipart writer in ``_s3_write``; presigned URLs and upload forms in
``_s3_factory`` (``S3DataStoreFactory``, importable from here).

S3 returns no metadata, content type or tags in a listing, so ``list`` sends one
``HeadObject`` per item (and one ``GetObjectTagging`` per item that has tags), concurrently;
``count`` needs only the listing.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Self

from ..driver import Driver, DriverWriter, ItemHeader, clip_range
from ..errors import NotFound, PreconditionFailed, TransientError
from ..item import DataItem, Flag
from ..keys import validate_prefix
from ..registry import require
from ..store import DataStore
from ..streams import BytesRangeRaw, HandsOutBytes
from ._s3_factory import S3DataStoreFactory
from ._s3_objects import Layout, flags_of, item_of, s3_errors, tag_set_of
from ._s3_write import S3Writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3DataStoreFactory", "S3Store"]

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part but the last
_MAX_PART = 5 * 1024 * MiB
_CHUNK = 1 * MiB
_LIST_PAGE = 1000
_RANGED_READ_ATTEMPTS = 3


class S3Store(DataStore):
    """Items in ``bucket`` under ``prefix``. Without ``client``, one is made with boto3's
    usual credential chain, ``endpoint_url`` and ``region``, and botocore's standard retry
    mode (``max_attempts`` tries) before an error counts as transient."""

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
    ) -> None:
        if not _MIN_PART <= part_size <= _MAX_PART:
            raise ValueError(f"part_size must be 5 MiB to 5 GiB (S3's limits), not {part_size}")
        if multipart_threshold < part_size:
            raise ValueError("multipart_threshold must be at least part_size")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
        if prefix:
            validate_prefix(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        owns_client = client is None  # a client the caller passed in stays open after close()
        if client is None:
            client = _new_client(endpoint_url, region, max_concurrency, max_attempts)
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

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``s3://bucket/prefix?endpoint_url=…&region=…``; other options as keywords."""
        parts = urllib.parse.urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"an S3 URL names its bucket: s3://bucket/prefix, not {url!r}")
        query = dict(urllib.parse.parse_qsl(parts.query))
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ValueError(f"unknown S3 URL parameters: {sorted(unknown)}")
        prefix = urllib.parse.unquote(parts.path.lstrip("/"))
        return cls(parts.netloc, prefix, **{**query, **options})


def _new_client(
    endpoint_url: str | None, region: str | None, max_concurrency: int, max_attempts: int
) -> S3Client:
    boto3 = require("boto3", extra="s3")
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",  # presigned URLs and forms too; AWS refuses the older one
        retries={"mode": "standard", "max_attempts": max_attempts},
        # Parts in flight, plus listing's HEADs, each hold a connection.
        max_pool_connections=max(10, 2 * max_concurrency + 2),
    )
    client: S3Client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )
    return client


class S3Driver(Driver):
    chunk_size = _CHUNK

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        multipart_threshold: int,
        part_size: int,
        max_concurrency: int,
        owns_client: bool,
    ) -> None:
        self.name = f"S3Store({bucket!r}, {prefix!r})"
        self.bucket = bucket
        self.layout = Layout(prefix)
        # Untyped inside: the stubs' TypedDicts add nothing to calls whose shapes S3 defines.
        self.client: Any = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.owns_client = owns_client
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        """Threads for part uploads and listing's HEADs. A forked child inherits none of the
        parent's threads, so it gets its own pool."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(
                    max_workers=2 * self.max_concurrency, thread_name_prefix="persisty-s3"
                )
                self._pool_pid = os.getpid()
            return self._pool

    # Reading ------------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        try:
            return self._head(namespace, key)
        except NotFound:
            return None

    def _head(self, namespace: str, key: str) -> DataItem:
        object_key = self.layout.object_key(namespace, key)
        with s3_errors(self.name, key):
            head = self.client.head_object(
                Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED"
            )
        return item_of(namespace, key, head, self._flags(key, object_key, head))

    def _flags(self, key: str, object_key: str, response: Any) -> frozenset[Flag]:
        if not response.get("TagCount"):
            return frozenset()
        with s3_errors(self.name, key):
            tags = self.client.get_object_tagging(Bucket=self.bucket, Key=object_key)
        return flags_of(tags["TagSet"])

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        object_key = self.layout.object_key(namespace, key)
        if start == 0 and end is None:
            # The whole object: its GET response describes it, checksum included.
            with s3_errors(self.name, key):
                got = self.client.get_object(
                    Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED"
                )
            item = item_of(namespace, key, got, self._flags(key, object_key, got))
            return item, ResponseRaw(got["Body"], self.name, key)
        for _ in range(_RANGED_READ_ATTEMPTS):
            # A ranged GET carries no checksum: the HEAD describes the item, and the GET
            # must read the version the HEAD saw.
            item = self._head(namespace, key)
            first, stop = clip_range(item.size, start, end, key, self.name)
            if first == stop:
                return item, BytesRangeRaw(b"", 0, 0)
            try:
                with s3_errors(self.name, key):
                    got = self.client.get_object(
                        Bucket=self.bucket,
                        Key=object_key,
                        Range=f"bytes={first}-{stop - 1}",
                        IfMatch=f'"{item.etag}"',
                    )
            except (PreconditionFailed, NotFound):
                continue  # overwritten or deleted since the HEAD: look again
            return item, ResponseRaw(got["Body"], self.name, key)
        raise TransientError(
            "the item kept changing while a range of it was opened", key=key, store=self.name
        )

    # Writing ------------------------------------------------------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return S3Writer(self, namespace, key, header)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        current = self.stat(namespace, key)
        if if_match is not None and (current is None or current.etag != if_match):
            found = "is missing" if current is None else f"has etag {current.etag!r}"
            raise PreconditionFailed(
                f"if_match={if_match!r} failed: the item {found}", key=key, store=self.name
            )
        if current is None:
            return False
        conditions = {} if if_match is None else {"IfMatch": f'"{if_match}"'}
        with s3_errors(self.name, key):
            self.client.delete_object(
                Bucket=self.bucket, Key=self.layout.object_key(namespace, key), **conditions
            )
        return True

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        object_key = self.layout.object_key(namespace, key)
        with s3_errors(self.name, key):
            tags = self.client.get_object_tagging(Bucket=self.bucket, Key=object_key)
            tag_set = tag_set_of(flags, tags["TagSet"])
            if tag_set:
                self.client.put_object_tagging(
                    Bucket=self.bucket, Key=object_key, Tagging={"TagSet": tag_set}
                )
            else:
                self.client.delete_object_tagging(Bucket=self.bucket, Key=object_key)

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem | None:
        from ._s3_copy import copy_object

        source = self._head(namespace, src_key)
        copy_object(self, namespace, source, dst_key)
        return self._head(namespace, dst_key)

    # Listing ------------------------------------------------------------------------------

    def _item_keys(self, namespace: str, prefix: str, after: str | None) -> Iterator[str]:
        """The key of every item from ``after`` on, in key order."""
        root = self.layout.root(namespace)
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root + prefix}
        if after is not None:
            arguments["StartAfter"] = root + after
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors(self.name):
            for page in paginator.paginate(**arguments, PaginationConfig={"PageSize": _LIST_PAGE}):
                for listed in page.get("Contents", []):
                    key = self.layout.item_key(namespace, listed["Key"])
                    if key is not None:
                        yield key

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        found: list[DataItem] = []
        keys = self._item_keys(namespace, prefix, after)
        while len(found) < limit:
            batch = list(itertools.islice(keys, limit - len(found)))
            if not batch:
                break
            for item in self.pool.map(lambda key: self.stat(namespace, key), batch):
                if item is not None and (flag is None or flag in item.flags):
                    found.append(item)
        return found

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        if flag is not None:
            return super().count(namespace, prefix, flag)
        return sum(1 for _ in self._item_keys(namespace, prefix, None))

    def namespaces(self) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.layout.namespaces, Delimiter="/")
        with s3_errors(self.name):
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(self.layout.namespaces) : -1])
            default = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.layout.root(""), MaxKeys=1
            )
        if default.get("KeyCount"):
            names.append("")
        return sorted(names)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self.owns_client:
            self.client.close()


class ResponseRaw(HandsOutBytes):
    """The body of a GET response: ``read`` hands on urllib3's bytes as they are."""

    def __init__(self, body: Any, store: str, key: str) -> None:
        super().__init__()
        self._body = body
        self._store = store
        self._key = key
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with s3_errors(self._store, self._key):
            try:
                data: bytes = self._body.read(None if size is None or size < 0 else size)
            except (OSError, ValueError) as error:
                raise TransientError(
                    f"reading the S3 response failed: {error}", key=self._key, store=self._store
                ) from error
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
