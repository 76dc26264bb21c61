"""S3DataStoreFactory against moto's S3 server: presigned URLs and upload forms used by a plain
HTTP client, and by headless Chromium from a page on another origin."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from persisty_blobs import DataStore, PermissionDenied, Unsupported
from persisty_blobs.stores import MemoryStore, S3Store
from persisty_blobs.stores.s3 import S3DataStoreFactory
from persisty_blobs.testing.moto import moto_client

from .conftest import unavailable

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def store(s3_endpoint: str, s3_bucket: str) -> Iterator[S3Store]:
    with S3Store(s3_bucket, "app", client=moto_client(s3_endpoint)) as store:
        yield store


@pytest.fixture
def factory(store: S3Store) -> S3DataStoreFactory:
    return S3DataStoreFactory(store)


def policy_of(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def signature_conditions(fields: dict[str, str]) -> list[dict[str, str]]:
    names = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-security-token")
    return [{name: fields[name]} for name in names if name in fields]


def test_presigned_get_returns_the_bytes(store: S3Store, factory: S3DataStoreFactory) -> None:
    store.put("docs/report.pdf", b"%PDF-1.7 content")
    url = factory.download_url(
        "docs/report.pdf", content_disposition='attachment; filename="r.pdf"'
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["response-content-disposition"] == ['attachment; filename="r.pdf"']
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 content"
    assert response.headers["content-disposition"] == 'attachment; filename="r.pdf"'


def test_presigned_put_stores_the_bytes(store: S3Store, factory: S3DataStoreFactory) -> None:
    url = factory.upload_url("notes/a.txt", content_type="text/plain", expires_in=60)
    assert "X-Amz-Expires=60" in url
    response = httpx.put(url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    item = store.get("notes/a.txt")
    assert item is not None
    assert (item.size, item.content_type) == (5, "text/plain")
    assert store.read_bytes("notes/a.txt") == b"hello"


def test_upload_form_for_one_key(store: S3Store, factory: S3DataStoreFactory) -> None:
    form = factory.upload_form("photos/cat.png", max_size=1000, content_types=["image/png"])
    policy = policy_of(form.fields)
    assert policy["conditions"] == [
        ["content-length-range", 0, 1000],
        ["eq", "$Content-Type", "image/png"],
        {"bucket": store.bucket},
        {"key": "app/items/photos/cat.png"},
        *signature_conditions(form.fields),
    ]
    assert policy["expiration"] == form.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timedelta(minutes=59) < form.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert (form.key, form.fields["key"], form.fields["Content-Type"]) == (
        "photos/cat.png",
        "app/items/photos/cat.png",
        "image/png",
    )
    response = httpx.post(form.url, data=form.fields, files={"file": ("x", b"PNG...", "image/png")})
    assert response.status_code == 204
    assert store.read_bytes("photos/cat.png") == b"PNG..."


def test_upload_form_for_a_prefix(store: S3Store, factory: S3DataStoreFactory) -> None:
    form = factory.upload_form(key_prefix="inbox/", content_types=["image/"], expires_in=120)
    policy = policy_of(form.fields)
    assert policy["conditions"] == [
        ["starts-with", "$Content-Type", "image/"],
        {"bucket": store.bucket},
        ["starts-with", "$key", "app/items/inbox/"],
        *signature_conditions(form.fields),
    ]
    assert form.key == "inbox/${filename}"
    assert form.fields["Content-Type"] == ""  # the browser fills in the file's type
    fields = {**form.fields, "Content-Type": "image/jpeg"}
    response = httpx.post(form.url, data=fields, files={"file": ("dog.jpg", b"JPEG", "image/jpeg")})
    assert response.status_code == 204
    item = store.get("inbox/dog.jpg")
    assert item is not None
    assert item.content_type == "image/jpeg"


def test_form_arguments_are_checked(factory: S3DataStoreFactory) -> None:
    with pytest.raises(ValueError, match="either key or key_prefix"):
        factory.upload_form()
    with pytest.raises(ValueError, match="either key or key_prefix"):
        factory.upload_form("a", key_prefix="b/")
    with pytest.raises(Unsupported, match="one content type"):
        factory.upload_form("a", content_types=["image/png", "image/gif"])
    with pytest.raises(ValueError, match="expires_in"):
        factory.download_url("a", expires_in=8 * 24 * 3600)
    with pytest.raises(ValueError, match="expires_in"):
        factory.upload_form("a", expires_in=0)
    with pytest.raises(ValueError, match="max_size"):
        factory.upload_form("a", max_size=-1)
    with pytest.raises(ValueError, match="content_disposition"):
        factory.download_url("a", content_disposition="x\r\nSet-Cookie: y")


def by_user(store: S3Store, authorization: object | None) -> DataStore:
    if authorization not in ("alice", "bob"):
        raise PermissionDenied("no such user")
    assert isinstance(authorization, str)
    return store.namespace(authorization)


def test_urls_and_forms_reach_only_the_callers_items(store: S3Store) -> None:
    factory = S3DataStoreFactory(store, authorizer=by_user)
    alice, bob = factory.create("alice"), factory.create("bob")
    bobs = {"x": b"bob's x", "secret": b"bob's secret"}
    for key, content in bobs.items():
        bob.put(key, content)
    store.put("x", b"the default namespace's x")
    alice.put("x", b"alice's x")

    def as_alice(key: str) -> httpx.Response:
        return httpx.get(factory.download_url(key, authorization="alice"))

    assert as_alice("x").content == b"alice's x"
    for key in ("secret", "namespaces/bob/secret", "bob/secret", "items/x"):
        response = as_alice(key)
        assert response.status_code == 404
        assert response.content not in bobs.values()
    assert httpx.get(factory.download_url("x", authorization="bob")).content == b"bob's x"

    url = factory.upload_url("x", authorization="alice")
    assert httpx.put(url, content=b"alice's new x").status_code == 200
    form = factory.upload_form("secret", authorization="alice")
    assert policy_of(form.fields)["conditions"][1] == {"key": "app/namespaces/alice/secret"}
    response = httpx.post(form.url, data=form.fields, files={"file": ("f", b"alice's secret")})
    assert response.status_code == 204
    # moto does not enforce a policy: what S3 would enforce is what the policy signs.
    form = factory.upload_form(key_prefix="inbox/", authorization="alice")
    assert ["starts-with", "$key", "app/namespaces/alice/inbox/"] in policy_of(form.fields)[
        "conditions"
    ]
    files = {"file": ("../../bob/secret", b"alice's upload")}
    assert httpx.post(form.url, data=form.fields, files=files).status_code == 204

    assert {key: bob.read_bytes(key) for key in bobs} == bobs
    assert alice.read_bytes("x") == b"alice's new x"
    assert alice.read_bytes("secret") == b"alice's secret"
    assert store.read_bytes("x") == b"the default namespace's x"


def test_a_refused_caller_gets_no_url_or_form(store: S3Store) -> None:
    factory = S3DataStoreFactory(store, authorizer=by_user)
    with pytest.raises(PermissionDenied):
        factory.create(None)
    with pytest.raises(PermissionDenied):
        factory.download_url("x")
    with pytest.raises(PermissionDenied):
        factory.upload_url("x", authorization="mallory")
    with pytest.raises(PermissionDenied):
        factory.upload_form("x")


def test_an_authorizer_must_give_an_s3_store(store: S3Store) -> None:
    factory = S3DataStoreFactory(store, authorizer=lambda store, user: MemoryStore())
    with pytest.raises(Unsupported, match="cannot presign"):
        factory.download_url("x", authorization="alice")


def test_only_an_s3_store_can_presign() -> None:
    with pytest.raises(Unsupported, match="S3Store"):
        S3DataStoreFactory(MemoryStore())  # type: ignore[arg-type]


@pytest.fixture
def page_url() -> Iterator[str]:
    """The upload page, served on loopback: another origin than S3's."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(Path(__file__).parent / "browser")
    )
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/upload.html"
    server.shutdown()
    server.server_close()


def test_chromium_posts_an_upload_form(
    store: S3Store, factory: S3DataStoreFactory, page_url: str
) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"the browser test needs playwright: {error}")
    if not os.path.exists(CHROMIUM):
        unavailable(f"the browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    store.client.put_bucket_cors(
        Bucket=store.bucket,
        CORSConfiguration={
            "CORSRules": [
                {"AllowedOrigins": ["*"], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"]}
            ]
        },
    )
    form = factory.upload_form(key_prefix="uploads/", max_size=1024, content_types=["text/"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(page_url)
            status = page.evaluate(
                "([form, text]) => postUploadForm(form, 'hello.txt', text, 'text/plain')",
                [form.as_json(), "hello from chromium"],
            )
        finally:
            browser.close()
    assert status == 204
    item = store.get("uploads/hello.txt")
    assert item is not None
    assert item.content_type == "text/plain"
    assert store.read_bytes("uploads/hello.txt") == b"hello from chromium"
