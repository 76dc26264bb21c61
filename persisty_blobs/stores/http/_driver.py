"""``HttpStore``'s driver: the hosting app's wire format (``http_wire``) over httpx.

Content streams both ways (bounded memory for any size) over one pooled ``httpx`` client with
connect and read timeouts; idempotent requests are retried on transient failures; ranged reads
check the server's ``Content-Range``; the client is made anew in a forked child, whose parent's
connections it must not share. Needs the ``http`` extra (httpx).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import ssl
import threading
import time
from typing import Any

from ... import http_wire
from ..._urls import without_password
from ...driver import Capabilities, Driver, DriverWriter, ItemHeader, clip_range
from ...errors import IntegrityError, InvalidArgument, NotFound, TransientError
from ...item import DataItem, Entry, Flag
from ...streams import BytesRangeRaw
from ._client import CHUNK, httpx
from ._reader import ResponseRaw, range_total
from ._writer import HttpWriter

__all__ = ["HttpDriver"]

_RETRY_STATUS = {502, 503, 504}
#: The most an answer other than content may hold: a page of 1,000 items with the largest
#: keys and metadata is a few MiB; a server that ignores ``limit`` sends more.
_ANSWER_BYTES = 32 * 1024 * 1024
#: How many read timeouts an answer other than content may take in all: ``timeout`` bounds
#: each read, and a server that trickles a byte per read would never time out.
_ANSWER_TIMEOUTS = 4


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: making one loads the system's CA
    certificates (tens of milliseconds, for each store and each forked child), and a context
    can be shared between clients and threads."""
    context: ssl.SSLContext = httpx.create_ssl_context()
    return context


class HttpDriver(Driver):
    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float | None,
        connect_timeout: float,
        retries: int,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = f"HttpStore({without_password(self.url)!r})"
        self.chunk_size = CHUNK
        self._headers = {} if token is None else {"authorization": f"Bearer {token}"}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._retries = retries
        self._pid = -1
        self._client: Any = None
        self._closed = False
        self._lock = threading.Lock()
        try:
            info = self._json("GET", "/v1/info", {})  # a wrong URL or token fails here, loudly
        except BaseException:
            self.close()
            raise
        store_id = info.get("store_id")
        if isinstance(store_id, str) and store_id.isalnum():
            # Two users' stores at one URL are two stores (a sync's state tells them apart).
            self.name = f"HttpStore({without_password(self.url)!r}, store {store_id})"
        declared = info.get("capabilities", {})
        self.capabilities = Capabilities(
            nested_keys=bool(declared.get("nested_keys", True)),
            flags_in_listing=bool(declared.get("flags_in_listing", True)),
            checksums_in_listing=bool(declared.get("checksums_in_listing", True)),
            local_clock=False,
            writes_want_checksum=True,  # sent with the content, the server checks it
        )

    # The connection --------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._closed:  # a new pool now would be one nobody closes
                raise InvalidArgument("the store is closed", store=self.name)
            if self._client is None or self._pid != os.getpid():
                # A forked child must not use its parent's sockets: a new pool for it.
                self._client = httpx.Client(
                    base_url=self.url,
                    headers=self._headers,
                    timeout=self._timeout,
                    verify=_tls_context(),
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
        """The response; transport failures and 5xx answers are retried when ``retry``. Unless
        ``stream``, its body is read, within ``_ANSWER_BYTES`` and ``_ANSWER_TIMEOUTS``."""
        attempts = 1 + self._retries if retry else 1
        for attempt in range(attempts):
            try:
                request = self.client.build_request(
                    method,
                    path,
                    params=params,
                    headers=headers,
                    **({} if body is None else {"json": body}),
                )
                response = self.client.send(request, stream=True)
                if not stream:
                    response = self._read_answer(response, method, key)
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

    def _read_answer(self, response: Any, method: str, key: str | None) -> Any:
        """``response`` with its body read, or ``IntegrityError`` (too large) or
        ``TransientError`` (too slow)."""
        deadline = time.monotonic() + _ANSWER_TIMEOUTS * (self._timeout.read or 60.0)
        body = bytearray()
        try:
            for chunk in response.iter_bytes():  # decoded: a small compressed bomb counts whole
                body += chunk
                if len(body) > _ANSWER_BYTES:
                    raise IntegrityError(
                        f"the server's answer to {method} is over {_ANSWER_BYTES} bytes",
                        key=key,
                        store=self.name,
                    )
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"the server's answer to {method} took over "
                        f"{_ANSWER_TIMEOUTS} read timeouts",
                        key=key,
                        store=self.name,
                    )
        finally:
            response.close()
        headers = response.headers.copy()
        for name in ("content-encoding", "content-length"):
            headers.pop(name, None)
        return httpx.Response(
            response.status_code, headers=headers, content=bytes(body), request=response.request
        )

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
        whole = start == 0 and expected == item.size
        checksum = item.checksum if whole else None
        return item, ResponseRaw(response, self.name, key, expected, checksum)

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
        """The item's size; a server that answered another range than asked, or sent
        something other than the item's bytes, is refused."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if response.status_code not in (200, 206) or encoding != "identity":
            response.close()
            raise IntegrityError(
                f"the server answered {response.status_code} ({encoding}), not the item's bytes",
                key=key,
                store=self.name,
            )
        if response.status_code == 206 and not asked:
            response.close()
            raise IntegrityError(
                "the server sent part of the item unasked", key=key, store=self.name
            )
        if response.status_code == 206:
            span = response.headers.get("content-range", "")
            if range_total(span, start, end) is None:
                response.close()
                raise IntegrityError(
                    f"the server sent range {span[:80]!r}, not the one asked",
                    key=key,
                    store=self.name,
                )
            return range_total(span, start, end) or 0
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
        if header.checksum is not None:
            headers["x-persisty-checksum"] = header.checksum
        return HttpWriter(self, namespace, key, headers, dict(header.metadata))

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
        items = http_wire.page_from_json(page, "items", limit)
        return [_seen_from(namespace, http_wire.item_from_json(item)) for item in items]

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        page = self._json(
            "GET",
            "/v1/scan",
            self._where(namespace, prefix=prefix or None, after=after, limit=limit),
        )
        entries = http_wire.page_from_json(page, "entries", limit)
        return [http_wire.entry_from_json(entry) for entry in entries]

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        answer = self._json(
            "GET",
            "/v1/count",
            self._where(
                namespace, prefix=prefix or None, flag=None if flag is None else flag.value
            ),
        )
        return http_wire.count_from_json(answer)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self._json(
            "PUT",
            f"/v1/flags/{http_wire.quote_key(key)}",
            self._where(namespace),
            key=key,
            body={"flags": sorted(flag.value for flag in flags)},
        )

    def namespaces(self) -> list[str]:
        return http_wire.namespaces_from_json(self._json("GET", "/v1/namespaces", {}))

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
        return _seen_from(namespace, http_wire.item_from_json(answer))

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None
            self._closed = True


def _seen_from(namespace: str, item: DataItem) -> DataItem:
    """``item`` in this client's namespace: the server names its own (a caller's store is
    often a namespace of the server's), which no call of this client takes."""
    return item if item.namespace == namespace else dataclasses.replace(item, namespace=namespace)
