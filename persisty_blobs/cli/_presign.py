"""``presign``: a download URL, an upload URL, or a browser upload form (JSON).

An ``s3://`` store signs with its own credentials (``S3DataStoreFactory``); any other store
signs for the app ``persisty-blobs serve`` runs (``HostedDataStoreFactory``), which needs
that app's ``--base-url`` and ``--secret-file``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import click

from ..factory import DataStoreFactory
from ..store import DataStore
from ._address import open_location, split_locations
from ._errors import CliFailure
from ._output import echo_json, namespace_option

__all__ = ["presign"]


def _factory(
    store: DataStore, url: str, namespace: str, base_url: str | None, secret_file: str | None
) -> DataStoreFactory:
    def authorizer(root: DataStore, _: object | None) -> DataStore:
        return root.namespace(namespace)

    if urllib.parse.urlsplit(url).scheme == "s3":
        from ..stores.s3 import S3DataStoreFactory, S3Store

        assert isinstance(store, S3Store)
        return S3DataStoreFactory(store, authorizer=authorizer)
    if base_url is None or secret_file is None:
        raise click.UsageError(
            "only s3:// stores sign their own URLs: give --base-url and --secret-file of "
            "the 'persisty-blobs serve' that hosts this store"
        )
    from ..server import HostedDataStoreFactory

    try:
        secret = Path(secret_file).read_bytes().strip()
    except OSError as error:
        raise CliFailure(f"cannot read the secret file {secret_file!r}: {error.strerror}") from None
    return HostedDataStoreFactory(store, secret=secret, base_url=base_url, authorizer=authorizer)


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs presign s3:reports/q3.pdf --expires-in 600\n"
    "  persisty-blobs presign --upload --content-type image/jpeg s3:inbox/cat.jpg\n"
    "  persisty-blobs presign --form --max-size 10000000 --content-type image/ \\\n"
    "      --base-url https://blobs.example --secret-file /etc/blobs/secret files:inbox/"
)
@click.argument("where", nargs=-1, required=True)
@click.option("--upload", "mode", flag_value="upload", help="A PUT URL instead of a GET URL.")
@click.option("--form", "mode", flag_value="form", help="An upload form (JSON) for a browser.")
@click.option("--expires-in", type=click.IntRange(1, 7 * 24 * 3600), metavar="SECONDS")
@click.option(
    "--content-type",
    "content_types",
    multiple=True,
    help="The upload's type (a form also takes families such as image/; repeatable).",
)
@click.option("--disposition", help="Content-Disposition of a download, e.g. attachment.")
@click.option("--max-size", type=click.IntRange(0), help="A form's largest file, in bytes.")
@click.option("--base-url", help="Where 'persisty-blobs serve' answers (non-S3 stores).")
@click.option("--secret-file", type=click.Path(dir_okay=False), help="That server's secret.")
@namespace_option
def presign(
    where: tuple[str, ...],
    mode: str | None,
    expires_in: int | None,
    content_types: tuple[str, ...],
    disposition: str | None,
    max_size: int | None,
    base_url: str | None,
    secret_file: str | None,
    namespace: str,
) -> None:
    """Sign a URL (download by default) or an upload form for a key or, with --form, a
    prefix ending in '/'."""
    [location] = split_locations(where, 1, 1)
    if not location.is_store or location.url is None:
        raise click.UsageError(f"{location.text!r} is not a store location")
    factory = _factory(open_location(location), location.url, namespace, base_url, secret_file)
    path = location.path
    # Without --expires-in, the factory's own default.
    expiry = {} if expires_in is None else {"expires_in": expires_in}
    if mode == "form":
        is_prefix = path == "" or path.endswith("/")
        form = factory.upload_form(
            None if is_prefix else path,
            key_prefix=path if is_prefix else None,
            max_size=max_size,
            content_types=list(content_types) or None,
            **expiry,
        )
        echo_json(form.as_json())
        return
    if not path or path.endswith("/"):
        raise click.UsageError(f"{location.text!r} names no key")
    if mode == "upload":
        if len(content_types) > 1:
            raise click.UsageError("an upload URL takes one --content-type")
        content_type = content_types[0] if content_types else None
        click.echo(factory.upload_url(path, content_type=content_type, **expiry))
    else:
        click.echo(factory.download_url(path, content_disposition=disposition, **expiry))
