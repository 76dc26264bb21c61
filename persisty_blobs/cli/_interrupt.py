"""Ctrl-C: the first stops the command cleanly, a second exits at once.

The first SIGINT raises ``KeyboardInterrupt`` in the main thread, so every writer open there
is discarded (a writer commits only on a clean exit) and a sync saves its state on the way
out; transfers running on other threads stop at their next block (``check``). A second
SIGINT ends the process at once: what it leaves is never visible as an item (a temp file,
an unreferenced SQL version or an unfinished multipart upload), and the next open or run
cleans it up.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from ._errors import INTERRUPTED

__all__ = ["Interrupted", "check", "install"]

_interrupted = threading.Event()


class Interrupted(Exception):
    """Raised in a worker thread's transfer after Ctrl-C, so its writer is discarded."""


def _handler(signum: int, frame: FrameType | None) -> None:
    if _interrupted.is_set():
        os._exit(INTERRUPTED)
    _interrupted.set()
    sys.stderr.write("\ninterrupted: stopping cleanly (Ctrl-C again to exit at once)\n")
    sys.stderr.flush()
    raise KeyboardInterrupt


def install() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise ``Interrupted`` once Ctrl-C was pressed (called between blocks of a transfer)."""
    if _interrupted.is_set():
        raise Interrupted("interrupted")
