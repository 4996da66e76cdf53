"""The Redis token bucket against a real Redis: shared between processes, on the server's clock,
expiring when idle, surviving a script flush, and falling back per process when Redis fails."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.asyncio import Redis

from campaignflow.bus.rate_limit_redis import RedisRateLimiter, open_rate_limiter
from campaignflow.security.rate_limit import Decision, InMemoryRateLimiter, RateLimitSettings
from tests._support.servers import free_port

# These tests flush Redis's script cache, or watch the exact commands a script call sends: run
# in one process, one after another, so a flush never lands in the middle of another's watch.
pytestmark = pytest.mark.xdist_group("redis-script-cache")


def limiter(client: Redis, prefix: str, *, rate: float, burst: int) -> RedisRateLimiter:
    """One API process's limiter (each process builds its own)."""
    fallback = InMemoryRateLimiter(rate, burst)
    return RedisRateLimiter(client, rate=rate, burst=burst, prefix=prefix, fallback=fallback)


async def test_two_processes_share_one_bucket(redis_client: Redis, redis_prefix: str) -> None:
    other_client = Redis.from_url(_url(redis_client))
    first = limiter(redis_client, redis_prefix, rate=0.01, burst=3)
    second = limiter(other_client, redis_prefix, rate=0.01, burst=3)
    try:
        answers = [
            await first.acquire("api_key:k1"),
            await second.acquire("api_key:k1"),
            await first.acquire("api_key:k1"),
            await second.acquire("api_key:k1"),
        ]
        assert (await second.acquire("api_key:other")).allowed
    finally:
        await other_client.aclose()

    assert [a.allowed for a in answers] == [True, True, True, False]
    assert [a.remaining for a in answers[:3]] == [2, 1, 0]


async def test_a_refusal_says_how_long_to_wait(redis_client: Redis, redis_prefix: str) -> None:
    bucket = limiter(redis_client, redis_prefix, rate=0.25, burst=2)
    await bucket.acquire("k", cost=2)

    refused = await bucket.acquire("k")

    assert refused == Decision(False, 4, 0)  # one token at a quarter per second


async def test_the_bucket_refills_on_the_server_clock(
    redis_client: Redis, redis_prefix: str
) -> None:
    bucket = limiter(redis_client, redis_prefix, rate=20, burst=1)
    assert (await bucket.acquire("k")).allowed
    assert not (await bucket.acquire("k")).allowed

    await asyncio.sleep(0.06)  # 1.2 tokens at 20/s

    assert (await bucket.acquire("k")).allowed


async def test_idle_buckets_expire_once_full_again(redis_client: Redis, redis_prefix: str) -> None:
    bucket = limiter(redis_client, redis_prefix, rate=10, burst=5)  # full again after 0.5 s
    await bucket.acquire("k")

    ttl_ms = await redis_client.pttl(bucket.key("k"))

    assert 500 < ttl_ms <= 1500


async def test_a_flushed_script_is_loaded_again(redis_client: Redis, redis_prefix: str) -> None:
    bucket = limiter(redis_client, redis_prefix, rate=0.01, burst=2)
    await bucket.acquire("k")
    await redis_client.script_flush()

    assert (await bucket.acquire("k")).allowed
    assert not (await bucket.acquire("k")).allowed  # the same bucket, not a fresh one


async def test_redis_down_falls_back_to_this_process_at_once_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = RateLimitSettings(burst=2, requests_per_second=0.01)
    limiters = open_rate_limiter(settings, f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="campaignflow.bus.rate_limit_redis"):
            answers = [await limiters.api.acquire("k") for _ in range(3)]
    finally:
        await limiters.aclose()

    assert time.monotonic() - started < 1  # no retries, no backoff on the request path
    assert [a.allowed for a in answers] == [True, True, False]  # still limited, per process
    warnings = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per request


async def test_after_an_error_redis_is_asked_again_a_second_later(
    redis_client: Redis, redis_prefix: str
) -> None:
    now = [0.0]
    fallback = InMemoryRateLimiter(0.01, 1)
    bucket = RedisRateLimiter(
        redis_client, rate=0.01, burst=1, prefix=redis_prefix, fallback=fallback,
        clock=lambda: now[0],
    )  # fmt: skip
    await redis_client.set(bucket.key("k"), "not a hash")  # WRONGTYPE inside the script

    assert (await bucket.acquire("k")).allowed  # by the fallback
    assert not (await bucket.acquire("k")).allowed
    await redis_client.delete(bucket.key("k"))
    now[0] += 1.5

    assert (await bucket.acquire("k")).allowed  # Redis's own, fresh bucket
    assert await redis_client.exists(bucket.key("k"))


async def test_open_rate_limiter_shares_buckets_per_kind_through_redis(
    redis_client: Redis, redis_prefix: str
) -> None:
    # A token a quarter of an hour: the second acquire finds the bucket empty however slowly a
    # loaded machine gets to it (at the default 100/s it was refilled after 10 ms, now and then).
    settings = RateLimitSettings(
        burst=1,
        anonymous_burst=2,
        requests_per_second=0.001,
        anonymous_requests_per_second=0.001,
        key_prefix=redis_prefix,
    )
    one = open_rate_limiter(settings, _url(redis_client))
    other = open_rate_limiter(settings, _url(redis_client))
    try:
        api = [(await limiters.api.acquire("k")).allowed for limiters in (one, other)]
        anonymous = [(await lim.anonymous.acquire("k")).allowed for lim in (one, other, one)]
    finally:
        await one.aclose()
        await other.aclose()

    assert api == [True, False]
    assert anonymous == [True, True, False]
    assert await redis_client.exists(f"{redis_prefix}:api:k", f"{redis_prefix}:anonymous:k") == 2


def _url(client: Redis) -> str:
    options = client.connection_pool.connection_kwargs
    return f"redis://{options['host']}:{options['port']}/{options.get('db', 0)}"
