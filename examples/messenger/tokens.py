"""Bearer tokens for the hosted store: what the desktop client sends to ``/blobs`` instead of
the session cookie, which stays with the app's own pages and API.

A token is ``<payload>.<HMAC-SHA256>``, like the session cookie but under a key of its own, so a
session cookie is never a token nor a token a session. The payload names the user and the
expiry, and nothing in it is secret. Tokens are short-lived and cannot be revoked: a client
asks for a new one (``POST /api/token``, with its session and CSRF token) when its own runs out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

__all__ = ["TOKEN_LIFETIME", "TokenSigner"]

#: Seconds a token is good for: long enough for a sync of large files, short enough that a
#: leaked one soon stops working.
TOKEN_LIFETIME = 15 * 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenSigner:
    """Issues and opens tokens under the app's secret; ``clock`` is for tests."""

    def __init__(
        self,
        secret: bytes,
        lifetime: int = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hashlib.sha256(b"messenger-blob-token\n" + secret).digest()
        self.lifetime = lifetime
        self.clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: int) -> tuple[str, int]:
        """A token for ``user_id``, and when it expires (Unix time)."""
        expires = int(self.clock()) + self.lifetime
        body = {"u": user_id, "e": expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}", expires

    def open(self, token: str | None) -> int | None:
        """The user the token was issued to, or None if it is missing, forged or expired."""
        if not token or "." not in token or len(token) > 512:
            return None
        payload, signature = token.rsplit(".", 1)
        if not hmac.compare_digest(self._mac(payload).encode(), signature.encode()):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user_id, expires = int(body["u"]), int(body["e"])
        except (ValueError, KeyError, TypeError):
            return None
        return user_id if expires > self.clock() else None
