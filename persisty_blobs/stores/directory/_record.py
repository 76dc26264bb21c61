"""A sidecar's fields, and what makes a set of them one a put could have written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ...errors import InvalidMetadata
from ...item import Flag
from ...keys import validate_content_type, validate_metadata

__all__ = ["Sidecar"]

_FLAGS = frozenset(flag.value for flag in Flag)
_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass
class Sidecar:
    """A file's sidecar, valid while the file keeps ``size`` and ``mtime_ns``.

    ``adopted``: the file was written by another program; its checksum (if known) was computed
    here, and its etag comes from the file's identity, so listing it never reads its content.
    """

    size: int
    mtime_ns: int
    checksum: str | None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    adopted: bool = False
    #: Read from the file's attribute, not from a sidecar file (never written out itself).
    in_attribute: bool = field(default=False, compare=False)

    def describes(self, stat: os.stat_result) -> bool:
        return self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns

    def valid(self) -> bool:
        """Whether a sidecar read from disk has the shape this module writes, with values the
        store would accept (one written by hand cannot hand out a header or a checksum that
        no put could have)."""
        shaped = (
            type(self.size) is int
            and type(self.mtime_ns) is int
            and (self.checksum is None or bool(_CHECKSUM.fullmatch(str(self.checksum))))
            and isinstance(self.content_type, str | None)
            and isinstance(self.metadata, dict)
            and isinstance(self.flags, list)
            and all(isinstance(flag, str) and flag in _FLAGS for flag in self.flags)
            and isinstance(self.adopted, bool)
        )
        if not shaped:
            return False
        try:
            if (
                self.content_type is not None
                and validate_content_type(self.content_type) != self.content_type
            ):
                return False
            return validate_metadata(self.metadata) == self.metadata
        except InvalidMetadata:
            return False
