"""The messenger's web app (Starlette; ``uvicorn examples.messenger.app:create_app --factory
--no-access-log``: an access log would hold signed URLs).

The page asks for an upload form, posts the file straight to storage (the hosted store mounted
at ``/blobs``, or S3), then posts the message that names the key. Downloads are redirects to
short-lived signed URLs, issued only to the conversation's members. A desktop client trades
its session for a short-lived bearer token (``POST /api/token``) to reach its user's part of
the hosted store (``access.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import LoginLimiter, Session, SessionSigner, csrf_matches
from .chat import (
    ChatError,
    attachment_for,
    content_disposition,
    conversations_of,
    create_conversation,
    log_in,
    messages_of,
    new_attachment_key,
    post_message,
    require_member,
    require_unchanged,
    sign_up,
)
from .db import connect, users
from .storage import BLOBS_PATH, MAX_SIZE, TYPES, Settings, namespace_of, open_factory
from .tokens import TokenSigner
from .worker import Worker, retry_delay

__all__ = ["create_app"]

_PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")
_JSON_LIMIT = 16 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class _SecurityHeaders:
    """Headers on every answer, the hosted store's included: no sniffing a stored file into
    HTML, no framing, and no Referer carrying a signed URL's query elsewhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (name, value)
                    for name, value in (
                        (b"x-content-type-options", b"nosniff"),
                        (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer"),
                    )
                    if name not in present  # the hosted store sets some on its own answers
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _json(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_LIMIT:
            raise ChatError(413, "The request is too large.")
    try:
        data = json.loads(body)
    except ValueError:
        raise ChatError(400, "The request is not JSON.") from None
    if not isinstance(data, dict):
        raise ChatError(400, "The request is not a JSON object.")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise ChatError(400, f"{name} must be text.")
    return value


class Messenger:
    """The endpoints, over one database, one store and its factory."""

    def __init__(self, settings: Settings, *, run_worker: bool) -> None:
        self.settings = settings
        self.engine = connect(settings.database_url)
        self.store = settings.open_store()
        self.factory = open_factory(settings, self.store)
        self.sessions = SessionSigner(settings.secret)
        self.tokens = TokenSigner(settings.secret)
        self.logins = LoginLimiter()
        self.signups = LoginLimiter(attempts=20)
        self.run_worker = run_worker
        self.wake = asyncio.Event()
        # The page may load images from, and post forms to, where the factory points.
        probe = self.factory.download_url("probe", authorization=namespace_of(0))
        parts = urllib.parse.urlsplit(probe)
        self.storage_origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    # --- sessions and CSRF --------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        return self.sessions.open(request.cookies.get("session"))

    def user(self, request: Request) -> int:
        session = self.session(request)
        if session is None:
            raise ChatError(401, "Please log in.")
        return session.user_id

    def check_csrf(self, request: Request) -> None:
        if not csrf_matches(
            request.headers.get("x-csrf-token"), request.cookies.get("csrf"), self.session(request)
        ):
            raise ChatError(403, "The page is out of date: reload it and try again.")

    def _logged_in(self, request: Request, user_id: int, name: str) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = JSONResponse({"name": name})
        secure = request.url.scheme == "https"
        response.set_cookie(
            "session",
            self.sessions.issue(user_id, csrf),
            max_age=self.sessions.lifetime,
            httponly=True,
            samesite="lax",
            secure=secure,
        )
        response.set_cookie("csrf", csrf, samesite="strict", secure=secure)
        return response

    def _scalar(self, query: sa.Select[Any]) -> Any:
        with self.engine.connect() as db:
            return db.execute(query).scalar()

    def _member(self, conversation: int, user_id: int) -> None:
        with self.engine.connect() as db:
            require_member(db, conversation, user_id)

    # --- endpoints ------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        origin = f" {self.storage_origin}" if self.storage_origin else ""
        policy = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            f"img-src 'self' blob:{origin}; connect-src 'self'{origin}; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        response = HTMLResponse(
            _PAGE.replace("{{nonce}}", nonce),
            headers={"content-security-policy": policy, "cache-control": "no-store"},
        )
        if not request.cookies.get("csrf"):
            secure = request.url.scheme == "https"
            token = secrets.token_urlsafe(32)
            response.set_cookie("csrf", token, samesite="strict", secure=secure)
        return response

    async def signup(self, request: Request) -> Response:
        self.check_csrf(request)
        data = await _json(request)
        name, password = _text(data, "name").strip().lower(), _text(data, "password")
        address = request.client.host if request.client else ""
        if self.signups.retry_after(address, ""):
            raise ChatError(429, "Too many new accounts from here; try again in a minute.")
        self.signups.failed(address, "")
        user_id = await run_in_threadpool(sign_up, self.engine, name, password)
        return self._logged_in(request, user_id, name)

    async def login(self, request: Request) -> Response:
        self.check_csrf(request)
        data = await _json(request)
        name, password = _text(data, "name").strip().lower(), _text(data, "password")
        address = request.client.host if request.client else ""
        wait = self.logins.retry_after(address, name)
        if wait:
            raise ChatError(429, f"Too many failed logins; try again in {wait} seconds.")
        user_id = await run_in_threadpool(log_in, self.engine, name, password)
        if user_id is None:
            self.logins.failed(address, name)
            raise ChatError(401, "Wrong name or password.")
        return self._logged_in(request, user_id, name)

    async def logout(self, request: Request) -> Response:
        self.check_csrf(request)
        response = JSONResponse({})
        response.delete_cookie("session")
        return response

    async def token(self, request: Request) -> Response:
        """A bearer token for the hosted store, for the logged-in user's own namespace."""
        user_id = self.user(request)
        self.check_csrf(request)
        if not self.settings.hosted:
            raise ChatError(409, "This server keeps attachments in S3: it hosts no store.")
        token, expires = self.tokens.issue(user_id)
        return JSONResponse(
            {"token": token, "expires": expires, "store": BLOBS_PATH},
            headers={"cache-control": "no-store"},
        )

    async def me(self, request: Request) -> Response:
        user_id = self.user(request)
        query = sa.select(users.c.name).where(users.c.id == user_id)
        name = await run_in_threadpool(self._scalar, query)
        if name is None:
            raise ChatError(401, "Please log in.")
        return JSONResponse({"name": name, "max_size": MAX_SIZE, "types": TYPES})

    async def conversations(self, request: Request) -> Response:
        user_id = self.user(request)
        if request.method == "GET":
            found = await run_in_threadpool(conversations_of, self.engine, user_id)
            return JSONResponse({"conversations": found})
        self.check_csrf(request)
        data = await _json(request)
        names = data.get("members")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ChatError(400, "members is a list of names.")
        created = await run_in_threadpool(
            create_conversation, self.engine, user_id, _text(data, "title"), names
        )
        return JSONResponse({"id": created}, status_code=201)

    async def messages(self, request: Request) -> Response:
        user_id = self.user(request)
        conversation = int(request.path_params["id"])
        if request.method == "GET":
            found = await run_in_threadpool(messages_of, self.engine, conversation, user_id)
            return JSONResponse({"messages": found})
        self.check_csrf(request)
        data = await _json(request)
        given = data.get("attachment")
        attachment = None
        if given is not None:
            if not isinstance(given, dict):
                raise ChatError(400, "attachment is {key, filename}.")
            attachment = (_text(given, "key"), _text(given, "filename"))
        message = await run_in_threadpool(
            post_message,
            self.engine,
            self.store,
            user_id,
            conversation,
            _text(data, "text"),
            attachment,
        )
        self.wake.set()
        return JSONResponse({"id": message}, status_code=201)

    async def upload_form(self, request: Request) -> Response:
        """A form for one new key in the user's namespace, for a file of one allowed type (an
        S3 policy cannot list several); the policy holds the limits."""
        user_id = self.user(request)
        self.check_csrf(request)
        content_type = _text(await _json(request), "content_type").lower()
        if content_type not in TYPES:
            raise ChatError(
                400, "This kind of file cannot be sent: images, PDF and plain text only."
            )
        await run_in_threadpool(self._member, int(request.path_params["id"]), user_id)
        form = self.factory.upload_form(
            new_attachment_key(),
            authorization=namespace_of(user_id),
            max_size=MAX_SIZE,
            content_types=[content_type],
        )
        return JSONResponse(form.as_json())

    async def attachment(self, request: Request) -> Response:
        user_id = self.user(request)
        row = await run_in_threadpool(
            attachment_for, self.engine, int(request.path_params["id"]), user_id
        )
        part = request.path_params["part"]
        if part not in ("original", "thumbnail"):
            raise ChatError(404, "No such page.")
        if part == "thumbnail":
            if row.thumbnail_key is None:
                raise ChatError(404, "This attachment has no thumbnail.")
            url = self.factory.download_url(row.thumbnail_key, authorization=row.namespace)
        else:
            if row.state == "failed":
                raise ChatError(409, f"This file failed its check: {row.reason}.")
            # The signed URL names a key, not a version: check the version here.
            await run_in_threadpool(require_unchanged, self.store, row)
            url = self.factory.download_url(
                row.key,
                authorization=row.namespace,
                content_disposition=content_disposition(row.filename),
            )
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})

    # --- the in-process worker -------------------------------------------------------------

    async def work(self) -> None:
        """Process attachments when a message arrives, and every few seconds."""
        worker = Worker(self.engine, self.store)
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=5)
            self.wake.clear()
            try:
                await run_in_threadpool(worker.run_once)
                failures = 0
            except Exception as error:  # not CancelledError: the app's shutdown still ends it
                failures += 1
                await asyncio.sleep(retry_delay(error, failures))


