"""Passwords (scrypt), the signed session cookie, CSRF tokens and the login rate limit.

The session cookie is ``<payload>.<HMAC-SHA256>``: the payload names the user, the CSRF token
and the expiry, and nothing in it is secret. CSRF is a signed double submit: the page reads the
(non-HttpOnly) ``csrf`` cookie and sends it in ``X-CSRF-Token``; a state-changing request is
accepted only when the header equals the cookie and, once logged in, the session's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = [
    "LoginLimiter",
    "Session",
    "SessionSigner",
    "csrf_matches",
    "hash_password",
    "verify_password",
]

# scrypt at n=2**14, r=8: 16 MiB of memory per guess (RFC 7914's interactive setting).
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        found = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(found, bytes.fromhex(digest))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf: str
    expires: int


class SessionSigner:
    """Signs and opens session cookies under the app's secret."""

    def __init__(self, secret: bytes, lifetime: int = 7 * 24 * 3600) -> None:
        self._key = hashlib.sha256(b"messenger-session\n" + secret).digest()
        self.lifetime = lifetime

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: int, csrf: str) -> str:
        body = {"u": user_id, "c": csrf, "e": int(time.time()) + self.lifetime}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def open(self, cookie: str | None) -> Session | None:
        """The session, or None if the cookie is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(self._mac(payload).encode(), signature.encode()):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(int(body["u"]), str(body["c"]), int(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None


def csrf_matches(header: str | None, cookie: str | None, session: Session | None) -> bool:
    if not header or not cookie or len(header) < 16:
        return False
    if not hmac.compare_digest(header.encode(), cookie.encode()):
        return False
    return session is None or hmac.compare_digest(header.encode(), session.csrf.encode())


class LoginLimiter:
    """At most ``attempts`` failed logins per (address, name) in ``window`` seconds. It holds
    in one process: instances behind a load balancer each count their own."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, who: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(who, deque())
        while failures and failures[0] < now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, address: str, name: str) -> int:
        """Seconds to wait before trying again, 0 if a try is allowed now."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent((address, name.lower()), now)
            if len(failures) < self.attempts:
                return 0
            return max(1, int(failures[0] + self.window - now) + 1)

    def failed(self, address: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # an attacker rotating names cannot fill memory
                self._failures.clear()
            self._recent((address, name.lower()), now).append(now)
