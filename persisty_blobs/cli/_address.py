"""Addressing: how every command names a store, a key in it, or a local file.

- ``NAME:key/prefix``: a key (or prefix) in the remote saved as ``NAME`` (as in rclone);
  ``NAME:`` is the whole store.
- ``scheme://...``: an ``open_store`` URL; its key or prefix is the argument right after it,
  which may be left out where the command's key is optional.
- anything else is a local file (``-`` is stdin or stdout); write ``./a:b`` for a local file
  whose name looks like ``NAME:...``.

A word with ``://`` in it is never a key (a key has no empty segment), so the split is
unambiguous.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .._urls import SECRET_PARAMETERS
from ..errors import Unsupported
from ..registry import open_store, store_class_path
from ..store import DataStore
from . import _config
from ._errors import CliNotFound, hide_secret

__all__ = ["Location", "check_exists", "local_place", "open_location", "split_locations"]

_REMOTE_PATH = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]{0,63}):(.*)", re.DOTALL)


@dataclass(frozen=True)
class Location:
    """One place a command reads or writes: a key or prefix in a store, or a local file."""

    text: str
    #: The store's URL (None: a local file).
    url: str | None = None
    #: The saved remote the URL came from.
    remote: _config.Remote | None = None
    #: The key or prefix in the store, or the local file's path.
    path: str = ""

    @property
    def is_store(self) -> bool:
        return self.url is not None

    @property
    def identity(self) -> str:
        """The store and path without any secret: names a sync pair's state."""
        return f"{self.url}\n{self.path}"


def _parse_one(text: str, key: str | None) -> Location:
    if "://" in text:
        return Location(text, _config.check_url(text), None, key or "")
    match = _REMOTE_PATH.fullmatch(text)
    if match is not None:
        remote = _config.remote(match.group(1))
        return Location(text, remote.url, remote, match.group(2))
    return Location(text, path=text)


def split_locations(tokens: tuple[str, ...], least: int, most: int) -> list[Location]:
    """``least`` to ``most`` locations from the arguments (a URL takes the next as its key
    unless that would leave too few for the rest)."""
    found: list[Location] = []
    index = 0
    while index < len(tokens):
        text = tokens[index]
        key = None
        if "://" in text and index + 1 < len(tokens) and "://" not in tokens[index + 1]:
            still_needed = max(0, least - len(found) - 1)
            if len(tokens) - index - 2 >= still_needed:
                key = tokens[index + 1]
                index += 1
        found.append(_parse_one(text, key))
        index += 1
    if not least <= len(found) <= most:
        wanted = str(least) if least == most else f"{least} to {most}"
        raise click.UsageError(f"expected {wanted} locations, got {len(found)}")
    return found


def _options(location: Location) -> tuple[str, dict[str, Any]]:
    assert location.url is not None
    if location.remote is None:
        return location.url, {}
    options = location.remote.resolved_options()
    password = options.pop("password", None)
    url = location.url
    if password is not None:
        # Database URLs carry their password in the URL; it is put there only in memory.
        parts = urllib.parse.urlsplit(url)
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
        hide_secret(urllib.parse.quote(password, safe=""))
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    if store_class_path(url).endswith(":SqlStore"):
        # A database driver takes its other secrets (sslpassword=...) in the URL's query.
        secrets = {name: options.pop(name) for name in list(options) if _is_secret(name)}
        for value in secrets.values():
            hide_secret(urllib.parse.quote_plus(str(value)))
        if secrets:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(secrets)
    return url, options


def _is_secret(name: str) -> bool:
    return name.lower() in SECRET_PARAMETERS


def check_location(location: Location) -> None:
    """Refuse a location no store can open, before any is opened (opening one may make it)."""
    if not location.is_store:
        raise click.UsageError(f"{location.text!r} is a local file, not a store")
    try:
        store_class_path(_options(location)[0])
    except Unsupported as error:
        raise click.UsageError(str(error)) from None


def open_location(location: Location, namespace: str = "", *, existing: bool = False) -> DataStore:
    """The store ``location`` names (its ``namespace`` view), closed with the command.
    ``existing``: a command that only reads or deletes refuses a folder or database file that
    is not there (opening it would make an empty store of a typo)."""
    check_location(location)
    if existing:
        check_exists(location)
    url, options = _options(location)
    store = open_store(url, **options)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(store.close)
    return store.namespace(namespace) if namespace else store


def check_exists(location: Location) -> None:
    """Refuse a store on this machine whose folder or database file is not there."""
    place = local_place(location)
    if place is not None and not place.exists():
        raise CliNotFound(f"no store at {location.text!r}: {place} does not exist")


def local_place(location: Location) -> Path | None:
    """Where a store keeps its items on this machine: its folder, or its database file."""
    assert location.url is not None
    parts = urllib.parse.urlsplit(location.url)
    if parts.scheme in ("file", "sqlcipher"):
        path = urllib.parse.unquote(parts.path)
    elif parts.scheme.partition("+")[0] == "sqlite":
        import sqlalchemy as sa

        try:
            path = sa.engine.make_url(location.url).database or ""
        except sa.exc.ArgumentError:
            return None
        if path in ("", ":memory:"):
            return None
    else:
        return None
    return Path(path).resolve()
