"""The optional dependency and the transfer size the HTTP store shares."""

from ...registry import require

httpx = require("httpx", extra="http")

__all__ = ["CHUNK", "httpx"]

CHUNK = 1024 * 1024
