"""``HttpStore``: a store served by ``persisty_blobs.server.create_app``, reached over HTTP.

Content streams both ways (bounded memory for any size) over one pooled ``httpx`` client with
connect and read timeouts; idempotent requests are retried on transient failures; ranged reads
check the server's ``Content-Range``; the client is made anew in a forked child, whose parent's
connections it must not share. Needs the ``http`` extra (httpx).
"""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from .. import http_wire
from ..driver import Capabilities, Driver, DriverWriter, ItemHeader, WriteSpec, clip_range
from ..errors import (
    AlreadyExists,
    BlobError,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    TransientError,
)
from ..item import DataItem, Entry, Flag
from ..registry import require
from ..store import DataStore
from ..streams import BytesRangeRaw, HandsOutBytes

httpx = require("httpx", extra="http")

__all__ = ["HttpStore"]

_RETRY_STATUS = {502, 503, 504}
_CHUNK = 1024 * 1024
_QUEUE_CHUNKS = 4
_DONE = object()


class HttpStore(DataStore):
    """The store at ``url`` (the app's root), as a ``DataStore``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        super().__init__(_HttpDriver(url, token, timeout, connect_timeout, retries))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> HttpStore:
        """``http://host:port/`` or ``https://…``, with ``token=`` and the timeouts."""
        return cls(url, **options)


