"""The app the hosting tests serve with uvicorn in a child process. Every bearer token of the
form ``t-<hex>`` is its own principal with its own new, empty store (a directory or a SQLite
database under PB_TEST_ROOT, by PB_TEST_STORE), so each test gets a fresh store from one server.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from starlette.requests import Request

from persisty_blobs import DataStore
from persisty_blobs.server import create_app
from persisty_blobs.stores import DirectoryStore

ROOT = Path(os.environ["PB_TEST_ROOT"])
KIND = os.environ.get("PB_TEST_STORE", "directory")
SECRET = os.environ["PB_TEST_SECRET"]
QUOTA = int(os.environ["PB_TEST_QUOTA"]) if os.environ.get("PB_TEST_QUOTA") else None
BODY_TIMEOUT = float(os.environ.get("PB_TEST_BODY_TIMEOUT") or 60)
_stores: dict[str, DataStore] = {}
_lock = threading.Lock()


def authenticate(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" and re.fullmatch(r"t-[0-9a-f]{8,64}", token) else None


def authorize(_default: DataStore, principal: Any) -> DataStore:
    with _lock:
        if principal not in _stores:
            _stores[principal] = open_for(principal)
        return _stores[principal]


def open_for(principal: str) -> DataStore:
    if KIND == "sqlite":
        from persisty_blobs.stores.sql import SqlStore

        return SqlStore(f"sqlite:///{ROOT / principal}.db")
    return DirectoryStore(ROOT / principal)


default = DirectoryStore(ROOT / "default")
app = create_app(
    default,
    secret=SECRET,
    authenticate=authenticate,
    authorize=authorize,
    quota=QUOTA,
    cors_origins=[origin for origin in os.environ.get("PB_TEST_CORS", "").split(",") if origin],
    body_timeout=BODY_TIMEOUT,
)
