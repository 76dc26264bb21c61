"""How the state database stores versions and flags: compact JSON with a version number, so
a newer library can still read what an older one wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..item import Entry
from .model import Version

__all__ = [
    "FORMAT",
    "base_etag",
    "decode_flags",
    "decode_version",
    "encode_flags",
    "encode_resolution",
    "encode_version",
    "resolution_choice",
    "split_base_etag",
    "version_of",
]

FORMAT = 1
#: Before a base etag: the version was racy when listed (``Version.racy``).
_RACY = "racy~"


def version_of(
    entry: Entry | None, hashed: str | None = None, *, racy: bool = False
) -> Version | None:
    """``entry`` as a plan keeps it; ``hashed``: its checksum, where the listing had none."""
    if entry is None:
        return None
    return Version(
        etag=entry.etag,
        size=entry.size,
        checksum=entry.checksum or hashed,
        flags=None if entry.flags is None else frozenset(str(flag) for flag in entry.flags),
        updated_at=entry.updated_at,
        racy=racy,
    )


def base_etag(etag: str, racy: bool) -> str:
    """How the base keeps a side's etag."""
    return _RACY + etag if racy else etag


def split_base_etag(kept: str | None) -> tuple[str | None, bool]:
    """A base etag as kept: (the etag, whether its content must be checked first)."""
    if kept is not None and kept.startswith(_RACY):
        return kept[len(_RACY) :], True
    return kept, False


def encode_flags(flags: frozenset[str] | None) -> str | None:
    return None if flags is None else ",".join(sorted(flags))


def decode_flags(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    return frozenset(part for part in text.split(",") if part)


def encode_version(version: Version | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "etag": version.etag,
        "size": version.size,
        "checksum": version.checksum,
        "flags": encode_flags(version.flags),
        "at": None if version.updated_at is None else version.updated_at.timestamp(),
        **({"racy": True} if version.racy else {}),
    }


def decode_version(data: dict[str, Any] | None) -> Version | None:
    if data is None:
        return None
    at = data.get("at")
    return Version(
        etag=data["etag"],
        size=data["size"],
        checksum=data.get("checksum"),
        flags=decode_flags(data.get("flags")),
        updated_at=None if at is None else datetime.fromtimestamp(at, UTC),
        racy=data.get("racy", False) is True,
    )


def dumps(value: dict[str, Any]) -> str:
    return json.dumps({"v": FORMAT, **value}, separators=(",", ":"))


def loads(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    if data.get("v") != FORMAT:
        raise ValueError(f"plan format {data.get('v')!r}, this library reads {FORMAT}")
    return data


def encode_resolution(keep: str, plan: str) -> str:
    """A caller's choice of side ``keep`` for the conflict ``plan`` describes: it holds for
    those two versions only."""
    data = loads(plan)
    etags = {side: (data[side] or {}).get("etag") for side in ("a", "b")}
    return dumps({"keep": keep, **etags})


def resolution_choice(resolution: str | None, etag_a: str | None, etag_b: str | None) -> str | None:
    """The side a resolution keeps, if both sides still hold the versions it was made for
    (None for absent); a plain "a" or "b" is a resolution from before they were kept."""
    if resolution is None or resolution in ("a", "b"):
        return resolution
    try:
        data = loads(resolution)
        kept = (data["keep"], data["a"], data["b"])
    except (ValueError, KeyError, TypeError):  # edited by hand: no choice
        return None
    return str(kept[0]) if kept[1:] == (etag_a, etag_b) else None
