"""How long to wait before retrying a failed action: pure arithmetic over :class:`ErrorHandling`.

Retry number ``n`` is the ``n``-th retry, so retry 1 follows the first failed attempt. The base
wait grows with ``n`` (``exponential``: ``initial * 2**(n-1)``, ``linear``: ``initial * n``) and is
capped at ``maxInterval``. Jitter spreads it by up to ``±jitter`` so that the retries of many
executions failing together do not hit a provider in lockstep; the spread is drawn from
:func:`unit_interval` of a caller-supplied seed, so a dry run and the real run agree.

Intervals are measured with :attr:`Duration.approximate_seconds` (a month counts as a mean month).
"""

from __future__ import annotations

import math
from datetime import timedelta

from campaignflow.domain.policies import ErrorHandling
from campaignflow.domain.randomness import unit_interval

MAX_RETRY_AFTER = timedelta(hours=24)
"""The longest wait a provider's ``Retry-After`` can impose.

``Retry-After`` comes from outside: a hostile or broken provider (or a proxy that answers with
``Retry-After: 999999999``) must not park an execution forever, holding the contact in the
workflow. A day is longer than any honest rate limit window; past it the retry happens anyway
and, if it fails again, the ordinary retry budget runs out.
"""

#: 2**64 microseconds is over half a million years, beyond the longest duration (ten years), so
#: capping the exponent here changes no result and keeps the arithmetic finite for any ``n``.
_MAX_EXPONENT = 64


def attempts_allowed(policy: ErrorHandling) -> int:
    """How many times an action runs at most: the first attempt plus its retries."""
    return 1 if policy.retry_policy == "none" else 1 + policy.max_retries


def retry_delay(
    policy: ErrorHandling,
    retry_number: int,
    *,
    seed: str,
    retry_after_s: float | None = None,
) -> timedelta | None:
    """The wait before retry ``retry_number`` (1-based), or ``None`` when no retry is left.

    ``seed`` should name the failing work uniquely (e.g. execution id and node id) so the jitter
    is reproducible yet differs between executions. ``retry_after_s`` (a provider's
    ``Retry-After``, in seconds) lengthens the wait to at least that much, even past
    ``maxInterval``, but never past :data:`MAX_RETRY_AFTER`; it never shortens the wait and cannot
    grant a retry the policy does not have. The result is rounded to the millisecond and never
    exceeds ``maxInterval`` unless ``Retry-After`` asked for more.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1, got {retry_number}")
    if retry_number >= attempts_allowed(policy):
        return None
    maximum = policy.max_interval.approximate_seconds
    base = min(_base_seconds(policy, retry_number), maximum)
    spread = 1 + policy.jitter * (2 * unit_interval(seed, retry_number) - 1)
    wait = min(_milliseconds(max(base * spread, 0.0)), timedelta(seconds=maximum))
    if retry_after_s is None or math.isnan(retry_after_s):
        return wait
    return max(wait, _retry_after_floor(retry_after_s))


def _base_seconds(policy: ErrorHandling, retry_number: int) -> float:
    initial = policy.initial_interval.approximate_seconds
    if policy.retry_policy == "linear":
        return initial * retry_number
    return initial * math.ldexp(1.0, min(retry_number - 1, _MAX_EXPONENT))


def _milliseconds(seconds: float) -> timedelta:
    return timedelta(milliseconds=round(seconds * 1000))


def _retry_after_floor(seconds: float) -> timedelta:
    """``Retry-After`` as a lower bound: rounded up (it is a minimum), clamped to [0, cap]."""
    capped = min(max(seconds, 0.0), MAX_RETRY_AFTER.total_seconds())
    return timedelta(milliseconds=math.ceil(round(capped * 1_000_000) / 1000))
