"""The per-account guards every outbound call passes: a rate limit and a circuit breaker.

Both are keyed by connection (one provider account) and must be shared by every worker that
calls that account, or two workers would each send at the full rate and each keep its own view
of the provider's health. :class:`OutboundGuards` is the interface; :class:`LocalGuards` keeps
the state in this process (the embedded mode: one process), and ``bus/outbound_guards_redis``
keeps it in Redis for a deployment of several workers. The arithmetic is the same pure code
(``domain/pacing.py``, ``domain/circuit_breaker.py``) in both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from campaignflow.domain.circuit_breaker import (
    CLOSED,
    Admission,
    BreakerPolicy,
    BreakerState,
    admit,
    record,
)
from campaignflow.domain.pacing import Reservation, reserve
from campaignflow.integrations.connector import RateLimits


class OutboundGuards(Protocol):
    async def reserve(self, key: str, limits: RateLimits, max_wait: float) -> Reservation:
        """Reserve one call on ``key``'s bucket (see :func:`campaignflow.domain.pacing.reserve`)."""
        ...

    async def admit(self, key: str, policy: BreakerPolicy) -> Admission:
        """Whether ``key``'s breaker lets a call through now (a half-open probe is counted)."""
        ...

    async def record(self, key: str, policy: BreakerPolicy, *, success: bool) -> BreakerState:
        """Tell ``key``'s breaker how an admitted call went; returns the new state."""
        ...

    async def aclose(self) -> None: ...


class LocalGuards:
    """Guards kept in this process. Each operation is one synchronous step between awaits, so
    the event loop makes it atomic without a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._breakers: dict[str, BreakerState] = {}

    async def reserve(self, key: str, limits: RateLimits, max_wait: float) -> Reservation:
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(limits.burst_limit), now))
        outcome = reserve(
            tokens,
            at,
            now,
            rate=limits.per_second,
            burst=limits.burst_limit,
            max_wait=max_wait,
        )
        if outcome.granted:
            self._buckets[key] = (outcome.tokens, outcome.at)
        return outcome

    async def admit(self, key: str, policy: BreakerPolicy) -> Admission:
        admission = admit(self._breakers.get(key, CLOSED), policy, self._clock())
        self._breakers[key] = admission.state
        return admission

    async def record(self, key: str, policy: BreakerPolicy, *, success: bool) -> BreakerState:
        state = record(self._breakers.get(key, CLOSED), policy, self._clock(), success=success)
        self._breakers[key] = state
        return state

    def breaker(self, key: str) -> BreakerState:
        """The breaker's current state (for the connections API and tests)."""
        return self._breakers.get(key, CLOSED)

    async def aclose(self) -> None:
        self._buckets.clear()
        self._breakers.clear()
        await asyncio.sleep(0)
