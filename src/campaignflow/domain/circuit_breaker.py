"""A circuit breaker per provider account, as pure transitions over a small state.

Closed: calls go through; ``failure_threshold`` failures in a row open the breaker. Open: calls
are refused (with the seconds until a trial is allowed) for ``open_seconds``. Half-open: at most
``half_open_probes`` trial calls are let through at once; ``close_after`` successes in a row
close the breaker, any failure opens it again for another ``open_seconds``.

Pure: the clock is a number passed in, so the same functions serve a breaker kept in memory
(embedded mode) and one kept in Redis and shared by every worker (the integration layer stores
the state and applies these transitions atomically). Only retryable failures (timeouts, 429,
5xx) should be recorded as failures: a 4xx caused by one bad request says nothing about the
provider's health.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

BreakerMode = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    half_open_probes: int = 1
    close_after: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_probes < 1 or self.close_after < 1:
            raise ValueError("thresholds and probe counts must be at least 1")
        if self.open_seconds <= 0:
            raise ValueError("open_seconds must be positive")


@dataclass(frozen=True, slots=True)
class BreakerState:
    mode: BreakerMode = "closed"
    failures: int = 0  # in a row, while closed
    opened_at: float | None = None  # while open (and remembered in half-open)
    probes: int = 0  # trial calls in flight, while half-open
    successes: int = 0  # in a row, while half-open


CLOSED = BreakerState()


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    state: BreakerState
    retry_after: float = 0.0  # seconds until a call may be tried again, when refused


def admit(state: BreakerState, policy: BreakerPolicy, now: float) -> Admission:
    """Whether a call may go now, and the state after letting it (a half-open probe counts)."""
    if state.mode == "closed":
        return Admission(True, state)
    if state.mode == "open":
        opened = state.opened_at if state.opened_at is not None else now
        wait = opened + policy.open_seconds - now
        if wait > 0:
            return Admission(False, state, wait)
        state = BreakerState("half_open", opened_at=opened)
    if state.probes >= policy.half_open_probes:
        return Admission(False, state, policy.open_seconds)
    return Admission(True, replace(state, probes=state.probes + 1))


def record(
    state: BreakerState, policy: BreakerPolicy, now: float, *, success: bool
) -> BreakerState:
    """The state after a call admitted by :func:`admit` finished."""
    if state.mode == "closed":
        return _after_closed_call(state, policy, now, success=success)
    if state.mode == "open":  # a call admitted before the breaker opened: nothing to learn
        return state
    if not success:
        return BreakerState("open", opened_at=now)
    successes = state.successes + 1
    if successes >= policy.close_after:
        return CLOSED
    return replace(state, probes=max(0, state.probes - 1), successes=successes)


def _after_closed_call(
    state: BreakerState, policy: BreakerPolicy, now: float, *, success: bool
) -> BreakerState:
    if success:
        return CLOSED
    failures = state.failures + 1
    if failures >= policy.failure_threshold:
        return BreakerState("open", opened_at=now)
    return replace(state, failures=failures)
