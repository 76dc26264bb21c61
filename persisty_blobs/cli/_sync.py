"""``sync`` (the ``Replicator`` between two stores) and ``check`` (compare by checksum).

SRC is the replicator's side ``a``, DST its side ``b``. The state of each pair (the base,
the queue) is a SQLite file in the state directory named by a hash of both locations, so
the same two locations always resume from the same state, whatever the current directory.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import BlobError, InvalidKey
from ..item import Entry
from ..keys import validate_namespace
from ..store import DataStore
from ._address import Location, check_location, local_place, open_location, split_locations
from ._config import state_dir
from ._errors import DIFFERENCES, CliFailure
from ._keys import load_keyring
from ._output import echo_json, json_option
from ._progress import Meter, quiet

if TYPE_CHECKING:
    from ..sync.diff import Differ

__all__ = ["check", "sync"]

_POLICIES = ["keep-both", "prefer-a", "prefer-b", "newer", "manual"]
_PAIR = "cli"  # one pair per state file: the file is named after the two locations


def _pair(
    arguments: tuple[str, ...],
    encrypt: str | None,
    namespaces: tuple[str, ...] = (),
    *,
    existing: bool = False,
) -> tuple[str, DataStore, DataStore, str]:
    """The state file, both stores (DST under ``EncryptedStore`` with ``--encrypt``) and the
    shared prefix. Everything is checked before a store is opened (opening one may make it);
    ``existing``: both must be there already."""
    source, target = split_locations(arguments, 2, 2)
    if not (source.is_store and target.is_store):
        raise click.UsageError("both SRC and DST are stores (NAME:prefix or URL [PREFIX])")
    if source.path != target.path:
        # One prefix for both sides would also move the other side's keys under it (a folder
        # synced to s3:notes/ would gain a notes/ folder of its own and upload nothing else).
        raise click.UsageError(
            "SRC and DST name the same keys: give both the same prefix (home:docs/ "
            "backup:docs/), or none and root a store there (file:///home/me/notes, "
            "s3://bucket/notes)"
        )
    for name in namespaces:
        try:
            validate_namespace(name)
        except InvalidKey as error:
            raise click.UsageError(f"{name!r} is no namespace name: {error}") from None
    check_location(source)
    check_location(target)
    _refuse_nested_folders(source, target)
    state = _state_path(source, target)
    for side in (source, target):
        place = local_place(side)
        if place is not None and place in Path(state).parents:
            raise click.UsageError(
                f"the sync state {state!r} lies inside {side.text!r}, so each run would copy "
                "it: set PERSISTY_BLOBS_STATE_DIR to a folder outside"
            )
    keyring = None if encrypt is None else load_keyring(encrypt)
    Path(state).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    a = open_location(source, existing=existing)
    b = open_location(target, existing=existing)
    if keyring is not None:
        from ..crypto import EncryptedStore

        b = EncryptedStore(b, keyring)
    return state, a, b, source.path


def _refuse_nested_folders(source: Location, target: Location) -> None:
    """Two folders one of which holds the other would copy each into itself at every sync
    (rclone refuses such "overlapping remotes" too), as would a folder holding the other
    side's database file."""
    if _settings(source) == _settings(target):
        raise click.UsageError(f"{source.text!r} and {target.text!r} are the same store")
    first, second = local_place(source), local_place(target)
    if first is None or second is None:
        return
    # One database file under other options (a table prefix) holds another store; one
    # folder, however spelled, is one store.
    other_options = _options_of(source) != _options_of(target)
    if (
        (first == second and not other_options)
        or first in second.parents
        or (second in first.parents)
    ):
        raise click.UsageError(
            f"{source.text!r} and {target.text!r} overlap: one holds the other, "
            "so each run would copy the tree into itself again"
        )


def _options_of(location: Location) -> dict[str, Any]:
    return {} if location.remote is None else dict(location.remote.options)


def _settings(location: Location) -> tuple[str | None, dict[str, Any] | None]:
    """What opens the store: its URL, and a saved remote's options and secrets' sources."""
    return location.url, None if location.remote is None else location.remote.to_json()


def _state_path(source: Location, target: Location) -> str:
    digest = hashlib.sha256(f"{source.identity}\n\n{target.identity}".encode()).hexdigest()
    return str((state_dir() / "sync" / f"{digest[:24]}.db").resolve())


