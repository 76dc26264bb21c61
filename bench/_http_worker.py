"""One measured HTTP operation in its own process; prints {"seconds", "peak_rss"} as JSON.

``python -m bench._http_worker OPERATION URL SIZE`` with OPERATION one of ``store_put``,
``store_get``, ``plain_put``, ``plain_get`` (1 item of SIZE bytes) or ``store_small``,
``plain_small`` (SIZE requests for a 1 KiB item).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator

import httpx

from persisty_blobs.stores.http import HttpStore

from ._harness import peak_rss

_BLOCK = os.urandom(1024 * 1024)
_HEADERS = {"authorization": "Bearer bench-token"}


def _blocks(size: int) -> Iterator[bytes]:
    for _ in range(size // len(_BLOCK)):
        yield _BLOCK


def store_put(url: str, size: int) -> None:
    with HttpStore(url, token="bench-token") as store, store.writer("big.bin") as writer:
        for block in _blocks(size):
            writer.write(block)


def store_get(url: str, size: int) -> None:
    with HttpStore(url, token="bench-token") as store, store.open("big.bin") as reader:
        while reader.read(1024 * 1024):
            pass


def plain_put(url: str, size: int) -> None:
    with httpx.Client(timeout=120) as client:
        client.put(f"{url}/plain/big.bin", content=_blocks(size)).raise_for_status()


def plain_get(url: str, size: int) -> None:
    with httpx.Client(timeout=120) as client, client.stream("GET", f"{url}/plain/big.bin") as r:
        for _ in r.iter_raw(1024 * 1024):
            pass


def store_small(url: str, count: int) -> None:
    with HttpStore(url, token="bench-token") as store:
        store.put("small.bin", _BLOCK[:1024])
        for _ in range(count):
            store.read_bytes("small.bin")


def plain_small(url: str, count: int) -> None:
    with httpx.Client(timeout=60) as client:
        client.put(f"{url}/plain/small.bin", content=_BLOCK[:1024]).raise_for_status()
        for _ in range(count):
            client.get(f"{url}/plain/small.bin").raise_for_status()


OPERATIONS: dict[str, Callable[[str, int], None]] = {
    "store_put": store_put,
    "store_get": store_get,
    "plain_put": plain_put,
    "plain_get": plain_get,
    "store_small": store_small,
    "plain_small": plain_small,
}

if __name__ == "__main__":
    operation, url, size = sys.argv[1:]
    started = time.perf_counter()
    OPERATIONS[operation](url, int(size))
    seconds = time.perf_counter() - started
    peak = peak_rss()
    print(json.dumps({"seconds": seconds, "peak_rss": peak}))
