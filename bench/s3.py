"""S3Store against boto3's own transfer functions and listing, on one moto server (in its own
process, so neither side's RSS includes what the server holds)."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._harness import Row, compare
from .directory import make_source

MAX_SIZE = 256 * 1024 * 1024  # moto keeps objects in memory; the size
LISTED_KEYS = 10_000


def run(size: int, repeats: int) -> list[Row]:
    from persisty_blobs.stores.s3 import S3Store
    from persisty_blobs.testing.moto import moto_client, moto_server

    size = min(size, MAX_SIZE)
    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as scratch,
        moto_server() as endpoint,
    ):
        source = Path(scratch) / "source.bin"
        make_source(source, size)
        client = moto_client(endpoint)
        client.create_bucket(Bucket="bench")
        with S3Store("bench", client=client) as store, open(source, "rb") as reader:
            store.put("big.bin", reader)  # for the first get
        client.upload_file(str(source), "bench", "raw/big.bin")
        rows = [
            compare(
                f"S3Store {verb} {size >> 20} MiB",
                size,
                (f"s3_{verb}", [*arguments, endpoint, "bench"]),
                (f"boto3_{verb}", [*arguments, endpoint, "bench"]),
                repeats,
            )
            for verb, arguments in (("put", [str(source)]), ("get", []))
        ]
        # The same put against boto3 doing the same work: the upload, then the copy onto
        # itself that has S3 compute and keep the whole object's SHA-256.
        rows.append(
            compare(
                f"S3Store put {size >> 20} MiB (vs + checksum copy)",
                size,
                ("s3_put", [str(source), endpoint, "bench"]),
                ("boto3_put_checksummed", [str(source), endpoint, "bench"]),
                repeats,
            )
        )
        client.create_bucket(Bucket="listing")
        with ThreadPoolExecutor(8) as pool:
            keys = (f"items/many/{index:05d}" for index in range(LISTED_KEYS))
            list(pool.map(lambda key: client.put_object(Bucket="listing", Key=key, Body=b""), keys))
        rows.append(
            compare(
                f"S3Store list {LISTED_KEYS} keys",
                LISTED_KEYS,
                ("s3_list", [endpoint, "listing"]),
                ("boto3_list", [endpoint, "listing"]),
                repeats,
                unit="items/s",
            )
        )
        return rows
