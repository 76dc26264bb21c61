"""Upload forms posted by browsers: the policy is checked before the file's first byte, the
file streams into the store, and a file past ``max_size`` is cut at the first byte over it,
refused with 413, and nothing of it is kept.

A form is posted as S3's are: every field in order, then the file. The fields are ``key``
(the key, or the key prefix followed by ``${filename}``), ``Content-Type`` (when the form
limits types: one type, or empty for the browser to fill in), ``policy`` and ``signature``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from ..errors import (
    ContentTypeNotAllowed,
    InvalidArgument,
    PermissionDenied,
    QuotaExceeded,
    TooLarge,
    TransientError,
)
from ..item import DataItem
from ..keys import validate_content_type, validate_key
from ..store import DataStore
from ..streams import ItemWriter
from ._body import BATCH_BYTES, ThreadedSink, arriving
from ._context import Hosted

__all__ = ["content_type_allowed", "post_form"]

_FIELD_LIMIT = 16 * 1024
_FIELDS_LIMIT = 32
#: The parser's batches before the file's writer begins: what a form waiting for its
#: namespace's turn may keep of its file (the rest of one batch).
_WAITING_BATCH_BYTES = 64 * 1024


def content_type_allowed(content_type: str, allowed: list[str] | None) -> bool:
    """A type is allowed if the list has it, or has its family (``"image/"``)."""
    if allowed is None:
        return True
    bare = content_type.split(";", 1)[0].strip().lower()
    return any(
        bare == entry or (entry.endswith("/") and bare.startswith(entry)) for entry in allowed
    )


@dataclass
class _Form:
    """The parser's state, filled by its callbacks (run in a worker thread)."""

    hosted: Hosted
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    writer: ItemWriter | None = None
    written: int = 0
    limit: int | None = None
    #: The limit is the store's quota (507), not the form's max_size (413).
    quota_bound: bool = False
    key: str | None = None
    #: Once the policy is checked: the namespace it names, and the file's content type.
    store: DataStore | None = None
    content_type: str = ""
    max_size: int | None = None
    #: The file's first bytes, kept until the event loop has taken the namespace's turn at
    #: its quota (at most the rest of the batch that began the file).
    early: bytearray = field(default_factory=bytearray)
    ended: bool = False
    done: bool = False
    item: DataItem | None = None

    def part_begin(self) -> None:
        self.headers = {}
        self.value = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_val(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_name.decode("latin-1").lower()] = self.header_value.decode(
            "utf-8", "replace"
        )
        self.header_name, self.header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        if self.done or self.ended:
            return
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        if b"filename" in options:
            self._open_file(options[b"filename"].decode("utf-8", "replace"))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.done or self.ended:
            return
        if self.store is not None and self.writer is None:
            self.early += data[start:end]
            if self.max_size is not None and len(self.early) > self.max_size:
                raise TooLarge(
                    f"the file is larger than the form allows ({self.max_size} bytes)",
                    key=self.key,
                )
            return
        if self.writer is None:
            self.value += data[start:end]
            if len(self.value) > _FIELD_LIMIT:
                raise InvalidArgument("a form field is too long")
            return
        self._write(data[start:end])

    def _write(self, data: bytes | bytearray) -> None:
        assert self.writer is not None
        count = len(data)
        if self.limit is not None and self.written + count > self.limit:
            if self.quota_bound:
                raise QuotaExceeded("the upload would exceed the quota", key=self.key)
            raise TooLarge(
                f"the file is larger than the form allows ({self.limit} bytes)", key=self.key
            )
        self.written += count
        self.writer.write(data)

    def part_end(self) -> None:
        if self.done or self.ended:
            return
        if self.store is not None:
            self.ended = True
            if self.writer is not None:
                self._finish()
            return
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if len(self.fields) >= _FIELDS_LIMIT:
            raise InvalidArgument("too many form fields")
        self.fields[name] = self.value.decode("utf-8", "replace")

    def _open_file(self, filename: str) -> None:
        """The policy is checked here, before the file's first byte is read."""
        policy = self.hosted.signer.open_policy(
            self.fields.get("policy", ""), self.fields.get("signature", "")
        )
        key = self._key(policy, filename)
        content_type = self.fields.get("Content-Type") or self.headers.get("content-type")
        content_type = validate_content_type(content_type or "application/octet-stream")
        if not content_type_allowed(content_type, policy.get("content_types")):
            raise ContentTypeNotAllowed(f"{content_type} is not allowed by this form", key=key)
        self.key, self.content_type = key, content_type
        self.max_size = policy.get("max_size")
        self.store = self.hosted.store.namespace(policy["namespace"])

    @property
    def waiting(self) -> bool:
        """Whether the file's policy is checked and its writer still to begin."""
        return self.store is not None and self.writer is None and not self.done

    def begin_writing(self, room: int | None) -> None:
        """Open the writer, with ``room`` the namespace's free bytes (None: no quota), and
        write the bytes kept meanwhile (run on a worker thread)."""
        assert self.store is not None
        assert self.key is not None
        most = self.max_size
        self.quota_bound = room is not None and (most is None or room < most)
        self.limit = room if self.quota_bound else most
        self.writer = self.store.writer(self.key, content_type=self.content_type)
        early, self.early = self.early, bytearray()
        if early:
            self._write(early)
        if self.ended:
            self._finish()

    def _finish(self) -> None:
        assert self.writer is not None
        self.writer.close()
        self.item = self.writer.item
        self.done = True

    def _key(self, policy: dict[str, Any], filename: str) -> str:
        given = self.fields.get("key", "")
        if policy.get("key") is not None:
            if given != policy["key"]:
                raise PermissionDenied("the form's key was changed")
            return validate_key(given)
        prefix = policy["prefix"]
        if not given.startswith(prefix):
            raise PermissionDenied("the form's key is outside its prefix")
        name = filename.replace("\\", "/").rsplit("/", 1)[-1]
        return validate_key(given.replace("${filename}", name))


