"""A short tour of persisty-blobs on the embedded default: a directory store.

Run it with ``make tour`` (or ``python examples/tour.py ./demo-data/tour``).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import persisty_blobs as pb


def main(root: str) -> None:
    store = pb.open_store(Path(root).resolve().as_uri())
    print(f"Store: {store!r}\n")

    item = store.put("notes/hello.txt", b"Hello, persisty-blobs!\n", metadata={"author": "tour"})
    print(f"put     {item.key}: {item.size} bytes, {item.content_type}, {item.checksum}")
    with store.writer("photos/2026/cat.jpg") as writer:
        for _ in range(4):
            writer.write(b"\xff" * 65536)  # streamed, never held whole in memory
    assert writer.item is not None
    print(f"writer  {writer.item.key}: {writer.item.size} bytes, {writer.item.content_type}")

    print("\nlist (ascending key order):")
    for listed in store.list():
        print(f"  {listed.key:<24} {listed.size:>8} bytes  etag {listed.etag[:12]}…")

    excerpt = store.read_bytes("notes/hello.txt", 7, 21)
    print(f"\nrange   bytes 7..21 of notes/hello.txt: {excerpt!r}")

    with store.open("notes/hello.txt") as reader:
        reader.seek(-5, io.SEEK_END)  # readers seek, by range reads underneath
        print(f"seek    the last 5 bytes: {reader.read()!r}")

    store.set_flags("photos/2026/cat.jpg", [pb.Flag.PENDING])
    store.put("inbox/new.txt", b"to process\n", flags=[pb.Flag.PENDING])  # flags in the same step
    pending = [listed.key for listed in store.list(flag=pb.Flag.PENDING)]
    print(f"flags   pending items: {pending}")

    print("\nscan (the cheap listing a sync reads):")
    for entry in store.scan():
        print(f"  {entry.key:<24} {entry.size:>8} bytes  {entry.checksum}")

    try:
        store.put("notes/hello.txt", b"overwrite?", if_none_match="*")
    except pb.AlreadyExists as exc:
        print(f"guard   {type(exc).__name__}: {exc}")

    alice = store.namespace("alice")
    alice.put("notes/hello.txt", b"Alice's own hello\n")
    print(f"\nnamespaces: {store.namespaces()}")
    print(f"  default notes/hello.txt -> {store.read_bytes('notes/hello.txt')!r}")
    print(f"  alice   notes/hello.txt -> {alice.read_bytes('notes/hello.txt')!r}")
    print(f"\nItems are plain files: look in {root}/notes and {root}/photos")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "./demo-data")
