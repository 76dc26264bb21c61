"""One measured operation, in its own process: prints {"seconds", "peak_rss"} as JSON."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable

from persisty_blobs.stores import DirectoryStore


def raw_copy(source: str, target: str) -> None:
    """The baseline write: shutil.copyfileobj into a new file, then fsync (the same
    durability a store's put gives)."""
    with open(source, "rb") as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer)
        writer.flush()
        os.fsync(writer.fileno())


def raw_read(source: str) -> None:
    with open(source, "rb") as reader, open(os.devnull, "wb") as sink:
        shutil.copyfileobj(reader, sink)


def directory_put(source: str, root: str) -> None:
    with open(source, "rb") as reader:
        DirectoryStore(root).put("big.bin", reader)


def directory_get(root: str) -> None:
    with DirectoryStore(root).open("big.bin") as reader, open(os.devnull, "wb") as sink:
        shutil.copyfileobj(reader, sink)


OPERATIONS: dict[str, Callable[..., None]] = {
    "raw_copy": raw_copy,
    "raw_read": raw_read,
    "directory_put": directory_put,
    "directory_get": directory_get,
}


def main() -> None:
    operation, *arguments = sys.argv[1:]
    started = time.perf_counter()
    OPERATIONS[operation](*arguments)
    seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss}))


if __name__ == "__main__":
    main()
