"""URLs as names show them: the secrets a URL's query can carry are left out."""

from __future__ import annotations

import re
import urllib.parse

__all__ = [
    "SECRET_PARAMETERS",
    "secret_parameters",
    "shown_url",
    "without_password",
    "without_passwords_in",
    "without_secret_parameters",
]

#: Query parameters that hold a secret (a database driver takes ``password=`` there, for one).
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "sslpassword",
        "token",
        "key",
        "secret",
        "aws_secret_access_key",
        "aws_session_token",
    }
)


def secret_parameters(url: str) -> list[str]:
    """The names of the query parameters of ``url`` that hold a secret."""
    query = urllib.parse.urlsplit(url).query
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return [name for name, _ in pairs if name.lower() in SECRET_PARAMETERS]


def without_secret_parameters(url: str) -> str:
    """``url`` with the value of each secret query parameter replaced by ``***``."""
    if not secret_parameters(url):
        return url
    # Rebuilt around the query alone: unsplitting would drop a database URL's empty host.
    head, _, rest = url.partition("?")
    query, hashed, fragment = rest.partition("#")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    shown = [(name, "***" if name.lower() in SECRET_PARAMETERS else value) for name, value in pairs]
    return f"{head}?{urllib.parse.urlencode(shown, safe='*')}{hashed}{fragment}"


def without_password(url: str, mark: str | None = None) -> str:
    """``url`` with the password in it left out, or shown as ``mark``."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL this parser takes
        return url
    if password is None:
        return url
    user = parts.username if mark is None else f"{parts.username}:{mark}"
    return url.replace(parts.netloc, f"{user}@{parts.netloc.rpartition('@')[2]}", 1)


def shown_url(url: str) -> str:
    """``url`` as a message may show it: its password and secret query values as ``***``."""
    return without_secret_parameters(without_password(url, "***"))


_PASSWORD_IN_TEXT = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/@:\"']*):[^\s/@\"']*@", re.IGNORECASE)


def without_passwords_in(text: str) -> str:
    """``text`` (a library's message that may quote a URL) with URL passwords as ``***``."""
    return _PASSWORD_IN_TEXT.sub(r"\1:***@", text)
