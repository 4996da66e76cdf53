from __future__ import annotations

import math
from datetime import timedelta
from statistics import mean

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.policies import ErrorHandling
from campaignflow.domain.retry import MAX_RETRY_AFTER, attempts_allowed, retry_delay

HALF_MS = timedelta(microseconds=500)
seeds = st.text(max_size=30)
any_jitter = st.floats(0.0, 1.0)


def _iso(milliseconds: int) -> str:
    return f"PT{milliseconds // 1000}.{milliseconds % 1000:03d}S"


def _policy(
    kind: str = "exponential",
    *,
    retries: int = 5,
    initial: str = "PT10S",
    maximum: str = "PT1H",
    jitter: float = 0.0,
) -> ErrorHandling:
    return ErrorHandling.model_validate(
        {
            "retryPolicy": kind,
            "maxRetries": retries,
            "initialInterval": initial,
            "maxInterval": maximum,
            "jitter": jitter,
        }
    )


@st.composite
def policies(
    draw: st.DrawFn,
    *,
    kinds: tuple[str, ...] = ("exponential", "linear", "none"),
    jitter: st.SearchStrategy[float] = any_jitter,
    min_retries: int = 0,
) -> ErrorHandling:
    initial_ms = draw(st.integers(0, 3_600_000))
    max_ms = draw(st.integers(initial_ms, 7 * 86_400_000))
    return _policy(
        draw(st.sampled_from(kinds)),
        retries=draw(st.integers(min_retries, 100)),
        initial=_iso(initial_ms),
        maximum=_iso(max_ms),
        jitter=draw(jitter),
    )


def _seconds(policy: ErrorHandling, name: str) -> timedelta:
    return timedelta(seconds=getattr(policy, name).approximate_seconds)


@given(policy=policies(), retry_number=st.integers(1, 150), seed=seeds)
def test_none_exactly_when_no_retry_is_left(
    policy: ErrorHandling, retry_number: int, seed: str
) -> None:
    wait = retry_delay(policy, retry_number, seed=seed)
    exhausted = policy.retry_policy == "none" or retry_number > policy.max_retries
    assert (wait is None) == exhausted
    assert (wait is None) == (retry_number >= attempts_allowed(policy))


def test_attempts_allowed_counts_the_first_attempt() -> None:
    assert attempts_allowed(_policy(retries=3)) == 4
    assert attempts_allowed(_policy("linear", retries=0)) == 1
    assert attempts_allowed(_policy("none", retries=5)) == 1


@given(policy=policies(kinds=("exponential", "linear"), min_retries=1), data=st.data(), seed=seeds)
def test_wait_stays_within_bounds(policy: ErrorHandling, data: st.DataObject, seed: str) -> None:
    retry_number = data.draw(st.integers(1, policy.max_retries))
    wait = retry_delay(policy, retry_number, seed=seed)
    assert wait is not None
    initial, maximum = _seconds(policy, "initial_interval"), _seconds(policy, "max_interval")
    assert wait >= min(initial, maximum) * (1 - policy.jitter) - HALF_MS
    assert wait <= maximum
    assert wait.microseconds % 1000 == 0  # whole milliseconds


@given(policy=policies(kinds=("exponential", "linear"), jitter=st.just(0.0)), seed=seeds)
def test_without_jitter_waits_never_shrink(policy: ErrorHandling, seed: str) -> None:
    waits = [retry_delay(policy, n, seed=seed) for n in range(1, policy.max_retries + 1)]
    present = [wait for wait in waits if wait is not None]
    assert len(present) == len(waits)
    assert present == sorted(present)


@given(policy=policies(kinds=("exponential", "linear")), retry_number=st.integers(1, 100))
def test_same_seed_same_wait(policy: ErrorHandling, retry_number: int) -> None:
    first = retry_delay(policy, retry_number, seed="exec-1:send")
    assert retry_delay(policy, retry_number, seed="exec-1:send") == first


@pytest.mark.parametrize(
    ("kind", "expected_seconds"),
    [
        ("exponential", [10, 20, 40, 80, 160, 300, 300]),
        ("linear", [10, 20, 30, 40, 50, 60, 70]),
    ],
)
def test_growth_and_cap_without_jitter(kind: str, expected_seconds: list[int]) -> None:
    policy = _policy(kind, retries=7, initial="PT10S", maximum="PT5M")
    waits = [retry_delay(policy, n, seed="s") for n in range(1, 8)]
    assert waits == [timedelta(seconds=s) for s in expected_seconds]


