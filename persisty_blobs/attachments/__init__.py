"""Attachments for apps whose documents reference blobs: PowerSync's attachment queue and
LEAP Soledad's document attachments over a ``BlobManager``."""

from ..registry import require

require("sqlalchemy", extra="sync")  # the records and the sync state, before anything imports it

from .model import Attachment, AttachmentFlags, AttachmentState, ErrorHandler  # noqa: E402
from .queue import AttachmentQueue  # noqa: E402

__all__ = ["Attachment", "AttachmentFlags", "AttachmentQueue", "AttachmentState", "ErrorHandler"]