class _HttpDriver(Driver):
    def __init__(
        self, url: str, token: str | None, timeout: float, connect_timeout: float, retries: int
    ) -> None:
        self.url = url.rstrip("/")
        self.name = f"HttpStore({self.url!r})"
        self.chunk_size = _CHUNK
        self._headers = {} if token is None else {"authorization": f"Bearer {token}"}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._retries = retries
        self._pid = -1
        self._client: Any = None
        self._lock = threading.Lock()
        try:
            info = self._json("GET", "/v1/info", {})  # a wrong URL or token fails here, loudly
        except BaseException:
            self.close()
            raise
        declared = info.get("capabilities", {})
        self.capabilities = Capabilities(
            nested_keys=bool(declared.get("nested_keys", True)),
            flags_in_listing=bool(declared.get("flags_in_listing", True)),
            checksums_in_listing=bool(declared.get("checksums_in_listing", True)),
            local_clock=False,
        )

    # The connection --------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A forked child must not use its parent's sockets: a new pool for it.
                self._client = httpx.Client(
                    base_url=self.url, headers=self._headers, timeout=self._timeout
                )
                self._pid = os.getpid()
            return self._client

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        body: Any = None,
        retry: bool = True,
    ) -> Any:
        """The response; transport failures and 5xx answers are retried when ``retry``."""
        attempts = self._retries if retry else 1
        for attempt in range(attempts):
            try:
                request = self.client.build_request(
                    method,
                    path,
                    params=params,
                    headers=headers,
                    **({} if body is None else {"json": body}),
                )
                response = self.client.send(request, stream=stream)
            except httpx.TransportError as error:
                if attempt + 1 == attempts:
                    raise TransientError(
                        f"{method} failed: {type(error).__name__}: {error}",
                        key=key,
                        store=self.name,
                    ) from error
            else:
                if response.status_code not in _RETRY_STATUS or attempt + 1 == attempts:
                    return response
                response.close()
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _check(self, response: Any, key: str | None) -> Any:
        if response.status_code < 400:
            return response
        try:
            response.read()
            body = response.json()
        except Exception:  # a body that is not ours: the status decides
            body = None
        finally:
            response.close()
        raise http_wire.error_from(response.status_code, body, self.name, key)

    def _json(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        key: str | None = None,
        body: Any = None,
        retry: bool = True,
    ) -> Any:
        response = self._send(method, path, params, key=key, body=body, retry=retry)
        self._check(response, key)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise IntegrityError(
                "the server's answer is not JSON", key=key, store=self.name
            ) from None

    @staticmethod
    def _where(namespace: str, **more: Any) -> dict[str, Any]:
        params = {name: value for name, value in more.items() if value is not None}
        if namespace:
            params["namespace"] = namespace
        return params

    # Items ---------------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        path = f"/v1/items/{http_wire.quote_key(key)}"
        response = self._send("HEAD", path, self._where(namespace), key=key)
        if response.status_code == 404:
            return None
        self._check(response, key)
        return http_wire.item_from_headers(response.headers, key, namespace)

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        if end is not None and end <= start:
            return self._empty(namespace, key, start, end)
        headers = {}
        if start > 0 or end is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end - 1}"
        path = f"/v1/items/{http_wire.quote_key(key)}"
        response = self._send(
            "GET", path, self._where(namespace), key=key, headers=headers, stream=True
        )
        if response.status_code == 416:
            response.close()
            return self._empty(namespace, key, start, end)
        self._check(response, key)
        size = self._checked_size(response, headers, start, end, key)
        item = http_wire.item_from_headers(response.headers, key, namespace, size)
        expected = item.size - start if end is None else min(end, item.size) - start
        return item, _ResponseRaw(response, self.name, key, expected)

    def _empty(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        """An empty range (HTTP has none): the item, if the range starts within it or at
        its end, and nothing to read."""
        item = self.stat(namespace, key)
        if item is None:
            raise NotFound("no such item", key=key, store=self.name)
        clip_range(item.size, start, end, key, self.name)
        return item, BytesRangeRaw(b"", 0, 0)

    def _checked_size(
        self, response: Any, asked: dict[str, str], start: int, end: int | None, key: str
    ) -> int:
        """The item's size; a server that answered another range than asked is refused."""
        if response.status_code == 206 and not asked:
            response.close()
            raise IntegrityError(
                "the server sent part of the item unasked", key=key, store=self.name
            )
        if response.status_code == 206:
            span = response.headers.get("content-range", "")
            if _range_total(span, start, end) is None:
                response.close()
                raise IntegrityError(
                    f"the server sent range {span[:80]!r}, not the one asked",
                    key=key,
                    store=self.name,
                )
            return _range_total(span, start, end) or 0
        if asked:
            response.close()
            raise IntegrityError("the server ignored the range asked", key=key, store=self.name)
        return http_wire.item_from_headers(response.headers, key, "").size

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        headers = {
            "content-type": header.content_type,
            "x-persisty-flags": ",".join(sorted(flag.value for flag in header.flags)),
        }
        for name, value in header.metadata.items():
            headers[http_wire.META_PREFIX + name] = http_wire.quote_metadata(value)
        if header.if_match is not None:
            headers["if-match"] = f'"{header.if_match}"'
        if header.if_none_match:
            headers["if-none-match"] = "*"
        return _HttpWriter(self, namespace, key, headers, dict(header.metadata))

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        headers = {} if if_match is None else {"if-match": f'"{if_match}"'}
        path = f"/v1/items/{http_wire.quote_key(key)}"
        response = self._send("DELETE", path, self._where(namespace), key=key, headers=headers)
        if response.status_code == 404:
            return False
        self._check(response, key)
        response.close()
        return True

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        page = self._json(
            "GET",
            "/v1/items",
            self._where(
                namespace,
                prefix=prefix or None,
                after=after,
                limit=limit,
                flag=None if flag is None else flag.value,
            ),
        )
        return [http_wire.item_from_json(item) for item in page["items"]]

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        page = self._json(
            "GET",
            "/v1/scan",
            self._where(namespace, prefix=prefix or None, after=after, limit=limit),
        )
        return [http_wire.entry_from_json(entry) for entry in page["entries"]]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        answer = self._json(
            "GET",
            "/v1/count",
            self._where(
                namespace, prefix=prefix or None, flag=None if flag is None else flag.value
            ),
        )
        return int(answer["count"])

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self._json(
            "PUT",
            f"/v1/flags/{http_wire.quote_key(key)}",
            self._where(namespace),
            key=key,
            body={"flags": sorted(flag.value for flag in flags)},
        )

    def namespaces(self) -> list[str]:
        names: list[str] = self._json("GET", "/v1/namespaces", {})["namespaces"]
        return names

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem:
        # Not retried: a lost answer to a copy that happened would copy again, harmlessly,
        # but a retry cannot tell a failed copy from a done one.
        answer = self._json(
            "POST",
            "/v1/copy",
            self._where(namespace),
            key=src_key,
            body={"from": src_key, "to": dst_key},
            retry=False,
        )
        return http_wire.item_from_json(answer)

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


def _range_total(content_range: str, start: int, end: int | None) -> int | None:
    """The item's size from a ``Content-Range`` answering ``[start, end)``, or None if it
    answers another range (or is not one)."""
    match = re.fullmatch(r"bytes (\d{1,18})-(\d{1,18})/(\d{1,18})", content_range.strip())
    if match is None:
        return None
    first, last, total = (int(group) for group in match.groups())
    wanted_last = total - 1 if end is None else min(end, total) - 1
    return total if first == start and last == wanted_last else None


class _ResponseRaw(HandsOutBytes):
    """The body of a streamed response, read as the server sends it."""

    def __init__(self, response: Any, store: str, key: str, expected: int) -> None:
        super().__init__()
        self._response = response
        self._expected = expected
        self._received = 0
        self._chunks: Iterator[bytes] = response.iter_raw(_CHUNK)
        self._left = b""
        self._store, self._key = store, key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            if not self._left:
                self._left = next(self._chunks, b"")
        except httpx.HTTPError as error:
            raise TransientError(
                f"the download broke off: {error}", key=self._key, store=self._store
            ) from error
        if size < 0 or size >= len(self._left):
            data, self._left = self._left, b""
            return data
        data, self._left = self._left[:size], self._left[size:]
        return data

    def close(self) -> None:
        self._response.close()
        super().close()


class _HttpWriter(DriverWriter):
    """A PUT whose body streams from a bounded queue while the caller writes; the request
    runs on its own thread, and ``abort`` cuts it, so the server keeps nothing."""

    def __init__(
        self,
        driver: _HttpDriver,
        namespace: str,
        key: str,
        headers: dict[str, str],
        metadata: dict[str, str],
    ) -> None:
        self._metadata = metadata
        self._driver, self._key, self._namespace = driver, key, namespace
        self._create_only = headers.get("if-none-match") == "*"
        self._queue: queue.Queue[object] = queue.Queue(_QUEUE_CHUNKS)
        self._response: Any = None
        self._error: BaseException | None = None
        path = f"/v1/items/{http_wire.quote_key(key)}"
        params = driver._where(namespace)
        self._thread = threading.Thread(
            target=self._run, args=(path, params, headers), name="pb-http-put", daemon=True
        )
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        while True:
            chunk = self._queue.get()
            if chunk is _DONE:
                return
            if not isinstance(chunk, bytes):
                raise ConnectionAbortedError("the upload was aborted")
            yield chunk

    def _run(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> None:
        try:
            client = self._driver.client
            request = client.build_request(
                "PUT", path, params=params, headers=headers, content=self._body()
            )
            response = client.send(request)
            self._response = response
        except BaseException as error:
            self._error = error

    def _put(self, chunk: object) -> None:
        while True:
            if not self._thread.is_alive():
                self._raise()
            try:
                self._queue.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        name = self._driver.name
        if self._response is not None and self._response.status_code >= 400:
            try:
                self._driver._check(self._response, self._key)
            except PreconditionFailed as error:
                if self._create_only:
                    raise AlreadyExists(error.message, key=self._key, store=name) from None
                raise
        if isinstance(self._error, BlobError):
            raise self._error
        if self._error is not None:
            raise TransientError(
                f"the upload failed: {self._error}", key=self._key, store=name
            ) from self._error
        raise TransientError("the upload ended early", key=self._key, store=name)

    def write(self, chunk: memoryview) -> None:
        self._put(bytes(chunk))

    def commit(self, spec: WriteSpec) -> DataItem:
        self._put(_DONE)
        self._thread.join()
        if self._response is None or self._response.status_code >= 400:
            self._raise()
        response = self._response
        item = http_wire.item_from_headers(response.headers, self._key, self._namespace, spec.size)
        if dict(spec.metadata) != self._metadata:
            item = self._late_metadata(item, spec)
        if item.checksum is not None and item.checksum != spec.checksum:
            raise IntegrityError(
                "the server stored other bytes than were sent",
                key=self._key,
                store=self._driver.name,
            )
        return item

    def _late_metadata(self, item: DataItem, spec: WriteSpec) -> DataItem:
        """Metadata a layer knows only at commit (``EncryptedStore``'s sealed record): sent
        after the content, conditional on the version just written."""
        path = f"/v1/metadata/{http_wire.quote_key(self._key)}"
        driver = self._driver
        response = driver._send(
            "PUT",
            path,
            driver._where(self._namespace),
            key=self._key,
            headers={"if-match": f'"{item.etag}"'},
            body={"metadata": dict(spec.metadata)},
            retry=False,
        )
        try:
            driver._check(response, self._key)
        except PreconditionFailed:
            # A later write replaced ours before its metadata followed: ours happened, and
            # lost to that one, as an unconditional write does.
            return dataclasses.replace(item, metadata=spec.metadata, checksum=spec.checksum)
        return http_wire.item_from_headers(response.headers, self._key, self._namespace, spec.size)

    def abort(self) -> None:
        # Anything but content bytes makes the body generator raise, which cuts the request:
        # the server sees the body end early and keeps nothing.
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
            except queue.Full:
                continue
        self._thread.join()
