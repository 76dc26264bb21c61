"""Examples of persisty-blobs in use: the tour and the messenger."""
