"""Reading S3 objects: a GET response's body as a raw reader, and the check that a ranged GET
answered with the range asked for (a server or proxy that ignores ``Range`` sends the whole
object with 200, which read as the range would be the wrong bytes)."""

from __future__ import annotations

from typing import Any

from ...errors import IntegrityError, TransientError
from ...streams import HandsOutBytes
from ._errors import s3_errors

__all__ = ["ResponseRaw", "check_range"]


def check_range(response: Any, first: int, stop: int, size: int, store: str, key: str) -> None:
    """Raise ``IntegrityError`` unless ``response`` is a 206 carrying bytes ``[first, stop)``
    of an object of ``size`` bytes."""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    wanted = f"bytes {first}-{stop - 1}/{size}"
    got = response.get("ContentRange")
    if status != 206 or got != wanted:
        response["Body"].close()
        raise IntegrityError(
            f"S3 answered a request for {wanted!r} with status {status} and Content-Range "
            f"{got!r}: the server or a proxy on the way ignored the range",
            key=key,
            store=store,
        )


class ResponseRaw(HandsOutBytes):
    """The body of a GET response: ``read`` hands on urllib3's bytes as they are."""

    def __init__(self, body: Any, store: str, key: str) -> None:
        super().__init__()
        self._body = body
        self._store = store
        self._key = key
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with s3_errors(self._store, self._key):
            try:
                data: bytes = self._body.read(None if size is None or size < 0 else size)
            except (OSError, ValueError) as error:
                raise TransientError(
                    f"reading the S3 response failed: {error}", key=self._key, store=self._store
                ) from error
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
