"""Saved remotes and where the command keeps its files.

``remotes.json`` in the config directory (``$PERSISTY_BLOBS_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/persisty-blobs``, else ``~/.config/persisty-blobs``) maps a remote name to
its ``open_store`` URL, its plain options, and where each secret option is read from: an
environment variable or a file. A secret's value is never written to the file and never
taken from the command line, where ``ps`` shows it to every user of the machine.

Sync state lives in the state directory (``$PERSISTY_BLOBS_STATE_DIR``, else
``$XDG_STATE_HOME/persisty-blobs``, else ``~/.local/state/persisty-blobs``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .._urls import secret_parameters
from ._errors import CliFailure, CliNotFound, hide_secret

__all__ = [
    "SECRET_OPTIONS",
    "Remote",
    "config_dir",
    "load_remotes",
    "parse_option",
    "parse_secret",
    "save_remotes",
    "state_dir",
    "write_private",
]

REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Options that hold a credential: accepted only as --secret NAME=env:VAR or NAME=file:PATH.
SECRET_OPTIONS = frozenset({"key", "token", "password", "passphrase", "secret"})


def _home_dir(variable: str, xdg: str, default: str) -> Path:
    override = os.environ.get(variable)
    if override:
        return Path(override)
    base = os.environ.get(xdg) or str(Path.home() / default)
    return Path(base) / "persisty-blobs"


def config_dir() -> Path:
    return _home_dir("PERSISTY_BLOBS_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    return _home_dir("PERSISTY_BLOBS_STATE_DIR", "XDG_STATE_HOME", ".local/state")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


@dataclass(frozen=True)
class Remote:
    """A saved store: its URL, plain options, and secret options as ``{"env": VAR}`` or
    ``{"file": PATH}``."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolved_options(self) -> dict[str, Any]:
        """The options ``open_store`` takes, with every secret read now."""
        options = dict(self.options)
        for name, source in self.secrets.items():
            options[name] = _read_secret(self.name, name, source)
        return options

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options, "secrets": self.secrets}


def _read_secret(remote: str, name: str, source: dict[str, str]) -> str:
    if "env" in source:
        value = os.environ.get(source["env"])
        if not value:
            raise CliFailure(
                f"remote {remote!r} reads its {name} from ${source['env']}, which is not set"
            )
    else:
        try:
            value = Path(source["file"]).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CliFailure(
                f"remote {remote!r} reads its {name} from {source['file']!r}: {error.strerror}"
            ) from None
    hide_secret(value)
    return value


def load_remotes() -> dict[str, Remote]:
    path = config_dir() / "remotes.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise CliFailure(f"cannot read {str(path)!r}: {error}") from None
    return {
        name: Remote(name, entry["url"], entry.get("options", {}), entry.get("secrets", {}))
        for name, entry in data.get("remotes", {}).items()
    }


def save_remotes(remotes: dict[str, Remote]) -> None:
    document = {"remotes": {name: remotes[name].to_json() for name in sorted(remotes)}}
    write_private(config_dir() / "remotes.json", json.dumps(document, indent=2) + "\n")


def remote(name: str) -> Remote:
    found = load_remotes().get(name)
    if found is None:
        raise CliNotFound(f"no remote named {name!r} (persisty-blobs remote add {name} URL)")
    return found


def check_url(url: str) -> str:
    """Refuse a URL with a password in it: it would be in ``ps`` and in the config file."""
    if "://" not in url:
        raise click.BadParameter("a store URL looks like scheme://...", param_hint="URL")
    if urllib.parse.urlsplit(url).password is not None:
        raise click.BadParameter(
            "a password in a URL is visible to every user (ps) and would be saved in plain "
            "text: leave it out and add --secret password=env:VAR to a remote",
            param_hint="URL",
        )
    in_query = secret_parameters(url)
    if in_query:
        raise click.BadParameter(
            f"a {in_query[0]}= in a URL is visible to every user (ps) and would be saved in "
            f"plain text: leave it out and add --secret {in_query[0]}=env:VAR to a remote",
            param_hint="URL",
        )
    return url


def parse_option(text: str) -> tuple[str, Any]:
    """``name=value`` from ``--option``; numbers and true/false become values of their type."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise click.BadParameter(f"expected NAME=VALUE, not {text!r}", param_hint="--option")
    if name.lower() in SECRET_OPTIONS:
        raise click.BadParameter(
            f"{name} is a secret: pass --secret {name}=env:VARIABLE or {name}=file:PATH",
            param_hint="--option",
        )
    typed: Any = value
    if value.lower() in ("true", "false"):
        typed = value.lower() == "true"
    else:
        for kind in (int, float):
            try:
                typed = kind(value)
                break
            except ValueError:
                continue
    return name, typed


def parse_secret(text: str) -> tuple[str, dict[str, str]]:
    """``name=env:VARIABLE`` or ``name=file:PATH`` from ``--secret``."""
    name, _, source = text.partition("=")
    kind, colon, where = source.partition(":")
    if not name or not colon or not where or kind not in ("env", "file"):
        raise click.BadParameter(
            "expected NAME=env:VARIABLE or NAME=file:PATH (never the secret itself)",
            param_hint="--secret",
        )
    return name, {kind: where if kind == "env" else str(Path(where).absolute())}
