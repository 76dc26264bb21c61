"""``HttpStore``: a store served by ``persisty_blobs.server.create_app``, reached over HTTP.
Needs the ``http`` extra (httpx)."""

from ._store import HttpStore

__all__ = ["HttpStore"]
