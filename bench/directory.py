"""DirectoryStore put and get of one large item against shutil.copyfileobj in the same run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ._harness import Row, compare


def make_source(path: Path, size: int) -> None:
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as file:
        for _ in range(size // len(block)):
            file.write(block)


def run(size: int, repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as scratch:
        source = Path(scratch) / "source.bin"
        make_source(source, size)
        store_root = str(Path(scratch) / "store")
        copy_target = str(Path(scratch) / "copy.bin")
        put = compare(
            "DirectoryStore put",
            size,
            ("directory_put", [str(source), store_root]),
            ("raw_copy", [str(source), copy_target]),
            repeats,
        )
        get = compare(
            "DirectoryStore get",
            size,
            ("directory_get", [store_root]),
            ("raw_read", [copy_target]),
            repeats,
        )
        return [put, get]