async def post_form(request: Request, hosted: Hosted) -> DataItem:
    """Parse the posted form as it streams; returns the stored item."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidArgument("an upload form is posted as multipart/form-data")
    form = _Form(hosted)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": form.part_begin,
            "on_part_data": form.part_data,
            "on_part_end": form.part_end,
            "on_header_field": form.header_field,
            "on_header_value": form.header_val,
            "on_header_end": form.header_end,
            "on_headers_finished": form.headers_finished,
        },
    )
    turns = contextlib.AsyncExitStack()

    async def take_turn() -> None:
        """Once the policy is checked: the namespace's turn at its quota (awaited here, on
        the event loop, costing no thread), its room, and the writer."""
        if not form.waiting:
            return
        assert form.store is not None
        await turns.enter_async_context(hosted.turn(form.store))
        room = await hosted.room(form.store, form.key)
        await run_in_threadpool(form.begin_writing, room)

    # Small batches until the writer begins: a form waiting for its turn keeps little.
    sink = ThreadedSink(
        parser.write, take_turn, lambda: BATCH_BYTES if form.writer else _WAITING_BATCH_BYTES
    )
    try:
        async for chunk in arriving(request, hosted.body_timeout, form.key):
            await sink.feed(chunk)
            if form.done:
                break
        if not form.done:
            await sink.flush()
    except ClientDisconnect:
        raise TransientError("the browser went away during the upload", key=form.key) from None
    except FormParserError as error:
        raise InvalidArgument(f"a malformed form: {error}", key=form.key) from None
    finally:
        await sink.abandon()
        if form.writer is not None and form.item is None:
            await run_in_threadpool(form.writer.abort)
        await turns.aclose()
    if form.item is None:
        if form.writer is None:
            raise InvalidArgument("the form has no file")
        # The whole body came (a browser that went away is a ClientDisconnect above).
        raise InvalidArgument(
            "the form ended before its file did: no closing boundary", key=form.key
        )
    return form.item
