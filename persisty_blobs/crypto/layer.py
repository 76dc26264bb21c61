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

from ..driver import Driver, DriverWriter, ItemHeader, WriteSpec, clip_range
from ..errors import IntegrityError, InvalidMetadata, TransientError
from ..item import DataItem, Flag
from ..keys import validate_metadata
from ..store import DataStore
from ..streams import BytesRangeRaw, ItemWriter, read_fully
from ._decrypting import DecryptingRaw
from ._sealed import KEY_ID, Record, associated_data, open_record, seal, segment_size_of
from .keyring import Keyring
from .streaming import (
    HEADER_SIZE,
    KEY_SIZE,
    TAG_SIZE,
    Geometry,
    SegmentDecrypter,
    SegmentEncrypter,
)

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
            header = read_fully(body, HEADER_SIZE)
            return self._reader(inner_item, header, body, 0, None)
        for _ in range(_RANGED_READ_ATTEMPTS):
            # The header, then only the covering segments: two inner reads, of one version.
            inner_item, header_raw = self.inner.open_range(namespace, key, 0, HEADER_SIZE)
            with header_raw:
                header = read_fully(header_raw, HEADER_SIZE)
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
        return item, DecryptingRaw(body, decrypter, geometry, item.size, first, stop, item.key)

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
        # Both buffers serve every segment: a fresh megabyte each time costs page faults.
        self._segment = bytearray(geometry.plain)
        self._ciphertext = bytearray(geometry.segment_size)
        self._capacity = geometry.first_plain
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
            if self._filled == self._capacity:
                self._seal_segment(last=False)
            count = min(len(chunk), self._capacity - self._filled)
            self._segment[self._filled : self._filled + count] = chunk[:count]
            self._filled += count
            chunk = chunk[count:]

    def _seal_segment(self, *, last: bool) -> None:
        plain = memoryview(self._segment)[: self._filled]
        sealed = memoryview(self._ciphertext)[: self._filled + TAG_SIZE]
        self._encrypter.encrypt_into(plain, sealed, last=last)
        self._inner.write(sealed)
        self._filled, self._capacity = 0, self._driver.geometry.plain

    def commit(self, spec: WriteSpec) -> DataItem:
        self._seal_segment(last=True)
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
