"""The messenger's tables (SQLAlchemy Core): users, conversations and their members, messages
and their attachments. Blobs live in the store; the database holds who may see which."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "attachments",
    "connect",
    "conversations",
    "members",
    "messages",
    "metadata",
    "users",
]

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False, unique=True),
    sa.Column("password", sa.String(200), nullable=False),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(100), nullable=False),
)

members = sa.Table(
    "members",
    metadata,
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), primary_key=True),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), nullable=False, index=True),
    sa.Column("sender_id", sa.ForeignKey("users.id"), nullable=False),
    sa.Column("text", sa.String(4000), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)

# state: pending -> processing -> processed | failed. The row is the claim: a worker owns an
# attachment once its conditional UPDATE from "pending" (or from a "processing" whose lease ran
# out: claimed_at too old) changed exactly one row. ``claim`` is new at every claim, so a worker
# whose lease was taken over can tell that its result no longer counts.
attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.ForeignKey("messages.id"), nullable=False, index=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.String(300)),
    sa.Column("thumbnail_key", sa.String(200)),
    sa.Column("worker", sa.String(64)),
    sa.Column("claim", sa.String(32)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    # The item's etag when its message was sent. An S3 upload form cannot be made create-only,
    # so it can replace an attachment until it expires: the worker and the downloads refuse
    # an item whose etag is not this one. None for attachments sent before it was recorded.
    sa.Column("etag", sa.String(200)),
    sa.UniqueConstraint("namespace", "key"),
)


def connect(url: str) -> sa.Engine:
    """An engine on ``url`` with the tables created."""
    options: dict[str, object] = {}
    if url.startswith("sqlite"):
        # Workers and the app write from several threads and processes: wait for the lock.
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = sa.create_engine(url, **options)
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Columns added since a database was made (the lease's), so an old ``./demo-data``
    keeps working; every such column is nullable."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        found = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in found:
                kind = column.type.compile(engine.dialect)
                with engine.begin() as db:
                    db.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
