"""Servers the suite talks to over real connections, and the rule for when one is missing:
skip with the reason on a laptop, fail under CI (``CI=true``), which must never skip them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

SERVER_URLS = {
    "postgresql": os.environ.get(
        "PERSISTY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    # PyMySQL builds a TLS context for every new connection unless told not to (about 50 ms:
    # it loads the system's CA certificates); on loopback the tests make thousands.
    "mariadb": os.environ.get(
        "PERSISTY_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test?ssl_disabled=true"
    ),
}


def unavailable(reason: str) -> None:
    """Skip, or under CI fail, because a server or dependency the test needs is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: tests that need it must run, not skip)")
    pytest.skip(reason)


def server_url(backend: str) -> str:
    """The URL of a reachable database server, after one quick connection."""
    import sqlalchemy as sa

    url = SERVER_URLS[backend]
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        unavailable(f"{backend} is unreachable at {url}: {error.orig}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def table_prefix() -> str:
    """A fresh table prefix: each test gets its own tables on a shared server."""
    return f"t{secrets.token_hex(6)}"


def drop_tables(url: str, prefix: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for suffix in ("flags", "chunks", "versions", "items", "runs", "schema"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}_{suffix}")
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[str]:
    """The URL of each database server in turn; the test's tables are dropped afterwards."""
    url = server_url(request.param)
    yield url
    drop_tables(url, table_prefix)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, for the whole session."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as error:
        unavailable(f"the S3 tests need boto3 and moto[server]: {error}")
    from persisty_blobs.testing.moto import moto_server

    with moto_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on the session's S3 server."""
    from persisty_blobs.testing.moto import moto_client

    name = f"test-{secrets.token_hex(6)}"
    moto_client(s3_endpoint).create_bucket(Bucket=name)
    return name
