"""Rate limits: token-bucket math (pure), the limiter interface, the in-memory limiter of the
embedded mode and the settings.

A bucket holds up to ``burst`` tokens and gains ``rate`` per second; a request takes ``cost``
tokens or is refused with the time after which it would succeed. The Redis limiter
(``bus/rate_limit_redis.py``) runs the same arithmetic in a Lua script, so every API process
shares one bucket per key.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field

# Float slack when comparing tokens: without it, a client retrying exactly after ``retry_after``
# could find 0.9999999 tokens of the 1 it needs. It admits at most a millionth of a token extra
# per call. Times should be small (seconds since a recent epoch) so that differences of them
# are exact to far better than that; the limiters see to it.
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Take:
    """The bucket after one attempt: whether it was allowed, the tokens left, and (when refused)
    the seconds until ``cost`` tokens will be there."""

    allowed: bool
    tokens: float
    retry_after: float


def take(
    tokens: float, last_refill: float, now: float, *, rate: float, burst: int, cost: int = 1
) -> Take:
    """Refill the bucket for the time since ``last_refill`` (a clock that went backwards refills
    nothing), then take ``cost`` tokens if they are there. A refused attempt takes nothing."""
    if rate <= 0 or burst < 1:
        raise ValueError("a bucket needs rate > 0 and burst >= 1")
    if not 1 <= cost <= burst:
        raise ValueError(f"cost must be between 1 and the burst ({burst}), got {cost}")
    available = min(float(burst), tokens + max(0.0, now - last_refill) * rate)
    if available + EPSILON >= cost:
        return Take(True, max(0.0, available - cost), 0.0)
    return Take(False, available, (cost - available) / rate)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the caller is told: allowed or not, whole seconds to wait (``Retry-After``, at least
    1 when refused, 0 when allowed) and whole tokens left."""

    allowed: bool
    retry_after_seconds: int
    remaining: int

    @classmethod
    def of(cls, outcome: Take) -> Decision:
        wait = max(1, math.ceil(outcome.retry_after)) if not outcome.allowed else 0
        return cls(outcome.allowed, wait, math.floor(outcome.tokens + EPSILON))


ALLOW_ALL = Decision(True, 0, 0)


class RateLimiter(Protocol):
    """One kind of limit (``rate`` tokens/s up to ``burst``), one bucket per key."""

    async def acquire(self, key: str, cost: int = 1) -> Decision: ...

    async def aclose(self) -> None: ...


class Unlimited:
    """The limiter when rate limiting is disabled: everything is allowed."""

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        return ALLOW_ALL

    async def aclose(self) -> None:
        return None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class InMemoryRateLimiter:
    """Buckets in this process (the embedded mode, and the fallback when Redis fails).

    Memory is bounded: buckets are kept in least-recently-used order, and those idle long enough
    to be full again are dropped (a full bucket and a missing one behave the same). Past
    ``max_buckets`` the least recently used is dropped even if not full, which can only grant
    that key a fresh burst.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_buckets < 1:
            raise ValueError("a limiter needs rate > 0, burst >= 1 and max_buckets >= 1")
        self.rate = rate
        self.burst = burst
        self._max_buckets = max_buckets
        self._clock = clock
        self._epoch = clock()  # times are kept relative to it: small numbers, exact differences
        self._refill_seconds = burst / rate
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        now = self._clock() - self._epoch
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        outcome = take(bucket.tokens, bucket.at, now, rate=self.rate, burst=self.burst, cost=cost)
        self._buckets[key] = _Bucket(outcome.tokens, max(now, bucket.at))
        self._evict(now)
        return Decision.of(outcome)

    def _evict(self, now: float) -> None:
        while len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.at < self._refill_seconds:
                return
            self._buckets.popitem(last=False)

    async def aclose(self) -> None:
        self._buckets.clear()


class RateLimitSettings(BaseModel):
    """Per-client request rate limits (token buckets)."""

    enabled: bool = Field(True, description="Limit request rates (429 with Retry-After).")
    requests_per_second: float = Field(
        100, gt=0, description="Sustained requests per second per credential."
    )
    burst: int = Field(200, ge=1, description="Requests a credential may send at once.")
    ingestion_requests_per_second: float = Field(
        1000,
        gt=0,
        description="Sustained event-ingestion requests per second per credential (each may "
        "carry a batch of events).",
    )
    ingestion_burst: int = Field(
        2000, ge=1, description="Event-ingestion requests a credential may send at once."
    )
    anonymous_requests_per_second: float = Field(
        10,
        gt=0,
        description="Sustained requests per second per client address without valid "
        "credentials (slows credential guessing).",
    )
    anonymous_burst: int = Field(
        50,
        ge=1,
        description="Requests without valid credentials a client address may send at once.",
    )
    key_prefix: str = Field(
        "cf:rate", min_length=1, max_length=64, description="Prefix of the Redis keys of buckets."
    )
    redis_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Longest wait for Redis on a request; slower or failed calls fall back to "
        "this process's own buckets.",
    )
