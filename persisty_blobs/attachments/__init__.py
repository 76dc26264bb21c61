"""Attachments for apps whose documents reference blobs: PowerSync's attachment queue and
LEAP Soledad's document attachments over a ``BlobManager``."""

from .model import Attachment, AttachmentFlags, AttachmentState, ErrorHandler
from .queue import AttachmentQueue

__all__ = ["Attachment", "AttachmentFlags", "AttachmentQueue", "AttachmentState", "ErrorHandler"]
