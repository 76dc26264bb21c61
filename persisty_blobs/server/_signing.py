"""Signatures for hosted URLs and upload forms: HMAC-SHA256 under the app's secret, checked in
constant time, with the expiry inside what is signed.

A signed URL binds the method, namespace, key, expiry, content type and (for downloads) the
content disposition; an upload form's policy binds the key or key prefix, the size limit, the
content types and the expiry. Changing any of them breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from ..errors import InvalidArgument, PermissionDenied

__all__ = ["Signer"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise PermissionDenied("a malformed signature or policy") from None


class Signer:
    def __init__(self, secret: bytes | str) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < 16:
            raise InvalidArgument(f"the signing secret must be at least 16 bytes, not {len(key)}")
        self._key = key

    def _mac(self, purpose: str, message: bytes) -> str:
        return _b64(
            hmac.new(self._key, purpose.encode() + b"\n" + message, hashlib.sha256).digest()
        )

    def sign_request(
        self,
        method: str,
        namespace: str,
        key: str,
        expires: int,
        content_type: str | None,
        disposition: str | None,
    ) -> str:
        fields = [method, namespace, key, str(expires), content_type or "", disposition or ""]
        return self._mac("url", json.dumps(fields, separators=(",", ":")).encode())

    def check_request(
        self,
        signature: str,
        method: str,
        namespace: str,
        key: str,
        expires: str,
        content_type: str | None,
        disposition: str | None,
    ) -> None:
        """Raise ``PermissionDenied`` unless ``signature`` signs exactly this request and it
        has not expired."""
        if not expires.isdigit():
            raise PermissionDenied("a signed URL without a valid expiry", key=key)
        expected = self.sign_request(
            method, namespace, key, int(expires), content_type, disposition
        )
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise PermissionDenied("the URL's signature does not match", key=key)
        if int(expires) < time.time():
            raise PermissionDenied("the signed URL has expired", key=key)

    def sign_policy(self, policy: dict[str, Any]) -> tuple[str, str]:
        """(the encoded policy, its signature)."""
        encoded = _b64(json.dumps(policy, separators=(",", ":"), sort_keys=True).encode())
        return encoded, self._mac("policy", encoded.encode())

    def open_policy(self, encoded: str, signature: str) -> dict[str, Any]:
        """The policy, once its signature and expiry are checked."""
        expected = self._mac("policy", encoded.encode())
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise PermissionDenied("the upload form's signature does not match")
        policy: dict[str, Any] = json.loads(_unb64(encoded))
        if not isinstance(policy.get("expires"), int) or policy["expires"] < time.time():
            raise PermissionDenied("the upload form has expired")
        return policy
