"""The circuit breaker's transitions: it opens after enough failures in a row, refuses while
open, lets a bounded number of trial calls through after the pause, and closes on success."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.circuit_breaker import (
    CLOSED,
    BreakerPolicy,
    BreakerState,
    admit,
    record,
)

POLICY = BreakerPolicy(failure_threshold=3, open_seconds=10, half_open_probes=2, close_after=2)


def _fail(state: BreakerState, now: float, times: int) -> BreakerState:
    for _ in range(times):
        admitted = admit(state, POLICY, now)
        assert admitted.allowed
        state = record(admitted.state, POLICY, now, success=False)
    return state


def test_failures_in_a_row_open_it_and_a_success_between_them_resets_the_count() -> None:
    state = _fail(CLOSED, 0, 2)
    state = record(admit(state, POLICY, 0).state, POLICY, 0, success=True)
    state = _fail(state, 0, 2)
    assert state.mode == "closed"
    state = _fail(state, 1, 1)
    assert state.mode == "open"
    assert state.opened_at == 1


def test_open_refuses_until_the_pause_is_over_then_probes_a_bounded_number() -> None:
    state = _fail(CLOSED, 0, 3)
    refused = admit(state, POLICY, 9.5)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)
    first = admit(state, POLICY, 10)
    second = admit(first.state, POLICY, 10)
    third = admit(second.state, POLICY, 10)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert second.state.mode == "half_open"


def test_probes_that_succeed_close_it_and_a_probe_that_fails_reopens_it() -> None:
    opened = _fail(CLOSED, 0, 3)
    probe = admit(opened, POLICY, 10).state
    once = record(probe, POLICY, 10, success=True)
    assert once.mode == "half_open"
    closed = record(admit(once, POLICY, 10).state, POLICY, 10, success=True)
    assert closed == CLOSED
    reopened = record(probe, POLICY, 12, success=False)
    assert reopened.mode == "open"
    assert not admit(reopened, POLICY, 21).allowed
    assert admit(reopened, POLICY, 22).allowed


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerPolicy(open_seconds=0)


Step = tuple[str, float]
steps = st.lists(
    st.tuples(st.sampled_from(["call", "succeed", "fail"]), st.floats(0, 5)), max_size=60
)


@given(steps)
def test_while_open_nothing_passes_and_half_open_never_has_too_many_probes(
    script: list[Step],
) -> None:
    state, now, in_flight = CLOSED, 0.0, 0
    for action, elapsed in script:
        now += elapsed
        if action == "call":
            admitted = admit(state, POLICY, now)
            opened_at = state.opened_at if state.mode == "open" else None
            if opened_at is not None and now < opened_at + POLICY.open_seconds:
                assert not admitted.allowed
            state = admitted.state
            in_flight += admitted.allowed
            if state.mode == "half_open":
                assert state.probes <= POLICY.half_open_probes
        elif in_flight:
            in_flight -= 1
            state = record(state, POLICY, now, success=action == "succeed")
        assert state.mode in ("closed", "open", "half_open")
        if state.mode == "closed":
            assert state.failures < POLICY.failure_threshold
