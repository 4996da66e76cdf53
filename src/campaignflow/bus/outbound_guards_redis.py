"""Outbound guards in Redis: each provider account's rate limit and circuit breaker, shared by
every worker process (:class:`~campaignflow.integrations.guards.OutboundGuards`).

Each operation is one Lua script call, atomic across processes, on the Redis server's clock
(``TIME``; workers on different hosts would otherwise disagree about elapsed time). The calls
of a worker's concurrent steps travel together, one pipeline per round trip
(``bus/script_calls.py``). The scripts run the same transitions as the pure functions of
``domain/pacing.py`` and ``domain/circuit_breaker.py`` — the integration tests drive both with
one script of calls and compare every answer. Times are whole microseconds inside Redis.

Keys, under ``prefix``:

- ``{prefix}:bucket:{key}`` — hash ``tokens``, ``at``; expires once the bucket would be full
  again, so an idle account costs nothing.
- ``{prefix}:breaker:{key}`` — hash ``mode``, ``failures``, ``opened_at``, ``probes``,
  ``successes``; absent means closed with no failures. A closed breaker's admission and a
  success recorded on it therefore read and write nothing else: the hot path is one read-only
  script call each. Every write renews an expiry of ``open_seconds`` plus ``stale_after_s``, so
  a half-open breaker whose probe never reported back (its worker was killed mid-call) does not
  refuse calls forever: it forgets itself and starts closed.

When Redis fails or is slow, the guards fall back to this process's own
(:class:`~campaignflow.integrations.guards.LocalGuards`) and log a warning once per outage, like
the API's rate limiter: outbound calls keep flowing, paced per process (so at most the number
of workers times the account's rate) until Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from campaignflow.bus.script_calls import Script, ScriptCalls
from campaignflow.domain.circuit_breaker import (
    CLOSED,
    Admission,
    BreakerMode,
    BreakerPolicy,
    BreakerState,
)
from campaignflow.domain.pacing import EPSILON, Reservation
from campaignflow.integrations.connector import RateLimits
from campaignflow.integrations.guards import LocalGuards, OutboundGuards

logger = logging.getLogger(__name__)

OUTAGE_RETRY_SECONDS = 1.0  # how long the fallback is used before Redis is tried again
STALE_AFTER_SECONDS = 60.0  # a breaker key outlives open_seconds by this much without writes
MICROS = 1_000_000

# The clock: ARGV[1] is the time in microseconds, or '' for the server's own (production).
_NOW = """
local function now_us(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(value) return string.format('%.17g', value) end
"""

# KEYS[1]: the bucket. ARGV: now, rate (tokens/s), burst, cost, max_wait (s), epsilon (s).
# Returns {granted (0/1), wait (s), tokens, at (us)}: domain.pacing.reserve, step for step.
_RESERVE = Script(
    _NOW
    + """
local now = now_us(ARGV[1])
local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, max_wait = tonumber(ARGV[4]), tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
now = math.max(now, at)
local level = math.min(burst, tokens + (now - at) / 1000000 * rate)
local after = level - cost
local wait = math.max(0, -after / rate)
if wait > max_wait + tonumber(ARGV[6]) then
  return {0, num(wait - max_wait), num(level), num(now)}
end
redis.call('HSET', KEYS[1], 'tokens', num(after), 'at', num(now))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((burst - after) / rate * 1000) + 1000))
return {1, num(wait), num(after), num(now)}
"""
)

# Breaker state as stored, and as returned: {mode, failures, opened_at (us or ''), probes,
# successes}. A missing key is closed with no failures.
_BREAKER = (
    _NOW
    + """
local function load(key)
  local h = redis.call('HMGET', key, 'mode', 'failures', 'opened_at', 'probes', 'successes')
  return {mode = h[1] or 'closed', failures = tonumber(h[2]) or 0, opened_at = tonumber(h[3]),
          probes = tonumber(h[4]) or 0, successes = tonumber(h[5]) or 0}
end
local function reply(s)
  local opened = ''
  if s.opened_at then opened = num(s.opened_at) end
  return {s.mode, num(s.failures), opened, num(s.probes), num(s.successes)}
end
local function save(key, s, ttl_ms)
  if s.mode == 'closed' and s.failures == 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'mode', s.mode, 'failures', num(s.failures), 'probes', num(s.probes),
    'successes', num(s.successes))
  if s.opened_at then redis.call('HSET', key, 'opened_at', num(s.opened_at))
  else redis.call('HDEL', key, 'opened_at') end
  redis.call('PEXPIRE', key, ttl_ms)
end
local function opened(now) return {mode = 'open', failures = 0, opened_at = now, probes = 0,
  successes = 0} end
"""
)

# KEYS[1]: the breaker. ARGV: now, open (us), half_open_probes, ttl (ms).
# Returns {allowed (0/1), retry_after (us), state...}: domain.circuit_breaker.admit.
_ADMIT = Script(
    _BREAKER
    + """
local s = load(KEYS[1])
if s.mode == 'closed' then return {1, '0', unpack(reply(s))} end
local now, open_us = now_us(ARGV[1]), tonumber(ARGV[2])
if s.mode == 'open' then
  local since = s.opened_at or now
  local wait = since + open_us - now
  if wait > 0 then return {0, num(wait), unpack(reply(s))} end
  s = {mode = 'half_open', failures = 0, opened_at = since, probes = 0, successes = 0}
end
if s.probes >= tonumber(ARGV[3]) then return {0, num(open_us), unpack(reply(s))} end
s.probes = s.probes + 1
save(KEYS[1], s, ARGV[4])
return {1, '0', unpack(reply(s))}
"""
)

# KEYS[1]: the breaker. ARGV: now, success (0/1), failure_threshold, close_after, ttl (ms).
# Returns the state after: domain.circuit_breaker.record.
_RECORD = Script(
    _BREAKER
    + """
