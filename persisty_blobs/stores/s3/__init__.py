"""The S3 store: ``S3Store`` keeps items as objects in a bucket (AWS or any S3-compatible
service, through boto3); ``S3DataStoreFactory`` hands browsers presigned URLs and upload
forms for them.

One concept per module: ``_layout`` (objects, metadata, checksums, flags), ``_errors`` (S3's
errors on the error tree), ``_client`` (the boto3 client), ``_driver`` (the primitives),
``_reader`` (GET bodies and range checks), ``_writer`` (one put or a multipart upload, and
what a lost response left behind), ``_copy`` (server-side copies, and the copy that records
a multipart object's SHA-256), ``_factory`` (presigning) and ``_store`` (the public store).
"""

from ._factory import Authorizer, S3DataStoreFactory
from ._store import S3Store

__all__ = ["Authorizer", "S3DataStoreFactory", "S3Store"]
