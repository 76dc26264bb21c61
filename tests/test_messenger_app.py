"""The messenger's app over HTTP (in process): sessions, CSRF and the login limit; messages
refuse attachments that are missing, another user's or already sent; the upload form's policy
refuses an oversize file and a wrong type, storing nothing; only members reach attachments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.messenger.app import create_app
from examples.messenger.chat import create_conversation, sign_up
from examples.messenger.db import connect
from examples.messenger.storage import MAX_SIZE, namespace_of
from examples.messenger.worker import Worker
from persisty_blobs import Flag

from .messenger_support import png, serve, settings_for


class Browser:
    """One user's cookies, and the CSRF header a page would send."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        client.cookies.clear()
        assert client.get("/").status_code == 200

    def post(self, path: str, body: Any = None, csrf: bool = True) -> Any:
        headers = {"x-csrf-token": self.client.cookies.get("csrf") or ""} if csrf else {}
        return self.client.post(path, json=body, headers=headers)

    def login(self, name: str, password: str) -> Any:
        return self.post("/api/login", {"name": name, "password": password})

    def upload(
        self, conversation: int, data: bytes, content_type: str, signed_for: str | None = None
    ) -> Any:
        """Ask for a form for ``signed_for`` (default ``content_type``), post it as
        ``content_type``: the key and storage's answer."""
        path = f"/api/conversations/{conversation}/uploads"
        form = self.post(path, {"content_type": signed_for or content_type}).json()
        fields = {n: content_type if n == "Content-Type" else v for n, v in form["fields"].items()}
        files = {"file": ("f", data, content_type)}
        return form["key"], self.client.post(form["url"], data=fields, files=files)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client, dict[str, int]]]:
    settings = settings_for(tmp_path)
    engine = connect(settings.database_url)
    ids = {name: sign_up(engine, name, f"{name}-password") for name in ("alice", "bob", "carol")}
    ids["ab"] = create_conversation(engine, ids["alice"], "ab", ["bob"])
    ids["ac"] = create_conversation(engine, ids["alice"], "ac", ["carol"])
    engine.dispose()
    with (
        serve(create_app(settings, run_worker=False)) as url,
        httpx.Client(base_url=url, timeout=30) as one,
        httpx.Client(base_url=url, timeout=30) as two,
    ):
        yield one, two, ids


def test_sessions_csrf_and_the_login_limit(
    setup: tuple[httpx.Client, httpx.Client, dict[str, int]],
) -> None:
    client, other, _ = setup
    alice, mallory = Browser(client), Browser(other)
    without = alice.post("/api/login", {"name": "alice", "password": "alice-password"}, False)
    assert without.status_code == 403
    response = alice.login("alice", "alice-password")
    assert response.status_code == 200
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("session="))
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert client.get("/api/me").json()["name"] == "alice"
    # A CSRF header from another page's cookie does not match alice's session.
    headers = {"x-csrf-token": other.cookies["csrf"]}
    client.cookies.set("csrf", other.cookies["csrf"])
    assert client.post("/api/conversations", json={}, headers=headers).status_code == 403
    # A session cookie with a changed payload is no session.
    payload, signature = client.cookies["session"].split(".")
    other.cookies.set("session", payload[:-2] + "xx." + signature)
    assert other.get("/api/me").status_code == 401
    for _ in range(5):
        assert mallory.login("bob", "guess-guess").status_code == 401
    refused = mallory.login("bob", "bob-password")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.json()["error"]


def test_messages_refuse_attachments_not_the_senders(
    setup: tuple[httpx.Client, httpx.Client, dict[str, int]],
) -> None:
    one, two, ids = setup
    alice, bob = Browser(one), Browser(two)
    alice.login("alice", "alice-password")
    bob.login("bob", "bob-password")
    ab = f"/api/conversations/{ids['ab']}/messages"
    bobs_key, posted = bob.upload(ids["ab"], b"bob's", "text/plain")
    assert posted.status_code == 204
    for key in ("att/" + "0" * 32, bobs_key):
        refused = alice.post(ab, {"text": "", "attachment": {"key": key, "filename": "x"}})
        assert refused.status_code == 400
        assert refused.json() == {"error": "The attachment was not uploaded (or is not yours)."}
    assert alice.post(ab, {"text": "", "attachment": {"key": "../x", "filename": "x"}}).json() == {
        "error": "That is not an attachment of yours."
    }
    key, posted = alice.upload(ids["ab"], png(), "image/png")
    sent = {"text": "a picture", "attachment": {"key": key, "filename": "p.png"}}
    assert alice.post(ab, sent).status_code == 201
    assert alice.post(ab, sent).json() == {"error": "That attachment was already sent."}
    messages = one.get(ab).json()["messages"]
    assert messages[0]["attachment"]["state"] == "pending"
    attachment = messages[0]["attachment"]["id"]
    download = two.get(f"/api/attachments/{attachment}/original", follow_redirects=False)
    assert download.status_code == 303
    fetched = two.get(download.headers["location"])
    assert fetched.content == png()
    assert fetched.headers["content-disposition"].startswith('attachment; filename="p.png"')
    assert fetched.headers["x-content-type-options"] == "nosniff"
    # carol is not in alice and bob's conversation: not its messages, not its attachments.
    with httpx.Client(base_url=one.base_url, timeout=30) as client:
        carol = Browser(client)
        carol.login("carol", "carol-password")
        assert carol.client.get(ab).status_code == 403
        assert carol.client.get(f"/api/attachments/{attachment}/original").status_code == 403
        assert carol.client.get("/api/attachments/999/original").status_code == 403
        ask = carol.post(f"/api/conversations/{ids['ab']}/uploads", {"content_type": "text/plain"})
        assert ask.status_code == 403
        # The store answers signed requests only: a key alone opens nothing.
        unsigned = f"/blobs/v1/items/{key}?namespace={namespace_of(ids['alice'])}"
        assert carol.client.get(unsigned).status_code == 401


