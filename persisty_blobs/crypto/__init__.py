"""Client-side encryption: ``EncryptedStore`` (a layer over any store), ``Keyring``, and
Tink's streaming AEAD format (``streaming``) that they use."""

from .keyring import Keyring
from .layer import EncryptedStore

__all__ = ["EncryptedStore", "Keyring"]
