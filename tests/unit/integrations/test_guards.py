"""LocalGuards, the embedded mode's guards: one bucket and one breaker per key, on the clock it
is given; a refused reservation leaves the bucket as it was."""

from __future__ import annotations

import pytest

from campaignflow.domain.circuit_breaker import CLOSED, BreakerPolicy
from campaignflow.integrations.connector import RateLimits
from campaignflow.integrations.guards import LocalGuards

LIMITS = RateLimits(requests_per_minute=60, burst_limit=2)  # one a second
POLICY = BreakerPolicy(failure_threshold=2, open_seconds=10, half_open_probes=1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_each_key_has_its_own_bucket_paced_at_its_rate() -> None:
    clock = Clock()
    guards = LocalGuards(clock)

    waits = [(await guards.reserve("a", LIMITS, max_wait=5)).wait for _ in range(4)]
    other = await guards.reserve("b", LIMITS, max_wait=0)

    assert waits == pytest.approx([0, 0, 1, 2])
    assert other.granted
    assert other.wait == 0


async def test_a_refused_reservation_leaves_the_bucket_as_it_was() -> None:
    clock = Clock()
    guards = LocalGuards(clock)
    await guards.reserve("a", LIMITS, max_wait=0)
    await guards.reserve("a", LIMITS, max_wait=0)

    refused = [await guards.reserve("a", LIMITS, max_wait=0.5) for _ in range(3)]
    clock.now += 0.5
    granted = await guards.reserve("a", LIMITS, max_wait=0.5)

    assert [answer.granted for answer in refused] == [False, False, False]
    assert refused[-1].wait == pytest.approx(0.5)
    assert granted.granted
    assert granted.wait == pytest.approx(0.5)  # the token due at +1 s is still the next one


async def test_the_breaker_opens_refuses_probes_and_closes_on_the_given_clock() -> None:
    clock = Clock()
    guards = LocalGuards(clock)
    for _ in range(2):
        assert (await guards.admit("a", POLICY)).allowed
        await guards.record("a", POLICY, success=False)
    assert guards.breaker("a").mode == "open"
    assert (await guards.admit("b", POLICY)).allowed  # another account is unaffected

    clock.now += 9
    refused = await guards.admit("a", POLICY)
    clock.now += 1
    probe = await guards.admit("a", POLICY)
    second = await guards.admit("a", POLICY)
    closed = await guards.record("a", POLICY, success=True)

    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1)
    assert (probe.allowed, second.allowed) == (True, False)
    assert closed == CLOSED
    assert (await guards.admit("a", POLICY)).allowed


async def test_aclose_forgets_everything() -> None:
    guards = LocalGuards(Clock())
    for _ in range(2):
        await guards.record("a", POLICY, success=False)

    await guards.aclose()

    assert guards.breaker("a") == CLOSED