def _endpoint(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ChatError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)

    return endpoint


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> Starlette:
    """The app over ``settings`` (default: from the environment). The in-process worker runs
    unless ``run_worker`` is False or ``MESSENGER_WORKER=0``."""
    import os

    settings = settings or Settings.from_env()
    if run_worker is None:
        run_worker = os.environ.get("MESSENGER_WORKER", "1") != "0"
    app = Messenger(settings, run_worker=run_worker)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(app.work()) if app.run_worker else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.store.close()
            app.engine.dispose()

    routes: list[Route | Mount] = [
        Route("/", app.page),
        Route("/api/signup", _endpoint(app.signup), methods=["POST"]),
        Route("/api/login", _endpoint(app.login), methods=["POST"]),
        Route("/api/logout", _endpoint(app.logout), methods=["POST"]),
        Route("/api/token", _endpoint(app.token), methods=["POST"]),
        Route("/api/me", _endpoint(app.me)),
        Route("/api/conversations", _endpoint(app.conversations), methods=["GET", "POST"]),
        Route(
            "/api/conversations/{id:int}/messages",
            _endpoint(app.messages),
            methods=["GET", "POST"],
        ),
        Route("/api/conversations/{id:int}/uploads", _endpoint(app.upload_form), methods=["POST"]),
        Route("/api/attachments/{id:int}/{part:str}", _endpoint(app.attachment)),
    ]
    if settings.hosted:
        from .access import blob_app

        routes.append(Mount(BLOBS_PATH, blob_app(app.store, settings.secret, app.tokens)))
    starlette = Starlette(routes=routes, lifespan=lifespan)
    starlette.add_middleware(_SecurityHeaders)
    return starlette
