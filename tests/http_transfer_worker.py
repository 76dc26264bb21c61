"""A put and a get of SIZE bytes through HttpStore in its own process; prints the peak RSS
in bytes: ``python -m tests.http_transfer_worker URL TOKEN SIZE``."""

from __future__ import annotations

import hashlib
import sys

from persisty_blobs.stores.http import HttpStore


def blocks(size: int) -> bytes:
    return hashlib.sha256(size.to_bytes(8, "big")).digest() * (1024 * 1024 // 32)


def main(url: str, token: str, size: str) -> None:
    total = int(size)
    block = blocks(total)
    with HttpStore(url, token=token) as store:
        with store.writer("big.bin") as writer:
            for _ in range(total // len(block)):
                writer.write(block)
        digest = hashlib.sha256()
        with store.open("big.bin") as reader:
            while chunk := reader.read(1024 * 1024):
                digest.update(chunk)
        expected = hashlib.sha256()
        for _ in range(total // len(block)):
            expected.update(block)
        assert digest.digest() == expected.digest()
    # VmHWM, not getrusage's ru_maxrss: Linux carries that over exec from the forked image,
    # which is the whole test runner's memory.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print(int(line.split()[1]) * 1024)


if __name__ == "__main__":
    main(*sys.argv[1:])
