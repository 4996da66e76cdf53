"""The seam between what must be stored encrypted and the key ring that encrypts it.

Anything kept secret at rest (integration credentials, JWT signing keys, sensitive contact fields)
is sealed through a :class:`Sealer`; the envelope implementation (AES-256-GCM data keys wrapped by
a key-encryption key) lives in :mod:`campaignflow.security.envelope`.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt and authenticate ``plaintext``, bound to ``context`` (e.g. ``"secret:ws/id"``):
        a value sealed for one context does not open in another. Returns printable text."""
        ...

    def open(self, sealed: str, *, context: str) -> bytes:
        """Decrypt a value sealed for ``context``; raises ``SealedDataError`` if it was tampered
        with, sealed for another context, or wrapped by an unknown key."""
        ...

    def key_id_of(self, sealed: str) -> str:
        """The id of the key-encryption key that wrapped this value (for rotation)."""
        ...
