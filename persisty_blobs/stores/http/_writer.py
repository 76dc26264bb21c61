"""Writing through the hosting app: one streamed PUT per item, fed from a bounded queue."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ... import http_wire
from ...driver import DriverWriter, WriteSpec
from ...errors import AlreadyExists, BlobError, IntegrityError, PreconditionFailed, TransientError
from ...item import DataItem

if TYPE_CHECKING:
    from ._driver import HttpDriver

__all__ = ["HttpWriter"]

_QUEUE_CHUNKS = 4
_DONE = object()


class HttpWriter(DriverWriter):
    """A PUT whose body streams from a bounded queue while the caller writes; the request
    runs on its own thread, and ``abort`` cuts it, so the server keeps nothing."""

    def __init__(
        self,
        driver: HttpDriver,
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
