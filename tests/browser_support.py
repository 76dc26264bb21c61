"""Headless Chromium (Debian's, through Playwright) and a page on its own origin to drive it."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .conftest import unavailable

CHROMIUM = "/usr/bin/chromium"
PAGES = Path(__file__).parent / "browser"


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """The origin (``http://127.0.0.1:<port>``) of a server of ``tests/browser``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGES))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium_page(url: str) -> Iterator[Any]:
    """A Chromium page at ``url`` (the test is unavailable without Chromium or Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"the browser test needs playwright: {error}")
    if not os.path.exists(CHROMIUM):
        unavailable(f"the browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()
