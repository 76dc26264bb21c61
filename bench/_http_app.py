"""The app ``bench http`` serves: the hosting app over a directory store, and beside it the
baseline, a plain Starlette endpoint that writes a file (and fsyncs it, as the store does) and
serves it with ``FileResponse``. Settings come from the environment (BENCH_ROOT)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route

from persisty_blobs.server import bearer_tokens, create_app
from persisty_blobs.stores import DirectoryStore

ROOT = Path(os.environ["BENCH_ROOT"])
(ROOT / "plain").mkdir(parents=True, exist_ok=True)


async def plain(request: Request) -> Response:
    path = ROOT / "plain" / request.path_params["name"]
    if request.method == "GET":
        return FileResponse(path)
    async with await anyio.open_file(path, "wb") as file:
        async for chunk in request.stream():
            await file.write(chunk)
        await file.flush()
        await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
    return Response(status_code=201)


hosted = create_app(
    DirectoryStore(ROOT / "store"),
    secret="bench-secret-0123456789",
    authenticate=bearer_tokens({"bench-token": "bench"}),
)
app = Starlette(routes=[Route("/plain/{name}", plain, methods=["GET", "PUT"]), Mount("/", hosted)])
