"""The messenger over a fresh database and directory store under a test's directory, and
attachments put the way a browser's form would put them."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from starlette.applications import Starlette

from examples.messenger.chat import new_attachment_key, post_message
from examples.messenger.db import connect
from examples.messenger.storage import Settings, namespace_of
from persisty_blobs import DataStore


def settings_for(root: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{root / 'messenger.db'}",
        store_url=(root / "blobs").as_uri(),
        secret=b"messenger-test-secret-0123456789",
    )


def png(width: int = 64, height: int = 48) -> bytes:
    """A real PNG: a gradient, so its thumbnail is worth looking at."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (40 + 180 * x // width, 90 + 120 * y // height, 220 - 100 * x // width)
            for y in range(height)
            for x in range(width)
        ]
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class Messenger:
    engine: sa.Engine
    store: DataStore

    def send(
        self, sender: int, conversation: int, data: bytes, content_type: str, name: str
    ) -> str:
        """Upload ``data`` into the sender's namespace and send it; returns the key."""
        key = new_attachment_key()
        self.store.namespace(namespace_of(sender)).put(key, data, content_type=content_type)
        post_message(self.engine, self.store, sender, conversation, "", (key, name))
        return key


def open_messenger(root: Path, settings: Settings | None = None) -> Messenger:
    settings = settings or settings_for(root)
    return Messenger(connect(settings.database_url), settings.open_store())


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of the test; its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the messenger did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
