"""The reservation token bucket: a granted wait never exceeds max_wait, reservations are served
at the rate once the burst is spent (in any window, at most burst + rate * window go), a
refusal takes nothing and says exactly when to come back, and a clock that goes backwards
refills nothing."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from campaignflow.domain.pacing import EPSILON, Reservation, reserve

rates = st.sampled_from([0.1, 1.0, 10.0, 100.0, 2500.0 / 60])
bursts = st.integers(1, 20)
max_waits = st.sampled_from([0.0, 0.05, 1.0, 5.0, 60.0])
gaps = st.floats(0, 3, allow_nan=False)
Call = tuple[float, float]  # (seconds since the previous call, max_wait)
calls = st.lists(st.tuples(gaps, max_waits), min_size=1, max_size=80)


def run(calls: list[Call], *, rate: float, burst: int) -> list[tuple[float, Reservation]]:
    """The calls one bucket sees, kept as LocalGuards keeps it (only grants are stored);
    returns each call's time and answer."""
    tokens, at, now = float(burst), 0.0, 0.0
    answers = []
    for gap, max_wait in calls:
        now += gap
        answer = reserve(tokens, at, now, rate=rate, burst=burst, max_wait=max_wait)
        if answer.granted:
            tokens, at = answer.tokens, answer.at
        answers.append((now, answer))
    return answers


@given(calls, rates, bursts)
def test_a_granted_wait_never_exceeds_max_wait(calls: list[Call], rate: float, burst: int) -> None:
    for (_, max_wait), (_, answer) in zip(calls, run(calls, rate=rate, burst=burst), strict=True):
        assert answer.wait >= 0
        if answer.granted:
            assert answer.wait <= max_wait + EPSILON


@given(calls, rates, bursts)
@example([(3.0, 60.0), (0.0, 60.0), (0.0, 60.0)], 1.0, 1)  # idle time fills only up to burst
def test_in_any_window_at_most_burst_plus_rate_times_window_calls_go(
    calls: list[Call], rate: float, burst: int
) -> None:
    departures = sorted(
        now + answer.wait for now, answer in run(calls, rate=rate, burst=burst) if answer.granted
    )
    for first, start in enumerate(departures):
        for last in range(first, len(departures)):
            window = departures[last] - start
            assert last - first + 1 <= burst + window * rate + 1e-6


@given(rates, bursts, st.integers(1, 60))
def test_after_the_burst_reservations_are_spaced_at_the_rate(
    rate: float, burst: int, count: int
) -> None:
    answers = run([(0.0, 1e9)] * (burst + count), rate=rate, burst=burst)

    waits = [answer.wait for _, answer in answers]

    assert waits[:burst] == [0.0] * burst
    assert waits[burst:] == pytest.approx([(n + 1) / rate for n in range(count)])


@given(st.floats(-5, 5), bursts, rates, st.floats(0, 10), max_waits)
def test_a_refusal_takes_nothing_and_names_the_moment_a_reservation_would_be_granted(
    tokens: float, burst: int, rate: float, elapsed: float, max_wait: float
) -> None:
    tokens = min(tokens, float(burst))
    answer = reserve(tokens, 0.0, elapsed, rate=rate, burst=burst, max_wait=max_wait)
    if answer.granted:
        return
    level = min(float(burst), tokens + elapsed * rate)
    assert answer.tokens == pytest.approx(level)  # what the bucket holds, nothing taken
    assert answer.wait > 0
    later = elapsed + answer.wait
    again = reserve(tokens, 0.0, later, rate=rate, burst=burst, max_wait=max_wait)
    assert again.granted
    assert again.wait == pytest.approx(max_wait, abs=1e-6)
    too_early = reserve(tokens, 0.0, later - 0.001, rate=rate, burst=burst, max_wait=max_wait)
    assert not too_early.granted


@given(st.floats(-5, 5), bursts, rates, st.floats(0.001, 100), max_waits)
def test_a_clock_that_goes_backwards_refills_nothing(
    tokens: float, burst: int, rate: float, back: float, max_wait: float
) -> None:
    tokens = min(tokens, float(burst))
    at = 1_000.0

    earlier = reserve(tokens, at, at - back, rate=rate, burst=burst, max_wait=max_wait)
    same = reserve(tokens, at, at, rate=rate, burst=burst, max_wait=max_wait)

    assert earlier == same
    assert earlier.at == at  # the bucket's time never moves back either


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        reserve(1, 0, 0, rate=0, burst=1, max_wait=0)
    with pytest.raises(ValueError, match="cost"):
        reserve(1, 0, 0, rate=1, burst=1, cost=2, max_wait=0)
    with pytest.raises(ValueError, match="negative"):
        reserve(1, 0, 0, rate=1, burst=1, max_wait=-1)
