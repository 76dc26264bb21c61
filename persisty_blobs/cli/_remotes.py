"""``remote add|ls|rm``: named stores, so ``NAME:key`` works in every command."""

from __future__ import annotations

import click

from . import _config
from ._errors import CliNotFound
from ._output import echo_json, json_option

__all__ = ["remote"]


@click.group()
def remote() -> None:
    """Saved stores: NAME -> URL, options, and where each secret is read from."""


@remote.command(
    epilog="\b\nExamples:\n  persisty-blobs remote add photos file:///srv/photos\n"
    "  persisty-blobs remote add vault sqlcipher:///srv/vault.db --secret key=env:VAULT_KEY\n"
    "  persisty-blobs remote add pg postgresql+psycopg://app@db/app \\\n"
    "      --option table_prefix=blobs --secret password=file:/run/secrets/pg\n"
    "  persisty-blobs remote add hosted https://blobs.example --secret token=env:BLOBS_TOKEN"
)
@click.argument("name")
@click.argument("url")
@click.option("--option", "-o", "options", multiple=True, metavar="NAME=VALUE")
@click.option(
    "--secret",
    "-s",
    "secrets",
    multiple=True,
    metavar="NAME=env:VAR|NAME=file:PATH",
    help="A secret option (key, token, password), read when the remote is used.",
)
@click.option("--replace", is_flag=True, help="Overwrite a remote of that name.")
def add(
    name: str, url: str, options: tuple[str, ...], secrets: tuple[str, ...], replace: bool
) -> None:
    """Save URL as remote NAME (secrets are references, never values)."""
    if not _config.REMOTE_NAME.fullmatch(name):
        raise click.BadParameter("letters, digits, '-' and '_', up to 64", param_hint="NAME")
    remotes = _config.load_remotes()
    if name in remotes and not replace:
        raise click.UsageError(f"remote {name!r} exists: add --replace to overwrite it")
    remotes[name] = _config.Remote(
        name,
        _config.check_url(url),
        dict(_config.parse_option(text) for text in options),
        dict(_config.parse_secret(text) for text in secrets),
    )
    _config.save_remotes(remotes)


@remote.command("ls", epilog="\b\nExamples:\n  persisty-blobs remote ls --json")
@json_option
def list_remotes(as_json: bool) -> None:
    """List the saved remotes (secrets as where they are read from)."""
    for name, saved in sorted(_config.load_remotes().items()):
        if as_json:
            echo_json({"name": name, **saved.to_json()})
            continue
        extras = [f"{key}={value}" for key, value in saved.options.items()]
        extras += [
            f"{key}={kind}:{where}"
            for key, source in saved.secrets.items()
            for kind, where in source.items()
        ]
        click.echo(" ".join([f"{name}:", saved.url, *extras]))


@remote.command("rm", epilog="\b\nExamples:\n  persisty-blobs remote rm photos")
@click.argument("name")
def remove(name: str) -> None:
    """Forget remote NAME (its store is left as it is)."""
    remotes = _config.load_remotes()
    if remotes.pop(name, None) is None:
        raise CliNotFound(f"no remote named {name!r}")
    _config.save_remotes(remotes)
