"""Names on disk: how key segments map to file names, and which names are the store's own.

Names that start with ``.persisty-blobs`` (and not ``.persisty-blobs~``) belong to the store:
its state folder and its temp files. A key segment that starts with ``.persisty-blobs`` is
stored with a ``~`` after that prefix, so no key can ever name one of them.
"""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = [
    "RESERVED",
    "TEMP_PREFIX",
    "decode_name",
    "encode_segment",
    "temp_name",
    "unique_token",
]

RESERVED = ".persisty-blobs"
TEMP_PREFIX = f"{RESERVED}.tmp-"
_ESCAPED = RESERVED + "~"


def encode_segment(segment: str) -> str:
    """The name on disk of one key segment."""
    return _ESCAPED + segment[len(RESERVED) :] if segment.startswith(RESERVED) else segment


def decode_name(name: str) -> str | None:
    """The key segment a name on disk stands for; None for the store's own files."""
    if name.startswith(_ESCAPED):
        return RESERVED + name[len(_ESCAPED) :]
    return None if name.startswith(RESERVED) else name


class _Tokens:
    """Names of temp files need to be unique, not unguessable (each is created with O_EXCL):
    a random prefix per process, then a counter, instead of a system call per name."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):04x}"


_tokens = _Tokens()
os.register_at_fork(after_in_child=_tokens.renew)  # a child must not repeat its parent's names


def unique_token() -> str:
    return _tokens.next()


def temp_name() -> str:
    """A new temp file's name: the store's own, so it is never listed."""
    return TEMP_PREFIX + unique_token()
