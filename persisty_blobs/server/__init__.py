"""Hosting: a Starlette app that serves any store over HTTP, and the ``DataStoreFactory`` of
signed URLs and upload forms for stores that cannot presign. Needs the ``server`` extra."""

from ..registry import require

require("starlette", extra="server")
require("python_multipart", extra="server")

from ._app import create_app  # noqa: E402
from ._context import bearer_tokens  # noqa: E402
from ._factory import HostedDataStoreFactory  # noqa: E402

__all__ = ["HostedDataStoreFactory", "bearer_tokens", "create_app"]
