"""The commands on the items of one store: ls, cat, put, get, rm, flags get|set."""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath

import click

from ..errors import NotFound
from ..item import Flag
from ._address import Location, check_exists, check_location, open_location, split_locations
from ._errors import CliNotFound
from ._output import echo_json, item_line, json_option, namespace_option
from ._progress import Meter
from ._transfer import download, upload

__all__ = ["cat", "flags", "get", "ls", "put", "rm"]

_FLAG_NAMES = [flag.value for flag in Flag]


def _store_location(tokens: tuple[str, ...]) -> Location:
    [location] = split_locations(tokens, 1, 1)
    if not location.is_store:
        raise click.UsageError(f"{location.text!r} is not a store: NAME:key or URL KEY")
    return location


def _key(location: Location) -> str:
    if not location.path:
        raise click.UsageError(f"{location.text!r} names no key")
    return location.path


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs ls photos:2024/\n"
    "  persisty-blobs ls --long --json file:///srv/blobs 2024/"
)
@click.argument("where", nargs=-1, required=True)
@click.option("--long", "-l", "long", is_flag=True, help="Size, updated, type, flags, key.")
@click.option("--flag", type=click.Choice(_FLAG_NAMES), help="Only items with this flag.")
@click.option("--namespaces", "namespaces", is_flag=True, help="List the namespaces instead.")
@json_option
@namespace_option
def ls(
    where: tuple[str, ...],
    long: bool,
    flag: str | None,
    namespaces: bool,
    as_json: bool,
    namespace: str,
) -> None:
    """List the items under a prefix (NAME:prefix, or URL [PREFIX])."""
    location = _store_location(where)
    store = open_location(location, namespace, existing=True)
    if namespaces:
        for name in store.namespaces():
            if as_json:
                echo_json({"namespace": name})
            else:
                click.echo(name or "''")  # the default namespace, as -n takes it
        return
    for item in store.list(location.path, flag=flag):
        click.echo(item_line(item, long=long, as_json=as_json))


