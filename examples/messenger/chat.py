"""What the messenger does, apart from HTTP: accounts, conversations, messages and the checks
on an attachment before a message may reference it. Used by the app, the demo and the tests."""

from __future__ import annotations

import re
import secrets
import unicodedata
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from persisty_blobs import DataStore, Flag

from .auth import hash_password, verify_password
from .db import attachments, conversations, members, messages, users
from .storage import MAX_SIZE, TYPES, namespace_of

__all__ = [
    "ChatError",
    "attachment_for",
    "content_disposition",
    "conversations_of",
    "create_conversation",
    "log_in",
    "messages_of",
    "new_attachment_key",
    "post_message",
    "require_member",
    "require_unchanged",
    "sign_up",
]

_NAME = re.compile(r"[a-z0-9_]{2,32}")
_KEY = re.compile(r"att/[0-9a-f]{32}")
# Spent on unknown names too, so a login's time does not tell which names exist.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


class ChatError(Exception):
    """A refusal the page shows as it is: ``message`` is meant for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def sign_up(engine: sa.Engine, name: str, password: str) -> int:
    if not _NAME.fullmatch(name):
        raise ChatError(400, "A name is 2 to 32 lowercase letters, digits or underscores.")
    if not 8 <= len(password) <= 200:
        raise ChatError(400, "A password is 8 to 200 characters.")
    try:
        with engine.begin() as db:
            result = db.execute(users.insert().values(name=name, password=hash_password(password)))
    except sa.exc.IntegrityError:
        raise ChatError(409, "That name is taken.") from None
    return _new_id(result)


def log_in(engine: sa.Engine, name: str, password: str) -> int | None:
    with engine.connect() as db:
        row = db.execute(sa.select(users.c.id, users.c.password).where(users.c.name == name))
        found = row.first()
    if found is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return int(found.id) if verify_password(password, found.password) else None


def create_conversation(engine: sa.Engine, creator: int, title: str, names: list[str]) -> int:
    title = title.strip()[:100] or "Conversation"
    with engine.begin() as db:
        found = db.execute(sa.select(users.c.id, users.c.name).where(users.c.name.in_(names)))
        ids = {row.id for row in found}
        if len(ids) < len(set(names)):
            raise ChatError(400, "Some of those people have no account.")
        ids.add(creator)
        if len(ids) < 2:
            raise ChatError(400, "A conversation needs at least one other person.")
        conversation = _new_id(db.execute(conversations.insert().values(title=title)))
        db.execute(members.insert(), [{"conversation_id": conversation, "user_id": u} for u in ids])
    return conversation


def conversations_of(engine: sa.Engine, user_id: int) -> list[dict[str, Any]]:
    mine = sa.select(members.c.conversation_id).where(members.c.user_id == user_id)
    query = (
        sa.select(conversations.c.id, conversations.c.title, users.c.name)
        .join(members, members.c.conversation_id == conversations.c.id)
        .join(users, users.c.id == members.c.user_id)
        .where(conversations.c.id.in_(mine))
        .order_by(conversations.c.id, users.c.name)
    )
    found: dict[int, dict[str, Any]] = {}
    with engine.connect() as db:
        for row in db.execute(query):
            entry = found.setdefault(row.id, {"id": row.id, "title": row.title, "members": []})
            entry["members"].append(row.name)
    return list(found.values())


def require_member(db: sa.Connection, conversation: int, user_id: int) -> None:
    query = sa.select(members.c.user_id).where(
        members.c.conversation_id == conversation, members.c.user_id == user_id
    )
    if db.execute(query).first() is None:
        raise ChatError(403, "You are not in this conversation.")


def messages_of(engine: sa.Engine, conversation: int, user_id: int) -> list[dict[str, Any]]:
    query = (
        sa.select(
            messages.c.id,
            messages.c.text,
            messages.c.sent_at,
            users.c.name,
            attachments.c.id.label("attachment_id"),
            attachments.c.filename,
            attachments.c.content_type,
            attachments.c.size,
            attachments.c.state,
            attachments.c.reason,
            attachments.c.thumbnail_key,
        )
        .join(users, users.c.id == messages.c.sender_id)
        .outerjoin(attachments, attachments.c.message_id == messages.c.id)
        .where(messages.c.conversation_id == conversation)
        .order_by(messages.c.id)
    )
    with engine.connect() as db:
        require_member(db, conversation, user_id)
        rows = db.execute(query).all()
    return [
        {
            "id": row.id,
            "sender": row.name,
            "text": row.text,
            "sent_at": row.sent_at.isoformat(),
            "attachment": None
            if row.attachment_id is None
            else {
                "id": row.attachment_id,
                "filename": row.filename,
                "content_type": row.content_type,
                "size": row.size,
                "state": row.state,
                "reason": row.reason,
                "thumbnail": row.thumbnail_key is not None,
            },
        }
        for row in rows
    ]


def new_attachment_key() -> str:
    return f"att/{secrets.token_hex(16)}"


def _clean_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or "attachment"


def content_disposition(filename: str) -> str:
    """``attachment`` with the name both as plain ASCII and as RFC 5987 UTF-8."""
    ascii_name = "".join(c if c.isalnum() or c in "._- " else "_" for c in filename)
    ascii_name = ascii_name.encode("ascii", "replace").decode().replace("?", "_")
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


def post_message(
    engine: sa.Engine,
    store: DataStore,
    sender: int,
    conversation: int,
    text: str,
    attachment: tuple[str, str] | None = None,
) -> int:
    """Store a message; an attachment ``(key, filename)`` must be an upload of the sender's,
    in their namespace, not yet sent. It is flagged PENDING for the workers."""
    text = text.strip()
    if len(text) > 4000:
        raise ChatError(400, "A message is at most 4000 characters.")
    if not text and attachment is None:
        raise ChatError(400, "The message is empty.")
    now = datetime.now(UTC)
    with engine.begin() as db:
        require_member(db, conversation, sender)
        message = _new_id(
            db.execute(
                messages.insert().values(
                    conversation_id=conversation, sender_id=sender, text=text, sent_at=now
                )
            )
        )
        if attachment is not None:
            _attach(db, store, sender, message, *attachment)
    return message


def _attach(
    db: sa.Connection, store: DataStore, sender: int, message: int, key: str, filename: str
) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ChatError(400, "That is not an attachment of yours.")
    namespace = namespace_of(sender)
    mine = store.namespace(namespace)
    item = mine.get(key)
    if item is None:
        raise ChatError(400, "The attachment was not uploaded (or is not yours).")
    bare = item.content_type.split(";")[0].strip().lower()
    if item.size > MAX_SIZE or bare not in TYPES:
        raise ChatError(400, "The attachment breaks the upload rules.")
    try:
        db.execute(
            attachments.insert().values(
                message_id=message,
                namespace=namespace,
                key=key,
                filename=_clean_filename(str(filename)),
                content_type=bare,
                size=item.size,
                state="pending",
                etag=item.etag,
            )
        )
    except sa.exc.IntegrityError:
        raise ChatError(409, "That attachment was already sent.") from None
    # Inside the transaction: if flagging fails, no message references the attachment.
    mine.set_flags(key, [Flag.PENDING])


def attachment_for(engine: sa.Engine, attachment: int, user_id: int) -> sa.Row[Any]:
    """The attachment's row, if ``user_id`` is in its conversation; else 403 (missing ones
    too, so ids cannot be probed)."""
    query = (
        sa.select(attachments)
        .join(messages, messages.c.id == attachments.c.message_id)
        .join(members, members.c.conversation_id == messages.c.conversation_id)
        .where(attachments.c.id == attachment, members.c.user_id == user_id)
    )
    with engine.connect() as db:
        row = db.execute(query).first()
    if row is None:
        raise ChatError(403, "You cannot open this attachment.")
    return row


def require_unchanged(store: DataStore, row: sa.Row[Any]) -> None:
    """Refuse an attachment whose item is no longer the one its message was sent with."""
    current = store.namespace(row.namespace).get(row.key)
    if row.etag is not None and (current is None or current.etag != row.etag):
        raise ChatError(409, "This file was replaced after it was sent: it is not served.")
