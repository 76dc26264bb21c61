"""``python -m examples.messenger.client``: the messenger from the command line, as a desktop
app would use it. It logs in over HTTP, keeps the user's attachments in a local store encrypted
by SQLCipher, and replicates them with the app's hosted store through a ``BlobManager``.

``send --attach FILE`` stores the file locally, uploads it into the user's namespace of the
hosted store (with a bearer token from ``POST /api/token``, held to the same limits as a
browser's upload form), then posts the message naming it. ``sync`` finishes pending uploads and
brings down what the user's namespace holds that this device lacks (their attachments from
other devices, the worker's thumbnails). ``ls`` shows the local store without logging in.

Secrets are never arguments, where other users could read them from the process list: the
password comes from ``MESSENGER_PASSWORD``, ``--password-file`` or a prompt, and the local
store's passphrase from ``MESSENGER_CLIENT_PASSPHRASE``, ``--passphrase-file`` or a prompt.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import getpass
import mimetypes
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from persisty_blobs import BlobError, DataStore, DecryptionError
from persisty_blobs.stores import HttpStore, SqlCipherStore
from persisty_blobs.sync import ActionKind, BlobManager, Status, SyncReport, SyncState
from persisty_blobs.sync.state import Outcome

from .api import ApiError, MessengerApi
from .progress import ProgressBar
from .storage import MAX_SIZE, TYPES

__all__ = ["main"]

_DONE = {
    ActionKind.UPLOAD: "uploaded",
    ActionKind.DOWNLOAD: "downloaded",
    ActionKind.FLAGS_A: "flags updated here",
    ActionKind.ADOPT: "already here",
}
#: The replication pair in the state database: one per data folder, user and server.
_PAIR = "messenger"


class _Refused(Exception):
    """Ends the command with this message and status 1."""


def _secret(name: str, variable: str, path: Path | None) -> str:
    """A secret from its file, else the environment, else a prompt."""
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    if os.environ.get(variable):
        return os.environ[variable]
    if sys.stdin.isatty():
        return getpass.getpass(f"{name}: ")
    raise _Refused(f"no {name}: set {variable} or give --{name.split()[-1]}-file")


def _private_file(path: Path) -> Path:
    """``path``, made (empty: SQLite takes that for a new database) or kept readable by its
    owner only. SQLite gives the journal and WAL files beside it the same mode."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # a file from an earlier version, or another umask
    finally:
        os.close(descriptor)
    return path


def _local_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The local store and the sync state, in a folder of the user's own."""
    folder: Path = args.data
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Refused rather than changed: a folder others may open was made so by someone, perhaps
    # for other files in it; this client makes its own folder 0700.
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        raise _Refused(
            f"{folder} is open to other users (mode {mode:o}): chmod 700 it, or give another --data"
        )
    return (
        _private_file(folder / f"{args.user}.db"),
        _private_file(folder / f"{args.user}.sync"),
    )


@contextmanager
def _local(args: argparse.Namespace) -> Iterator[tuple[DataStore, SyncState]]:
    """The local store (opened with the passphrase) and the sync state beside it."""
    store_path, state_path = _local_paths(args)
    passphrase = _secret("passphrase", "MESSENGER_CLIENT_PASSPHRASE", args.passphrase_file)
    try:
        store = SqlCipherStore(store_path, passphrase)
    except DecryptionError:
        raise _Refused(f"{store_path} does not open with this passphrase") from None
    # The state holds keys, sizes and SHA-256 checksums of the plaintext, never content, in
    # plain SQLite: its mode (0600) is all that keeps it from other users.
    state = SyncState(state_path)
    try:
        yield store, state
    finally:
        state.close()
        store.close()


@contextmanager
def _remote(args: argparse.Namespace) -> Iterator[tuple[MessengerApi, DataStore]]:
    """A logged-in session, and the user's part of the hosted store."""
    password = _secret("password", "MESSENGER_PASSWORD", args.password_file)
    with MessengerApi(args.url) as api:
        try:
            api.login(args.user, password)
        except ApiError as error:
            raise _Refused(f"cannot log in to {api.url} as {args.user}: {error}") from None
        _say(f"logged in to {api.url} as {args.user}")
        token, url = api.blob_token()
        with HttpStore(url, token=token) as remote:
            yield api, remote


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _token_ran_out(report: SyncReport) -> bool:
    """Whether items failed because the hosted store no longer took the token (it answers
    401 with this message), rather than for themselves."""
    return any(
        error.startswith("PermissionDenied: authentication required")
        for *_, error in report.failures
    )


def _sync(
    local: DataStore, state: SyncState, api: MessengerApi, remote: DataStore, verb: str
) -> SyncReport:
    """One run; if the token ran out during it (a long sync, a slow link), a new token and
    one run more. The report counts what both did, and the failures of the last."""

    def run(remote: DataStore) -> SyncReport:
        bar = ProgressBar(verb) if sys.stderr.isatty() else None
        manager = BlobManager(local, remote, state=state, pair=_PAIR)
        return manager.replicator([""]).run(progress=bar)

    report = run(remote)
    if _token_ran_out(report):
        _say(f"the token ran out during the {verb}: a new token, and once more")
        token, url = api.blob_token()
        with HttpStore(url, token=token) as renewed:
            again = run(renewed)
        done = collections.Counter(report.done) + collections.Counter(again.done)
        report = dataclasses.replace(
            again,
            done=dict(done),
            bytes=report.bytes + again.bytes,
            seconds=report.seconds + again.seconds,
        )
    for _, key, action, error in report.failures:
        _say(f"  {action} of {key} failed: {error}")
    return report


