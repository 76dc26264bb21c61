"""``HttpStore``: a store served by ``persisty_blobs.server.create_app``, reached over HTTP.
Its options are checked here; the driver (``_driver``) speaks the wire format."""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

from ..._urls import shown_url
from ...errors import InvalidArgument
from ...item import DataItem
from ...store import DataStore
from ._driver import HttpDriver

__all__ = ["HttpStore"]


class HttpStore(DataStore):
    """The store at ``url`` (the app's root), as a ``DataStore``. ``retries``: how many more
    times a request that may be repeated is sent after a transport failure or a 5xx."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        self._check_url(url)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"retries is an int of at least 0, not {retries!r}")
        for name, seconds in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if name == "timeout" and seconds is None:  # reads wait as long as they take
                continue
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
                raise InvalidArgument(f"{name} is a number of seconds above 0, not {seconds!r}")
        super().__init__(HttpDriver(url, token, timeout, connect_timeout, retries))

    def put(self, key: str, data: Any, *, checksum: str | None = None, **options: Any) -> DataItem:
        """As ``DataStore.put``; content in memory is hashed first, so that its checksum goes
        with it and the server keeps nothing that changed on the way."""
        if checksum is None and isinstance(data, bytes | bytearray | memoryview):
            checksum = f"sha256:{hashlib.sha256(data).hexdigest()}"
        return super().put(key, data, checksum=checksum, **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> HttpStore:
        """``http://host:port/`` or ``https://…``, with ``token=`` and the timeouts."""
        return cls(url, **options)

    @staticmethod
    def _check_url(url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(
                f"an HttpStore URL is http(s)://host[:port]/[path], not {shown_url(url)!r}"
            )
        if parts.query or parts.fragment:
            # Its requests would lose them, and a token there would show in every name.
            raise InvalidArgument(
                "an HttpStore URL has no query or fragment: give token= and the timeouts as options"
            )
