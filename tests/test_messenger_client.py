"""The messenger's command-line client against the app under uvicorn: alice sends a picture from
the command line and bob downloads it byte for byte; her local store holds it, encrypted; a
second device's ``sync`` brings it down with the worker's thumbnail. The bearer token the client
uses reaches its user's namespace only, under the upload form's rules, and an expired or forged
one reaches nothing."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from examples.messenger.api import MessengerApi
from examples.messenger.app import create_app
from examples.messenger.chat import create_conversation, sign_up
from examples.messenger.client import main
from examples.messenger.db import connect
from examples.messenger.storage import MAX_SIZE, Settings, namespace_of
from examples.messenger.tokens import TokenSigner
from examples.messenger.worker import Worker
from persisty_blobs import (
    AlreadyExists,
    ContentTypeNotAllowed,
    Flag,
    PermissionDenied,
    TooLarge,
)
from persisty_blobs.stores import HttpStore, SqlCipherStore

from .messenger_support import png, serve, settings_for

pytest.importorskip("PIL")

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "correct horse battery staple"
MARKER = "plaintext-marker-5f1d"


@dataclass
class App:
    url: str
    settings: Settings
    ids: dict[str, int]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = settings_for(tmp_path)
    engine = connect(settings.database_url)
    ids = {name: sign_up(engine, name, f"{name}-password") for name in ("alice", "bob")}
    ids["ab"] = create_conversation(engine, ids["alice"], "ab", ["bob"])
    engine.dispose()
    with serve(create_app(settings, run_worker=False)) as url:
        yield App(url, settings, ids)


def marked_png() -> bytes:
    """A PNG whose text chunk holds ``MARKER`` as it is, uncompressed."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", MARKER)
    out = io.BytesIO()
    with Image.open(io.BytesIO(png())) as image:
        image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def client(url: str, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m examples.messenger.client`` as alice; secrets come from the environment."""
    env = dict(
        os.environ, MESSENGER_PASSWORD="alice-password", MESSENGER_CLIENT_PASSPHRASE=PASSPHRASE
    )
    command = [sys.executable, "-m", "examples.messenger.client", "--url", url]
    command += ["--user", "alice", "--data", str(data), *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_alice_sends_from_the_command_line_and_bob_downloads_it(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = marked_png()
    assert MARKER.encode() in picture
    (tmp_path / "sunrise.png").write_bytes(picture)
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"

    sent = client(
        app.url,
        laptop,
        *("send", "--conversation", str(app.ids["ab"]), "--text", "from my laptop"),
        *("--attach", str(tmp_path / "sunrise.png")),
    )
    assert sent.returncode == 0, sent.stderr
    assert "sent message" in sent.stdout

    with MessengerApi(app.url) as bob:
        bob.login("bob", "bob-password")
        [message] = bob.messages(app.ids["ab"])
        assert (message["sender"], message["text"]) == ("alice", "from my laptop")
        attachment = message["attachment"]
        assert (attachment["filename"], attachment["state"]) == ("sunrise.png", "pending")
        original = f"/api/attachments/{attachment['id']}/original"
        assert bob.client.get(original, follow_redirects=True).content == picture

    with SqlCipherStore(laptop / "alice.db", PASSPHRASE) as local:
        [item] = local.list()
        assert local.read_bytes(item.key) == picture
    files = [path for path in laptop.iterdir() if path.is_file()]
    assert files
    assert not any(MARKER.encode() in path.read_bytes() for path in files)

    store = app.settings.open_store()
    engine = connect(app.settings.database_url)
    assert len(Worker(engine, store).run_once()) == 1
    engine.dispose()
    store.close()
    synced = client(app.url, phone, "sync")
    assert synced.returncode == 0, synced.stderr
    with SqlCipherStore(phone / "alice.db", PASSPHRASE) as other:
        assert other.read_bytes(item.key) == picture
        assert other.get_flags(item.key) == {Flag.PROCESSED}
        assert [thumb.key for thumb in other.list("thumb/")] == [
            f"thumb/{item.key.removeprefix('att/')}.png"
        ]

    # Errors are told in words, with status 1.
    monkeypatch.setenv("MESSENGER_PASSWORD", "not-her-password")
    monkeypatch.setenv("MESSENGER_CLIENT_PASSPHRASE", PASSPHRASE)
    assert main(["--url", app.url, "--user", "alice", "--data", str(laptop), "sync"]) == 1
    assert "cannot log in" in capsys.readouterr().err
    monkeypatch.setenv("MESSENGER_CLIENT_PASSPHRASE", "a wrong passphrase")
    assert main(["--user", "alice", "--data", str(laptop), "ls"]) == 1
    assert "does not open with this passphrase" in capsys.readouterr().err


def test_a_token_reaches_its_users_namespace_only(app: App) -> None:
    alice, bob = app.ids["alice"], app.ids["bob"]
    with MessengerApi(app.url) as session:
        assert session.client.post("/api/token").status_code == 401
        session.login("alice", "alice-password")
        assert session.client.post("/api/token").status_code == 403  # no CSRF header
        token, url = session.blob_token()
        remote = HttpStore(url, token=token)
        key = "att/" + "a" * 32
        remote.put(key, b"hello\n", content_type="text/plain")
        session.post_message(app.ids["ab"], "", (key, "hello.txt"))
        assert remote.get_flags(key) == {Flag.PENDING}

    with app.settings.open_store() as store:
        store.namespace(namespace_of(bob)).put("att/" + "b" * 32, b"bob's\n")
    theirs = f"{url}/v1/items/att/{'b' * 32}?namespace={namespace_of(bob)}"
    bearer = {"authorization": f"Bearer {token}"}
    assert httpx.get(theirs, headers=bearer).status_code == 403
    assert httpx.put(theirs, headers=bearer, content=b"x").status_code == 403
    with pytest.raises(PermissionDenied):
        remote.namespace(namespace_of(bob)).put("att/" + "c" * 32, b"x")

    # The upload form's rules, and no changes to what was sent.
    with pytest.raises(TooLarge):
        remote.put("att/" + "d" * 32, b"x" * (MAX_SIZE + 1), content_type="text/plain")
    with pytest.raises(ContentTypeNotAllowed):
        remote.put("att/" + "e" * 32, b"<script>", content_type="text/html")
    with pytest.raises(AlreadyExists):
        remote.put(key, b"changed after sending\n", content_type="text/plain")
    for refused in (
        lambda: remote.put("thumb/x.png", png(), content_type="image/png"),
        lambda: remote.delete(key),
        lambda: remote.set_flags(key, [Flag.PROCESSED]),
    ):
        with pytest.raises(PermissionDenied):
            refused()
    assert [item.key for item in remote.list()] == [key]
    remote.close()

    expired, _ = TokenSigner(app.settings.secret, clock=lambda: time.time() - 3600).issue(alice)
    payload, signature = token.split(".")
    forged = TokenSigner(b"another secret").issue(alice)[0]
    bobs, _ = TokenSigner(b"x").issue(bob)
    for bad in (expired, forged, f"{bobs.split('.')[0]}.{signature}", f"{payload}x.{signature}"):
        answer = httpx.get(f"{url}/v1/items", headers={"authorization": f"Bearer {bad}"})
        assert answer.status_code == 401


def test_the_local_files_are_the_users_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sync state is plain SQLite (keys, sizes, checksums of the plaintext): only its
    mode protects it, and the store's beside it."""
    monkeypatch.setenv("MESSENGER_CLIENT_PASSPHRASE", PASSPHRASE)
    umask = os.umask(0o022)  # the usual one, under which files are made world-readable
    try:
        data = tmp_path / "new" / "data"
        assert main(["--user", "alice", "--data", str(data), "ls"]) == 0
        assert data.stat().st_mode & 0o777 == 0o700
        files = sorted(path.name for path in data.iterdir())
        assert {"alice.db", "alice.sync"} <= set(files)
        assert {name: (data / name).stat().st_mode & 0o777 for name in files} == dict.fromkeys(
            files, 0o600
        )
        (data / "alice.sync").chmod(0o644)  # made by an earlier version
        assert main(["--user", "alice", "--data", str(data), "ls"]) == 0
        assert (data / "alice.sync").stat().st_mode & 0o777 == 0o600
        data.chmod(0o755)
        assert main(["--user", "alice", "--data", str(data), "ls"]) == 1
        assert "open to other users" in capsys.readouterr().err
    finally:
        os.umask(umask)


def test_an_attachment_whose_message_fails_is_not_kept_as_sent(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESSENGER_PASSWORD", "alice-password")
    monkeypatch.setenv("MESSENGER_CLIENT_PASSPHRASE", PASSPHRASE)
    (tmp_path / "plan.txt").write_text("the plan\n")
    common = ["--url", app.url, "--user", "alice", "--data", str(tmp_path / "laptop")]
    attach = ["--attach", str(tmp_path / "plan.txt")]

    # Not her conversation: found out before anything is stored or uploaded.
    assert main([*common, "send", "--conversation", "999", *attach]) == 1
    assert "not in conversation 999" in capsys.readouterr().err
    # The message itself is refused (too long) after the upload.
    ab = str(app.ids["ab"])
    assert main([*common, "send", "--conversation", ab, "--text", "x" * 4001, *attach]) == 1
    refused = capsys.readouterr().err
    assert "A message is at most 4000 characters." in refused
    assert "stays on the server" in refused

    assert main([*common, "ls"]) == 0
    assert capsys.readouterr().out == ""
    with app.settings.open_store() as store:
        [uploaded] = store.namespace(namespace_of(app.ids["alice"])).list()
    assert uploaded.key in refused


class RationedTokens(TokenSigner):
    """Tokens that stop opening after ``uses`` requests (the first ``limited`` issued, or
    all), as a token that runs out in the middle of a sync. Each token is new: the clock
    moves a second per issue, so two tokens are never the same string."""

    def __init__(self, secret: bytes, uses: int, limited: int | None) -> None:
        ticks = itertools.count()
        super().__init__(secret, clock=lambda: time.time() + next(ticks))
        self.uses, self.limited = uses, limited
        self.opened: dict[str, int] = {}
        self.rationed: set[str] = set()
        self.issued = 0

    def issue(self, user_id: int) -> tuple[str, int]:
        token, expires = super().issue(user_id)
        self.issued += 1
        if self.limited is None or self.issued <= self.limited:
            self.rationed.add(token)
        return token, expires

    def open(self, token: str | None) -> int | None:
        user = super().open(token)
        if user is None or token not in self.rationed:
            return user
        self.opened[token] = self.opened.get(token, 0) + 1
        return user if self.opened[token] <= self.uses else None


@pytest.mark.parametrize("limited", [1, None], ids=["first-token-runs-out", "every-token-does"])
def test_a_token_that_runs_out_mid_sync_is_renewed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    limited: int | None,
) -> None:
    import examples.messenger.app as app_module

    # Two requests each: the store's info and the listing, then every download is refused.
    monkeypatch.setattr(
        app_module, "TokenSigner", lambda secret: RationedTokens(secret, 2, limited)
    )
    settings = settings_for(tmp_path)
    engine = connect(settings.database_url)
    alice = sign_up(engine, "alice", "alice-password")
    engine.dispose()
    with settings.open_store() as store:
        for n in range(6):
            store.namespace(namespace_of(alice)).put(f"att/{n:032x}", b"note\n")
    monkeypatch.setenv("MESSENGER_PASSWORD", "alice-password")
    monkeypatch.setenv("MESSENGER_CLIENT_PASSPHRASE", PASSPHRASE)
    data = tmp_path / "laptop"
    with serve(create_app(settings, run_worker=False)) as url:
        status = main(["--url", url, "--user", "alice", "--data", str(data), "sync"])
    out, err = capsys.readouterr()
    if limited == 1:
        assert status == 0, err
        assert out.startswith("synced: downloaded 6;")
        with SqlCipherStore(data / "alice.db", PASSPHRASE) as local:
            assert local.count() == 6
    else:
        assert status == 1
        assert "nothing to do" not in out
        assert "6 failed" in err
    assert "a new token" in err
