"""The messenger in Debian's Chromium, once over the hosted directory store and once over S3 on
moto (S3's own forms, with CORS): alice sends a PNG from the page, straight to storage by
signed form with a progress bar; bob, in another browser context, sees the message, then its
thumbnail once the worker has processed it, and downloads the original byte for byte. An
oversize file and a wrong type are refused in words and store nothing; bob cannot open an
attachment of a conversation he is not in, nor (hosted store) reach one by its key.

``PERSISTY_SCREENSHOTS=1`` saves the conversation page as docs/messenger.png for the README.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from examples.messenger.app import create_app
from examples.messenger.chat import create_conversation, sign_up
from examples.messenger.db import attachments, users
from examples.messenger.demo import prepare
from examples.messenger.storage import MAX_SIZE, namespace_of

from .browser_support import chromium_page
from .messenger_support import open_messenger, png, serve, settings_for

pytest.importorskip("PIL")

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "messenger.png"
# The page's own calls, without its checks: what the app and storage themselves answer.
ASK_FOR_HTML = """async () => {
  try { await api("POST", `/api/conversations/${current}/uploads`, {content_type: "text/html"}); }
  catch (failure) { return failure.message; }
  return "signed";
}"""
STATUS = "(path) => fetch(path).then((response) => response.status)"


def sign_in(page: Any, name: str, password: str) -> None:
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#signin")
    page.wait_for_selector("#conversations li.current")


def s3_settings(request: pytest.FixtureRequest, root: Path, monkeypatch: Any) -> Any:
    """The messenger over a bucket of moto's S3 that accepts posts from any origin."""
    from persisty_blobs.testing.moto import moto_client

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    for name, value in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]:
        monkeypatch.setenv(name, value)
    rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["POST", "GET"], "AllowedHeaders": ["*"]}
    moto_client(endpoint).put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    store_url = f"s3://{bucket}/messenger?endpoint_url={endpoint}"
    return dataclasses.replace(settings_for(root), store_url=store_url)


@pytest.mark.slow  # Chromium and two browser contexts: about 7 s per store
@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_alice_sends_a_picture_and_bob_downloads_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosted = kind == "directory"
    settings = settings_for(tmp_path) if hosted else s3_settings(request, tmp_path, monkeypatch)
    passwords = prepare(settings)
    app = open_messenger(tmp_path, settings)
    with app.engine.connect() as db:
        alice = db.execute(sa.select(users.c.id).where(users.c.name == "alice")).scalar_one()
    carol = sign_up(app.engine, "carol", "carol-password")
    private = create_conversation(app.engine, carol, "Alice and Carol", ["alice"])
    secret_key = app.send(carol, private, b"for alice only\n", "text/plain", "secret.txt")
    with app.engine.connect() as db:
        secret = db.execute(
            sa.select(attachments.c.id).where(attachments.c.key == secret_key)
        ).scalar_one()
    alices = app.store.namespace(namespace_of(alice))
    picture = png(480, 300)
    big = tmp_path / "big.txt"
    with big.open("wb") as file:
        file.truncate(MAX_SIZE + 1)

    with serve(create_app(settings)) as url, chromium_page(url) as page:
        page.set_viewport_size({"width": 1000, "height": 620})
        sign_in(page, "alice", passwords["alice"])
        page.fill("#text", "The view from the window this morning")
        page.set_input_files(
            "#file", files=[{"name": "sunrise.png", "mimeType": "image/png", "buffer": picture}]
        )
        page.click("#send")
        page.wait_for_selector("text=The view from the window this morning")
        assert alices.count("att/") == 1

        page.set_input_files("#file", str(big))
        page.click("#send")
        page.wait_for_selector("#send-error:has-text('The file is too large')")
        program = {"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}
        page.set_input_files("#file", files=[program])
        page.click("#send")
        page.wait_for_selector("#send-error:has-text('This kind of file cannot be sent')")
        assert page.evaluate(ASK_FOR_HTML) == (
            "This kind of file cannot be sent: images, PDF and plain text only."
        )
        assert alices.count("att/") == 1
        page.set_input_files("#file", files=[])

        bobs = page.context.browser.new_context()
        try:
            other = bobs.new_page()
            other.goto(url)
            sign_in(other, "bob", passwords["bob"])
            other.wait_for_selector("text=The view from the window this morning")
            thumbnail = other.wait_for_selector("img[alt='Thumbnail of sunrise.png']")
            other.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumbnail)
            size = thumbnail.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
            assert size == [320, 200]
            with other.expect_download() as info:
                other.click("a.download")
            download = info.value
            assert download.suggested_filename == "sunrise.png"
            assert Path(download.path()).read_bytes() == picture

            assert other.evaluate(STATUS, f"/api/attachments/{secret}/original") == 403
            if hosted:  # moto's S3 checks no signatures: only the hosted store proves this
                guessed = f"/blobs/v1/signed/{secret_key}?namespace={namespace_of(carol)}"
                assert other.evaluate(STATUS, guessed) == 403
                assert other.evaluate(STATUS, f"/blobs/v1/items/{secret_key}") == 401

            other.fill("#text", "Lovely! Saving it for the album.")
            other.click("#send")
            other.wait_for_selector("text=Lovely! Saving it for the album.")
        finally:
            bobs.close()
        page.wait_for_selector("text=Lovely! Saving it for the album.", timeout=10_000)
        page.wait_for_function(
            "() => [...document.images].every((img) => img.complete && img.naturalWidth > 0)"
        )
        keep = hosted and os.environ.get("PERSISTY_SCREENSHOTS") == "1"
        target = SCREENSHOT if keep else tmp_path / "m.png"
        page.screenshot(path=str(target))
    app.store.close()
    app.engine.dispose()
