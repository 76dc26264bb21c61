"""The boto3 client an ``S3Store`` makes for itself, and what a forked child must do with one
it inherited."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...registry import require

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["forget_connections", "new_client"]


def new_client(
    endpoint_url: str | None,
    region: str | None,
    *,
    max_concurrency: int,
    max_attempts: int,
    connect_timeout: float,
    read_timeout: float,
) -> S3Client:
    """A client with boto3's usual credential chain and botocore's standard retry mode."""
    boto3 = require("boto3", extra="s3")
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",  # presigned URLs and forms too; AWS refuses the older one
        # total_max_attempts counts the first try too; botocore's max_attempts does not.
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Parts in flight, plus listing's HEADs, each hold a connection.
        max_pool_connections=max(10, 2 * max_concurrency + 2),
    )
    client: S3Client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )
    return client


def forget_connections(client: Any) -> None:
    """Drop the connections a forked child inherited in ``client``'s pool: the parent still
    uses those sockets, and two processes reading one socket get each other's responses.
    ``close`` closes the child's copies only (the parent's stay open) and leaves the client
    usable: its pool opens new connections on demand."""
    client.close()
