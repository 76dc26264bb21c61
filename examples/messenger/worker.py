"""The attachment worker: takes the items flagged PENDING, claims each in the database (a
conditional UPDATE from "pending": of two workers, one changes the row, the other none), checks
the real type from the first bytes, makes a thumbnail of images, and ends PROCESSED, or FAILED
with the reason. ``python -m examples.messenger.worker`` runs it beside the app.

A claim is a lease: an attachment left "processing" longer than ``lease`` seconds (its worker
died) is claimed again by the next worker that looks. A worker outlived by its lease finds its
claim taken when it finishes, and drops its result: the lease must be longer than any one
attachment takes (a few seconds for the largest image; the default is 5 minutes). One outlived
between its claim and its PROCESSING flag finds its claim taken right after flagging, and puts
back the flag of the state the database holds.

A pass that raises (a locked database, a store that is down) is logged and tried again later,
after a backoff, by the app's task and by the command alike.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from persisty_blobs import BlobError, DataStore, Flag
from persisty_blobs.streams import ItemReader

from .db import attachments, connect
from .storage import Settings, sniff

__all__ = ["LEASE", "Worker", "main", "retry_delay"]

#: Seconds after which a claim is presumed dead and may be taken over.
LEASE = 300.0
#: Seconds to wait after a pass failed, doubled at each failure in a row up to the most.
RETRY_FIRST, RETRY_MOST = 1.0, 60.0

log = logging.getLogger("messenger.worker")
_HEAD = 4096
_THUMBNAIL = (320, 320)
# A small file can unpack into a huge image; larger ones fail instead of filling memory.
_MAX_PIXELS = 40_000_000


#: The store flag of each state in the database.
_FLAGS = {
    "pending": Flag.PENDING,
    "processing": Flag.PROCESSING,
    "processed": Flag.PROCESSED,
    "failed": Flag.FAILED,
}


class _Failed(Exception):
    """The attachment is not what it says it is; the message is the reason shown."""


def _thumbnail(reader: ItemReader) -> bytes:
    from PIL import Image

    try:
        with Image.open(reader) as image:
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
    """One worker; any number run at once, in threads or processes, over one database.
    ``clock`` gives the time claims are stamped and judged with (tests step it)."""

    def __init__(
        self,
        engine: sa.Engine,
        store: DataStore,
        name: str | None = None,
        *,
        lease: float = LEASE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.store = store
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.lease = timedelta(seconds=lease)
        self.clock = clock

    def _view(self, namespace: str) -> DataStore:
        return self.store.namespace(namespace) if namespace else self.store

    def run_once(self) -> list[str]:
        """Process every pending attachment this worker claims, and every one whose claim
        has outlived its lease; returns their keys."""
        done = []
        for namespace, key in [*self._pending(), *self._stale()]:
            claim = self.claim(namespace, key)
            if claim is not None:
                self.process(namespace, key, claim)
                done.append(f"{namespace}/{key}")
        return done

    def _pending(self) -> list[tuple[str, str]]:
        return [
            (namespace, item.key)
            for namespace in self.store.namespaces()
            for item in list(self._view(namespace).list(flag=Flag.PENDING))
        ]

    def _stale(self) -> list[tuple[str, str]]:
        """Claims past their lease: their store flag is PROCESSING (or still PENDING if the
        worker died before setting it), so only the database finds them."""
        query = sa.select(attachments.c.namespace, attachments.c.key).where(
            attachments.c.state == "processing", self._expired()
        )
        with self.engine.connect() as db:
            return [(row.namespace, row.key) for row in db.execute(query)]

    def _expired(self) -> sa.ColumnElement[bool]:
        cutoff = self.clock() - self.lease
        # A claim without a time was made before claims had leases.
        return sa.or_(attachments.c.claimed_at.is_(None), attachments.c.claimed_at < cutoff)

    def claim(self, namespace: str, key: str) -> str | None:
        """Claim one attachment (pending, or processing past its lease) and flag it
        PROCESSING: the claim's token, or None if another worker holds it or it is done.
        One UPDATE decides, so of two workers trying at once only one gets it."""
        token = secrets.token_hex(16)
        takeable = sa.or_(
            attachments.c.state == "pending",
            sa.and_(attachments.c.state == "processing", self._expired()),
        )
        with self.engine.begin() as db:
            claimed = db.execute(
                attachments.update()
                .where(attachments.c.namespace == namespace, attachments.c.key == key, takeable)
                .values(state="processing", worker=self.name, claim=token, claimed_at=self.clock())
            )
        if claimed.rowcount != 1:
            return None
        self._flag(namespace, key, Flag.PROCESSING)
        # A worker that stalled here past its lease may be flagging an attachment another
        # worker has since claimed, or even finished: looked at after the flag, the database
        # tells. Whoever acts on the row after this read also sets the flag after this one.
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(attachments.c.state, attachments.c.claim).where(
                    attachments.c.namespace == namespace, attachments.c.key == key
                )
            ).one()
        if row.claim == token:
            return token
        log.warning("attachment %s/%s was taken over before it was flagged", namespace, key)
        self._flag(namespace, key, _FLAGS[row.state])
        return None

    def _flag(self, namespace: str, key: str, flag: Flag) -> None:
        try:
            self._view(namespace).set_flags(key, [flag])
        except BlobError as error:  # the database holds the truth; the flag is for listings
            log.warning("flag of %s/%s not set: %s", namespace, key, error)

    def process(self, namespace: str, key: str, claim: str) -> bool:
        """Check the claimed attachment and record the outcome, if ``claim`` still holds it;
        False if another worker took it over meanwhile (its outcome stands, not this one)."""
        store = self._view(namespace)
        values: dict[str, str | None]
        try:
            values = {"state": "processed", "thumbnail_key": self._check(store, namespace, key)}
            flag = Flag.PROCESSED
        except _Failed as failure:
            values, flag = {"state": "failed", "reason": str(failure)[:300]}, Flag.FAILED
        except BlobError as error:
            log.warning("attachment %s/%s failed: %s", namespace, key, error)
            values, flag = {"state": "failed", "reason": "the file could not be read"}, Flag.FAILED
        with self.engine.begin() as db:
            recorded = db.execute(
                attachments.update()
                .where(
                    attachments.c.namespace == namespace,
                    attachments.c.key == key,
                    attachments.c.claim == claim,
                )
                .values(**values)
            )
        if recorded.rowcount != 1:
            log.warning("attachment %s/%s was taken over: result dropped", namespace, key)
            return False
        self._flag(namespace, key, flag)
        return True

    def _check(self, store: DataStore, namespace: str, key: str) -> str | None:
        """The thumbnail's key (None for other than images), after the type check."""
        with self.engine.connect() as db:
            sent = db.execute(
                sa.select(attachments.c.content_type, attachments.c.etag).where(
                    attachments.c.namespace == namespace, attachments.c.key == key
                )
            ).one()
        # One reader for the check and the thumbnail: it reads one version, and fails rather
        # than go on in another.
        with store.open(key) as reader:
            if sent.etag is not None and reader.item.etag != sent.etag:
                raise _Failed("the file was replaced after it was sent")
            found = sniff(reader.read(_HEAD))
            if found is None or found != sent.content_type:
                raise _Failed(
                    f"the file is {found or 'of an unknown type'}, not {sent.content_type}"
                )
            if not found.startswith("image/"):
                return None
            reader.seek(0)
            thumbnail = _thumbnail(reader)
        thumbnail_key = f"thumb/{key.removeprefix('att/')}.png"
        store.put(thumbnail_key, thumbnail, content_type="image/png")
        return thumbnail_key


