"""``python -m persisty_blobs.server URL --secret-file FILE [--tokens-file FILE] [--host H]
[--port P]``: serve the store ``open_store(URL)`` names with uvicorn.

The tokens file holds one ``token principal`` pair a line; each principal gets the store's
namespace of that name. Without a tokens file only signed URLs and upload forms are served.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..registry import open_store, require
from ..store import DataStore
from ._app import create_app
from ._context import bearer_tokens


def _tokens(path: Path) -> dict[str, str]:
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            parts = line.split()
            if len(parts) != 2:
                raise SystemExit(f"{path}:{number}: expected 'token principal'")
            table[parts[0]] = parts[1]
    return table


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
    uvicorn = require("uvicorn", extra="server")
    store = open_store(options.url)
    authenticate = (
        None if options.tokens_file is None else bearer_tokens(_tokens(options.tokens_file))
    )

    def authorize(root: DataStore, principal: str) -> DataStore:
        return root.namespace(principal)

    app = create_app(
        store,
        secret=options.secret_file.read_bytes().strip(),
        authenticate=authenticate,
        authorize=authorize,
        quota=options.quota,
        cors_origins=options.cors_origin,
    )
    # No access log: a signed URL's query is a credential until it expires.
    uvicorn.run(app, host=options.host, port=options.port, access_log=False)


if __name__ == "__main__":
    main()
