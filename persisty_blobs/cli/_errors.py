"""Exit statuses and the one-line error report.

Every failure reaches the user as one line on stderr naming the key and the store, without a
traceback unless ``--debug``. Secret values read for a remote are replaced by ``***`` in
every line printed, whatever error carried them.
"""

from __future__ import annotations

import errno
import sys
import traceback

import click

from .. import errors

__all__ = [
    "DIFFERENCES",
    "FAILURE",
    "INTERRUPTED",
    "NOT_FOUND",
    "OK",
    "USAGE",
    "CliFailure",
    "CliNotFound",
    "exit_status",
    "hide_secret",
    "report",
]

OK = 0
FAILURE = 1
DIFFERENCES = 1  # `check` found items that differ
USAGE = 2  # click's own status for a usage error
NOT_FOUND = 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

_BAD_INPUT = (
    errors.InvalidKey,
    errors.InvalidMetadata,
    errors.InvalidFlags,
    errors.InvalidArgument,
    errors.InvalidArgumentType,
)
_SECRETS: set[str] = set()


class CliFailure(click.ClickException):
    """A failure the command itself detected (exit status 1)."""

    exit_code = FAILURE


class CliNotFound(CliFailure):
    """A remote, a local file or an item that does not exist (exit status 3)."""

    exit_code = NOT_FOUND


def hide_secret(value: str) -> None:
    """Never print ``value``: every reported line has it replaced by ``***``."""
    if value:
        _SECRETS.add(value)


def _scrubbed(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def exit_status(error: BaseException) -> int:
    if isinstance(error, click.ClickException):
        return error.exit_code
    if isinstance(error, errors.NotFound):
        return NOT_FOUND
    if isinstance(error, _BAD_INPUT):
        return USAGE
    if isinstance(error, FileNotFoundError | NotADirectoryError):
        return NOT_FOUND
    if isinstance(error, OSError) and error.errno == errno.ENOENT:
        return NOT_FOUND
    return FAILURE


def _line(error: BaseException) -> str:
    if isinstance(error, click.exceptions.NoArgsIsHelpError):  # a bare group: its help
        return error.format_message().rstrip()
    if isinstance(error, click.UsageError):
        usage = error.ctx.get_usage() + "\n" if error.ctx is not None else ""
        hint = f"Try '{error.ctx.command_path} --help'.\n" if error.ctx is not None else ""
        return f"{usage}{hint}persisty-blobs: usage: {error.format_message()}"
    if isinstance(error, click.ClickException):
        return f"persisty-blobs: {error.format_message()}"
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename!r}" if error.filename is not None else ""
        return f"persisty-blobs: {error.strerror}:{where}".rstrip(":")
    return f"persisty-blobs: {type(error).__name__}: {error}"


def report(error: BaseException, *, debug: bool) -> int:
    """Print ``error`` as one line (with its traceback under ``--debug``); its exit status."""
    if debug:
        text = "".join(traceback.format_exception(error))
        sys.stderr.write(_scrubbed(text))
    sys.stderr.write(_scrubbed(_line(error)) + "\n")
    sys.stderr.flush()
    return exit_status(error)
