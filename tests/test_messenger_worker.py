"""The messenger's attachment worker: the real type is read from the bytes, images get a
thumbnail, two workers racing over the same pending attachments process each exactly once, and
a claim whose worker died is taken over once its lease has run out."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from examples.messenger import worker as worker_module
from examples.messenger.app import Messenger as AppMessenger
from examples.messenger.chat import create_conversation, sign_up
from examples.messenger.db import attachments, connect
from examples.messenger.storage import namespace_of
from examples.messenger.worker import Worker
from persisty_blobs import DataStore, Flag
from persisty_blobs.testing._support import run_threads

from .messenger_support import Messenger, open_messenger, png, settings_for

pytest.importorskip("PIL")


@pytest.fixture
def messenger(tmp_path: Path) -> Iterator[tuple[Messenger, int, int]]:
    app = open_messenger(tmp_path)
    alice = sign_up(app.engine, "alice", "alice-password")
    sign_up(app.engine, "bob", "bob-password")
    conversation = create_conversation(app.engine, alice, "hello", ["bob"])
    yield app, alice, conversation
    app.store.close()
    app.engine.dispose()


def states(app: Messenger) -> dict[str, tuple[str, str | None, str | None]]:
    query = sa.select(
        attachments.c.key, attachments.c.state, attachments.c.reason, attachments.c.worker
    )
    with app.engine.connect() as db:
        return {row.key: (row.state, row.reason, row.worker) for row in db.execute(query)}


def race(app: Messenger, make: Callable[[sa.Engine, int], Worker]) -> tuple[set[str], ...]:
    """Two workers' ``run_once`` started together; the keys each processed."""
    # Each worker has its own engine, as two processes would.
    engines = [connect(str(app.engine.url)) for _ in range(2)]
    workers = [make(engine, n) for n, engine in enumerate(engines)]
    start = threading.Barrier(2)
    results: list[list[str]] = [[], []]

    def run(n: int) -> None:
        start.wait()
        results[n] = workers[n].run_once()

    run_threads(2, run)
    for engine in engines:
        engine.dispose()
    done = tuple({key.split("/", 1)[1] for key in keys} for keys in results)
    assert sum(map(len, done)) == sum(map(len, results)), "a worker processed a key twice"
    return done


def test_the_type_comes_from_the_bytes_and_images_get_thumbnails(
    messenger: tuple[Messenger, int, int],
) -> None:
    app, alice, conversation = messenger
    real = app.send(alice, conversation, png(), "image/png", "real.png")
    fake = app.send(alice, conversation, b"MZ\x90\x00 an executable", "image/png", "fake.png")
    text = app.send(alice, conversation, "naïve notes\n".encode(), "text/plain", "notes.txt")
    mine = app.store.namespace(namespace_of(alice))
    assert {item.key for item in mine.list(flag=Flag.PENDING)} == {real, fake, text}

    done = Worker(app.engine, app.store, "w").run_once()

    assert len(done) == 3
    found = states(app)
    assert found[real][0] == found[text][0] == "processed"
    assert found[fake][:2] == ("failed", "the file is of an unknown type, not image/png")
    assert mine.get_flags(fake) == {Flag.FAILED}
    assert mine.get_flags(real) == mine.get_flags(text) == {Flag.PROCESSED}
    thumbnail = mine.get(f"thumb/{real.removeprefix('att/')}.png")
    assert thumbnail is not None
    assert thumbnail.content_type == "image/png"
    assert mine.read_bytes(thumbnail.key, 0, 8) == b"\x89PNG\r\n\x1a\n"
    assert mine.count("thumb/") == 1
    assert Worker(app.engine, app.store, "again").run_once() == []


def test_two_workers_process_each_attachment_exactly_once(
    messenger: tuple[Messenger, int, int],
) -> None:
    app, alice, conversation = messenger
    keys = {
        app.send(alice, conversation, f"note {n}\n".encode(), "text/plain", f"{n}.txt")
        for n in range(100)
    }
    first, second = race(app, lambda engine, n: Worker(engine, app.store, f"w{n}"))
    assert first.isdisjoint(second)
    assert first | second == keys
    found = states(app)
    assert all(found[key][0] == "processed" for key in keys)
    assert {found[key][2] for key in first} <= {"w0"}
    assert {found[key][2] for key in second} <= {"w1"}
    mine = app.store.namespace(namespace_of(alice))
    assert mine.count(flag=Flag.PROCESSED) == 100
    assert mine.count(flag=Flag.PENDING) == 0


