"""``python -m examples.messenger.backup --user alice --to URL --keyring FILE``: replicate one
user's attachments into any store as ciphertext (a ``Replicator`` into an ``EncryptedStore``),
incrementally: a second run moves only what changed since the first. ``--restore`` brings them
back into the messenger's store, never deleting anything on either side.

The keyring file is made on the first backup if it does not exist: keep it apart from the
backup, which cannot be read without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import sqlalchemy as sa

from persisty_blobs import EncryptedStore, Keyring, open_store
from persisty_blobs.sync import Replicator, SyncReport, SyncState

from .db import connect, users
from .progress import ProgressBar
from .storage import Settings, namespace_of

__all__ = ["main", "run"]


def _keyring(path: Path, create: bool) -> Keyring:
    if path.exists():
        return Keyring.from_json(path.read_text(encoding="utf-8"))
    if not create:
        raise SystemExit(f"no keyring at {path}: a backup cannot be read without its keyring")
    keyring = Keyring.generate()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(keyring.to_json())
    print(f"new keyring saved to {path}: keep it apart from the backup", file=sys.stderr)
    return keyring


def run(
    settings: Settings,
    user: str,
    target_url: str,
    keyring_path: Path,
    *,
    state_path: Path | None = None,
    restore: bool = False,
    show_progress: bool = True,
) -> SyncReport:
    """One backup (or restore) of ``user``'s attachments; the report of the run."""
    engine = connect(settings.database_url)
    try:
        with engine.connect() as db:
            user_id = db.execute(sa.select(users.c.id).where(users.c.name == user)).scalar()
    finally:
        engine.dispose()
    if user_id is None:
        raise SystemExit(f"no user named {user!r}")
    keyring = _keyring(keyring_path, create=not restore)
    namespace = namespace_of(user_id)
    # A restore starts from no base: it copies what is missing and deletes nothing.
    state = SyncState(":memory:" if restore else (state_path or f"{keyring_path}.{user}.sync"))
    with settings.open_store() as app_store, open_store(target_url) as target:
        replicator = Replicator(
            app_store,
            EncryptedStore(target, keyring),
            state,
            pair=f"backup-{user}",
            direction="pull" if restore else "push",
            namespaces=[namespace],
            prefix="att/",
        )
        report = replicator.run(
            progress=ProgressBar("restore" if restore else "backup") if show_progress else None
        )
    state.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", required=True, help="whose attachments")
    parser.add_argument("--to", required=True, metavar="URL", help="the backup store")
    parser.add_argument("--keyring", required=True, type=Path, metavar="FILE")
    parser.add_argument("--state", type=Path, metavar="FILE", help="default: FILE.<user>.sync")
    parser.add_argument("--restore", action="store_true", help="from the backup, into the app")
    args = parser.parse_args(argv)
    report = run(
        Settings.from_env(),
        args.user,
        args.to,
        args.keyring,
        state_path=args.state,
        restore=args.restore,
        show_progress=sys.stderr.isatty(),
    )
    moved = sum(report.done.values())
    print(f"{moved} changes, {report.bytes} bytes, {len(report.failures)} failures")
    for namespace, key, action, error in report.failures:
        print(f"  failed: {action} {namespace}/{key}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