def test_the_form_policy_refuses_oversize_and_wrong_types(
    setup: tuple[httpx.Client, httpx.Client, dict[str, int]], tmp_path: Path
) -> None:
    one, _, ids = setup
    alice = Browser(one)
    alice.login("alice", "alice-password")
    _, big = alice.upload(ids["ab"], b"x" * (MAX_SIZE + 1), "text/plain")
    _, html = alice.upload(ids["ab"], b"<script>alert(1)</script>", "text/html", "text/plain")
    refused = alice.post(f"/api/conversations/{ids['ab']}/uploads", {"content_type": "text/html"})
    assert refused.status_code == 400
    assert (big.status_code, big.json()["error"]) == (413, "TooLarge")
    assert (html.status_code, html.json()["error"]) == (415, "ContentTypeNotAllowed")
    files = [path for path in (tmp_path / "blobs").rglob("*") if path.is_file()]
    assert [path for path in files if path.suffix != ".journal"] == [], "only the writers' journal"


def test_a_form_posted_again_replaces_nothing(
    setup: tuple[httpx.Client, httpx.Client, dict[str, int]],
) -> None:
    """A form stays valid until it expires; posted again after its message was sent, it must
    not swap the bytes the other members download (every write to the hosted store is
    create-only)."""
    one, two, ids = setup
    alice, bob = Browser(one), Browser(two)
    alice.login("alice", "alice-password")
    bob.login("bob", "bob-password")
    form = alice.post(f"/api/conversations/{ids['ab']}/uploads", {"content_type": "image/png"})
    fields = form.json()["fields"]

    def post(data: bytes) -> httpx.Response:
        files = {"file": ("p.png", data, "image/png")}
        return one.post(form.json()["url"], data=fields, files=files)

    assert post(png()).status_code == 204
    ab = f"/api/conversations/{ids['ab']}/messages"
    sent = {"text": "", "attachment": {"key": form.json()["key"], "filename": "p.png"}}
    assert alice.post(ab, sent).status_code == 201
    replayed = post(b"<html><script>alert(1)</script></html>")
    assert replayed.status_code == 412, replayed.text
    assert replayed.json()["error"] == "AlreadyExists"
    [message] = two.get(ab).json()["messages"]
    original = f"/api/attachments/{message['attachment']['id']}/original"
    assert two.get(original, follow_redirects=True).content == png()


def test_an_attachment_replaced_after_it_was_sent_is_refused(
    setup: tuple[httpx.Client, httpx.Client, dict[str, int]], tmp_path: Path
) -> None:
    """An S3 POST policy cannot say create-only, so there a form posted again does replace
    the bytes: the app remembers the etag a message was sent with, the worker fails an
    attachment whose etag changed, and the download refuses it."""
    one, two, ids = setup
    alice, bob = Browser(one), Browser(two)
    alice.login("alice", "alice-password")
    bob.login("bob", "bob-password")
    ab = f"/api/conversations/{ids['ab']}/messages"
    keys = []
    for name in ("early.png", "late.png"):
        key, posted = alice.upload(ids["ab"], png(), "image/png")
        assert posted.status_code == 204
        assert alice.post(ab, {"text": "", "attachment": {"key": key, "filename": name}}).is_success
        keys.append(key)
    settings = settings_for(tmp_path)
    engine = connect(settings.database_url)
    with settings.open_store() as store:
        mine = store.namespace(namespace_of(ids["alice"]))
        swapped = b"<html><script>alert(1)</script></html>"
        # What a replayed S3 form does (the hosted store's forms cannot), landing after the
        # worker listed the attachment as PENDING.
        mine.put(keys[0], swapped, content_type="image/png", flags=[Flag.PENDING])
        assert len(Worker(engine, store).run_once()) == 2
        mine.put(keys[1], swapped, content_type="image/png")
    engine.dispose()
    early, late = (message["attachment"] for message in two.get(ab).json()["messages"])
    assert (early["state"], early["reason"]) == (
        "failed",
        "the file was replaced after it was sent",
    )
    assert late["state"] == "processed"
    for attachment in (early, late):
        refused = two.get(f"/api/attachments/{attachment['id']}/original")
        assert refused.status_code == 409
        assert "replaced after it was sent" in refused.json()["error"]
