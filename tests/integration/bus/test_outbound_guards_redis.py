"""The outbound guards in Redis against a real Redis: two instances stand for two worker
processes and share one bucket and one breaker; the Lua scripts agree with the pure functions
call for call; closed breakers cost one read-only call; idle keys expire; a dead Redis falls
back to per-process guards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from campaignflow.bus.outbound_guards_redis import RedisGuards
from campaignflow.domain.circuit_breaker import Admission, BreakerPolicy
from campaignflow.integrations.connector import RateLimits
from campaignflow.integrations.guards import LocalGuards
from tests._support.servers import free_port

# These tests flush Redis's script cache, or watch the exact commands a script call sends: run
# in one process, one after another, so a flush never lands in the middle of another's watch.
pytestmark = pytest.mark.xdist_group("redis-script-cache")


POLICY = BreakerPolicy(failure_threshold=3, open_seconds=30, half_open_probes=2, close_after=2)


class Clock:
    """Seconds the test moves by hand, shared by every instance (like the server's clock)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def other_client(redis_client: Redis) -> AsyncIterator[Redis]:
    """A second connection pool: the other process's."""
    client = Redis.from_url(_url(redis_client))
    yield client
    await client.aclose()


def pair(
    first: Redis, second: Redis, prefix: str, clock: Callable[[], float] | None = None
) -> tuple[RedisGuards, RedisGuards]:
    return (
        RedisGuards(first, prefix=prefix, clock=clock),
        RedisGuards(second, prefix=prefix, clock=clock),
    )


# ------------------------------------------------------------------------------ rate limit


async def test_two_processes_share_one_bucket(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    one, two = pair(redis_client, other_client, redis_prefix, Clock())
    limits = RateLimits(requests_per_minute=1, burst_limit=3)

    granted = [
        (await guards.reserve("conn-1", limits, max_wait=0)).granted
        for guards in (one, two, one, two, one)
    ]

    assert granted == [True, True, True, False, False]
    assert (await two.reserve("conn-2", limits, max_wait=0)).granted  # another account


async def test_reservations_from_both_processes_are_served_in_turn_at_the_rate(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    one, two = pair(redis_client, other_client, redis_prefix, Clock())
    limits = RateLimits(requests_per_minute=600, burst_limit=2)  # 10/s

    waits = [
        (await guards.reserve("k", limits, max_wait=0.35)).wait
        for guards in (one, two, one, two, one, two)
    ]
    refused = await one.reserve("k", limits, max_wait=0.35)

    assert waits[:5] == pytest.approx([0, 0, 0.1, 0.2, 0.3])
    assert not refused.granted
    assert refused.wait == pytest.approx(0.05)  # 0.4 s to its turn, 0.35 s allowed
    after_refusal = await two.reserve("k", limits, max_wait=1)
    assert after_refusal.wait == pytest.approx(0.4)  # the refusals took nothing


async def test_the_bucket_refills_on_the_server_clock_and_expires_when_idle(
    redis_client: Redis, redis_prefix: str
) -> None:
    guards = RedisGuards(redis_client, prefix=redis_prefix)  # Redis TIME
    limits = RateLimits(requests_per_minute=1200, burst_limit=1)  # 20/s
    assert (await guards.reserve("k", limits, max_wait=0)).granted
    assert not (await guards.reserve("k", limits, max_wait=0)).granted

    await asyncio.sleep(0.06)  # 1.2 tokens at 20/s

    assert (await guards.reserve("k", limits, max_wait=0)).granted
    ttl_ms = await redis_client.pttl(guards.bucket_key("k"))
    assert 1000 < ttl_ms <= 1050  # full again within 50 ms, plus a second of slack


async def test_a_flushed_script_is_loaded_again(redis_client: Redis, redis_prefix: str) -> None:
    guards = RedisGuards(redis_client, prefix=redis_prefix, clock=Clock())
    limits = RateLimits(requests_per_minute=1, burst_limit=1)
    await guards.reserve("k", limits, max_wait=0)
    await redis_client.script_flush()

    assert not (await guards.reserve("k", limits, max_wait=0)).granted  # the same bucket


# ---------------------------------------------------------------------------------- breaker


async def test_failures_seen_by_different_processes_open_one_breaker(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    clock = Clock()
    one, two = pair(redis_client, other_client, redis_prefix, clock)
    for guards in (one, two, one):
        assert (await guards.admit("acct", POLICY)).allowed
        await guards.record("acct", POLICY, success=False)

    clock.now += 10
    refused = [await guards.admit("acct", POLICY) for guards in (one, two)]

    assert [admission.allowed for admission in refused] == [False, False]
    assert refused[1].retry_after == pytest.approx(20)
    assert (await one.breaker("acct")).mode == "open"


async def test_a_success_between_failures_resets_the_count_for_everyone(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    one, two = pair(redis_client, other_client, redis_prefix, Clock())
    await one.record("acct", POLICY, success=False)
    await two.record("acct", POLICY, success=False)
    await one.record("acct", POLICY, success=True)
    await two.record("acct", POLICY, success=False)
    await one.record("acct", POLICY, success=False)

    assert (await two.breaker("acct")).failures == 2
    assert (await two.admit("acct", POLICY)).allowed


async def test_half_open_admits_at_most_the_probes_across_processes_then_recovers(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    clock = Clock()
    one, two = pair(redis_client, other_client, redis_prefix, clock)
    for _ in range(3):
        await one.record("acct", POLICY, success=False)
    clock.now += 30

    probes = [await guards.admit("acct", POLICY) for guards in (one, two, two, one)]

    assert [admission.allowed for admission in probes] == [True, True, False, False]
    assert probes[2].retry_after == pytest.approx(30)
    assert (await one.record("acct", POLICY, success=True)).mode == "half_open"
    assert (await two.admit("acct", POLICY)).allowed  # a probe slot came free
    assert (await two.record("acct", POLICY, success=True)).mode == "closed"  # close_after=2
    assert await redis_client.exists(one.breaker_key("acct")) == 0
    assert all([(await guards.admit("acct", POLICY)).allowed for guards in (one, two, one)])


async def test_a_failed_probe_opens_it_again_for_everyone(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    clock = Clock()
    one, two = pair(redis_client, other_client, redis_prefix, clock)
    for _ in range(3):
        await two.record("acct", POLICY, success=False)
    clock.now += 31
    assert (await one.admit("acct", POLICY)).allowed

    reopened = await one.record("acct", POLICY, success=False)
    clock.now += 29.5

    assert reopened.mode == "open"
    assert reopened.opened_at == pytest.approx(1_031)
    refused = await two.admit("acct", POLICY)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)


async def test_a_closed_breaker_costs_one_read_only_script_call_per_admission_and_success(
    redis_client: Redis, other_client: Redis, redis_prefix: str
) -> None:
    """Watched with MONITOR, which also lists the commands a script runs."""
    guards = RedisGuards(redis_client, prefix=redis_prefix)
    await guards.admit("acct", POLICY)  # the scripts are loaded
    key = guards.breaker_key("acct")
    seen: list[str] = []

    async def watch(ready: asyncio.Event) -> None:
        async with other_client.monitor() as monitor:
            ready.set()
            async for entry in monitor.listen():
                if key in entry["command"]:
                    seen.append(entry["command"].split()[0])

    ready = asyncio.Event()
    watcher = asyncio.create_task(watch(ready))
    await ready.wait()
    await asyncio.sleep(0.05)
    admission = await guards.admit("acct", POLICY)
    await guards.record("acct", POLICY, success=True)
    await asyncio.sleep(0.1)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher

    assert admission.allowed
    assert seen == ["EVALSHA", "HMGET", "EVALSHA", "HMGET"]  # a read each, nothing written


async def test_a_breaker_key_expires_after_open_seconds_plus_the_stale_time(
    redis_client: Redis, redis_prefix: str
) -> None:
    guards = RedisGuards(redis_client, prefix=redis_prefix, stale_after_s=60)
    await guards.record("acct", POLICY, success=False)

    ttl_ms = await redis_client.pttl(guards.breaker_key("acct"))

    assert 89_000 < ttl_ms <= 90_000


async def test_a_probe_whose_worker_died_does_not_block_the_account_forever(
    redis_client: Redis, redis_prefix: str
) -> None:
    policy = BreakerPolicy(failure_threshold=1, open_seconds=0.05, half_open_probes=1)
    guards = RedisGuards(redis_client, prefix=redis_prefix, stale_after_s=0.1)
    await guards.record("acct", policy, success=False)
    await asyncio.sleep(0.06)
    assert (await guards.admit("acct", policy)).allowed  # the probe, never recorded
    assert not (await guards.admit("acct", policy)).allowed

    await asyncio.sleep(0.2)  # open_seconds + stale_after_s without a write

    assert (await guards.admit("acct", policy)).allowed


# ------------------------------------------------------------------- same as the pure code


async def test_the_scripts_answer_as_the_pure_functions_do(
    redis_client: Redis, redis_prefix: str
) -> None:
    """Random sequences of calls, with the time moving, against LocalGuards (the pure
    functions) and RedisGuards on the same clock: every answer must be the same."""
    for seed in range(25):
        clock = Clock()
        rng = random.Random(seed)
        policy = BreakerPolicy(
            failure_threshold=rng.randint(1, 4),
            open_seconds=rng.choice([0.5, 2.0, 5.0]),
            half_open_probes=rng.randint(1, 3),
            close_after=rng.randint(1, 3),
        )
        limits = RateLimits(rng.choice([30, 120, 600]), rng.randint(1, 5))
        local = LocalGuards(clock=clock)
        shared = RedisGuards(redis_client, prefix=f"{redis_prefix}:{seed}", clock=clock)
        for step in range(60):
            # on whole microseconds, as Redis keeps time
            clock.now = round(clock.now + rng.choice([0.0, 0.0, 0.1, 0.5, 1.5, 3.0]), 6)
            call = rng.choice(["reserve", "admit", "succeed", "fail"])
            context = f"seed {seed}, step {step}: {call}"
            if call == "reserve":
                max_wait = rng.choice([0.0, 0.5, 2.0])
                expected = await local.reserve("k", limits, max_wait)
                got = await shared.reserve("k", limits, max_wait)
                assert got.granted == expected.granted, context
                assert got.wait == pytest.approx(expected.wait, abs=1e-6), context
                assert got.tokens == pytest.approx(expected.tokens, abs=1e-6), context
            elif call == "admit":
                assert await shared.admit("k", policy) == _rounded(
                    await local.admit("k", policy)
                ), context
            else:
                success = call == "succeed"
                expected_state = await local.record("k", policy, success=success)
                got_state = await shared.record("k", policy, success=success)
                assert got_state == expected_state, context


def _rounded(admission: Admission) -> Admission:
    """Redis keeps times in whole microseconds; the pure code's floats may carry more."""
    return replace(admission, retry_after=round(admission.retry_after * 1e6) / 1e6)


async def test_hundreds_of_concurrent_calls_are_all_answered_by_redis(
    redis_client: Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker's batch asks the guards for every step at once, over a few connections."""
    guards = RedisGuards.from_url(_url(redis_client), prefix=redis_prefix)
    limits = RateLimits(requests_per_minute=60, burst_limit=1000)
    try:
        with caplog.at_level(logging.WARNING, logger="campaignflow.bus.outbound_guards_redis"):
            answers = await asyncio.gather(
                *(guards.reserve("k", limits, max_wait=0) for _ in range(600))
            )
    finally:
        await guards.aclose()

    assert all(answer.granted for answer in answers)
    assert caplog.records == []  # no fallback
    tokens = float(await redis_client.hget(f"{redis_prefix}:bucket:k", "tokens") or "nan")
    assert tokens == pytest.approx(400, abs=1)  # every call took its token in Redis


# ---------------------------------------------------------------------------------- outage


async def test_a_dead_redis_falls_back_to_this_process_at_once_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guards = RedisGuards.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix="cf:test")
    limits = RateLimits(requests_per_minute=1, burst_limit=2)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="campaignflow.bus.outbound_guards_redis"):
            granted = [(await guards.reserve("k", limits, 0)).granted for _ in range(3)]
            for _ in range(POLICY.failure_threshold):
                await guards.record("k", POLICY, success=False)
            admission = await guards.admit("k", POLICY)
    finally:
        await guards.aclose()

    assert time.monotonic() - started < 1  # no retries, no backoff on the call path
    assert granted == [True, True, False]  # still paced, per process
    assert not admission.allowed  # and the breaker still works, per process
    warnings = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(warnings) == 1


async def test_after_an_outage_redis_is_asked_again_a_second_later(
    redis_client: Redis, redis_prefix: str
) -> None:
    monotonic = Clock(0.0)
    guards = RedisGuards(redis_client, prefix=redis_prefix, monotonic=monotonic)
    limits = RateLimits(requests_per_minute=1, burst_limit=1)
    await redis_client.set(guards.bucket_key("k"), "not a hash")  # WRONGTYPE in the script

    assert (await guards.reserve("k", limits, 0)).granted  # by the fallback
    assert not (await guards.reserve("k", limits, 0)).granted
    await redis_client.delete(guards.bucket_key("k"))
    monotonic.now += 1.5

    assert (await guards.reserve("k", limits, 0)).granted  # Redis's own, fresh bucket
    assert await redis_client.exists(guards.bucket_key("k"))


def _url(client: Redis) -> str:
    options = client.connection_pool.connection_kwargs
    return f"redis://{options['host']}:{options['port']}/{options.get('db', 0)}"
