"""Token-bucket math, the in-memory limiter and the rate-limit settings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.bus.rate_limit_redis import open_rate_limiter
from campaignflow.config import Settings
from campaignflow.security.rate_limit import (
    EPSILON,
    Decision,
    InMemoryRateLimiter,
    RateLimitSettings,
    Take,
    take,
)


class ManualClock:
    """The limiter's clock, moved by the test (the limiter takes time as a parameter)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the math --------------------------------------------------------------------------------


def test_a_full_bucket_admits_its_burst_then_says_when_to_retry() -> None:
    tokens, at = 3.0, 0.0
    for _ in range(3):
        outcome = take(tokens, at, 0.0, rate=2, burst=3)
        assert outcome.allowed
        tokens = outcome.tokens

    refused = take(tokens, at, 0.0, rate=2, burst=3)

    assert refused == Take(False, 0.0, 0.5)  # one token at two per second


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    assert take(0.0, 0.0, 1.0, rate=2, burst=3).tokens == 1.0  # 2 gained, 1 taken
    assert take(0.0, 0.0, 60.0, rate=2, burst=3).tokens == 2.0  # capped at 3, 1 taken


def test_a_refused_attempt_takes_nothing() -> None:
    refused = take(0.5, 0.0, 0.0, rate=1, burst=5, cost=2)

    assert not refused.allowed
    assert refused.tokens == 0.5
    assert refused.retry_after == 1.5


def test_a_clock_that_goes_backwards_refills_nothing() -> None:
    assert take(0.0, 10.0, 5.0, rate=100, burst=10) == Take(False, 0.0, 0.01)


@pytest.mark.parametrize("cost", [0, -1, 4])
def test_a_cost_outside_one_to_burst_is_a_bug_of_the_caller(cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        take(3.0, 0.0, 0.0, rate=1, burst=3, cost=cost)


rates = st.floats(0.01, 1000, allow_nan=False)
bursts = st.integers(1, 50)
steps = st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 5)), max_size=60)


@given(rate=rates, burst=bursts, steps=steps)
def test_never_more_than_burst_plus_refill_is_admitted_over_any_window(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    tokens, at, now = float(burst), 0.0, 0.0
    admitted: list[tuple[float, int]] = []
    for gap, wanted in steps:
        now += gap
        cost = min(wanted, burst)
        outcome = take(tokens, at, now, rate=rate, burst=burst, cost=cost)
        tokens, at = outcome.tokens, now
        if outcome.allowed:
            admitted.append((now, cost))

    for first, (start, _) in enumerate(admitted):
        for last in range(first, len(admitted)):
            end = admitted[last][0]
            spent = sum(cost for _, cost in admitted[first : last + 1])
            calls = last - first + 1
            assert spent <= burst + rate * (end - start) + calls * EPSILON * 2 + 1e-6 * rate


@given(
    rate=rates,
    burst=bursts,
    fill=st.floats(0, 1, allow_nan=False),
    cost=st.integers(1, 50),
    now=st.floats(0, 1e6, allow_nan=False),  # limiters keep times small
)
def test_retrying_after_the_advised_wait_succeeds(
    rate: float, burst: int, fill: float, cost: int, now: float
) -> None:
    cost = min(cost, burst)
    refused = take(burst * fill, now, now, rate=rate, burst=burst, cost=cost)
    if refused.allowed:
        return

    later = now + refused.retry_after
    assert take(refused.tokens, now, later, rate=rate, burst=burst, cost=cost).allowed
    advised = Decision.of(refused).retry_after_seconds
    assert advised >= 1
    assert take(refused.tokens, now, now + advised, rate=rate, burst=burst, cost=cost).allowed


def test_decisions_speak_in_whole_seconds_and_tokens() -> None:
    assert Decision.of(Take(False, 0.2, 0.01)) == Decision(False, 1, 0)
    assert Decision.of(Take(False, 0.0, 2.5)) == Decision(False, 3, 0)
    assert Decision.of(Take(True, 4.9999999999, 0.0)) == Decision(True, 0, 5)


# --- the in-memory limiter -------------------------------------------------------------------


async def test_keys_have_buckets_of_their_own() -> None:
    clock = ManualClock()
    limiter = InMemoryRateLimiter(1, 2, clock=clock)

    assert [(await limiter.acquire("a")).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.acquire("b")).allowed
    refused = await limiter.acquire("a")
    assert refused == Decision(False, 1, 0)

    clock.now += 1
    assert (await limiter.acquire("a")) == Decision(True, 0, 0)


async def test_idle_buckets_are_forgotten_once_full_again() -> None:
    clock = ManualClock()
    limiter = InMemoryRateLimiter(10, 20, clock=clock)  # full again after 2 s
    for key in range(100):
        await limiter.acquire(f"client-{key}")

    clock.now += 1.9
    await limiter.acquire("late")
    assert len(limiter) == 101

    clock.now += 0.2
    await limiter.acquire("later")
    assert len(limiter) == 2  # "late" is 0.2 s old; the hundred were idle for 2.1 s


async def test_memory_stays_bounded_under_many_busy_keys() -> None:
    clock = ManualClock()
    limiter = InMemoryRateLimiter(1, 5, max_buckets=50, clock=clock)
    for key in range(1000):
        await limiter.acquire(f"client-{key}")

    assert len(limiter) == 50


async def test_the_bench_senders_are_not_throttled_by_the_default_ingestion_limit() -> None:
    """bench/events.py sends ~200 requests/s of 500-event batches with one key."""
    limits = RateLimitSettings()
    clock = ManualClock()
    limiter = InMemoryRateLimiter(
        limits.ingestion_requests_per_second, limits.ingestion_burst, clock=clock
    )
    refused = 0
    for _ in range(10 * 400):  # twice the bench's rate, for 10 s
        clock.now += 1 / 400
        refused += not (await limiter.acquire("api_key:bench")).allowed

    assert refused == 0


# --- settings and the factory ----------------------------------------------------------------


def test_rate_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_RATE_LIMIT__REQUESTS_PER_SECOND", "5.5")
    monkeypatch.setenv("CAMPAIGNFLOW_RATE_LIMIT__ANONYMOUS_BURST", "3")
    monkeypatch.setenv("CAMPAIGNFLOW_RATE_LIMIT__ENABLED", "false")

    limits = Settings().rate_limit

    assert (limits.requests_per_second, limits.anonymous_burst, limits.enabled) == (5.5, 3, False)


async def test_without_redis_the_limits_live_in_memory_per_kind() -> None:
    settings = RateLimitSettings(burst=1, ingestion_burst=3, anonymous_burst=2)
    limiters = open_rate_limiter(settings, None)
    try:
        kinds = {"api": limiters.api, "ingestion": limiters.ingestion}
        kinds["anonymous"] = limiters.anonymous
        admitted = {
            name: sum([(await limiter.acquire("k")).allowed for _ in range(5)])
            for name, limiter in kinds.items()
        }
    finally:
        await limiters.aclose()

    assert admitted == {"api": 1, "ingestion": 3, "anonymous": 2}


async def test_disabled_rate_limits_allow_everything() -> None:
    limiters = open_rate_limiter(RateLimitSettings(enabled=False, burst=1), "redis://nowhere:1")

    decisions = [await limiters.api.acquire("k") for _ in range(1000)]

    assert all(decision.allowed for decision in decisions)
    assert math.isclose(len(decisions), 1000)
