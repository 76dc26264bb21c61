"""The root command and ``main``: global options, Ctrl-C, and every error as one line with
its exit status (usage 2, not found 3, failure 1)."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from . import _interrupt
from ._copy import cp
from ._errors import INTERRUPTED, OK, report
from ._items import cat, flags, get, ls, put, rm
from ._keys import keys
from ._presign import presign
from ._progress import Settings
from ._remotes import remote
from ._serve import serve
from ._sync import check, sync

__all__ = ["cli", "main"]

_EPILOG = """\b
Stores are named by their open_store URL (its key is the next argument) or by a saved
remote as NAME:key/prefix:
  persisty-blobs remote add photos file:///srv/photos
  persisty-blobs ls photos:2024/
  persisty-blobs cp ./album photos:2024/album/
  persisty-blobs ls s3://bucket/app 2024/
\b
Exit status: 0 ok, 1 failure (or differences for check), 2 usage, 3 not found, 130 Ctrl-C.
Remotes: $PERSISTY_BLOBS_CONFIG_DIR (default ~/.config/persisty-blobs); sync state:
$PERSISTY_BLOBS_STATE_DIR (default ~/.local/state/persisty-blobs)."""


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.version_option(__version__, prog_name="persisty-blobs")
@click.pass_context
def cli(context: click.Context, quiet: bool, debug: bool) -> None:
    """Every persisty-blobs store from the shell: list, copy, sync, check, sign, serve."""
    context.obj = Settings(quiet=quiet, debug=debug)


for _command in (ls, cat, put, get, rm, cp, sync, check, presign, serve, keys, flags, remote):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status."""
    _interrupt.install()
    arguments = sys.argv[1:] if argv is None else argv
    debug = "--debug" in arguments
    try:
        cli.main(arguments, prog_name="persisty-blobs", standalone_mode=False)
        status = OK
    except click.exceptions.Exit as done:
        status = done.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as stopped:
        # click turns Ctrl-C into Abort; a declined confirmation is one too.
        if not isinstance(stopped, click.exceptions.Abort) or isinstance(
            stopped.__cause__, KeyboardInterrupt
        ):
            sys.stderr.write("persisty-blobs: interrupted\n")
            status = INTERRUPTED
        else:
            status = report(click.ClickException("aborted"), debug=False)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = OK
    except SystemExit as exiting:
        status = exiting.code if isinstance(exiting.code, int) else 1
    except Exception as error:
        status = report(error, debug=debug)
    sys.exit(status)
