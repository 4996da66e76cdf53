"""API keys: a visible prefix that identifies the key in lists and logs, a 256-bit secret, and
only the SHA-256 of the whole key at rest.

Form: ``cf_<8 visible characters>_<43 secret characters>``. The visible part is what a user sees
after creation (``cf_Ab12Cd34``) and what the masking of logs keeps. A key is random and long, so
a fast hash is enough: there is nothing to brute-force that a slow hash would protect (the same
choice as GitHub's and Stripe's tokens); lookups go straight to the unique hash index.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "cf_"
_VISIBLE_ALPHABET = string.ascii_letters + string.digits
_VISIBLE_LENGTH = 8


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as created: ``value`` is shown once and never stored."""

    value: str
    prefix: str
    key_hash: str


def generate_key() -> NewKey:
    visible = "".join(secrets.choice(_VISIBLE_ALPHABET) for _ in range(_VISIBLE_LENGTH))
    prefix = KEY_PREFIX + visible
    value = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(value=value, prefix=prefix, key_hash=hash_key(value))


def hash_key(value: str) -> str:
    """The stored form of a key (or of any presented bearer string, to look it up)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def visible_prefix(value: str) -> str:
    """What may be shown of a presented key: our prefix for our keys, nothing of others."""
    if value.startswith(KEY_PREFIX) and len(value) > len(KEY_PREFIX) + _VISIBLE_LENGTH:
        return value[: len(KEY_PREFIX) + _VISIBLE_LENGTH]
    return "(configured token)"
