"""Identifiers for rows the platform creates: time-ordered, unique without coordination.

An id is 26 characters of Crockford base32 (the ULID layout): 48 bits of milliseconds since the
epoch, then 80 random bits. Ids sort by creation time, so "newest first" is an index scan on the
primary key and keyset cursors need no second column; and any process can make them.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 26


def new_id(now_ms: int | None = None) -> str:
    """A new id; ``now_ms`` (milliseconds since the epoch) defaults to the system clock."""
    millis = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