_KEYRING = "this keyring file (persisty-blobs keys generate)"
namespaces_option = click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Only this namespace (repeatable; default: every namespace of either side).",
)


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs sync file:///home/me/photos photos:\n"
    "  persisty-blobs sync --direction push --dry-run laptop:docs/ server:docs/\n"
    "  persisty-blobs sync --encrypt ~/.keys/backup.json file:///home/me/notes s3://bucket/notes"
)
@click.argument("arguments", nargs=-1, required=True)
@click.option(
    "--direction",
    type=click.Choice(["both", "push", "pull"]),
    default="both",
    show_default=True,
    help="push: SRC to DST only; pull: DST to SRC only.",
)
@click.option(
    "--conflict",
    type=click.Choice(_POLICIES),
    default="keep-both",
    show_default=True,
    help="When both changed a key: a is SRC, b is DST.",
)
@click.option(
    "--max-delete",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Stop (changing nothing) if a run would delete more than this share of a side.",
)
@click.option("--force", is_flag=True, help="Run even past --max-delete or an empty side.")
@click.option("--dry-run", is_flag=True, help="Print the plan as a table; change nothing.")
@click.option("--trash", metavar="NS", help="Keep what a run deletes or overwrites in NS.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--resync",
    is_flag=True,
    help="Forget what the two sides last agreed on and start afresh: equal items are adopted, "
    "an item on one side is copied, one that differs is kept both ways; nothing is deleted.",
)
@click.option("--encrypt", metavar="KEYRING", help=f"Keep DST as ciphertext under {_KEYRING}.")
@namespaces_option
@json_option
def sync(
    arguments: tuple[str, ...],
    direction: str,
    conflict: str,
    max_delete: float,
    force: bool,
    dry_run: bool,
    trash: str | None,
    concurrency: int,
    resync: bool,
    encrypt: str | None,
    namespaces: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replicate SRC and DST in every namespace, resuming where the last run stopped."""
    from ..sync import Replicator, SyncAborted, SyncState, _runs

    if trash is not None and (not trash or trash in namespaces):
        raise click.UsageError("--trash names a namespace of its own, never synced")
    if resync and dry_run:
        raise click.UsageError("--resync forgets the pair's state at once: it has no dry run")
    path, a, b, prefix = _pair(arguments, encrypt, (*namespaces, *([trash] if trash else [])))
    state = SyncState(path)
    click.get_current_context().call_on_close(state.close)
    if resync:
        _runs.forget_pair(state, _PAIR)
    replicator = Replicator(
        a,
        b,
        state,
        pair=_PAIR,
        direction=direction,  # type: ignore[arg-type]
        namespaces=list(namespaces) or None,
        prefix=prefix,
        conflict=conflict,  # type: ignore[arg-type]
        max_delete=max_delete,
        force=force,
        trash=trash,
        concurrency=concurrency,
    )
    if dry_run:
        actions, refusal = replicator._planned()
        _print_plan(actions, as_json)
        if refusal is not None:
            raise CliFailure(f"a sync would stop before acting: {_for_the_command(refusal)}")
        return
    with Meter("sync") as meter:
        try:
            report = replicator.run(progress=lambda event: _on_event(meter, event))
        except SyncAborted as refused:
            raise CliFailure(_for_the_command(refused)) from None
    done = {kind.value: count for kind, count in sorted(report.done.items())}
    summary: dict[str, object] = {
        "done": done,
        "bytes": report.bytes,
        "seconds": round(report.seconds, 3),
        "failures": len(report.failures),
        "conflicts": report.conflicts,
        "deletes_skipped": report.deletes_skipped,
    }
    if as_json:
        echo_json(summary)
    elif not quiet():
        counts = ", ".join(f"{kind} {count}" for kind, count in done.items()) or (
            "nothing done" if report.failures else "nothing to do"
        )
        click.echo(f"synced: {counts}; {report.bytes} bytes in {report.seconds:.1f} s")
    if report.conflicts and not as_json:
        click.echo(
            f"persisty-blobs: {report.conflicts} conflicts wait for a choice: sync again with "
            "--conflict prefer-a, prefer-b, newer or keep-both",
            err=True,
        )
    if report.deletes_skipped and not as_json:
        click.echo(
            f"persisty-blobs: {report.deletes_skipped} deletes held back because a transfer "
            "failed; the first sync whose transfers all succeed carries them out",
            err=True,
        )
    for namespace, key, kind, error in report.failures:
        where = f"{namespace}:" if namespace else ""
        click.echo(f"persisty-blobs: {kind.value} {where}{key} failed: {error}", err=True)
    if report.failures:
        hint = "the next sync tries them again"
        if any(error.startswith("DecryptionError") for *_, error in report.failures):
            hint = "the keyring lacks some of their keys: a wrong --encrypt keyring?"
        raise CliFailure(f"{len(report.failures)} items failed; {hint}")


def _for_the_command(refused: BlobError) -> str:
    """A refusal's message in this command's terms."""
    message = f"{type(refused).__name__}: {refused}".replace("force=True", "--force")
    if str(refused).startswith("the state's pair"):  # not the stores it synced
        message += "\n--resync starts these two afresh"
    return message


def _on_event(meter: Meter, event: Any) -> None:
    if event.kind == "planned":
        meter.plan(total=event.bytes, items=event.items)
    elif event.kind == "bytes":
        meter.advance(event.bytes)
    elif event.kind == "retry":
        meter.advance(-event.bytes)  # the attempt's bytes are moved again
    else:
        meter.advance(-event.bytes)  # a failure's (none if it is done) were never kept
        meter.item_done()


def _print_plan(actions: list[Any], as_json: bool) -> None:
    if as_json:
        for action in actions:
            echo_json(
                {
                    "action": action.kind.value,
                    "namespace": action.namespace,
                    "key": action.key,
                    "size": action.size,
                    "reason": action.reason,
                }
            )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("action", "namespace", "key", "size", "reason", title=f"{len(actions)} actions")
    for action in actions:
        table.add_row(
            action.kind.value, action.namespace, action.key, str(action.size), action.reason
        )
    # Piped, the table keeps whole lines rather than wrapping at 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@click.command(
    epilog="\b\nExamples:\n  persisty-blobs check file:///home/me/photos photos:\n"
    "  persisty-blobs check --json --encrypt backup.json file:///home/me/notes s3://bucket/notes"
    " | jq .key"
)
@click.argument("arguments", nargs=-1, required=True)
@click.option(
    "--encrypt", metavar="KEYRING", help=f"DST is ciphertext under {_KEYRING}: compare plaintext."
)
@namespaces_option
@json_option
def check(
    arguments: tuple[str, ...], encrypt: str | None, namespaces: tuple[str, ...], as_json: bool
) -> None:
    """Compare SRC and DST by checksum; exit status 1 if anything differs."""
    from ..sync.diff import Differ, merge

    _, a, b, prefix = _pair(arguments, encrypt, existing=True)
    names = sorted(set(namespaces) or set(a.namespaces()) | set(b.namespaces()))
    differences = 0
    for namespace in names:
        view_a, view_b = a.namespace(namespace), b.namespace(namespace)
        differ = Differ(namespace, view_a, view_b)
        for key, entry_a, entry_b, _ in merge(view_a.scan(prefix), view_b.scan(prefix), iter(())):
            verdict = _verdict(differ, entry_a, entry_b)
            if verdict is None:
                continue
            differences += 1
            if as_json:
                click.echo(json.dumps({"namespace": namespace, "key": key, "verdict": verdict}))
            else:
                click.echo(f"{verdict}: {f'{namespace}:' if namespace else ''}{key}")
    if not as_json:
        plural = "" if differences == 1 else "s"
        click.echo(f"{differences or 'no'} difference{plural}", err=True)
    if differences:
        sys.exit(DIFFERENCES)


def _verdict(differ: Differ, entry_a: Entry | None, entry_b: Entry | None) -> str | None:
    """None if both hold the same content, else what differs; an item that cannot be read
    (it fails authentication, or its checksum) is a difference, and the check goes on."""
    if entry_a is None:
        return "only in DST"
    if entry_b is None:
        return "only in SRC"
    if entry_a.size != entry_b.size:
        return "differs"
    from ..sync.diff import UNREADABLE

    sides = []
    for side, entry in (("a", entry_a), ("b", entry_b)):
        try:
            sides.append(differ.checksum(side, entry))
        except UNREADABLE as error:
            return f"unreadable in {'SRC' if side == 'a' else 'DST'} ({type(error).__name__})"
    return None if sides[0] == sides[1] else "differs"
