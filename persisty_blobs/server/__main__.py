"""``python -m persisty_blobs.server URL --secret-file FILE [--tokens-file FILE] [--host H]
[--port P]``: serve the store ``open_store(URL)`` names with uvicorn.

The tokens file holds one ``token principal`` pair a line; each principal gets the store's
namespace of that name. Without a tokens file only signed URLs and upload forms are served.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BlobError, InvalidArgument
from ..registry import open_store, require
from ..store import DataStore
from ._app import create_app
from ._context import bearer_tokens

if TYPE_CHECKING:
    from starlette.applications import Starlette


def read_tokens(path: Path) -> dict[str, str]:
    """The ``token principal`` lines of a tokens file."""
    table = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidArgument(
            f"cannot read the tokens file {str(path)!r}: {error.strerror}"
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            parts = line.split()
            if len(parts) != 2:
                raise InvalidArgument(f"{path}:{number}: expected 'token principal'")
            table[parts[0]] = parts[1]
    return table


def read_secret(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as error:
        raise InvalidArgument(
            f"cannot read the secret file {str(path)!r}: {error.strerror}"
        ) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m persisty_blobs.server", description=__doc__)
    parser.add_argument("url", help="the store to serve, as open_store takes it")
    parser.add_argument(
        "--secret-file",
        type=Path,
        required=True,
        help="the secret that signs URLs and forms (at least 16 bytes)",
    )
    parser.add_argument("--tokens-file", type=Path, help="'token principal' lines")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="an origin whose pages may call the app (repeatable)",
    )
    parser.add_argument("--quota", type=int, help="bytes each principal's store may hold")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args(argv)
    try:
        uvicorn = require("uvicorn", extra="server")
        store = open_store(options.url)
        tokens = None if options.tokens_file is None else read_tokens(options.tokens_file)
        app = app_for(store, read_secret(options.secret_file), tokens, options.quota,
                      options.cors_origin)  # fmt: skip
    except BlobError as error:  # a mistake in the command line or its files: one line
        parser.exit(2, f"{parser.prog}: {type(error).__name__}: {error}\n")
    try:
        # No access log: a signed URL's query is a credential until it expires.
        uvicorn.run(app, host=options.host, port=options.port, access_log=False)
    except SystemExit as stopped:  # uvicorn's status for a failed start (3), said plainly
        if stopped.code:
            parser.exit(1, f"{parser.prog}: could not serve on {options.host}:{options.port}\n")


def app_for(
    store: DataStore,
    secret: bytes,
    tokens: dict[str, str] | None,
    quota: int | None,
    cors_origins: list[str],
) -> Starlette:
    """The app the command lines serve: each token's principal gets the namespace of its
    name; without tokens only signed URLs and forms are served."""

    def authorize(root: DataStore, principal: str) -> DataStore:
        return root.namespace(principal)

    return create_app(
        store,
        secret=secret,
        authenticate=None if tokens is None else bearer_tokens(tokens),
        authorize=authorize,
        quota=quota,
        cors_origins=cors_origins,
    )


if __name__ == "__main__":
    main()