def _attachment(path: Path, given: str | None) -> tuple[str, int]:
    """The file's type and size, refused here as the app would refuse them."""
    if not path.is_file():
        raise _Refused(f"{path} is not a file")
    size = path.stat().st_size
    if size > MAX_SIZE:
        raise _Refused(f"{path.name} is too large: at most {MAX_SIZE // 2**20} MiB")
    content_type = (given or mimetypes.guess_type(path.name)[0] or "").lower()
    if content_type not in TYPES:
        kind = content_type or "of an unknown type"
        raise _Refused(f"{path.name} is {kind}: images, PDF and plain text only (see --type)")
    return content_type, size


def _send(args: argparse.Namespace) -> None:
    if args.attach is None:
        with _remote(args) as (api, _):
            message = api.post_message(args.conversation, args.text)
        print(f"sent message {message}")
        return
    path: Path = args.attach
    content_type, size = _attachment(path, args.type)
    with _local(args) as (local, state), _remote(args) as (api, remote):
        # Asked first: an upload for a message the app refuses would stay on the server.
        if all(found["id"] != args.conversation for found in api.conversations()):
            raise _Refused(f"you are not in conversation {args.conversation}; nothing was sent")
        manager = BlobManager(local, remote, state=state, pair=_PAIR)
        key = f"att/{secrets.token_hex(16)}"
        _say(f"storing {path.name} in {local!r}, then uploading it")
        with path.open("rb") as file:
            manager.put(
                key,
                file,
                content_type=content_type,
                metadata={"filename": path.name[:200]},
                priority="high",
            )
        _sync(local, state, api, remote, "upload")
        if manager.replicator([""]).status(key) is not Status.SYNCED:
            # Never uploaded, so only here: kept, a later sync would upload it for no message.
            manager.delete(key)
            raise _Refused(f"{path.name} could not be uploaded; nothing was sent")
        try:
            message = api.post_message(args.conversation, args.text, (key, path.name))
        except ApiError as error:
            _forget_upload(local, state, key)
            raise _Refused(
                f"the message was not posted: {error}\n{path.name} was uploaded as {key} and "
                "stays on the server, in your namespace, sent in no message (a client's token "
                "cannot delete there); its copy here was dropped"
            ) from None
    print(f"sent message {message} with {path.name} ({size} bytes, {key})")


def _forget_upload(local: DataStore, state: SyncState, key: str) -> None:
    """Drop an uploaded attachment here, and from the sync state: not through
    ``BlobManager.delete``, which would send the delete on (refused to a token, at every
    sync). A later sync finds it on the server as any other item there, and brings it down."""
    local.delete(key)
    state.settle(_PAIR, [Outcome(namespace="", key=key, forget=True)])


def _sync_command(args: argparse.Namespace) -> None:
    with _local(args) as (local, state), _remote(args) as (api, remote):
        report = _sync(local, state, api, remote, "sync")
    moved = ", ".join(
        f"{_DONE.get(kind, kind.value)} {count}" for kind, count in sorted(report.done.items())
    )
    # "nothing to do" only when nothing failed either: a run that could do nothing is not one.
    print(f"synced: {moved or ('nothing to do' if report.ok else 'nothing')}; {report.bytes} bytes")
    if not report.ok:
        raise _Refused(f"{len(report.failures)} failed; the next sync tries them again")


def _conversations(args: argparse.Namespace) -> None:
    with _remote(args) as (api, _):
        for conversation in api.conversations():
            members = ", ".join(conversation["members"])
            print(f"{conversation['id']:>5}  {conversation['title']}  ({members})")


def _ls(args: argparse.Namespace) -> None:
    with _local(args) as (local, state):
        for item in local.list():
            known = state.item(_PAIR, "", item.key)
            status = "local only" if known is None else known.status.value
            flags = ",".join(sorted(str(flag) for flag in item.flags)) or "-"
            name = item.metadata.get("filename", "")
            print(
                f"{item.key}  {item.size:>10}  {item.content_type:<16} {flags:<10} {status}  {name}"
            )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.messenger.client", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--url", default=os.environ.get("MESSENGER_URL", "http://127.0.0.1:8000"), help="the app"
    )
    parser.add_argument("--user", required=True, help="whose account")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MESSENGER_CLIENT_DATA", "client-data")),
        help="the local store's folder (default: ./client-data)",
    )
    parser.add_argument("--password-file", type=Path, metavar="FILE")
    parser.add_argument("--passphrase-file", type=Path, metavar="FILE")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("conversations", help="the user's conversations and their ids")
    send = commands.add_parser("send", help="post a message, with an attachment or not")
    send.add_argument("--conversation", type=int, required=True, metavar="ID")
    send.add_argument("--text", default="")
    send.add_argument("--attach", type=Path, metavar="FILE")
    send.add_argument("--type", help="the file's content type (default: from its name)")
    commands.add_parser("sync", help="upload what is pending, download what is missing")
    commands.add_parser("ls", help="the attachments in the local store (no login)")
    return parser


_COMMANDS = {"conversations": _conversations, "send": _send, "sync": _sync_command, "ls": _ls}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except (_Refused, ApiError, BlobError) as error:
        _say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
