"""One ``PutObject`` sent while its content is written, for a write whose size and SHA-256 the
caller announced (a sync copying an item does): one request instead of a multipart upload's
four or more, and no part held in memory.

The content is relayed, not buffered: each chunk the writer is given is handed to the thread
that sends the request, and ``write`` returns once it has been taken, so the caller may reuse
its buffer. The last byte is held back until the commit: content that fails the writer's
checks, an abort or any error cuts the request short, and S3 keeps nothing of a body shorter
than its ``Content-Length``.

The body's SHA-256 goes in ``x-amz-checksum-sha256``, a signed header that S3 checks the body
against, so the payload itself is sent unsigned: signing it (botocore does on every plain-HTTP
endpoint) would read the whole body before the request starts.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

from ...errors import BlobError
from ._copy import GiB

if TYPE_CHECKING:
    from ...driver import ItemHeader
    from ._driver import S3Driver

__all__ = ["StreamedPut", "sign_streamed_puts_unsigned", "streams"]

_HANDLER_ID = "persisty-blobs-unsigned-streamed-put"
PUT_OBJECT_LIMIT = 5 * GiB  # the largest object one PutObject takes
_CUT_WAIT_SECONDS = 1.0
#: An announced size up to this many parts is sent in one streamed ``PutObject``: its parts
#: would gain little from going concurrently, and cost three more requests.
_STREAMED_PARTS = 4


def streams(driver: S3Driver, header: ItemHeader) -> bool:
    """Whether a write with ``header`` is sent as one streamed ``PutObject``: its size and
    checksum are announced, above the multipart threshold but within a few parts and within
    what one ``PutObject`` takes, and the client was not told to sign every payload."""
    size = header.size
    if size is None or header.checksum is None:
        return False
    limit = min(_STREAMED_PARTS * driver.part_size, PUT_OBJECT_LIMIT)
    signing: Any = (driver.client.meta.config.s3 or {}).get("payload_signing_enabled")
    return driver.multipart_threshold < size <= limit and signing is not True


def sign_streamed_puts_unsigned(client: Any) -> None:
    """Register the signing hook on ``client`` before its first request: botocore caches an
    event's handlers, and a registration racing a request could leave a stale list behind."""
    client.meta.events.register(
        "before-sign.s3.PutObject", _sign_without_payload, unique_id=_HANDLER_ID
    )


class _Cut(Exception):
    """Raised into the sending thread's read of the body: the request must not complete."""


class StreamedPut:
    """A ``PutObject`` of ``size`` bytes whose body arrives through ``write``."""

    def __init__(self, driver: S3Driver, request: dict[str, Any], size: int) -> None:
        self._driver = driver
        self._request = request
        self._relay = _Relay(size)
        self._response: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def write(self, chunk: memoryview) -> None:
        if self._thread is None:
            self._start()
        if not self._relay.feed(chunk):
            self._raise_ended()

    def finish(self, tail: bytes) -> Any:
        """Send the held-back ``tail`` and end the body; the response, once S3 answered."""
        if self._thread is None:
            self._start()
        assert self._thread is not None
        if not self._relay.feed(memoryview(tail), last=True):
            self._raise_ended()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._response

    def cut(self) -> None:
        """Make the request fail (nothing is stored), and give its thread a moment to end: one
        stuck on the network ends at its timeout, and sends nothing more meanwhile."""
        self._relay.cut()
        if self._thread is not None:
            self._thread.join(_CUT_WAIT_SECONDS)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._send, name="persisty-s3-put", daemon=True)
        self._thread.start()

    def _send(self) -> None:
        try:
            self._response = self._driver.client.put_object(**self._request, Body=self._relay)
        except BaseException as error:  # raised again on the writer's thread
            self._error = error
        finally:
            self._relay.stop()

    def _raise_ended(self) -> None:
        """The request ended before taking all the content: its error, or the content was
        refused without one."""
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        raise BlobError("S3 answered before the whole content was sent")


def _sign_without_payload(request: Any, **_: Any) -> None:
    """Sign a relayed body's request with ``UNSIGNED-PAYLOAD`` (see the module's docstring;
    a client told to sign every payload streams none); every other request of the client is
    signed as its configuration says."""
    if not isinstance(request.body, _Relay):
        return
    from botocore.config import Config

    config: Any = request.context.get("client_config") or Config()
    options: Any = {**(config.s3 or {}), "payload_signing_enabled": False}
    request.context["client_config"] = config.merge(Config(s3=options))


class _Relay(io.RawIOBase):
    """The body botocore reads, fed chunk by chunk from the writer's thread."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._changed = threading.Condition()
        self._chunk = memoryview(b"")
        self._sent = 0
        self._last = False  # the chunk now fed is the body's end
        self._cut = False
        self._gone = False  # the sending thread stopped reading

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._sent

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # botocore rewinds before a retry: only a body not yet read can be sent again.
        if self._sent == 0 and offset == 0 and whence == io.SEEK_SET:
            return 0
        raise io.UnsupportedOperation("a relayed body cannot be sent again")

    def readinto(self, buffer: Any) -> int:
        with self._changed:
            while not self._chunk and not self._last and not self._cut:
                self._changed.wait()
            if self._cut:
                raise _Cut("the write was aborted")
            with memoryview(buffer) as target:
                count = min(len(target), len(self._chunk))
                target[:count] = self._chunk[:count]
            self._chunk = self._chunk[count:]
            self._sent += count
            if not self._chunk:
                self._changed.notify_all()
            return count

    def feed(self, chunk: memoryview, *, last: bool = False) -> bool:
        """Hand ``chunk`` over and wait until it has been read; False if the sending thread
        stopped reading first."""
        with self._changed:
            self._chunk = chunk
            self._last = last
            self._changed.notify_all()
            while self._chunk and not self._gone:
                self._changed.wait()
            taken = not self._chunk
            self._chunk = memoryview(b"")  # never kept past the call: the caller reuses it
            return taken

    def cut(self) -> None:
        with self._changed:
            self._cut = True
            self._changed.notify_all()

    def stop(self) -> None:
        """The sending thread is done with the body (sent, refused or failed)."""
        with self._changed:
            self._gone = True
            self._changed.notify_all()
