"""Validation of keys, namespaces, metadata, content types and flags: one place, every store.

The rules are the same for every store so that any item can be synced between any two.
Python compares ``str`` by code point, which is the same order as comparing UTF-8 bytes, so
``sorted(keys)`` is the listing order of every store.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable, Mapping

from .errors import BlobError, InvalidFlags, InvalidKey, InvalidMetadata
from .item import Flag

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_KEY_BYTES",
    "MAX_METADATA_BYTES",
    "guess_content_type",
    "is_key",
    "is_namespace",
    "validate_content_type",
    "validate_flags",
    "validate_key",
    "validate_metadata",
    "validate_namespace",
    "validate_prefix",
]

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_FORBIDDEN_CHARACTER = re.compile(r"[\x00-\x1f\x7f\\]")
#: An empty, "." or ".." segment: between two of start, "/" and end.
_BAD_SEGMENT = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")
_METADATA_KEY = re.compile(r"[a-z0-9_-]{1,64}")
_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # an HTTP token
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\t\x20-\x7e])*"'
_CONTENT_TYPE = re.compile(rf"{_NAME}/{_NAME}(?:[ \t]*;[ \t]*{_NAME}=(?:{_NAME}|{_QUOTED}))*")
# Built-in tables only: the system's mime.types differ between machines, and a guessed
# content type must not depend on where the code runs; the types below are missing from
# older Pythons' tables, so they are added to give every supported version the same answer.
_MIME_TYPES = mimetypes.MimeTypes()
for _extension, _type in {
    ".7z": "application/x-7z-compressed",
    ".epub": "application/epub+zip",
    ".flac": "audio/flac",
    ".gz": "application/gzip",
    ".ics": "text/calendar",
    ".jsonl": "application/jsonl",
    ".m4a": "audio/mp4",
    ".md": "text/markdown",
    ".mkv": "video/x-matroska",
    ".toml": "application/toml",
    ".woff2": "font/woff2",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".zst": "application/zstd",
}.items():
    _MIME_TYPES.add_type(_type, _extension)


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid key, else raise ``InvalidKey``."""
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a str, not {type(key).__name__}")
    # Listings check every name they find: ASCII, the common case, is sized without encoding.
    size = len(key) if key.isascii() else _utf8_size(key, "key")
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidKey(f"a key must be 1 to {MAX_KEY_BYTES} UTF-8 bytes, not {size}", key=key)
    if match := _FORBIDDEN_CHARACTER.search(key):
        raise InvalidKey(f"a key must not contain {match.group()!r}", key=key)
    if _BAD_SEGMENT.search(key):
        raise InvalidKey(
            "a key must not have an empty, '.' or '..' segment "
            "(no leading, trailing or doubled '/')",
            key=key,
        )
    return key


def validate_prefix(prefix: object) -> str:
    """A listing prefix: any leading part of a valid key (``""`` lists everything)."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"a prefix must be a str, not {type(prefix).__name__}")
    if prefix and (match := _FORBIDDEN_CHARACTER.search(prefix)):
        raise InvalidKey(f"a prefix must not contain {match.group()!r}", key=prefix)
    _utf8_size(prefix, "prefix")
    return prefix


def validate_namespace(name: object) -> str:
    """A namespace name is one key segment; ``""`` is the default namespace."""
    if name == "":
        return ""
    validate_key(name)
    assert isinstance(name, str)
    if "/" in name:
        raise InvalidKey("a namespace name must not contain '/'", key=name)
    return name


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return metadata with lowercased keys, or raise ``InvalidMetadata``."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata(f"metadata must be a mapping, not {type(metadata).__name__}")
    result: dict[str, str] = {}
    total = 0
    for raw_name, value in metadata.items():
        if not isinstance(raw_name, str) or not isinstance(value, str):
            raise InvalidMetadata(f"metadata keys and values must be str: {raw_name!r}")
        name = raw_name.lower()
        if not _METADATA_KEY.fullmatch(name):
            raise InvalidMetadata(f"metadata key {raw_name!r} must match [a-z0-9_-]{{1,64}}")
        if name in result:
            raise InvalidMetadata(f"metadata keys {raw_name!r} and another are equal lowercased")
        result[name] = value
        total += len(name) + _utf8_size(value, "metadata value", InvalidMetadata)
    if total > MAX_METADATA_BYTES:
        raise InvalidMetadata(f"metadata is {total} bytes; at most {MAX_METADATA_BYTES} allowed")
    return result


def validate_content_type(content_type: object) -> str:
    """Return a ``type/subtype[; param=value]`` content type, or raise ``InvalidMetadata``."""
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type.strip()):
        raise InvalidMetadata(f"{content_type!r} is not a content type (type/subtype)")
    return content_type.strip()


def guess_content_type(key: str) -> str:
    """The content type for ``key``'s extension, else ``application/octet-stream``."""
    guessed, _ = _MIME_TYPES.guess_type(key.rsplit("/", 1)[-1], strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def validate_flags(flags: Iterable[Flag | str]) -> frozenset[Flag]:
    """Flags as a frozenset of ``Flag``; their string values are accepted too."""
    if isinstance(flags, (str, bytes)):
        raise InvalidFlags(f"flags must be a collection of Flag, not a single {flags!r}")
    result = set()
    for flag in flags:
        try:
            result.add(Flag(flag))
        except (ValueError, TypeError):
            allowed = ", ".join(member.value for member in Flag)
            raise InvalidFlags(f"{flag!r} is not a flag (one of: {allowed})") from None
    return frozenset(result)


def _utf8_size(text: str, what: str, error: type[BlobError] = InvalidKey) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise error(f"a {what} must be encodable as UTF-8 (no lone surrogates)") from None


def is_key(key: str) -> bool:
    """Whether ``key`` is one (a name found in a backend that is not is never listed)."""
    return _valid(validate_key, key)


def is_namespace(name: str) -> bool:
    """Whether ``name`` is a namespace's (a name found in a backend that is not is left out)."""
    return _valid(validate_namespace, name)


def _valid(validate: Callable[[object], str], name: str) -> bool:
    try:
        validate(name)
    except InvalidKey:
        return False
    return True
