"""``S3Driver``: the driver primitives over one bucket and prefix.

S3 returns no metadata, content type or tags in a listing, so ``list`` sends one
``HeadObject`` per item (and one ``GetObjectTagging`` per item that has tags), concurrently;
``scan`` and ``count`` need only the listing.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ..._urls import without_password
from ...driver import Capabilities, Driver, DriverWriter, ItemHeader, clip_range
from ...errors import NotFound, PreconditionFailed, TransientError
from ...item import DataItem, Entry, Flag
from ...streams import BytesRangeRaw
from ._client import forget_connections
from ._copy import copy_object
from ._errors import s3_errors
from ._layout import Layout, flags_of, item_of, tag_set_of
from ._reader import ResponseRaw, check_range
from ._streamed import sign_streamed_puts_unsigned, streams
from ._writer import S3Writer

__all__ = ["S3Driver"]

_CHUNK = 1024 * 1024
_LIST_PAGE = 1000  # the most ListObjectsV2 returns
_RANGED_READ_ATTEMPTS = 3


def _elsewhere(client: Any) -> str:
    """The endpoint, where it is not AWS's: a bucket's name is unique within AWS only, and a
    sync state tells two stores apart by their names."""
    endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if not endpoint or host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return ""
    return f", endpoint {without_password(endpoint)!r}"


class S3Driver(Driver):
    chunk_size = _CHUNK
    capabilities = Capabilities(
        presign=True,
        server_side_copy=True,
        flags_in_listing=False,
        checksums_in_listing=False,
        local_clock=False,
        writes_want_checksum=True,
    )

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
        self.name = f"S3Store({bucket!r}, {prefix!r}{_elsewhere(client)})"
        self.bucket = bucket
        self.layout = Layout(prefix)
        # Untyped inside: the stubs' TypedDicts add nothing to calls whose shapes S3 defines.
        self._client: Any = client
        sign_streamed_puts_unsigned(client)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.owns_client = owns_client
        self._pool: ThreadPoolExecutor | None = None
        self._parts = threading.Semaphore(max_concurrency)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._bucket_seen = False

    def _this_process(self) -> None:
        """A forked child inherits neither the parent's threads nor the right to its pooled
        connections: it gets a thread pool of its own and drops the inherited connections."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pool = None
                self._parts = threading.Semaphore(self.max_concurrency)
                forget_connections(self._client)
                self._pid = os.getpid()

    @property
    def client(self) -> Any:
        """The boto3 client, safe to use in this process."""
        self._this_process()
        return self._client

    @property
    def parts_in_flight(self) -> threading.Semaphore:
        """Shared by every writer of the store: concurrent uploads hold ``max_concurrency``
        part buffers in flight between them, not each."""
        self._this_process()
        return self._parts

    @property
    def pool(self) -> ThreadPoolExecutor:
        """Threads for part uploads and listing's HEADs."""
        self._this_process()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=2 * self.max_concurrency, thread_name_prefix="persisty-s3"
                )
            return self._pool

    # Reading ------------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        try:
            return self.head(namespace, key)
        except NotFound:
            if not self._bucket_seen:
                self._check_bucket()
            return None

    def _check_bucket(self) -> None:
        """A HEAD of a missing object and one in a missing bucket both get a bare 404: look
        at the bucket once, so that a misspelt bucket fails instead of looking empty."""
        try:
            with s3_errors(self.name):
                self.client.head_bucket(Bucket=self.bucket)
        except NotFound as missing:
            raise NotFound(
                f"the bucket {self.bucket!r} does not exist", store=self.name
            ) from missing
        self._bucket_seen = True

    def head(self, namespace: str, key: str) -> DataItem:
        object_key = self.layout.object_key(namespace, key)
        with s3_errors(self.name, key):
            head = self.client.head_object(
                Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED"
            )
        self._bucket_seen = True
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
            item = self.head(namespace, key)
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
            check_range(got, first, stop, item.size, self.name, key)
            return item, ResponseRaw(got["Body"], self.name, key)
        raise TransientError(
            "the item kept changing while a range of it was opened", key=key, store=self.name
        )

    # Writing ------------------------------------------------------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return S3Writer(self, namespace, key, header)

    def precondition_in_request(self, header: ItemHeader) -> bool:
        return streams(self, header)

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
        source = self.head(namespace, src_key)
        copy_object(self, namespace, source, dst_key)
        return self.head(namespace, dst_key)

    # Listing ------------------------------------------------------------------------------

    def _listed(
        self, namespace: str, prefix: str, after: str | None, page_size: int = _LIST_PAGE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each item from ``after`` on, in key order, as its key and its listing entry; pages
        are requested as they are consumed."""
        root = self.layout.root(namespace)
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root + prefix}
        if after is not None:
            arguments["StartAfter"] = root + after
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors(self.name):
            for page in paginator.paginate(**arguments, PaginationConfig={"PageSize": page_size}):
                for listed in page.get("Contents", []):
                    key = self.layout.item_key(namespace, listed["Key"])
                    if key is not None:
                        yield key, listed

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        found: list[DataItem] = []
        keys = (key for key, _ in self._listed(namespace, prefix, after))
        while len(found) < limit:
            batch = list(itertools.islice(keys, limit - len(found)))
            if not batch:
                break
            for item in self.pool.map(lambda key: self.stat(namespace, key), batch):
                if item is not None and (flag is None or flag in item.flags):
                    found.append(item)
        return found

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        listed = self._listed(namespace, prefix, after, min(limit, _LIST_PAGE))
        return [
            Entry(
                key=key,
                size=entry["Size"],
                etag=entry["ETag"].strip('"'),
                updated_at=_utc(entry["LastModified"]),
            )
            for key, entry in itertools.islice(listed, limit)
        ]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        if flag is not None:
            return super().count(namespace, prefix, flag)
        return sum(1 for _ in self._listed(namespace, prefix, None))

    def namespaces(self) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.layout.namespaces, Delimiter="/")
        with s3_errors(self.name):
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(self.layout.namespaces) : -1]
                    if name:  # "namespaces//": no namespace's, the default one is elsewhere
                        names.append(name)
            default = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.layout.root(""), MaxKeys=1
            )
        if default.get("KeyCount"):
            names.append("")
        return sorted(names)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self.owns_client:
            self._client.close()


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
