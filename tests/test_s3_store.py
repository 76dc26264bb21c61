"""S3Store against moto's S3 server over real HTTP on loopback, through boto3: the
conformance suite, and what is peculiar to S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from persisty_blobs.stores import S3Store
from persisty_blobs.testing import StoreConformance
from persisty_blobs.testing.moto import moto_client

MiB = 1024 * 1024


def new_store(endpoint: str, bucket: str, **options: Any) -> S3Store:
    settings = {"multipart_threshold": 5 * MiB, "part_size": 5 * MiB, **options}
    return S3Store(bucket, "app", client=moto_client(endpoint), **settings)


class TestS3StoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, s3_endpoint: str, s3_bucket: str) -> Iterator[S3Store]:
        with new_store(s3_endpoint, s3_bucket) as store:
            yield store
