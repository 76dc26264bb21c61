"""``HttpStore``: a store served by ``persisty_blobs.server.create_app``, reached over HTTP.
Needs the ``http`` extra (httpx)."""

from ._driver import HttpStore

__all__ = ["HttpStore"]
