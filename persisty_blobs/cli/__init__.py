"""The ``persisty-blobs`` command (also ``python -m persisty_blobs``). Needs the ``cli`` extra
(click and rich)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..errors import Unsupported
from ..registry import require

if TYPE_CHECKING:
    import click

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status; without the ``cli`` extra, say how to
    install it in one line."""
    try:
        _require_cli()
    except Unsupported as error:
        sys.stderr.write(f"persisty-blobs: {error}\n")
        raise SystemExit(1) from None
    from ._app import main as run

    run(argv)


def __getattr__(name: str) -> Any:
    if name == "cli":
        _require_cli()
        from ._app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_cli() -> None:
    require("click", extra="cli")
    require("rich", extra="cli")


if TYPE_CHECKING:
    cli: click.Group
