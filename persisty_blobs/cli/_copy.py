"""``cp``: a file, a folder, an item or a prefix, between local files and any two stores.

A source whose key is empty or ends with ``/`` (or a local folder) is a prefix: every item
under it is copied, keeping the part of its key after the prefix. A target ending with
``/`` (or an existing folder) receives the source's base name.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import click

from ..store import DataStore
from ._address import Location, open_location, split_locations
from ._output import namespace_option
from ._progress import Meter
from ._transfer import copy_item, download, upload

__all__ = ["cp"]


def _is_prefix(location: Location) -> bool:
    if location.is_store:
        return location.path == "" or location.path.endswith("/")
    return Path(location.path).is_dir()


def _joined(target: Location, name: str) -> str:
    """Where a single item named ``name`` lands in ``target``."""
    if target.is_store:
        return target.path + name if target.path == "" or target.path.endswith("/") else target.path
    if target.path.endswith("/") or Path(target.path).is_dir():
        return str(Path(target.path) / name)
    return target.path


def _local_files(folder: Path) -> list[tuple[str, int]]:
    """Every file under ``folder`` as (relative key, size), in key order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            found.append((path.relative_to(folder).as_posix(), path.stat().st_size))
    return sorted(found)


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs cp photo.jpg media:2024/\n"
    "  persisty-blobs cp ./album media:2024/album/\n"
    "  persisty-blobs cp media:2024/ s3://backup/media 2024/\n"
    "  persisty-blobs cp --namespace alice media: ./alice-files/"
)
@click.argument("arguments", nargs=-1, required=True)
@namespace_option
def cp(arguments: tuple[str, ...], namespace: str) -> None:
    """Copy SRC to DST: a file or folder, an item or a prefix, to or from any store."""
    source, target = split_locations(arguments, 2, 2)
    if not source.is_store and not target.is_store:
        raise click.UsageError("cp needs a store on at least one side (use cp(1) for files)")
    src = open_location(source, namespace, existing=True) if source.is_store else None
    dst = open_location(target, namespace) if target.is_store else None
    if not _is_prefix(source):
        name = PurePosixPath(source.path).name
        with Meter(f"cp {name}") as meter:
            _one(src, source.path, dst, _joined(target, name), meter)
        return
    if target.is_store and target.path and not target.path.endswith("/"):
        raise click.UsageError(f"copying a prefix: end the target with '/' ({target.text}/)")
    if src is None:
        listing = _local_files(Path(source.path))
        start = str(Path(source.path)) + os.sep
        pairs = [(start + relative, relative, size) for relative, size in listing]
    else:
        pairs = [
            (entry.key, entry.key[len(source.path) :], entry.size)
            for entry in src.scan(source.path)
        ]
    total = sum(size for _, _, size in pairs)
    with Meter(f"cp {source.text}", total=total, items=len(pairs)) as meter:
        for origin, relative, _ in pairs:
            destination = (
                target.path + relative if dst is not None else str(Path(target.path) / relative)
            )
            _one(src, origin, dst, destination, meter)


def _one(
    src: DataStore | None, origin: str, dst: DataStore | None, destination: str, meter: Meter
) -> None:
    if src is None:
        assert dst is not None
        upload(origin, dst, destination, meter)
    elif dst is None:
        download(src, origin, destination, meter)
    else:
        copy_item(src, origin, dst, destination, meter)
