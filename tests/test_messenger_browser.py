"""The messenger in Debian's Chromium, once over the hosted directory store and once over S3 on
moto (S3's own forms, with CORS): alice sends a PNG from the page, straight to storage by
signed form with a progress bar; bob, in another browser context, sees the message, then its
thumbnail once the worker has processed it, and downloads the original byte for byte. An
oversize file and a wrong type are refused in words and store nothing; bob cannot open an
attachment of a conversation he is not in, nor reach one by its key: the app issues no URL for
it, and the URLs and forms it does issue are signed for one key, briefly (on S3 the test checks
the SigV4 signatures itself, as moto checks none).

``PERSISTY_SCREENSHOTS=1`` saves the conversation page as docs/messenger.png for the README.
"""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.parse
from datetime import datetime
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
from .sigv4 import open_post_policy, presigned_url_ok

pytest.importorskip("PIL")

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "messenger.png"
# The page's own calls, without its checks: what the app and storage themselves answer.
ASK_FOR_HTML = """async () => {
  try { await api("POST", `/api/conversations/${current}/uploads`, {content_type: "text/html"}); }
  catch (failure) { return failure.message; }
  return "signed";
}"""
STATUS = "(path) => fetch(path).then((response) => response.status)"
ATTACH = """async ([key, filename]) => {
  const path = `/api/conversations/${current}/messages`;
  try { await api("POST", path, {text: "", attachment: {key, filename}}); }
  catch (failure) { return failure.message; }
  return "sent";
}"""
ASK_FOR_PNG = (
    """() => api("POST", `/api/conversations/${current}/uploads`, {content_type: "image/png"})"""
)
S3_SECRET = "testing"  # moto's credentials (s3_settings)


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
        [sunrise_key] = [item.key for item in alices.list("att/")]
        with app.engine.connect() as db:
            sunrise = db.execute(
                sa.select(attachments.c.id).where(attachments.c.key == sunrise_key)
            ).scalar_one()
        if not hosted:  # an upload form's policy, signed: one key of alice's, the limits
            form = page.evaluate(ASK_FOR_PNG)
            policy = open_post_policy(form["fields"], S3_SECRET)
            assert policy is not None
            assert open_post_policy(form["fields"], "another secret") is None
            assert {"key": form["fields"]["key"]} in policy["conditions"]
            assert f"/namespaces/{namespace_of(alice)}/att/" in form["fields"]["key"]
            assert ["content-length-range", 0, MAX_SIZE] in policy["conditions"]
            assert ["eq", "$Content-Type", "image/png"] in policy["conditions"]
            expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
            assert expiration.timestamp() <= time.time() + 600

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

            # The app gives bob no URL for carol's attachment, by its id or by its key: no
            # endpoint takes a key, and no message of his may carry one not his.
            for part in ("original", "thumbnail"):
                assert other.evaluate(STATUS, f"/api/attachments/{secret}/{part}") == 403
            assert other.evaluate(STATUS, f"/api/attachments/{secret_key}/original") == 404
            assert other.evaluate(ATTACH, [secret_key, "secret.txt"]) == (
                "The attachment was not uploaded (or is not yours)."
            )
            issued = other.context.request.get(
                f"{url}/api/attachments/{sunrise}/original", max_redirects=0
            )
            assert issued.status == 303
            signed = issued.headers["location"]
            # The same URL for carol's key: its signature was made for alice's.
            parts = urllib.parse.urlsplit(signed)
            path = parts.path.replace(sunrise_key, secret_key).replace(
                f"/{namespace_of(alice)}/", f"/{namespace_of(carol)}/"
            )
            query = [
                (name, namespace_of(carol) if name == "namespace" else value)
                for name, value in urllib.parse.parse_qsl(parts.query)
            ]
            carols = urllib.parse.urlunsplit(
                parts._replace(path=path, query=urllib.parse.urlencode(query))
            )
            assert secret_key in carols
            params = dict(query)
            disposition = "disposition" if hosted else "response-content-disposition"
            assert params[disposition].startswith("attachment;")
            if hosted:  # the hosted store checks signatures itself
                assert params["signature"]
                assert int(params["expires"]) <= time.time() + 60
                assert other.evaluate(STATUS, carols) == 403
                guessed = f"/blobs/v1/signed/{secret_key}?namespace={namespace_of(carol)}"
                assert other.evaluate(STATUS, guessed) == 403
                assert other.evaluate(STATUS, f"/blobs/v1/items/{secret_key}") == 401
            else:  # moto's S3 checks no signatures: the test does
                assert params["X-Amz-Expires"] == "60"
                assert presigned_url_ok(signed, S3_SECRET)
                assert not presigned_url_ok(signed, "another secret")
                assert not presigned_url_ok(carols, S3_SECRET)

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
