"""Opaque cursors for keyset pagination.

A cursor is the base64url of a small versioned JSON object holding the last key a client saw.
Clients must treat it as opaque; we may change what is inside without breaking them, and a cursor
that does not decode is a 400 naming the ``cursor`` parameter rather than a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TypeVar

import orjson

from campaignflow.api.problems import ProblemError
from campaignflow.config import Settings

_VERSION = 1

K = TypeVar("K", str, int)
R = TypeVar("R")


def encode_cursor(key: str | int) -> str:
    raw = orjson.dumps({"v": _VERSION, "k": key})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid() -> ProblemError:
    return ProblemError(
        HTTPStatus.BAD_REQUEST,
        "invalid-request",
        "The cursor is not one this API issued.",
        problems=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
    )


def decode_cursor(cursor: str | None, key_type: type[K]) -> K | None:
    """Return the key inside ``cursor``, or ``None`` for the first page."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise _invalid() from exc
    key = data.get("k") if isinstance(data, dict) and data.get("v") == _VERSION else None
    if type(key) is not key_type:
        raise _invalid()
    return key


def page_size(limit: int | None, settings: Settings) -> int:
    """The page size a list returns: the client's ``limit`` within the configured bounds."""
    return min(limit or settings.api.page_size_default, settings.api.page_size_max)


def page_of(
    rows: Sequence[R], size: int, key: Callable[[R], str | int]
) -> tuple[list[R], str | None]:
    """Split ``size + 1`` fetched rows into one page and the cursor of the next (``None``: last).

    Fetching one row more than the page tells whether another page exists without a count.
    """
    page = list(rows[:size])
    return page, encode_cursor(key(page[-1])) if len(rows) > size else None
