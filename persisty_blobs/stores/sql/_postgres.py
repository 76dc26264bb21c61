"""A psycopg connection that gives up on a server that stops answering.

libpq has a connect timeout but none for reading: against a server that stops sending (a
black-holed network, a hung host) a query waits for ever. This connection passes a timeout to
each of psycopg's waits; past it the connection is closed (it is mid-protocol, so unusable)
and ``ConnectionTimeout`` raised, which the store reports as ``TransientError``.
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["DeadlineConnection"]


class DeadlineConnection(psycopg.Connection[Any]):
    #: Seconds a statement may wait for the server; set on each connection by the store.
    read_timeout: float = 60.0

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval, self.read_timeout if timeout is None else timeout)
        except psycopg.OperationalError as error:
            # psycopg raises its internal _WaitTimeout when the timeout passes.
            if type(error).__name__ != "_WaitTimeout":
                raise
            self.pgconn.finish()
            raise psycopg.errors.ConnectionTimeout(
                f"no answer from the server in {self.read_timeout} s (read_timeout)"
            ) from None