def test_fractional_intervals_are_kept_to_the_millisecond() -> None:
    policy = _policy("linear", initial="PT0.57S", maximum="PT10S")
    assert retry_delay(policy, 1, seed="s") == timedelta(milliseconds=570)
    assert retry_delay(policy, 3, seed="s") == timedelta(milliseconds=1710)


def test_many_doublings_do_not_overflow() -> None:
    policy = _policy(retries=100, initial="PT1S", maximum="P10Y", jitter=1.0)
    longest = timedelta(seconds=policy.max_interval.approximate_seconds)
    waits = [retry_delay(policy, n, seed="s") for n in (60, 99, 100)]
    assert all(wait is not None and timedelta(0) <= wait <= longest for wait in waits)
    assert retry_delay(_policy(retries=100, maximum="P10Y"), 100, seed="s") == longest


def test_jitter_spreads_both_ways_around_the_base() -> None:
    policy = _policy("linear", initial="PT10S", maximum="PT10S", jitter=0.5)
    waits = [retry_delay(policy, 1, seed=f"exec-{i}") for i in range(2000)]
    seconds = [wait.total_seconds() for wait in waits if wait is not None]
    assert len(seconds) == 2000
    assert all(5.0 <= s <= 10.0 for s in seconds)  # capped at maxInterval from above
    assert min(seconds) < 5.1
    assert 8.5 < mean(seconds) < 8.9  # the lower half lands in [5, 10), the upper half at 10


def test_jitter_differs_between_seeds_and_between_retries() -> None:
    policy = _policy("linear", initial="PT10S", maximum="PT1H", jitter=0.2)
    by_seed = {retry_delay(policy, 1, seed=f"exec-{i}") for i in range(20)}
    assert len(by_seed) == 20
    waits = [retry_delay(policy, n, seed="exec-1") for n in (1, 2, 3, 4)]
    ratios = {wait / timedelta(seconds=10 * n) for n, wait in enumerate(waits, 1) if wait}
    assert len(ratios) == 4  # each retry draws its own spread


def test_full_jitter_can_reach_zero_but_not_below() -> None:
    policy = _policy("linear", initial="PT10S", maximum="PT10S", jitter=1.0)
    waits = [retry_delay(policy, 1, seed=f"exec-{i}") for i in range(2000)]
    assert all(wait is not None and wait >= timedelta(0) for wait in waits)
    assert min(w for w in waits if w is not None) < timedelta(milliseconds=50)


def test_retry_number_starts_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        retry_delay(_policy(), 0, seed="s")


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_lengthens_the_wait_even_past_max_interval() -> None:
    policy = _policy(initial="PT10S", maximum="PT1M")
    assert retry_delay(policy, 1, seed="s", retry_after_s=120) == timedelta(seconds=120)
    assert retry_delay(policy, 1, seed="s", retry_after_s=0.25) == timedelta(seconds=10)


@pytest.mark.parametrize("retry_after", [86_400.5, 10**9, math.inf])
def test_retry_after_is_capped_at_a_day(retry_after: float) -> None:
    assert timedelta(hours=24) == MAX_RETRY_AFTER
    assert retry_delay(_policy(), 1, seed="s", retry_after_s=retry_after) == MAX_RETRY_AFTER


@pytest.mark.parametrize("retry_after", [-5.0, math.nan])
def test_meaningless_retry_after_is_ignored(retry_after: float) -> None:
    policy = _policy()
    expected = retry_delay(policy, 2, seed="s")
    assert retry_delay(policy, 2, seed="s", retry_after_s=retry_after) == expected


def test_retry_after_grants_no_extra_retry() -> None:
    assert retry_delay(_policy(retries=2), 3, seed="s", retry_after_s=30) is None
    assert retry_delay(_policy("none"), 1, seed="s", retry_after_s=30) is None


@given(
    policy=policies(kinds=("exponential", "linear"), min_retries=1),
    seed=seeds,
    retry_after=st.floats(0, 10 * 86_400),
)
def test_retry_after_is_a_capped_lower_bound(
    policy: ErrorHandling, seed: str, retry_after: float
) -> None:
    plain = retry_delay(policy, 1, seed=seed)
    wait = retry_delay(policy, 1, seed=seed, retry_after_s=retry_after)
    assert plain is not None
    assert wait is not None
    floor = min(timedelta(seconds=retry_after), MAX_RETRY_AFTER)
    assert wait >= max(plain, floor)
    assert wait <= max(plain, floor + timedelta(milliseconds=1))
