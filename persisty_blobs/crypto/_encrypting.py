"""The writer of an ``EncryptedStore`` item: plaintext in, segments of ciphertext out into a
writer of the inner store, the sealed record in the inner item's metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..driver import Driver, DriverWriter, ItemHeader, WriteSpec
from ..errors import InvalidMetadata
from ..item import DataItem
from ..keys import validate_metadata
from ..streams import ItemWriter
from ._sealed import Record, associated_data, seal
from .keyring import Keyring
from .streaming import KEY_SIZE, TAG_SIZE, Geometry, SegmentEncrypter

__all__ = ["CIPHERTEXT_TYPE", "EncryptingWriter"]

CIPHERTEXT_TYPE = "application/octet-stream"
# The longest size and checksum a record can hold: the budget is checked with them before any
# content streams, since the record that commits carries the real ones.
_LONGEST_SIZE = 2**63 - 1
_LONGEST_CHECKSUM = "sha256:" + "f" * 64


class EncryptingWriter(DriverWriter):
    """Cuts plaintext into segments, encrypts each, and streams the ciphertext into the inner
    store through an ``ItemWriter`` (which hashes it for the inner item's checksum). A
    segment is held until more data arrives, since only the last carries the last flag."""

    def __init__(
        self,
        inner: Driver,
        keyring: Keyring,
        geometry: Geometry,
        store: str,
        namespace: str,
        key: str,
        header: ItemHeader,
        plain_item: Callable[[DataItem], DataItem],
    ) -> None:
        self._keyring = keyring
        self._geometry = geometry
        self._store = store
        self._key = key
        self._plain_item = plain_item
        self._bound_to = associated_data(namespace, key)
        self._material = keyring.primary
        self._encrypter = SegmentEncrypter(self._material, self._bound_to)
        self._salt = self._encrypter.header[1 : 1 + KEY_SIZE].hex()
        longest = Record(
            header.content_type,
            header.metadata,
            _LONGEST_SIZE,
            _LONGEST_CHECKSUM,
            self._salt,
            geometry.segment_size,
        )
        self._sealed(longest)
        early = dataclasses.replace(longest, size=None, checksum=None)
        inner_header = ItemHeader(
            CIPHERTEXT_TYPE,
            self._sealed(early),
            header.flags,
            if_match=header.if_match,
            if_none_match=header.if_none_match,
        )
        self._spec: WriteSpec | None = None
        self._inner = ItemWriter(
            inner.new_writer(namespace, key, inner_header), inner.chunk_size, self._commit_inner
        )
        self._inner.write(self._encrypter.header)
        # Both buffers serve every segment: a fresh megabyte each time costs page faults. They
        # grow to what the content needs, so a small item neither zeroes nor holds a whole
        # segment's two megabytes.
        self._segment = bytearray()
        self._ciphertext = bytearray()
        self._capacity = geometry.first_plain
        self._filled = 0

    def _sealed(self, record: Record) -> dict[str, str]:
        sealed = seal(record, self._material, self._keyring.primary_id, self._bound_to)
        try:
            # The inner store's metadata budget holds the sealed record: say so before the
            # content streams, and whatever the inner store would check.
            return validate_metadata(sealed)
        except InvalidMetadata as error:
            raise InvalidMetadata(
                f"sealed, the metadata and content type take too much room ({error}); an "
                "EncryptedStore leaves them about 1.2 KiB",
                key=self._key,
                store=self._store,
            ) from None

    def write(self, chunk: memoryview) -> None:
        while chunk:
            if self._filled == self._capacity:
                self._seal_segment(last=False)
            count = min(len(chunk), self._capacity - self._filled)
            # Grows the buffer while it is shorter than a segment, copies in place after.
            self._segment[self._filled : self._filled + count] = chunk[:count]
            self._filled += count
            chunk = chunk[count:]

    def _seal_segment(self, *, last: bool) -> None:
        if len(self._ciphertext) < self._filled + TAG_SIZE:
            self._ciphertext = bytearray(self._filled + TAG_SIZE)
        plain = memoryview(self._segment)[: self._filled]
        sealed = memoryview(self._ciphertext)[: self._filled + TAG_SIZE]
        self._encrypter.encrypt_into(plain, sealed, last=last)
        self._inner.write(sealed)
        if self._capacity != self._geometry.plain:
            # After the shorter first segment the buffer would grow in place, which a buffer
            # still viewed cannot do, and cryptography may let go of its view only later.
            self._segment = bytearray()
        self._filled, self._capacity = 0, self._geometry.plain

    def commit(self, spec: WriteSpec) -> DataItem:
        self._seal_segment(last=True)
        self._spec = spec
        self._inner.close()
        assert self._inner.item is not None
        return self._plain_item(self._inner.item)

    def _commit_inner(self, sink: DriverWriter, size: int, sha256_hex: str) -> DataItem:
        spec = self._spec
        assert spec is not None
        record = Record(
            spec.content_type,
            spec.metadata,
            spec.size,
            spec.checksum,
            self._salt,
            self._geometry.segment_size,
        )
        inner_spec = WriteSpec(
            content_type=CIPHERTEXT_TYPE,
            metadata=self._sealed(record),
            flags=spec.flags,
            size=size,
            checksum=f"sha256:{sha256_hex}",
            if_match=spec.if_match,
            if_none_match=spec.if_none_match,
        )
        return sink.commit(inner_spec)

    def abort(self) -> None:
        self._inner.abort()
