"""The extended attribute ``user.persisty-blobs``: a sidecar packed small enough to fit in the
file's inode."""

from __future__ import annotations

import errno
import json
import os
import struct

from ._record import Sidecar

__all__ = ["PLATFORM_HAS_ATTRIBUTES", "pack", "read_attribute", "set_attribute", "unpack"]

PLATFORM_HAS_ATTRIBUTES = hasattr(os, "setxattr")  # Python has none on macOS or Windows
_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: Errors of the disk itself. Any other error setting the attribute only says that this file
#: cannot hold it (no user attributes on its file system, refused, or no room: each file
#: system says so its own way), and its sidecar goes in a file instead.
_FAILED = frozenset({errno.EIO, errno.EDQUOT, errno.EROFS})
ATTRIBUTE = "user.persisty-blobs"
#: version, size, mtime, flags (bit i: ``_FLAG_BITS[i]``), content type (``n``: the n-th of
#: ``_CONTENT_TYPES``; 0: in the JSON after it), SHA-256; then, only where needed, the content
#: type and metadata as JSON. Small enough to fit in the inode itself.
_PACKED = struct.Struct("<BqqBB32s")
_PACKED_VERSION = 1
_FLAG_BITS = ("pending", "processing", "processed", "failed")  # appended to, never reordered
#: The content types an attribute names by number: appended to, never reordered.
_CONTENT_TYPES = (
    "application/octet-stream",
    "text/plain",
    "application/json",
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "text/markdown",
    "text/csv",
    "application/xml",
    "text/xml",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/svg+xml",
    "audio/mpeg",
    "video/mp4",
)
_CONTENT_TYPE_CODES = {content_type: code for code, content_type in enumerate(_CONTENT_TYPES, 1)}
_FLAG_SETS = tuple(
    tuple(flag for index, flag in enumerate(_FLAG_BITS) if bits >> index & 1)
    for bits in range(1 << len(_FLAG_BITS))
)


def read_attribute(target: int | str) -> Sidecar | None:
    """The sidecar in the attribute of the open file ``target`` (or of the path, not following
    a link), or None: none, none on that file system, or not one this store set."""
    try:
        if isinstance(target, int):
            data = os.getxattr(target, ATTRIBUTE)
        else:
            data = os.getxattr(target, ATTRIBUTE, follow_symlinks=False)
    except OSError:
        return None
    return unpack(data)


def set_attribute(fd: int, sidecar: Sidecar) -> bool:
    """Set ``sidecar`` as the attribute of the new file ``fd``; False where the file cannot
    hold it (decided per file: a mount inside the root may have no attributes)."""
    try:
        os.setxattr(fd, ATTRIBUTE, pack(sidecar))
    except OSError as exc:
        if exc.errno in _FAILED:
            raise
        return False
    return True


def pack(sidecar: Sidecar) -> bytes:
    assert sidecar.checksum is not None
    assert sidecar.content_type is not None
    bits = sum(1 << _FLAG_BITS.index(flag) for flag in set(sidecar.flags))
    digest = bytes.fromhex(sidecar.checksum.removeprefix("sha256:"))
    code = _CONTENT_TYPE_CODES.get(sidecar.content_type, 0)
    packed = _PACKED.pack(_PACKED_VERSION, sidecar.size, sidecar.mtime_ns, bits, code, digest)
    described: dict[str, object] = {} if code else {"content_type": sidecar.content_type}
    if sidecar.metadata:
        described["metadata"] = sidecar.metadata
    return packed + _ENCODER.encode(described).encode() if described else packed


def unpack(data: bytes) -> Sidecar | None:
    """The sidecar an attribute holds, or None if it holds none this store could have set."""
    if len(data) < _PACKED.size:
        return None
    version, size, mtime_ns, bits, code, digest = _PACKED.unpack_from(data)
    if version != _PACKED_VERSION or bits >= len(_FLAG_SETS) or code > len(_CONTENT_TYPES):
        return None
    flags = list(_FLAG_SETS[bits])
    content_type = _CONTENT_TYPES[code - 1] if code else None
    checksum = f"sha256:{digest.hex()}"
    sidecar = Sidecar(size, mtime_ns, checksum, content_type, flags=flags, in_attribute=True)
    if len(data) == _PACKED.size:
        # Every field was unpacked into a value a put could have written.
        return sidecar if code else None
    try:
        described = json.loads(data[_PACKED.size :])
    except (ValueError, RecursionError):
        return None
    # Exactly what ``pack`` writes: a content type only where it has no number.
    allowed = {"metadata"} if code else {"content_type", "metadata"}
    if not isinstance(described, dict) or not described.keys() <= allowed:
        return None
    sidecar.content_type = described.get("content_type", content_type)
    sidecar.metadata = described.get("metadata", {})
    return sidecar if sidecar.content_type is not None and sidecar.valid() else None
