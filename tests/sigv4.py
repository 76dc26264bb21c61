"""AWS Signature Version 4, checked in the tests: moto's S3 accepts any signature, so a test
that must show a presigned URL or POST policy is really signed recomputes the signature from
the credentials it knows and compares."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any

__all__ = ["open_post_policy", "presigned_url_ok"]


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, scope: str) -> bytes:
    date, region, service, _ = scope.split("/")
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


def presigned_url_ok(url: str, secret: str, *, now: datetime | None = None) -> bool:
    """Whether ``url`` is a query-signed GET whose signature ``secret`` made, and unexpired."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    if (
        params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
        or params.get("X-Amz-SignedHeaders") != "host"
    ):
        return False
    signed = sorted((_quote(k), _quote(v)) for k, v in query if k != "X-Amz-Signature")
    canonical = "\n".join(
        [
            "GET",
            parts.path,
            "&".join(f"{k}={v}" for k, v in signed),
            f"host:{parts.netloc}\n",
            "host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(_signing_key(secret, scope), to_sign.encode(), hashlib.sha256).hexdigest()
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - signed_at).total_seconds()
    fresh = age <= int(params["X-Amz-Expires"])
    return fresh and hmac.compare_digest(expected, params.get("X-Amz-Signature", ""))


def open_post_policy(fields: dict[str, str], secret: str) -> dict[str, Any] | None:
    """The decoded policy of a presigned POST whose signature ``secret`` made, else None."""
    names = {name.lower(): value for name, value in fields.items()}
    scope = names["x-amz-credential"].split("/", 1)[1]
    expected = hmac.new(
        _signing_key(secret, scope), names["policy"].encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, names.get("x-amz-signature", "")):
        return None
    policy: dict[str, Any] = json.loads(base64.b64decode(names["policy"]))
    return policy
