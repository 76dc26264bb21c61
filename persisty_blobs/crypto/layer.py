"""``EncryptedStore``: a layer that encrypts content and metadata before any store sees them.

The inner store keeps, per item, the ciphertext in Tink's streaming AEAD format
(``streaming``) and three metadata values: the key id, the segment size, and a sealed record
of the content type, user metadata, plaintext size, checksum and segment size (``_sealed``).
It learns sizes and key names, nothing else. Flags pass through in the clear: they are marks
that a server sets. The associated data of both binds them to the namespace and key, so moving
a ciphertext elsewhere makes it unreadable.

Reads authenticate a segment before releasing any of its plaintext, and read only the
segments a range covers (and the header).

An item the ring cannot authenticate (tampered or lost metadata, a key not in the ring) is an
error for ``get`` and ``open``, naming the key and the store. It exists (``exists``, ``count``)
and ``scan`` shows it, with no checksum, so that a sync can report it as failed; ``list``,
whose items promise an authenticated content type and metadata, leaves it out, so that one
bad item never hides the others.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading

from ..driver import DriverWriter, ItemHeader, clip_range
from ..errors import DecryptionError, IntegrityError, InvalidArgumentType, TransientError
from ..item import DataItem, Entry, Flag
from ..keys import validate_key
from ..layer import ForwardingDriver
from ..store import DataStore
from ..streams import BytesRangeRaw, read_fully
from ._decrypting import DecryptingRaw
from ._encrypting import EncryptingWriter
from ._sealed import KEY_ID, Record, associated_data, naming, open_record
from .keyring import Keyring
from .streaming import HEADER_SIZE, KEY_SIZE, Geometry, SegmentDecrypter

__all__ = ["EncryptedStore"]

DEFAULT_SEGMENT_SIZE = 1024 * 1024
_RANGED_READ_ATTEMPTS = 5
_UNREADABLE = (IntegrityError, DecryptionError)


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
        if not isinstance(inner, DataStore):
            raise InvalidArgumentType(f"inner must be a DataStore, not {type(inner).__name__}")
        ring = keyring if isinstance(keyring, Keyring) else Keyring([keyring])
        super().__init__(_EncryptedDriver(inner, ring, Geometry(segment_size)))

    @property
    def keyring(self) -> Keyring:
        return self._encrypted.keyring

    @property
    def _encrypted(self) -> _EncryptedDriver:
        assert isinstance(self._driver, _EncryptedDriver)
        return self._driver

    def exists(self, key: str) -> bool:
        """True if the storage holds an item under ``key``, even one this ring cannot
        authenticate (``get`` raises for it): the key is taken, as ``if_none_match`` finds."""
        return self._encrypted.inner.stat(self._namespace, validate_key(key)) is not None

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


class _EncryptedDriver(ForwardingDriver):
    """Encrypts what it writes, authenticates and decrypts what it reads; ``delete``,
    ``set_flags``, ``namespaces`` and ``count`` reach the inner store unchanged."""

    def __init__(self, inner: DataStore, keyring: Keyring, geometry: Geometry) -> None:
        super().__init__(inner, "EncryptedStore")
        self.keyring = keyring
        self.geometry = geometry
        self.chunk_size = geometry.plain
        #: (namespace, folder) whose items this ring can open.
        self._ring_checked: set[tuple[str, str]] = set()
        #: Held while a folder's first item is looked at (``_check_ring``): the first writes
        #: into a folder take turns, so that the look happens before any of them writes (a
        #: listing that already holds one of this store's own items costs S3 a HEAD), and
        #: only once. This store's own: another store's look may wait on its network.
        self._ring_look = threading.Lock()
        self._ring_look_pid = os.getpid()
        # A ciphertext is bound to its key, and a URL would hand out ciphertext.
        self.capabilities = dataclasses.replace(
            self.inner.capabilities,
            presign=False,
            server_side_copy=False,
            writes_want_checksum=False,  # the inner store is sent ciphertext of its own checksum
        )

    def opened(self, inner: DataItem) -> tuple[DataItem, Record, Geometry]:
        """The plaintext item an inner item stands for, its record and its geometry."""
        with naming(inner.key, self.name):
            record = open_record(
                inner.metadata, self.keyring, associated_data(inner.namespace, inner.key)
            )
            geometry = Geometry(record.segment_size)
            size = geometry.plaintext_size(inner.size)
            if size is None or (record.size is not None and record.size != size):
                raise IntegrityError("the ciphertext's size does not match")
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

    def plain_item(self, inner: DataItem) -> DataItem:
        return self.opened(inner)[0]

    def stat(self, namespace: str, key: str) -> DataItem | None:
        inner = self.inner.stat(namespace, key)
        return None if inner is None else self.plain_item(inner)

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        if start == 0 and end is None:
            # One inner read, header and segments: one version whatever writers do.
            inner_item, body = self.inner.open_range(namespace, key, 0, None)
            try:
                header = read_fully(body, HEADER_SIZE)
            except BaseException:
                body.close()
                raise
            return self._reader(inner_item, header, body, 0, None)
        for _ in range(_RANGED_READ_ATTEMPTS):
            # The header, then only the covering segments: two inner reads, of one version.
            inner_item, header_raw = self.inner.open_range(namespace, key, 0, HEADER_SIZE)
            with header_raw:
                header = read_fully(header_raw, HEADER_SIZE)
            item, _, geometry = self.opened(inner_item)
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
            item, record, geometry = self.opened(inner_item)
            first, stop = clip_range(item.size, start, end, item.key, self.name)
            with naming(item.key, self.name):
                if header[1 : 1 + KEY_SIZE].hex() != record.salt:
                    raise IntegrityError("the sealed metadata belongs to other content")
                decrypter = SegmentDecrypter(
                    self.keyring.key(inner_item.metadata[KEY_ID]),
                    associated_data(item.namespace, item.key),
                    header,
                )
        except BaseException:
            body.close()
            raise
        raw = DecryptingRaw(body, decrypter, geometry, item.size, first, stop, item.key, self.name)
        return item, raw

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        self._check_ring(namespace, key)
        return EncryptingWriter(
            self.inner,
            self.keyring,
            self.geometry,
            self.name,
            namespace,
            key,
            header,
            self.plain_item,
        )

    def _check_ring(self, namespace: str, key: str) -> None:
        """Refuse to write where the items are sealed under a key this ring lacks: written
        under another ring (a sync given the wrong keyring file), the store would be readable
        by neither ring alone. The first item of the key's folder tells, once per store (two
        folders of one store may well be two rings' own)."""
        folder = key.rpartition("/")[0]
        place = (namespace, f"{folder}/" if folder else "")
        if place in self._ring_checked:
            return
        if self._ring_look_pid != os.getpid():  # a thread of the parent may have held it
            self._ring_look, self._ring_look_pid = threading.Lock(), os.getpid()
        with self._ring_look:
            if place in self._ring_checked:
                return
            for inner in self.inner.list_page(namespace, place[1], None, 1, None):
                key_id = inner.metadata.get(KEY_ID)
                if key_id is not None and key_id not in self.keyring.ids:
                    raise DecryptionError(
                        f"the items here are sealed under key {key_id!r}, which the keyring "
                        "lacks: a wrong keyring? (writing under it would split the store "
                        "between two)",
                        store=self.name,
                    )
            self._ring_checked.add(place)

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        found: list[DataItem] = []
        while len(found) < limit:
            wanted = limit - len(found)
            page = self.inner.list_page(namespace, prefix, after, wanted, flag)
            for inner in page:
                try:
                    found.append(self.plain_item(inner))
                except _UNREADABLE:
                    continue  # left out, yet shown by scan: see the module docstring
            if len(page) < wanted:
                break
            after = page[-1].key
        return found

    def scan_page(self, namespace: str, prefix: str, after: str | None, limit: int) -> list[Entry]:
        if not self.inner.capabilities.checksums_in_listing:
            # The inner listing carries no metadata (S3's): no record to open, so no checksum,
            # and the size the ciphertext's length gives under this store's segment size.
            return [
                dataclasses.replace(entry, size=self._size_of(entry.size), checksum=None)
                for entry in self.inner.scan_page(namespace, prefix, after, limit)
            ]
        page = self.inner.list_page(namespace, prefix, after, limit, None)
        return [self._entry(inner) for inner in page]

    def _entry(self, inner: DataItem) -> Entry:
        try:
            return Entry.of(self.plain_item(inner))
        except _UNREADABLE:
            return Entry(
                key=inner.key,
                size=self._size_of(inner.size),
                etag=inner.etag,
                updated_at=inner.updated_at,
                checksum=None,
                flags=inner.flags,
            )

    def _size_of(self, cipher_size: int) -> int:
        """The plaintext size of an item whose record is not read (0 for a length that no
        ciphertext of this segment size has)."""
        return self.geometry.plaintext_size(cipher_size) or 0

    def copy(self, namespace: str, src_key: str, dst_key: str) -> DataItem | None:
        # A ciphertext is bound to its key, so DataStore's streaming copy, which decrypts and
        # encrypts again, is the only correct one.
        return None
