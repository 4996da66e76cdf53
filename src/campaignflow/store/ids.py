"""Identifiers for rows the platform creates: time-ordered, unique without coordination.

An id is 26 characters of Crockford base32 (the ULID layout): 48 bits of milliseconds since the
epoch, then 80 random bits. Ids sort by creation time, so "newest first" is an index scan on the
primary key and keyset cursors need no second column; and any process can make them.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 26
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_CHARS = 10  # 2 zero bits and the 48 bits of milliseconds: the id's leading characters


def new_id(now_ms: int | None = None) -> str:
    """A new id; ``now_ms`` (milliseconds since the epoch) defaults to the system clock."""
    millis = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def id_floor(moment: datetime) -> str:
    """The smallest id made at or after ``moment`` (its time characters, the rest zeros):
    ``id >= id_floor(t)`` selects the rows created since ``t`` on an index that has the id."""
    millis = (moment - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    return new_id(millis)[:_TIME_CHARS] + "0" * (_LENGTH - _TIME_CHARS)
