"""Progress bars on stderr: bytes, rate, ETA and items done of total.

Shown only when stdout and stderr are terminals and ``--quiet`` was not given, so output
piped to another program or a file never carries them. A meter is safe to advance from
several threads (a sync's workers) and checks for Ctrl-C at every block it counts.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

import click

from . import _interrupt

__all__ = ["Meter", "Settings", "quiet"]


class Settings:
    """The root command's options, for every command (``ctx.obj``)."""

    def __init__(self, *, quiet: bool = False, debug: bool = False) -> None:
        self.quiet = quiet
        self.debug = debug


def quiet() -> bool:
    """True under ``--quiet``."""
    context = click.get_current_context(silent=True)
    settings = None if context is None else context.find_object(Settings)
    return settings is not None and settings.quiet


def _wanted() -> bool:
    return not quiet() and sys.stdout.isatty() and sys.stderr.isatty()


class Meter:
    """One bar: ``total`` bytes over ``items`` items (None: not known yet)."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        items: int | None = None,
        show: bool = True,
    ) -> None:
        self.label = label
        self._progress: Any = None
        self._task: Any = None
        self._total, self._items, self._done = total, items, 0
        self._counting = threading.Lock()
        self._planned = total is not None
        if show and _wanted():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[count]}"),
                console=Console(stderr=True),
                transient=False,
            )

    def _count(self) -> str:
        if self._items is None:
            return f"{self._done} items" if self._done != 1 else ""
        return f"{self._done}/{self._items} items"

    def __enter__(self) -> Meter:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self._total, count="")
            self._progress.update(self._task, count=self._count())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def plan(self, *, total: int, items: int) -> None:
        """Set the totals once they are known (a sync knows them after planning)."""
        self._total, self._items, self._planned = total, items, True
        if self._progress is not None:
            self._progress.update(self._task, total=total, count=self._count())

    def expect(self, size: int) -> None:
        """The size of the one item a meter without totals moves."""
        if not self._planned:
            self.plan(total=size, items=1)

    def advance(self, count: int) -> None:
        _interrupt.check()
        if self._progress is not None:
            self._progress.advance(self._task, count)

    def item_done(self) -> None:
        with self._counting:  # a sync's workers report on their own threads
            self._done += 1
        if self._progress is not None:
            self._progress.update(self._task, count=self._count())
