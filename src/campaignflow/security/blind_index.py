"""Keyed blind indexes: find an encrypted field by value without decrypting every row.

Sealed values are randomised (a new data key and nonce each time), so equal emails do not give
equal ciphertexts. Next to the sealed value a row keeps ``digest(field, normalized value)``, an
HMAC-SHA256 under a key of its own: equal inputs give equal digests, and without the key nobody
can test a guess against the stored digests. The key must outlive KEK rotation (every stored
digest depends on it), which is why it is not a key-encryption key (see ``key_file``).

Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
DERIVATION_INFO = b"campaignflow blind index v1"


@dataclass(frozen=True, slots=True)
class BlindIndex:
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a blind index key must be {KEY_BYTES} bytes, not {len(self.key)}")

    @classmethod
    def derived_from(cls, key_material: bytes) -> BlindIndex:
        """The index keyed by HKDF-SHA256 of ``key_material`` (info ``campaignflow blind index
        v1``): independent of the key it comes from, whose other uses it cannot weaken."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=DERIVATION_INFO)
        return cls(hkdf.derive(key_material))

    def digest(self, field_name: str, normalized_value: str) -> str:
        """43 characters of base64url (the full 32-byte HMAC). The field name is part of the
        input, so the same value in ``email`` and ``phone`` gives different digests."""
        if "\x00" in field_name:
            raise ValueError("a field name cannot contain NUL")
        message = field_name.encode() + b"\x00" + normalized_value.encode("utf-8", "surrogatepass")
        mac = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