local s = load(KEYS[1])
if s.mode == 'open' then return reply(s) end
local success = ARGV[2] == '1'
if s.mode == 'closed' then
  if success then
    if s.failures > 0 then redis.call('DEL', KEYS[1]) end
    return reply({mode = 'closed', failures = 0, probes = 0, successes = 0})
  end
  s.failures = s.failures + 1
  if s.failures >= tonumber(ARGV[3]) then s = opened(now_us(ARGV[1])) end
elseif not success then
  s = opened(now_us(ARGV[1]))
else
  s.successes = s.successes + 1
  if s.successes >= tonumber(ARGV[4]) then
    s = {mode = 'closed', failures = 0, probes = 0, successes = 0}
  else
    s.probes = math.max(0, s.probes - 1)
  end
end
save(KEYS[1], s, ARGV[5])
return reply(s)
"""
)


class RedisGuards:
    """:class:`~campaignflow.integrations.guards.OutboundGuards` shared through Redis; see the
    module docstring. ``clock`` (seconds) replaces the server's clock, for tests only.
    ``owns_client``: :meth:`aclose` closes the client too (as :meth:`from_url` arranges)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        fallback: OutboundGuards | None = None,
        clock: Callable[[], float] | None = None,
        stale_after_s: float = STALE_AFTER_SECONDS,
        owns_client: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = fallback or LocalGuards()
        self._clock = clock
        self._stale_after_ms = round(stale_after_s * 1000)
        self._owns_client = owns_client
        self._monotonic = monotonic
        self._calls = ScriptCalls(client)
        self._down_until: float | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str, timeout_s: float = 0.5) -> RedisGuards:
        """Guards on their own client: no retries (the fallback answers at once instead), and
        a short timeout, since a worker waits for the answer before every call it sends. The
        calls of all its steps share one pipeline at a time (``bus/script_calls.py``), so a
        few connections are enough."""
        client = Redis.from_url(
            url,
            max_connections=4,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, owns_client=True)

    def bucket_key(self, key: str) -> str:
        return f"{self._prefix}:bucket:{key}"

    def breaker_key(self, key: str) -> str:
        return f"{self._prefix}:breaker:{key}"

    async def reserve(self, key: str, limits: RateLimits, max_wait: float) -> Reservation:
        args = [self._now(), limits.per_second, limits.burst_limit, 1, max_wait, EPSILON]
        reply = await self._call(_RESERVE, self.bucket_key(key), args)
        if reply is None:
            return await self._fallback.reserve(key, limits, max_wait)
        granted, wait, tokens, at = reply
        return Reservation(bool(int(granted)), float(wait), float(tokens), float(at) / MICROS)

    async def admit(self, key: str, policy: BreakerPolicy) -> Admission:
        open_us = round(policy.open_seconds * MICROS)
        args = [self._now(), open_us, policy.half_open_probes, self._ttl_ms(policy)]
        reply = await self._call(_ADMIT, self.breaker_key(key), args)
        if reply is None:
            return await self._fallback.admit(key, policy)
        allowed, retry_after, *state = reply
        return Admission(bool(int(allowed)), _state(state), float(retry_after) / MICROS)

    async def record(self, key: str, policy: BreakerPolicy, *, success: bool) -> BreakerState:
        args = [
            self._now(),
            int(success),
            policy.failure_threshold,
            policy.close_after,
            self._ttl_ms(policy),
        ]
        reply = await self._call(_RECORD, self.breaker_key(key), args)
        if reply is None:
            return await self._fallback.record(key, policy, success=success)
        return _state(reply)

    async def breaker(self, key: str) -> BreakerState:
        """The breaker's state as stored (closed when Redis has nothing), for tests and
        operators; Redis errors propagate."""
        fields = ("mode", "failures", "opened_at", "probes", "successes")
        values: list[bytes | str | None] = await self._client.hmget(self.breaker_key(key), fields)
        if values[0] is None:
            return CLOSED
        return _state([value or b"" for value in values])

    async def aclose(self) -> None:
        await self._calls.aclose()
        await self._fallback.aclose()
        if self._owns_client:
            await self._client.aclose()

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * MICROS))

    def _ttl_ms(self, policy: BreakerPolicy) -> int:
        return round(policy.open_seconds * 1000) + self._stale_after_ms

    async def _call(self, script: Script, key: str, args: Sequence[Any]) -> list[bytes] | None:
        """The script's reply, or None when Redis failed (the caller asks the fallback)."""
        if self._down_until is not None and self._monotonic() < self._down_until:
            return None
        try:
            reply: list[bytes] = await self._calls.call(script, key, args)
        except redis_exceptions.RedisError as exc:
            self._note_outage(exc)
            return None
        if self._down_until is not None:
            logger.warning("outbound guards: Redis answers again; limits are shared again")
            self._down_until = None
        return reply

    def _note_outage(self, exc: redis_exceptions.RedisError) -> None:
        if self._down_until is None:
            logger.warning(
                "outbound guards: Redis failed (%s); rate limits and circuit breakers are kept "
                "per process until it answers",
                exc,
            )
        self._down_until = self._monotonic() + OUTAGE_RETRY_SECONDS


def _state(fields: Sequence[bytes | str]) -> BreakerState:
    mode, failures, opened_at, probes, successes = (_text(value) for value in fields)
    return BreakerState(
        mode=_mode(mode),
        failures=int(float(failures or 0)),
        opened_at=float(opened_at) / MICROS if opened_at else None,
        probes=int(float(probes or 0)),
        successes=int(float(successes or 0)),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _mode(value: str) -> BreakerMode:
    if value == "open":
        return "open"
    if value == "half_open":
        return "half_open"
    return "closed"