def test_a_claim_past_its_lease_is_taken_over_once(messenger: tuple[Messenger, int, int]) -> None:
    app, alice, conversation = messenger
    keys = {
        app.send(alice, conversation, f"note {n}\n".encode(), "text/plain", f"{n}.txt")
        for n in range(20)
    }
    namespace = namespace_of(alice)
    mine = app.store.namespace(namespace)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    now = [start]

    def clock() -> datetime:
        return now[0]

    # A worker claims everything, then dies before processing any of it.
    dead = Worker(app.engine, app.store, "dead", lease=60, clock=clock)
    claims = {key: dead.claim(namespace, key) for key in keys}
    assert None not in claims.values()
    assert mine.count(flag=Flag.PROCESSING) == 20
    assert mine.count(flag=Flag.PENDING) == 0

    now[0] = start + timedelta(seconds=59)  # within the lease: the claims hold
    assert Worker(app.engine, app.store, "early", lease=60, clock=clock).run_once() == []

    now[0] = start + timedelta(seconds=61)
    first, second = race(
        app, lambda engine, n: Worker(engine, app.store, f"w{n}", lease=60, clock=clock)
    )
    assert first.isdisjoint(second)
    assert first | second == keys
    found = states(app)
    assert {found[key][0] for key in keys} == {"processed"}
    assert {found[key][2] for key in first} <= {"w0"}
    assert {found[key][2] for key in second} <= {"w1"}
    assert mine.count(flag=Flag.PROCESSED) == 20

    # The dead worker was only slow: what it finishes now no longer counts.
    key, claim = next(iter(claims.items()))
    assert claim is not None
    assert dead.process(namespace, key, claim) is False
    assert states(app)[key][0] == "processed"
    assert states(app)[key][2] != "dead"


def locked_once(passes: list[int]) -> Callable[[Worker], list[str]]:
    """A ``run_once`` whose first pass fails as a locked SQLite database does."""

    def run_once(self: Worker) -> list[str]:
        passes.append(1)
        if len(passes) == 1:
            raise sa.exc.OperationalError(
                "UPDATE attachments", {"claim": "c"}, Exception("database is locked")
            )
        if len(passes) == 3:
            raise KeyboardInterrupt  # ends the command-line loop; the app's task never gets here
        return []

    return run_once


def test_a_failed_pass_is_logged_and_the_apps_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    passes: list[int] = []
    monkeypatch.setattr(Worker, "run_once", locked_once(passes))
    monkeypatch.setattr(worker_module, "RETRY_FIRST", 0.01)
    app = AppMessenger(settings_for(tmp_path), run_worker=True)

    async def run() -> None:
        task = asyncio.create_task(app.work())
        deadline = time.monotonic() + 10
        while len(passes) < 2 and time.monotonic() < deadline and not task.done():
            app.wake.set()
            await asyncio.sleep(0.02)
        assert not task.done(), "the worker task ended"
        task.cancel()  # as the app's shutdown does
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(run())
    app.store.close()
    app.engine.dispose()
    assert len(passes) == 2
    assert "database is locked" in caplog.text
    assert "[parameters" not in caplog.text


def test_a_failed_pass_does_not_end_the_worker_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    passes: list[int] = []
    monkeypatch.setattr(Worker, "run_once", locked_once(passes))
    monkeypatch.setattr(worker_module, "RETRY_FIRST", 0.01)
    monkeypatch.setenv("MESSENGER_DATA", str(tmp_path))
    assert worker_module.main(["--interval", "0"]) == 0
    assert len(passes) == 3
    assert "database is locked" in caplog.text


class StalledView:
    """A namespace view whose first ``set_flags`` waits while ``meanwhile`` runs: a worker
    that stalls between its claim in the database and its PROCESSING flag."""

    def __init__(self, view: DataStore, meanwhile: Callable[[], object]) -> None:
        self.view, self.meanwhile = view, [meanwhile]

    def set_flags(self, key: str, flags: list[Flag]) -> None:
        if self.meanwhile:
            self.meanwhile.pop()()
        self.view.set_flags(key, flags)

    def __getattr__(self, name: str) -> object:
        return getattr(self.view, name)


def test_a_worker_outlived_before_its_flag_leaves_the_right_flag(
    messenger: tuple[Messenger, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, alice, conversation = messenger
    key = app.send(alice, conversation, b"a note\n", "text/plain", "note.txt")
    namespace = namespace_of(alice)
    now = [datetime(2030, 1, 1, tzinfo=UTC)]

    def clock() -> datetime:
        return now[0]

    late = Worker(app.engine, app.store, "late", lease=60, clock=clock)
    other = Worker(app.engine, app.store, "other", lease=60, clock=clock)

    def taken_over() -> None:
        now[0] += timedelta(seconds=61)
        assert other.run_once() == [f"{namespace}/{key}"]

    view = app.store.namespace(namespace)
    stalled = StalledView(view, taken_over)
    monkeypatch.setattr(late, "_view", lambda _: stalled)
    assert late.claim(namespace, key) is None  # lost while it stalled
    assert states(app)[key] == ("processed", None, "other")
    assert view.get_flags(key) == {Flag.PROCESSED}
