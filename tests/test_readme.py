"""Every Python block of README.md runs as written.

The blocks run in order in one namespace, as a reader follows them (each continues the ones
before), in an empty working folder. The servers are the suite's own: ``DATABASE_URL`` names
the PostgreSQL server, and boto3 finds moto's S3 server through its standard
``AWS_ENDPOINT_URL_S3`` and credentials variables, as it would find MinIO or AWS. Nothing in
a block is rewritten.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from persisty_blobs import DataStore

from .conftest import drop_tables, server_url, unavailable

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
TABLE_PREFIX = "blobs"  # the README's


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Each ```python block of ``text`` with the line its code starts on."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _BLOCK.finditer(text)
    ]


def test_blocks_are_found() -> None:
    blocks = python_blocks("text\n```python\na = 1\n```\n```sh\nmake\n```\n```python\nb = 2\n```\n")
    assert blocks == [(3, "a = 1\n"), (9, "b = 2\n")]
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 7  # as of this writing


def test_readme_python_blocks_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    for module in ("sqlalchemy", "sqlcipher3", "boto3"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"the README's blocks need {module}: pip install -e '.[all]'")
    from persisty_blobs.testing.moto import moto_client

    database = server_url("postgresql")
    drop_tables(database, TABLE_PREFIX)  # left by a run that was killed
    client = moto_client(s3_endpoint)
    if "my-bucket" not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="my-bucket")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    namespace: dict[str, object] = {"__name__": "readme"}
    opened: dict[int, DataStore] = {}
    try:
        for line, source in python_blocks(README.read_text(encoding="utf-8")):
            # Padded so that a traceback names the README's own line.
            exec(compile("\n" * (line - 1) + source, str(README), "exec"), namespace)
            opened.update(
                (id(value), value) for value in namespace.values() if isinstance(value, DataStore)
            )
    finally:
        for store in opened.values():
            store.close()
        drop_tables(database, TABLE_PREFIX)
