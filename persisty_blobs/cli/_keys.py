"""``keys generate|rotate|show-ids``: keyring files for ``--encrypt`` and ``EncryptedStore``.

A keyring file holds key material (``Keyring.to_json``): it is written readable by its owner
only (0600), replaced in one step, and refused when other users can read it, as ssh refuses
a private key.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..crypto import EncryptedStore, Keyring
from ..crypto.streaming import KEY_SIZE
from ..store import DataStore
from ._address import open_location, split_locations
from ._config import write_private
from ._errors import CliFailure, CliNotFound
from ._output import echo_json, json_option
from ._progress import Meter

__all__ = ["keys", "load_keyring"]


def load_keyring(path: str) -> Keyring:
    try:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            raise CliFailure(f"the keyring {path!r} can be read by other users: chmod 600 {path}")
        return Keyring.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CliNotFound(f"cannot read the keyring {path!r}: {error.strerror}") from None
    except OSError as error:
        raise CliFailure(f"cannot read the keyring {path!r}: {error.strerror}") from None


def _describe(ring: Keyring, as_json: bool) -> None:
    if as_json:
        echo_json({"primary": ring.primary_id, "ids": ring.ids})
        return
    for key_id in ring.ids:
        click.echo(f"{key_id}{'  (primary)' if key_id == ring.primary_id else ''}")


@click.group()
def keys() -> None:
    """Keyring files: the keys of --encrypt (client-side encryption)."""


@keys.command(epilog="\b\nExamples:\n  persisty-blobs keys generate ~/.config/backup-keys.json")
@click.argument("keyring_file", type=click.Path(dir_okay=False))
@json_option
def generate(keyring_file: str, as_json: bool) -> None:
    """Write a new keyring of one random key to KEYRING_FILE (mode 0600; never overwrites)."""
    ring = Keyring.generate()
    try:
        handle = os.open(keyring_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliFailure(
            f"{keyring_file!r} exists: 'keys rotate' adds a key to a keyring"
        ) from None
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(ring.to_json())
        file.flush()
        os.fsync(file.fileno())
    _describe(ring, as_json)


@keys.command(
    epilog="\b\nExamples:\n  persisty-blobs keys rotate backup-keys.json\n"
    "  persisty-blobs keys rotate --drop-old backup-keys.json s3:notes/"
)
@click.argument("keyring_file", type=click.Path(dir_okay=False, exists=True))
@click.argument("stores", nargs=-1)
@click.option("--drop-old", is_flag=True, help="After re-encrypting STORES, keep only the new key.")
@json_option
def rotate(keyring_file: str, stores: tuple[str, ...], drop_old: bool, as_json: bool) -> None:
    """Add a new primary key to KEYRING_FILE (the old keys still decrypt), then rewrite every
    item of STORES (every namespace, under their prefixes) with it."""
    if drop_old and not stores:
        raise click.UsageError("--drop-old needs STORES: items under the old key would stay")
    locations = split_locations(stores, 0, len(stores))
    ring = load_keyring(keyring_file).rotated(os.urandom(KEY_SIZE))
    write_private(Path(keyring_file), ring.to_json())  # saved before any item needs it
    for location in locations:
        _reencrypt(ring, open_location(location), location.path, location.text)
    if drop_old:
        ring = Keyring([ring.primary])
        write_private(Path(keyring_file), ring.to_json())
    _describe(ring, as_json)


def _reencrypt(ring: Keyring, inner: DataStore, prefix: str, label: str) -> None:
    store = EncryptedStore(inner, ring)
    views = [store.namespace(name) for name in store.namespaces()]
    with Meter(f"reencrypt {label}", total=0, items=sum(v.count(prefix) for v in views)) as meter:
        for view in views:
            for item in view.list(prefix):
                view.reencrypt(item.key)
                meter.item_done()


@keys.command("show-ids", epilog="\b\nExamples:\n  persisty-blobs keys show-ids backup-keys.json")
@click.argument("keyring_file", type=click.Path(dir_okay=False, exists=True))
@json_option
def show_ids(keyring_file: str, as_json: bool) -> None:
    """Print the ids of the keys (never the keys), the primary first."""
    _describe(load_keyring(keyring_file), as_json)
