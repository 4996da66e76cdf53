"""Envelope encryption: each value gets its own data key, and only data keys meet the key ring.

A sealed value is ``v1.<kek id>.<wrapped data key>.<nonce + ciphertext>`` (both parts base64url,
unpadded). The plaintext is encrypted with a fresh 256-bit data key (AES-256-GCM, 96-bit random
nonce); the data key is encrypted ("wrapped") by the ring's active key-encryption key, also with
AES-256-GCM. Rotating a KEK therefore re-encrypts 60 bytes per value (:meth:`KeyRing.rewrap`),
never the data itself. Both layers authenticate the context (and the KEK id), so a value copied to
another row, or relabelled with another key id, does not open.

Pure apart from the randomness, which defaults to ``os.urandom`` and can be handed in.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from campaignflow.errors import SealedDataError
from campaignflow.security.sealing import Sealer

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

Random = Callable[[int], bytes]

# Associated data. Key ids cannot contain NUL, so these encodings are unambiguous.
_DATA_AAD = b"campaignflow sealed v1\x00data\x00"
_WRAP_AAD = b"campaignflow sealed v1\x00dek\x00"


class RewrappingSealer(Sealer, Protocol):
    """A sealer that can move a value under its active key without decrypting the data
    (what key rotation needs; :class:`KeyRing` is one)."""

    @property
    def active_id(self) -> str: ...

    def rewrap(self, sealed: str, *, context: str) -> str: ...


class _Parts(NamedTuple):
    key_id: str
    wrapped: bytes  # nonce + encrypted data key + tag
    body: bytes  # nonce + ciphertext + tag


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Key-encryption keys by id, one of them active (the one new values are wrapped with).

    Implements :class:`campaignflow.security.sealing.Sealer`. Keys that are no longer active
    stay in the ring until every value they wrapped has been re-wrapped.
    """

    keys: Mapping[str, bytes]
    active_id: str
    random: Random = field(default=os.urandom, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
        if self.active_id not in self.keys:
            raise ValueError(f"the active key {self.active_id!r} is not in the ring")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def seal(self, plaintext: bytes, *, context: str) -> str:
        data_key = self.random(KEY_BYTES)
        body = _encrypt(data_key, self.random(NONCE_BYTES), plaintext, _data_aad(context))
        return self._format(data_key, body, context)

    def open(self, sealed: str, *, context: str) -> bytes:
        parts = _parse(sealed)
        data_key = self._unwrap(parts, context)
        return _decrypt(data_key, parts.body, _data_aad(context))

    def key_id_of(self, sealed: str) -> str:
        return _parse(sealed).key_id

    def rewrap(self, sealed: str, *, context: str) -> str:
        """The same value with its data key wrapped by the active KEK; the ciphertext is kept.

        A value already under the active KEK comes back unchanged. The data key is unwrapped
        with the context, so a value that would not open is refused here too.
        """
        parts = _parse(sealed)
        data_key = self._unwrap(parts, context)
        if parts.key_id == self.active_id:
            return sealed
        return self._format(data_key, parts.body, context)

    def _format(self, data_key: bytes, body: bytes, context: str) -> str:
        kek = self.keys[self.active_id]
        aad = _wrap_aad(self.active_id, context)
        wrapped = _encrypt(kek, self.random(NONCE_BYTES), data_key, aad)
        return ".".join((FORMAT_VERSION, self.active_id, _b64(wrapped), _b64(body)))

    def _unwrap(self, parts: _Parts, context: str) -> bytes:
        kek = self.keys.get(parts.key_id)
        if kek is None:
            raise SealedDataError(f"Sealed with key {parts.key_id!r}, which is not in the ring.")
        data_key = _decrypt(kek, parts.wrapped, _wrap_aad(parts.key_id, context))
        if len(data_key) != KEY_BYTES:
            raise SealedDataError()
        return data_key


def _data_aad(context: str) -> bytes:
    return _DATA_AAD + context.encode("utf-8", "surrogatepass")


def _wrap_aad(key_id: str, context: str) -> bytes:
    return _WRAP_AAD + key_id.encode("ascii") + b"\x00" + context.encode("utf-8", "surrogatepass")


def _encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise SealedDataError() from exc


def _parse(sealed: str) -> _Parts:
    pieces = sealed.split(".")
    if len(pieces) != 4 or pieces[0] != FORMAT_VERSION:
        raise SealedDataError(f"Not a sealed value of format {FORMAT_VERSION}.")
    _, key_id, wrapped, body = pieces
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise SealedDataError("The sealed value names no valid key id.")
    return _Parts(key_id, _unb64(wrapped), _unb64(body))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url: only the canonical spelling decodes, so changing any character of a
    sealed value (even one whose low bits base64 would ignore) makes it fail to open."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealedDataError("The sealed value is not valid base64url.") from exc
    if _b64(data) != text or len(data) <= NONCE_BYTES:
        raise SealedDataError("The sealed value is not valid base64url.")
    return data


def generate_key(random: Random = os.urandom) -> bytes:
    """A new 256-bit key-encryption key."""
    return random(KEY_BYTES)
