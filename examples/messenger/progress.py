"""A one-line progress bar on stderr for a replication run: the backup's and the client's."""

from __future__ import annotations

import sys

from persisty_blobs.sync import ProgressEvent

__all__ = ["ProgressBar"]


class ProgressBar:
    """Pass it as a run's ``progress``: items and MiB done of the run's planned totals."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.items = self.total_items = self.bytes = self.total_bytes = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "planned":
            self.total_items, self.total_bytes = event.items, event.bytes
        elif event.kind == "bytes":
            self.bytes += event.bytes
        elif event.kind == "retry":  # the failed attempt's bytes are moved again
            self.bytes -= event.bytes
        elif event.kind in ("done", "failed"):
            self.bytes -= event.bytes  # a failure's last attempt's; none for a done one
            self.items += 1
        if not self.total_items:
            return
        filled = 30 * self.items // self.total_items
        sys.stderr.write(
            f"\r{self.verb} [{'#' * filled}{'.' * (30 - filled)}] {self.items}/{self.total_items}"
            f" items, {self.bytes / 2**20:.1f}/{self.total_bytes / 2**20:.1f} MiB"
        )
        if self.items == self.total_items:
            sys.stderr.write("\n")
