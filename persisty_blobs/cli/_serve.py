"""``serve``: the hosting app (``persisty_blobs.server.create_app``) over any store, under
uvicorn, as ``python -m persisty_blobs.server`` runs it but with this command's addressing
(saved remotes and their secrets)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidArgument
from ..registry import require
from ._address import open_location, split_locations
from ._errors import CliFailure

__all__ = ["serve"]


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs serve files: --secret-file /etc/blobs/secret \\\n"
    "      --tokens-file /etc/blobs/tokens --host 0.0.0.0 --port 8000"
)
@click.argument("where", nargs=-1, required=True)
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The secret that signs URLs and forms (16 bytes or more).",
)
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, exists=True),
    help="'token principal' lines; each principal gets the namespace of its name.",
)
@click.option("--cors-origin", multiple=True, help="An origin whose pages may call the app.")
@click.option("--quota", type=click.IntRange(0), help="Bytes each principal may store.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
def serve(
    where: tuple[str, ...],
    secret_file: str,
    tokens_file: str | None,
    cors_origin: tuple[str, ...],
    quota: int | None,
    host: str,
    port: int,
) -> None:
    """Serve a whole store over HTTP (the app HttpStore and signed URLs talk to)."""
    uvicorn = require("uvicorn", extra="server")
    from ..server.__main__ import app_for, read_secret, read_tokens

    [location] = split_locations(where, 1, 1)
    try:
        tokens = None if tokens_file is None else read_tokens(Path(tokens_file))
        secret = read_secret(Path(secret_file))
    except InvalidArgument as error:
        raise click.UsageError(str(error)) from None
    store = open_location(location)
    try:
        app = app_for(store, secret, tokens, quota, list(cors_origin))
    except InvalidArgument as error:
        raise click.UsageError(str(error)) from None
    try:
        # No access log: a signed URL's query is a credential until it expires.
        uvicorn.run(app, host=host, port=port, access_log=False)
    except SystemExit as stopped:  # uvicorn's own status for a failed start (3) is not ours
        if stopped.code:
            raise CliFailure(f"could not serve on {host}:{port} (see above)") from None
