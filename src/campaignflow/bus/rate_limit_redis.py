"""Token buckets in Redis, shared by every API process, and :func:`open_rate_limiter`, which
chooses them or the in-memory buckets from settings.

One Lua script refills and takes in one round trip, atomically, on the Redis server's clock
(``TIME``): API processes on different hosts would otherwise disagree about elapsed time. redis-py
sends it with ``EVALSHA`` and loads it again when the server answers ``NOSCRIPT`` (a restart, a
``SCRIPT FLUSH``). A bucket key expires once it would be full again, so idle keys vanish.

When Redis fails or is slow, the limiter falls back to this process's own buckets and logs a
warning once per outage: the API stays available (failing closed would turn a Redis outage
into an outage of every endpoint), while each process still limits on its own, so credential
guessing stays slowed — by the number of processes, at worst.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from campaignflow.security.rate_limit import (
    EPSILON,
    Decision,
    InMemoryRateLimiter,
    RateLimiter,
    RateLimitSettings,
    Take,
    Unlimited,
)

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket; ARGV: rate (tokens/s), burst, cost, epsilon, ttl (ms).
# Returns {allowed (0/1), tokens left, seconds until cost tokens}, numbers as strings (Redis
# would truncate Lua numbers to integers). The same arithmetic as security.rate_limit.take, on
# the server's clock in whole microseconds (exact in a double, so differences are exact too).
_TAKE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
local available = math.min(burst, tokens + math.max(0, now - at) / 1000000 * rate)
local allowed, retry = 0, (cost - available) / rate
if available + tonumber(ARGV[4]) >= cost then
  allowed, available, retry = 1, math.max(0, available - cost), 0
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', available),
  'at', string.format('%.17g', math.max(now, at)))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {allowed, string.format('%.17g', available), string.format('%.17g', retry)}
"""

OUTAGE_RETRY_SECONDS = 1.0  # how long the fallback is used before Redis is tried again


class RedisRateLimiter:
    """:class:`~campaignflow.security.rate_limit.RateLimiter` on Redis. ``fallback`` answers
    while Redis is failing. The client is the caller's: :meth:`aclose` leaves it open."""

    def __init__(
        self,
        client: Redis,
        *,
        rate: float,
        burst: int,
        prefix: str,
        fallback: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._client = client
        self._prefix = prefix
        self._fallback = fallback
        self._clock = clock
        self._ttl_ms = math.ceil(burst / rate * 1000) + 1000  # full again, plus clock slack
        self._script = client.register_script(_TAKE)
        self._down_until: float | None = None

    def key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        if not 1 <= cost <= self.burst:
            raise ValueError(f"cost must be between 1 and the burst ({self.burst}), got {cost}")
        if self._down_until is not None and self._clock() < self._down_until:
            return await self._fallback.acquire(key, cost)
        try:
            reply = await self._script(
                keys=[self.key(key)], args=[self.rate, self.burst, cost, EPSILON, self._ttl_ms]
            )
        except redis_exceptions.RedisError as exc:
            self._note_outage(exc)
            return await self._fallback.acquire(key, cost)
        if self._down_until is not None:
            logger.warning("rate limiter: Redis answers again; buckets are shared again")
            self._down_until = None
        allowed, tokens, retry_after = reply
        return Decision.of(Take(bool(int(allowed)), float(tokens), float(retry_after)))

    def _note_outage(self, exc: redis_exceptions.RedisError) -> None:
        if self._down_until is None:
            logger.warning(
                "rate limiter: Redis failed (%s); limiting per process until it answers", exc
            )
        self._down_until = self._clock() + OUTAGE_RETRY_SECONDS

    async def aclose(self) -> None:
        await self._fallback.aclose()


@dataclass(frozen=True, slots=True)
class RateLimiters:
    """The three kinds of limit: per credential on the API, per credential on event ingestion,
    and per client address for requests without valid credentials."""

    api: RateLimiter
    ingestion: RateLimiter
    anonymous: RateLimiter
    client: Redis | None = None  # the Redis client they share, closed with them

    async def aclose(self) -> None:
        for limiter in (self.api, self.ingestion, self.anonymous):
            await limiter.aclose()
        if self.client is not None:
            await self.client.aclose()


def open_rate_limiter(settings: RateLimitSettings, redis_url: str | None) -> RateLimiters:
    """Buckets in Redis when ``redis_url`` is set (shared by every process), else in memory;
    everything allowed when rate limiting is disabled. Close the result with ``aclose``."""
    if not settings.enabled:
        unlimited = Unlimited()
        return RateLimiters(unlimited, unlimited, unlimited)
    if redis_url is None:
        return _limiters(settings, lambda _name, rate, burst: InMemoryRateLimiter(rate, burst))
    timeout = settings.redis_timeout_seconds
    client = Redis.from_url(
        redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # the fallback answers at once; a retry would stall requests
    )

    def shared(name: str, rate: float, burst: int) -> RateLimiter:
        prefix = f"{settings.key_prefix}:{name}"
        fallback = InMemoryRateLimiter(rate, burst)
        return RedisRateLimiter(client, rate=rate, burst=burst, prefix=prefix, fallback=fallback)

    return _limiters(settings, shared, client)


def _limiters(
    settings: RateLimitSettings,
    make: Callable[[str, float, int], RateLimiter],
    client: Redis | None = None,
) -> RateLimiters:
    return RateLimiters(
        api=make("api", settings.requests_per_second, settings.burst),
        ingestion=make(
            "ingestion", settings.ingestion_requests_per_second, settings.ingestion_burst
        ),
        anonymous=make(
            "anonymous", settings.anonymous_requests_per_second, settings.anonymous_burst
        ),
        client=client,
    )