def retry_delay(error: Exception, failures: int) -> float:
    """Log a pass that failed (the ``failures``-th in a row) and return how long to wait
    before the next: a locked database or a store that is down usually comes back, and a
    worker that stopped would leave every later attachment unprocessed until a restart."""
    delay = min(RETRY_MOST, RETRY_FIRST * 2.0 ** min(failures - 1, 16))
    # The first line only: SQLAlchemy appends the statement and its parameters after it.
    reason = (str(error).splitlines() or [""])[0][:300]
    log.error(
        "a worker pass failed (%d in a row): %s: %s; next in %.0f s",
        failures,
        type(error).__name__,
        reason,
        delay,
    )
    return delay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    parser.add_argument(
        "--lease",
        type=float,
        default=LEASE,
        help="seconds after which another worker's unfinished claim is taken over",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings.from_env()
    engine = connect(settings.database_url)
    with settings.open_store() as store:
        worker = Worker(engine, store, lease=args.lease)
        failures = 0
        try:
            while True:
                try:
                    for key in worker.run_once():
                        log.info("processed %s", key)
                    failures, wait = 0, args.interval
                except Exception as error:
                    failures += 1
                    wait = retry_delay(error, failures)
                if args.once:
                    break
                time.sleep(wait)
        except KeyboardInterrupt:
            pass
    engine.dispose()
    return 1 if failures else 0  # only --once ends with its last pass failed


if __name__ == "__main__":
    raise SystemExit(main())
