"""The messenger's JSON API as a program uses it: log in as the page does (the ``csrf``
cookie the page sets, sent back in ``X-CSRF-Token``; the signed session cookie after), trade
the session for a bearer token to the hosted store, and read and post messages."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

__all__ = ["ApiError", "MessengerApi"]


class ApiError(Exception):
    """What the app refused, in its own words, or why it could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class MessengerApi:
    """One user's session with the app at ``url``."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> MessengerApi:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {}
        if method != "GET":
            headers["x-csrf-token"] = self.client.cookies.get("csrf") or ""
        try:
            response = self.client.request(
                method, path, headers=headers, **({} if body is None else {"json": body})
            )
        except httpx.TransportError as error:
            raise ApiError(f"cannot reach {self.url}: {error}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and isinstance(answer, dict):
            return answer
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            raise ApiError(answer["error"], response.status_code)
        raise ApiError(
            f"{self.url} answered {response.status_code}: is it the messenger?",
            response.status_code,
        )

    def login(self, name: str, password: str) -> None:
        try:
            page = self.client.get("/")
        except httpx.TransportError as error:
            raise ApiError(f"cannot reach {self.url}: {error}") from None
        if page.status_code != 200 or "csrf" not in self.client.cookies:
            raise ApiError(f"{self.url} answered {page.status_code}: is it the messenger?")
        self._call("POST", "/api/login", {"name": name, "password": password})

    def blob_token(self) -> tuple[str, str]:
        """A short-lived bearer token, and the URL of the hosted store it opens."""
        answer = self._call("POST", "/api/token")
        return str(answer["token"]), self.url + str(answer["store"])

    def conversations(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/api/conversations")["conversations"]
        return found

    def messages(self, conversation: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call(
            "GET", f"/api/conversations/{conversation}/messages"
        )["messages"]
        return found

    def post_message(
        self, conversation: int, text: str, attachment: tuple[str, str] | None = None
    ) -> int:
        """Post a message; ``attachment`` is ``(key, filename)`` of an upload of this user's."""
        body: dict[str, Any] = {"text": text}
        if attachment is not None:
            body["attachment"] = {"key": attachment[0], "filename": attachment[1]}
        path = f"/api/conversations/{conversation}/messages"
        return int(self._call("POST", path, body)["id"])
