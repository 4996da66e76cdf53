"""Pacing outbound calls with a token bucket that can be reserved ahead.

An API limiter refuses a request and says when to come back; an outbound caller would then
sleep and race every other waiter for the next token, so the rate it achieves depends on luck
and on how often it retries. Here a caller *reserves* its token instead: the bucket may go
below zero, and the caller is told exactly how long to wait before its turn. Waiters are thus
served in order, one token each, at the configured rate — the property ``bench/outbound.py``
measures across worker processes. A reservation further ahead than ``max_wait`` is not made
(nothing is taken), so a backlog never queues unboundedly inside a worker: the step is
deferred instead.

Pure: times are seconds on any clock, passed in. The Redis implementation runs the same
arithmetic in a Lua script on the server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Waits this close to ``max_wait`` count as within it: a clock kept as float seconds makes a
#: token due exactly now come out a few 1e-13 s late, and refusing it would defer a step for
#: nothing.
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Reservation:
    """``granted``: the call may go after ``wait`` seconds (0: now). Not granted: nothing was
    taken, and ``wait`` is how long until a reservation within ``max_wait`` could be made."""

    granted: bool
    wait: float
    tokens: float  # the bucket after the attempt (negative: reserved ahead)
    at: float  # the time the bucket's level refers to


def reserve(
    tokens: float,
    at: float,
    now: float,
    *,
    rate: float,
    burst: int,
    cost: int = 1,
    max_wait: float,
) -> Reservation:
    """Refill for the time since ``at`` (never above ``burst``), then take ``cost`` tokens if
    the caller would wait at most ``max_wait`` for them."""
    if rate <= 0 or burst < 1:
        raise ValueError("a bucket needs rate > 0 and burst >= 1")
    if cost < 1 or cost > burst:
        raise ValueError(f"cost must be between 1 and the burst ({burst}), got {cost}")
    if max_wait < 0:
        raise ValueError("max_wait must not be negative")
    now = max(now, at)  # a clock that went backwards refills nothing
    level = min(float(burst), tokens + (now - at) * rate)
    after = level - cost
    wait = max(0.0, -after / rate)
    if wait > max_wait + EPSILON:
        return Reservation(False, wait - max_wait, level, now)
    return Reservation(True, wait, after, now)
