"""The attachment worker: takes the items flagged PENDING, claims each in the database (a
conditional UPDATE from "pending": of two workers, one changes the row, the other none), checks
the real type from the first bytes, makes a thumbnail of images, and ends PROCESSED, or FAILED
with the reason. ``python -m examples.messenger.worker`` runs it beside the app.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import threading
import time

import sqlalchemy as sa

from persisty_blobs import BlobError, DataStore, Flag

from .db import attachments, connect
from .storage import Settings, sniff

__all__ = ["Worker", "main"]

log = logging.getLogger("messenger.worker")
_HEAD = 4096
_THUMBNAIL = (320, 320)
# A small file can unpack into a huge image; larger ones fail instead of filling memory.
_MAX_PIXELS = 40_000_000


class _Failed(Exception):
    """The attachment is not what it says it is; the message is the reason shown."""


def _thumbnail(store: DataStore, key: str) -> bytes:
    from PIL import Image

    try:
        with store.open(key) as reader, Image.open(reader) as image:
            # Opening reads the header only: the size is known before any pixel is decoded.
            if image.width * image.height > _MAX_PIXELS:
                raise _Failed(f"the image is too large ({image.width}x{image.height})")
            image.thumbnail(_THUMBNAIL)
            out = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, "PNG")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise _Failed(f"the image cannot be read: {error}") from None
    return out.getvalue()


class Worker:
    """One worker; any number run at once, in threads or processes, over one database."""

    def __init__(self, engine: sa.Engine, store: DataStore, name: str | None = None) -> None:
        self.engine = engine
        self.store = store
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def run_once(self) -> list[str]:
        """Process every pending attachment this worker claims; returns their keys."""
        done = []
        for namespace in self.store.namespaces():
            store = self.store.namespace(namespace) if namespace else self.store
            for item in list(store.list(flag=Flag.PENDING)):
                if self._claim(namespace, item.key):
                    self._process(store, namespace, item.key)
                    done.append(f"{namespace}/{item.key}")
        return done

    def _claim(self, namespace: str, key: str) -> bool:
        with self.engine.begin() as db:
            claimed = db.execute(
                attachments.update()
                .where(
                    attachments.c.namespace == namespace,
                    attachments.c.key == key,
                    attachments.c.state == "pending",
                )
                .values(state="processing", worker=self.name)
            )
        return claimed.rowcount == 1

    def _process(self, store: DataStore, namespace: str, key: str) -> None:
        values: dict[str, str | None]
        try:
            store.set_flags(key, [Flag.PROCESSING])
            values = {"state": "processed", "thumbnail_key": self._check(store, namespace, key)}
            flag = Flag.PROCESSED
        except _Failed as failure:
            values, flag = {"state": "failed", "reason": str(failure)[:300]}, Flag.FAILED
        except BlobError as error:
            log.warning("attachment %s/%s failed: %s", namespace, key, error)
            values, flag = {"state": "failed", "reason": "the file could not be read"}, Flag.FAILED
        with self.engine.begin() as db:
            db.execute(
                attachments.update()
                .where(attachments.c.namespace == namespace, attachments.c.key == key)
                .values(**values)
            )
        try:
            store.set_flags(key, [flag])
        except BlobError as error:  # the database holds the outcome; the flag is for listings
            log.warning("flag of %s/%s not set: %s", namespace, key, error)

    def _check(self, store: DataStore, namespace: str, key: str) -> str | None:
        """The thumbnail's key (None for other than images), after the type check."""
        with self.engine.connect() as db:
            declared = db.execute(
                sa.select(attachments.c.content_type).where(
                    attachments.c.namespace == namespace, attachments.c.key == key
                )
            ).scalar_one()
        found = sniff(store.read_bytes(key, 0, _HEAD))
        if found is None or found != declared:
            raise _Failed(f"the file is {found or 'of an unknown type'}, not {declared}")
        if not found.startswith("image/"):
            return None
        thumbnail_key = f"thumb/{key.removeprefix('att/')}.png"
        store.put(thumbnail_key, _thumbnail(store, key), content_type="image/png")
        return thumbnail_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings.from_env()
    engine = connect(settings.database_url)
    with settings.open_store() as store:
        worker = Worker(engine, store)
        try:
            while True:
                for key in worker.run_once():
                    log.info("processed %s", key)
                if args.once:
                    break
                time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