@click.command(epilog="\b\nExamples:\n  persisty-blobs cat notes:today.txt\n")
@click.argument("where", nargs=-1, required=True)
@namespace_option
def cat(where: tuple[str, ...], namespace: str) -> None:
    """Write an item's content to stdout."""
    location = _store_location(where)
    store = open_location(location, namespace, existing=True)
    download(store, _key(location), "-", Meter("cat", show=False))


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs put report.pdf docs:2024/report.pdf\n"
    "  persisty-blobs put report.pdf docs:2024/        (key 2024/report.pdf)\n"
    "  tar c . | persisty-blobs put - sqlite:////srv/b.db backup.tar"
)
@click.argument("arguments", nargs=-1, required=True)
@click.option("--content-type", help="The item's content type (default: from the key).")
@click.option("--metadata", "-m", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("--flag", "flags", multiple=True, type=click.Choice(_FLAG_NAMES), help="Repeatable.")
@namespace_option
def put(
    arguments: tuple[str, ...],
    content_type: str | None,
    metadata: tuple[str, ...],
    flags: tuple[str, ...],
    namespace: str,
) -> None:
    """Store a file (or stdin, '-') as an item: put FILE DEST."""
    source, target = split_locations(arguments, 2, 2)
    if source.is_store or not target.is_store:
        raise click.UsageError("put FILE DEST: a local file (or '-'), then a store location")
    key = target.path
    if not key or key.endswith("/"):
        if source.path == "-":
            raise click.UsageError("put - DEST: stdin needs a full key")
        key += Path(source.path).name
    pairs = dict(_metadata(text) for text in metadata)
    store = open_location(target, namespace)
    with Meter(f"put {key}") as meter:
        upload(
            source.path, store, key, meter, content_type=content_type, metadata=pairs, flags=flags
        )


def _metadata(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise click.BadParameter(f"expected NAME=VALUE, not {text!r}", param_hint="--metadata")
    return name, value


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs get docs:2024/report.pdf            (./report.pdf)\n"
    "  persisty-blobs get docs:2024/report.pdf out/\n"
    "  persisty-blobs get s3://bucket/app 2024/report.pdf - | less"
)
@click.argument("arguments", nargs=-1, required=True)
@namespace_option
def get(arguments: tuple[str, ...], namespace: str) -> None:
    """Fetch an item into a file (default ./BASENAME, '-' is stdout): get SOURCE [FILE]."""
    locations = split_locations(arguments, 1, 2)
    source = locations[0]
    if not source.is_store or (len(locations) == 2 and locations[1].is_store):
        raise click.UsageError("get SOURCE [FILE]: a store location, then a local file")
    key = _key(source)
    name = PurePosixPath(key).name
    target = locations[1].path if len(locations) == 2 else name
    if target != "-" and (target.endswith("/") or Path(target).is_dir()):
        target = str(Path(target) / name)
    store = open_location(source, namespace, existing=True)
    with Meter(f"get {key}", show=target != "-") as meter:
        download(store, key, target, meter)


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs rm docs:old.txt docs:older.txt\n"
    "  persisty-blobs rm --prefix --yes docs:2019/"
)
@click.argument("where", nargs=-1, required=True)
@click.option("--prefix", is_flag=True, help="Delete every item under the prefix.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting a prefix.")
@namespace_option
def rm(where: tuple[str, ...], prefix: bool, yes: bool, namespace: str) -> None:
    """Delete items (or, with --prefix, every item under a prefix)."""
    locations = split_locations(where, 1, len(where))
    # Every argument checked before anything is deleted.
    for location in locations:
        if not location.is_store:
            raise click.UsageError(f"{location.text!r} is not a store location")
        if not prefix:
            _key(location)
        check_location(location)
        check_exists(location)
    missing: list[NotFound] = []
    for location in locations:
        store = open_location(location, namespace, existing=True)
        if not prefix:
            if not store.delete(_key(location)):  # said, and the others deleted (as rm(1))
                missing.append(NotFound("no such item", key=location.path, store=repr(store)))
                if len(locations) > 1:
                    click.echo(f"persisty-blobs: NotFound: {missing[-1]}", err=True)
            continue
        keys = [entry.key for entry in store.scan(location.path)]
        if keys and not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"--prefix would delete {len(keys)} items: add --yes to confirm"
                )
            click.confirm(
                f"Delete {len(keys)} items under the prefix {location.path!r} of "
                f"{location.text.removesuffix(location.path)!r}?",
                abort=True,
                err=True,
            )
        with Meter(f"rm {location.text}", total=0, items=len(keys)) as meter:
            for key in keys:
                store.delete(key)
                meter.item_done()
    if len(locations) == 1 and missing:
        raise missing[0]
    if missing:
        raise CliNotFound(f"{len(missing)} of {len(locations)} items not found")


@click.group()
def flags() -> None:
    """Read or replace an item's flags (pending, processing, processed, failed)."""


@flags.command("get", epilog="\b\nExamples:\n  persisty-blobs flags get inbox:photo.jpg --json")
@click.argument("where", nargs=-1, required=True)
@json_option
@namespace_option
def flags_get(where: tuple[str, ...], as_json: bool, namespace: str) -> None:
    """Print an item's flags, one a line."""
    location = _store_location(where)
    store = open_location(location, namespace, existing=True)
    found = sorted(flag.value for flag in store.get_flags(_key(location)))
    if as_json:
        echo_json({"key": location.path, "flags": found})
    else:
        for name in found:
            click.echo(name)


@flags.command(
    "set",
    epilog="\b\nExamples:\n  persisty-blobs flags set inbox:photo.jpg processed\n"
    "  persisty-blobs flags set inbox:photo.jpg pending,failed\n"
    "  persisty-blobs flags set inbox:photo.jpg ''          (clears them)",
)
@click.argument("arguments", nargs=-1, required=True)
@namespace_option
def flags_set(arguments: tuple[str, ...], namespace: str) -> None:
    """Replace an item's flags: flags set LOCATION FLAG[,FLAG...] ('' clears them)."""
    if len(arguments) < 2:
        raise click.UsageError("flags set LOCATION FLAGS")
    location = _store_location(arguments[:-1])
    wanted = [name for name in arguments[-1].split(",") if name]
    unknown = sorted(set(wanted) - set(_FLAG_NAMES))
    if unknown:
        raise click.BadParameter(
            f"unknown flag {unknown[0]!r} (one of {', '.join(_FLAG_NAMES)})", param_hint="FLAGS"
        )
    store = open_location(location, namespace, existing=True)
    store.set_flags(_key(location), wanted)
