"""``EncryptedStore``: a layer that encrypts content and metadata before any store sees them.

The inner store keeps, per item, the ciphertext in Tink's streaming AEAD format
(``streaming``) and three metadata values: the key id, the segment size, and a sealed record
of the content type, user metadata, plaintext size and checksum (``_sealed``). It learns
sizes and key names, nothing else. Flags pass through in the clear: they are marks that a
server sets. The associated data of both binds them to the namespace and key, so moving a
ciphertext elsewhere makes it unreadable.

Reads authenticate a segment before releasing any of its plaintext, and read only the
segments a range covers (and the header).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ..errors import IntegrityError, InvalidMetadata, TransientError
from ..item import DataItem, Flag
from ..keys import validate_metadata
from ..store import DataStore, Driver, DriverWriter, ItemHeader, WriteSpec, clip_range
from ..streams import BytesRangeRaw, HandsOutBytes, ItemWriter
from ._sealed import KEY_ID, Record, associated_data, open_record, seal, segment_size_of
from .keyring import Keyring
from .streaming import HEADER_SIZE, KEY_SIZE, Geometry, SegmentDecrypter, SegmentEncrypter

if TYPE_CHECKING:
    pass

__all__ = ["EncryptedStore"]

DEFAULT_SEGMENT_SIZE = 1024 * 1024
_RANGED_READ_ATTEMPTS = 5
_CIPHERTEXT = "application/octet-stream"


class EncryptedStore(DataStore):
    """``inner``, with content and metadata encrypted by ``keyring``'s primary key (a raw
    32-byte key stands for a ring of one)."""

    def __init__(
        self,
        inner: DataStore,
        keyring: Keyring | bytes,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        if inner._namespace:
            raise ValueError(
                "wrap the store itself, not a namespace view: EncryptedStore(store)"
                ".namespace(name) is the encrypted view of that namespace"
            )
        ring = keyring if isinstance(keyring, Keyring) else Keyring([keyring])
        super().__init__(_EncryptedDriver(inner, ring, Geometry(segment_size)))

    @property
    def keyring(self) -> Keyring:
        return self._encrypted.keyring

    @property
    def _encrypted(self) -> _EncryptedDriver:
        assert isinstance(self._driver, _EncryptedDriver)
        return self._driver

    def reencrypt(self, key: str) -> DataItem:
        """Rewrite ``key`` under the ring's primary key (after a rotation); unchanged content,
        type, metadata and flags. Fails with ``PreconditionFailed`` if the item changes
        meanwhile."""
        with self.open(key) as reader:
            source = reader.item
            with self._writer(
                key, source.content_type, source.metadata, source.flags, source.etag, None
            ) as writer:
                while block := reader.read(self.chunk_size):
                    writer.write(block)
        assert writer.item is not None
        return writer.item


class _EncryptedDriver(Driver):
    def __init__(self, inner: DataStore, keyring: Keyring, geometry: Geometry) -> None:
        self.inner = inner._driver
        self.keyring = keyring
        self.geometry = geometry
        self.name = f"EncryptedStore({self.inner.name})"
        self.chunk_size = geometry.plain

    def item(self, inner: DataItem) -> tuple[DataItem, Record, Geometry]:
        """The plaintext item an inner item stands for, its record and its geometry."""
        geometry = Geometry(segment_size_of(inner.metadata))
        key = self.keyring.key(inner.metadata[KEY_ID])
        record = open_record(inner.metadata, key, associated_data(inner.namespace, inner.key))
        size = geometry.plaintext_size(inner.size)
        if size is None or (record.size is not None and record.size != size):
            raise IntegrityError(
                "the ciphertext's size does not match", key=inner.key, store=self.name
            )
        plain = DataItem(
            key=inner.key,
            namespace=inner.namespace,
            size=size,
            etag=inner.etag,
            content_type=record.content_type,
            updated_at=inner.updated_at,
            checksum=record.checksum,
            metadata=record.metadata,
            flags=inner.flags,
        )
        return plain, record, geometry

    def stat(self, namespace: str, key: str) -> DataItem | None:
        inner = self.inner.stat(namespace, key)
        return None if inner is None else self.item(inner)[0]

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        if start == 0 and end is None:
            # One inner read, header and segments: one version whatever writers do.
            inner_item, body = self.inner.open_range(namespace, key, 0, None)
            return self._reader(inner_item, _read_exactly(body, HEADER_SIZE), body, 0, None)
        for _ in range(_RANGED_READ_ATTEMPTS):
            # The header, then only the covering segments: two inner reads, of one version.
            inner_item, header_raw = self.inner.open_range(namespace, key, 0, HEADER_SIZE)
            with header_raw:
                header = _read_exactly(header_raw, HEADER_SIZE)
            item, _, geometry = self.item(inner_item)
            first, stop = clip_range(item.size, start, end, key, self.name)
            if first == stop and item.size:
                return item, BytesRangeRaw(b"", 0, 0)
            index = geometry.segment_at(first)
            last = geometry.segment_count(item.size) - 1
            final = geometry.segment_at(stop - 1) if stop else 0
            cipher_stop = inner_item.size if final == last else geometry.cipher_start(final + 1)
            version, body = self.inner.open_range(
                namespace, key, geometry.cipher_start(index), cipher_stop
            )
            if version.etag == inner_item.etag:
                return self._reader(inner_item, header, body, start, end)
            body.close()
        raise TransientError("the item kept changing while it was opened", key=key, store=self.name)

    def _reader(
        self, inner_item: DataItem, header: bytes, body: io.RawIOBase, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        """The plaintext reader of ``[start, end)``, over ``body``: the inner item's bytes
        from the first covering segment on."""
        try:
            item, record, geometry = self.item(inner_item)
            first, stop = clip_range(item.size, start, end, item.key, self.name)
            if header[1 : 1 + KEY_SIZE].hex() != record.salt:
                raise IntegrityError(
                    "the sealed metadata belongs to other content", key=item.key, store=self.name
                )
            decrypter = SegmentDecrypter(
                self.keyring.key(inner_item.metadata[KEY_ID]),
                associated_data(item.namespace, item.key),
                header,
            )
        except BaseException:
            body.close()
            raise
        last = geometry.segment_count(item.size) - 1
        index = geometry.segment_at(first)
        return item, _DecryptingRaw(body, decrypter, geometry, index, last, first, stop, item.key)

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        return _EncryptingWriter(self, namespace, key, header)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        return self.inner.delete(namespace, key, if_match)

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        page = self.inner.list_page(namespace, prefix, after, limit, flag)
        return [self.item(inner)[0] for inner in page]

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        self.inner.set_flags(namespace, key, flags)

    def namespaces(self) -> list[str]:
        return self.inner.namespaces()

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        return self.inner.count(namespace, prefix, flag)

    # copy: none here. A ciphertext is bound to its key, so DataStore's streaming copy, which
    # decrypts and encrypts again, is the only correct one.

    def close(self) -> None:
        self.inner.close()


def _read_exactly(raw: io.RawIOBase | io.BufferedIOBase, size: int) -> bytes:
    parts, count = [], 0
    while count < size and (part := raw.read(size - count)):
        parts.append(part)
        count += len(part)
    return b"".join(parts)


class _EncryptingWriter(DriverWriter):
    """Cuts plaintext into segments, encrypts each, and streams the ciphertext into the inner
    store through an ``ItemWriter`` (which hashes it for the inner item's checksum). A
    segment is held until more data arrives, since only the last carries the last flag."""

    def __init__(
        self, driver: _EncryptedDriver, namespace: str, key: str, header: ItemHeader
    ) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._bound_to = associated_data(namespace, key)
        self._material = driver.keyring.primary
        self._encrypter = SegmentEncrypter(self._material, self._bound_to)
        self._salt = self._encrypter.header[1 : 1 + KEY_SIZE].hex()
        geometry = driver.geometry
        early = Record(header.content_type, header.metadata, None, None, self._salt)
        inner_header = ItemHeader(_CIPHERTEXT, self._sealed(early), header.flags)
        inner = driver.inner
        self._spec: WriteSpec | None = None
        self._inner = ItemWriter(
            inner.new_writer(namespace, key, inner_header), inner.chunk_size, self._commit_inner
        )
        self._inner.write(self._encrypter.header)
        self._segment = bytearray(geometry.first_plain)
        self._filled = 0

    def _sealed(self, record: Record) -> dict[str, str]:
        keyring = self._driver.keyring
        sealed = seal(
            record,
            self._material,
            keyring.primary_id,
            self._driver.geometry.segment_size,
            self._bound_to,
        )
        try:
            # The inner store's metadata budget holds the sealed record: say so before the
            # content streams, and whatever the inner store would check.
            return validate_metadata(sealed)
        except InvalidMetadata as error:
            raise InvalidMetadata(
                f"sealed, the metadata and content type take too much room ({error}); an "
                "EncryptedStore leaves them about 1.3 KiB",
                key=self._key,
                store=self._driver.name,
            ) from None

    def write(self, chunk: memoryview) -> None:
        while chunk:
            if self._filled == len(self._segment):
                self._inner.write(self._encrypter.encrypt(self._segment, last=False))
                self._segment, self._filled = bytearray(self._driver.geometry.plain), 0
            count = min(len(chunk), len(self._segment) - self._filled)
            self._segment[self._filled : self._filled + count] = chunk[:count]
            self._filled += count
            chunk = chunk[count:]

    def commit(self, spec: WriteSpec) -> DataItem:
        self._inner.write(
            self._encrypter.encrypt(memoryview(self._segment)[: self._filled], last=True)
        )
        self._spec = spec
        self._inner.close()
        assert self._inner.item is not None
        return self._driver.item(self._inner.item)[0]

    def _commit_inner(self, sink: DriverWriter, size: int, sha256_hex: str) -> DataItem:
        spec = self._spec
        assert spec is not None
        record = Record(spec.content_type, spec.metadata, spec.size, spec.checksum, self._salt)
        inner_spec = WriteSpec(
            content_type=_CIPHERTEXT,
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


class _DecryptingRaw(HandsOutBytes):
    """Plaintext bytes ``[first, stop)``, decrypted segment by segment from the inner
    reader; nothing of a segment leaves before its tag is verified."""

    def __init__(
        self,
        body: io.RawIOBase,
        decrypter: SegmentDecrypter,
        geometry: Geometry,
        index: int,
        last: int,
        first: int,
        stop: int,
        key: str,
    ) -> None:
        super().__init__()
        self._body = io.BufferedReader(body, geometry.segment_size)
        self._decrypter = decrypter
        self._geometry = geometry
        self._index = index
        self._last = last
        self._position = first
        self._stop = stop
        self._key = key
        self._segment = b""
        self._plain = memoryview(b"")
        self._skip = first - geometry.plain_start(index)
        self._check_empty_item = stop == 0  # an empty item is one empty last segment: check it

    def readable(self) -> bool:
        return True

    def _next_segment(self) -> None:
        geometry, index = self._geometry, self._index
        size = geometry.segment_size - (HEADER_SIZE if index == 0 else 0)
        sealed = _read_exactly(self._body, size)  # the last one is shorter
        self._segment = self._decrypter.decrypt(index, sealed, last=index == self._last)
        self._plain = memoryview(self._segment)[self._skip :]
        self._skip = 0
        self._index += 1

    def read(self, size: int = -1) -> bytes:
        left = self._stop - self._position
        wanted = left if size is None or size < 0 else min(size, left)
        if self._check_empty_item:
            self._check_empty_item = False
            self._next_segment()
        if wanted <= 0:
            return b""
        if not self._plain:
            if self._index > self._last:
                raise IntegrityError("the ciphertext ends early", key=self._key)
            self._next_segment()
        if wanted >= len(self._plain) == len(self._segment):
            data = self._segment  # a whole segment, handed on without a copy
        else:
            data = bytes(self._plain[:wanted])
        self._plain = self._plain[len(data) :]
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        parts = []
        while part := self.read(self._geometry.plain):
            parts.append(part)
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
