"""``make demo``: the messenger on http://127.0.0.1:8000 over ``./demo-data`` (SQLite and a
directory store), with two demo users and a conversation between them. Their passwords are
new at every start and printed."""

from __future__ import annotations

import argparse
import secrets

import sqlalchemy as sa
import uvicorn

from .app import create_app
from .auth import hash_password
from .chat import create_conversation, sign_up
from .db import connect, conversations, users
from .storage import Settings

__all__ = ["main", "prepare"]

USERS = ("alice", "bob")


def prepare(settings: Settings) -> dict[str, str]:
    """The demo users (created, or given new passwords) and their conversation."""
    engine = connect(settings.database_url)
    passwords = {name: secrets.token_urlsafe(9) for name in USERS}
    try:
        for name, password in passwords.items():
            with engine.begin() as db:
                changed = db.execute(
                    users.update()
                    .where(users.c.name == name)
                    .values(password=hash_password(password))
                ).rowcount
            if not changed:
                sign_up(engine, name, password)
        with engine.connect() as db:
            alice = db.execute(sa.select(users.c.id).where(users.c.name == "alice")).scalar_one()
            exists = db.execute(sa.select(conversations.c.id).limit(1)).first() is not None
        if not exists:
            create_conversation(engine, alice, "Alice and Bob", ["bob"])
    finally:
        engine.dispose()
    return passwords


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    passwords = prepare(settings)
    print(f"Messenger on http://{args.host}:{args.port}/  (Ctrl-C stops it)")
    for name, password in passwords.items():
        print(f"  log in as {name:<6} password {password}")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
