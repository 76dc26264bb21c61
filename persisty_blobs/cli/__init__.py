"""The ``persisty-blobs`` command (also ``python -m persisty_blobs``). Needs the ``cli`` extra
(click and rich)."""

from ..registry import require

require("click", extra="cli")
require("rich", extra="cli")

from ._app import cli, main  # noqa: E402

__all__ = ["cli", "main"]
