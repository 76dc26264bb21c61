"""How S3's errors map onto the error tree: one place, for every S3 call of the store.

Only what a retry can fix is ``TransientError``: throttling, 5xx, timeouts, a connection that
failed or was cut. Wrong credentials are ``PermissionDenied``; a missing bucket is ``NotFound``
with a message that says so; an answer that fails its checksum is ``IntegrityError``; anything
else S3 refuses is a plain ``BlobError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..._urls import without_passwords_in
from ...errors import (
    AlreadyExists,
    BlobError,
    IntegrityError,
    InvalidMetadata,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
    TooLarge,
    TransientError,
    Unsupported,
)

__all__ = ["retried", "s3_errors"]

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_DENIED = {
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",  # a concurrent conditional write: retrying settles it
}


def _mapped(error: Exception, key: str | None, store: str) -> BlobError | None:
    mapped = _classified(error, key, store)
    if mapped is not None:  # botocore quotes the endpoint URL, with any password it holds
        mapped.args = tuple(without_passwords_in(str(arg)) for arg in mapped.args)
        mapped.message = without_passwords_in(mapped.message)
    return mapped


def _classified(error: Exception, key: str | None, store: str) -> BlobError | None:
    # Imported here: this module is imported by the store only once boto3 is known present.
    from botocore import exceptions as boto

    if isinstance(error, boto.ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = f"S3 {error.operation_name}: {code} {details.get('Message', '')}".strip()
        if code == "NoSuchBucket":
            return NotFound(f"{message}: the bucket does not exist", key=key, store=store)
        if code in _NOT_FOUND or status == 404:
            return NotFound(message, key=key, store=store)
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed(message, key=key, store=store)
        if code in _DENIED or status == 403:
            return PermissionDenied(message, key=key, store=store)
        if code == "InvalidRange" or status == 416:
            return RangeNotSatisfiable(message, key=key, store=store)
        if code in ("EntityTooLarge", "EntityTooSmall"):
            return TooLarge(message, key=key, store=store)
        if code == "MetadataTooLarge":
            return InvalidMetadata(f"{message} (S3 takes 2 KB in all)", key=key, store=store)
        if code in ("NotImplemented", "InvalidRequest") or status == 501:
            return Unsupported(f"{message}: this S3 endpoint does not support it", store=store)
        if code in _TRANSIENT or status in (409, 429) or status >= 500:
            return TransientError(message, key=key, store=store)
        return BlobError(message, key=key, store=store)
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return PermissionDenied(f"no AWS credentials: {error}", key=key, store=store)
    if isinstance(
        error,
        boto.EndpointConnectionError
        | boto.ConnectionError
        | boto.HTTPClientError
        | boto.ReadTimeoutError
        | boto.ResponseStreamingError
        | boto.IncompleteReadError,  # a response cut short: the next try may get it whole
    ):
        return TransientError(f"S3 connection failed: {error}", key=key, store=store)
    if isinstance(error, boto.FlexibleChecksumError | boto.ChecksumError):
        return IntegrityError(f"S3's answer failed its checksum: {error}", key=key, store=store)
    if isinstance(error, boto.UnseekableStreamError):
        # botocore would send again a streamed body that failed on the way: the caller can.
        message = "S3 connection failed while the content was streamed; write it again"
        return TransientError(message, key=key, store=store)
    if isinstance(error, boto.BotoCoreError):
        return BlobError(f"S3 client error: {error}", key=key, store=store)
    return None


@contextlib.contextmanager
def s3_errors(store: str, key: str | None = None, *, create_only: bool = False) -> Iterator[None]:
    """Map boto3's errors onto the error tree; on a create-only write (``if_none_match="*"``)
    a failed precondition means the item exists."""
    try:
        yield
    except Exception as error:
        mapped = _mapped(error, key, store)
        if mapped is None:
            raise
        if create_only and isinstance(mapped, PreconditionFailed):
            message = "the item exists and if_none_match='*' was given"
            mapped = AlreadyExists(message, key=key, store=store)
        if without_passwords_in(str(error)) != str(error):
            # botocore's error quotes the password: a traceback would print it.
            raise mapped from None
        raise mapped from error


def retried(error: BlobError) -> bool:
    """Whether botocore sent the request that ``error`` answers more than once: an earlier
    attempt may have reached S3 and lost only its response."""
    cause: Any = error.__cause__
    if isinstance(cause, BlobError):  # mapped twice (a 404 that answers if_match)
        cause = cause.__cause__
    response = getattr(cause, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0
