"""``DataItem``: what a store knows about one item (never its content), and ``Flag``."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

__all__ = ["DataItem", "Entry", "Flag"]


class Flag(enum.StrEnum):
    """Processing marks that a worker or server sets on an item, filterable in ``list``."""

    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataItem:
    """Metadata of one stored item.

    ``etag`` is opaque and changes whenever the content changes; ``checksum`` is
    ``"sha256:<hex>"`` of the content when the store knows it.
    """

    key: str
    size: int
    etag: str
    content_type: str
    updated_at: datetime
    checksum: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    flags: frozenset[Flag] = frozenset()
    namespace: str = ""

    def __post_init__(self) -> None:
        # A read-only copy: the item is a value, and a caller mutating a dict it was given
        # must not change it.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __hash__(self) -> int:
        return hash((self.namespace, self.key, self.etag))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entry:
    """One line of ``DataStore.scan``: what a diff needs, had without reading any content.

    ``checksum`` is None where the store cannot know it without reading the content (a file
    another program wrote); ``flags`` is None where they cost one request per item (S3 tags).
    """

    key: str
    size: int
    etag: str
    updated_at: datetime
    checksum: str | None = None
    flags: frozenset[Flag] | None = None

    @classmethod
    def of(cls, item: DataItem) -> Entry:
        return cls(
            key=item.key,
            size=item.size,
            etag=item.etag,
            updated_at=item.updated_at,
            checksum=item.checksum,
            flags=item.flags,
        )
