"""Answers remembered for a few seconds: how a process avoids a database round trip per request
for credential lookups, revocations and client states, while a change made elsewhere still
takes effect within ``seconds``.

Bounded in number (cleared whole when full: entries are cheap to reload and a flood of distinct
keys must not grow memory); negative answers are cached like any other, so a flood of unknown
keys costs one load per key per period. The clock is monotonic and can be handed in.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_LIMIT = 10_000


class TTLCache(Generic[K, V]):
    def __init__(
        self,
        seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._seconds = seconds
        self._monotonic = monotonic
        self._limit = limit
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The remembered answer for ``key``, or ``load()``'s, remembered from now on."""
        now = self._monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await load()
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (now + self._seconds, value)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
