"""Headless Chromium posts a hosted upload form from a page on another origin (CORS preflight
and all), then downloads the item through a signed URL; an oversize file stores nothing."""

from __future__ import annotations

from pathlib import Path

from persisty_blobs.server import HostedDataStoreFactory
from persisty_blobs.stores import DirectoryStore

from .browser_support import chromium_page, page_server
from .http_support import SECRET, served

FETCH_TEXT = "async (url) => { const r = await fetch(url); return [r.status, await r.text()]; }"
# A PUT is not a simple request: Chromium sends the CORS preflight first.
PUT_TEXT = """async ([url, text]) => {
  const r = await fetch(url, {method: "PUT", body: text, headers: {"content-type": "text/plain"}});
  return r.status;
}"""


def test_chromium_posts_a_hosted_form_and_downloads_by_signed_url(tmp_path: Path) -> None:
    with page_server() as origin, served(tmp_path, cors=origin) as url:
        store = DirectoryStore(tmp_path / "default")
        factory = HostedDataStoreFactory(
            store,
            secret=SECRET,
            base_url=url,
            authorizer=lambda store, who: store.namespace(str(who)),
        )
        form = factory.upload_form(
            authorization="dana", key_prefix="uploads/", max_size=1024, content_types=["text/"]
        )
        with chromium_page(f"{origin}/upload.html") as page:
            status = page.evaluate(
                "([form, text]) => postUploadForm(form, 'hello.txt', text, 'text/plain')",
                [form.as_json(), "hello from chromium"],
            )
            oversize = page.evaluate(
                "([form, text]) => postUploadForm(form, 'big.txt', text, 'text/plain')",
                [form.as_json(), "x" * 5000],
            )
            download = factory.download_url("uploads/hello.txt", authorization="dana")
            fetched = page.evaluate(FETCH_TEXT, download)
            upload = factory.upload_url(
                "notes.txt", authorization="dana", content_type="text/plain"
            )
            put = page.evaluate(PUT_TEXT, [upload, "put by chromium"])
        dana = factory.create("dana")
        assert (status, oversize) == (204, 413)
        assert fetched == [200, "hello from chromium"]
        assert put == 201
        assert dana.read_bytes("notes.txt") == b"put by chromium"
        assert dana.get("uploads/hello.txt").content_type == "text/plain"  # type: ignore[union-attr]
        assert [entry.key for entry in dana.scan()] == ["notes.txt", "uploads/hello.txt"]
