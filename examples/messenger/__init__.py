"""The messenger: a chat app whose attachments go from the browser straight to storage, are
processed by flags and reach the recipients by signed URL. Run it with ``make demo``."""
