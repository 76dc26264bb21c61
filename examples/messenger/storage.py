"""Where the messenger keeps things, read from the environment, and what an attachment may be.

``MESSENGER_DATA`` (default ``./demo-data``) holds the SQLite database, the directory store and
the generated secret; ``MESSENGER_DATABASE_URL`` (PostgreSQL) and ``MESSENGER_STORE``
(``s3://bucket/prefix?endpoint_url=...``) replace the first two, ``MESSENGER_SECRET`` the last.
Each user's attachments live in their own namespace of the store.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from persisty_blobs import DataStore, PermissionDenied, open_store

if TYPE_CHECKING:
    from persisty_blobs.server import HostedDataStoreFactory
    from persisty_blobs.stores.s3 import S3DataStoreFactory

__all__ = [
    "BLOBS_PATH",
    "MAX_SIZE",
    "TYPES",
    "Settings",
    "namespace_of",
    "open_factory",
    "sniff",
]

MAX_SIZE = 25 * 1024 * 1024
TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"]
#: Where the app mounts the hosted store (non-S3 stores): forms and signed URLs point here.
BLOBS_PATH = "/blobs"

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
]


def sniff(head: bytes) -> str | None:
    """The type the content's first bytes show, among ``TYPES``; None for anything else."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"\0" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # Only a character cut by the end of the sample is forgiven.
        if error.start < len(head) - 3:
            return None
    return "text/plain"


def namespace_of(user_id: int) -> str:
    return f"u{user_id}"


@dataclass(frozen=True)
class Settings:
    database_url: str
    store_url: str
    secret: bytes

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data = Path(env.get("MESSENGER_DATA", "demo-data")).resolve()
        data.mkdir(parents=True, exist_ok=True)
        database = env.get("MESSENGER_DATABASE_URL") or f"sqlite:///{data / 'messenger.db'}"
        store = env.get("MESSENGER_STORE") or (data / "blobs").as_uri()
        secret = env.get("MESSENGER_SECRET", "").encode() or _saved_secret(data / "secret")
        return cls(database, store, secret)

    @property
    def hosted(self) -> bool:
        """Whether the app hosts the store itself (anything but S3)."""
        return not self.store_url.startswith("s3://")

    def open_store(self) -> DataStore:
        return open_store(self.store_url)


def _saved_secret(path: Path) -> bytes:
    """One secret per data directory, so sessions and forms survive a restart."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        secret = secrets.token_hex(32).encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secret)
        return secret


def open_factory(
    settings: Settings, store: DataStore
) -> HostedDataStoreFactory | S3DataStoreFactory:
    """Signed forms and URLs for ``store``: S3's own, or the hosted app's at ``BLOBS_PATH``.
    The authorization is a user's namespace (``namespace_of``): one user's forms and URLs
    never reach another's items."""

    def authorizer(store: DataStore, namespace: object) -> DataStore:
        if not isinstance(namespace, str) or not namespace.startswith("u"):
            raise PermissionDenied("no user's namespace")
        return store.namespace(namespace)

    if settings.hosted:
        from persisty_blobs.server import HostedDataStoreFactory

        return HostedDataStoreFactory(
            store,
            secret=settings.secret,
            base_url=BLOBS_PATH,
            authorizer=authorizer,
            download_expires_in=60,
            upload_expires_in=600,
        )
    from persisty_blobs.stores.s3 import S3DataStoreFactory, S3Store

    assert isinstance(store, S3Store)
    return S3DataStoreFactory(
        store, authorizer=authorizer, download_expires_in=60, upload_expires_in=600
    )
