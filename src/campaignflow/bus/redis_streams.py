"""The event bus on Redis Streams: one stream per shard, one consumer group, leased shards.

Keys, under ``prefix``:

- ``{prefix}:events:{shard}`` — the shard's stream; each entry has one field, ``p`` (the
  payload). Acknowledged entries are deleted, so ``XLEN`` is the backlog; nothing is trimmed.
- ``{prefix}:events:owner:{shard}`` — the consumer that owns the shard, with a ``lease_ms``
  expiry that the owner renews at least every ``lease_ms / 3`` while it calls ``consume``.
- ``{prefix}:events:consumers`` — live consumers (a sorted set scored by expiry, in server
  milliseconds), from which each takes its fair share, ``ceil(shards / live consumers)``.

All ownership bookkeeping happens inside :meth:`RedisStreamBus.consume`, in one Lua script call
(atomic, one round trip, on the server's clock). A consumer that gains a shard claims the
entries the previous owner left pending (``XAUTOCLAIM``) and delivers them, flagged
``redelivered``, before new ones. Redis errors surface as :class:`BusUnavailable` (unreachable)
or :class:`~campaignflow.errors.StorageError` (anything else); callers never see redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from campaignflow.bus.events import Backpressure, BusUnavailable, Delivery, shard_of
from campaignflow.errors import ConfigurationError, StorageError

BACKLOG_CACHE_SECONDS = 0.075  # publish asks for XLEN at most this often: one round trip
CLAIM_BATCH = 1000  # XAUTOCLAIM COUNT when taking over a shard
NEW = ">"  # the XREADGROUP position of entries never delivered to the group

# KEYS: the consumers set, then the shards' owner keys; ARGV: consumer, lease_ms.
# Heartbeat, then keep owned shards up to the fair share (renew), give up those above it, and
# take free ones up to it. Returns the shards owned now.
_KEEP_SHARDS = """
local me, lease = ARGV[1], tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + lease, me)
redis.call('PEXPIRE', KEYS[1], lease)
local share = math.ceil((#KEYS - 1) / redis.call('ZCARD', KEYS[1]))
local owned = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == me then
    if #owned < share then
      redis.call('PEXPIRE', KEYS[i], lease)
      owned[#owned + 1] = i - 2
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
for i = 2, #KEYS do
  if #owned >= share then break end
  if redis.call('SET', KEYS[i], me, 'NX', 'PX', lease) then owned[#owned + 1] = i - 2 end
end
return owned
"""

# KEYS: the consumers set, then the shards' owner keys; ARGV: consumer.
_RELEASE_SHARDS = """
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
"""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
        raise BusUnavailable() from exc
    except redis_exceptions.RedisError as exc:
        raise StorageError(f"The event bus failed: {exc}") from exc


@dataclass(eq=False)
class _Consumer:
    """What this process knows about one consumer: its shards and its read positions."""

    positions: dict[int, str] = field(default_factory=dict)  # owned shard -> "0"/last id/">"
    buffer: deque[Delivery] = field(default_factory=deque)  # read, not yet handed out
    renew_at: float = 0.0  # time.monotonic() of the next ownership bookkeeping
    released: bool = False

    def take(self, count: int) -> list[Delivery]:
        return [self.buffer.popleft() for _ in range(min(count, len(self.buffer)))]


class RedisStreamBus:
    """:class:`~campaignflow.bus.events.EventBus` on Redis Streams. The client is the
    caller's (it must not decode responses); :meth:`close` releases this process's consumers
    but leaves the client open."""

    def __init__(
        self,
        client: Redis,
        *,
        shards: int = 16,
        prefix: str = "cf",
        group: str = "routers",
        lease_ms: int = 10_000,
        max_backlog: int = 1_000_000,
        retry_after_seconds: int = 1,
    ) -> None:
        options: dict[str, Any] = client.connection_pool.connection_kwargs
        if options.get("decode_responses"):
            raise ConfigurationError("The event bus needs a Redis client that returns bytes.")
        self._client = client
        self._group = group
        self._lease_ms = lease_ms
        self._max_backlog = max_backlog
        self._retry_after_seconds = retry_after_seconds
        self._streams = [f"{prefix}:events:{shard}" for shard in range(shards)]
        self._shard_by_stream = {name.encode(): shard for shard, name in enumerate(self._streams)}
        self._ownership_keys = [
            f"{prefix}:events:consumers",
            *(f"{prefix}:events:owner:{shard}" for shard in range(shards)),
        ]
        self._keep_shards = client.register_script(_KEEP_SHARDS)
        self._release_shards = client.register_script(_RELEASE_SHARDS)
        socket_timeout = options.get("socket_timeout")
        # A blocked read must return before the renewal is due and before the socket times out.
        self._max_block_ms = lease_ms // 3
        if socket_timeout:
            self._max_block_ms = min(self._max_block_ms, int(socket_timeout * 500))
        self._consumers: dict[str, _Consumer] = {}
        self._backlog_seen = 0
        self._backlog_seen_at = -math.inf

    @property
    def shards(self) -> int:
        return len(self._streams)

    def shard_for(self, key: str) -> int:
        return shard_of(key, len(self._streams))

    async def publish(self, entries: Sequence[tuple[int, bytes]]) -> None:
        if not entries:
            return
        if any(not 0 <= shard < len(self._streams) for shard, _ in entries):
            raise ValueError(f"shards are numbered 0 to {len(self._streams) - 1}")
        await self._check_backlog()
        pipe = self._client.pipeline(transaction=False)
        for shard, payload in entries:
            pipe.xadd(self._streams[shard], {"p": payload})
        with _translated():
            await pipe.execute()
        self._backlog_seen += len(entries)

    async def consume(self, consumer: str, *, count: int, block_ms: int) -> list[Delivery]:
        state = self._consumers.setdefault(consumer, _Consumer())
        deadline = time.monotonic() + block_ms / 1000
        with _translated():
            while not state.buffer and not state.released:
                if time.monotonic() >= state.renew_at:
                    await self._keep(consumer, state)
                wait_ms = self._wait_ms(state, deadline)
                again = False
                if state.positions:
                    again = await self._read(consumer, state, count, wait_ms)
                elif wait_ms:
                    await asyncio.sleep(wait_ms / 1000)  # no shard free: until the next try
                if not (state.buffer or again) and time.monotonic() >= deadline:
                    break
        return [] if state.released else state.take(count)

    async def ack(self, consumer: str, deliveries: Sequence[Delivery]) -> None:
        ids_by_shard: dict[int, list[str]] = {}
        for delivery in deliveries:
            ids_by_shard.setdefault(delivery.shard, []).append(delivery.entry_id)
        if not ids_by_shard:
            return
        pipe = self._client.pipeline(transaction=False)
        for shard, ids in ids_by_shard.items():
            pipe.xack(self._streams[shard], self._group, *ids)
            pipe.xdel(self._streams[shard], *ids)
        with _translated():
            await pipe.execute()

    def owned_shards(self, consumer: str) -> frozenset[int]:
        state = self._consumers.get(consumer)
        return frozenset(state.positions) if state else frozenset()

    async def backlog(self) -> int:
        pipe = self._client.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xlen(stream)
        with _translated():
            lengths: list[int] = await pipe.execute()
        return sum(lengths)

    async def release(self, consumer: str) -> None:
        state = self._consumers.pop(consumer, None)
        if state is not None:
            state.released = True
        with _translated():
            await self._release_shards(keys=self._ownership_keys, args=[consumer])

    async def close(self) -> None:
        """Give up this process's shards now; if Redis is gone, their leases expire anyway."""
        for consumer in list(self._consumers):
            with contextlib.suppress(BusUnavailable):
                await self.release(consumer)

    async def _check_backlog(self) -> None:
        now = time.monotonic()
        stale = now - self._backlog_seen_at > BACKLOG_CACHE_SECONDS
        if stale or self._backlog_seen >= self._max_backlog:  # refuse on fresh numbers only
            self._backlog_seen = await self.backlog()
            self._backlog_seen_at = now
        if self._backlog_seen >= self._max_backlog:
            raise Backpressure(self._backlog_seen, self._max_backlog, self._retry_after_seconds)

    async def _keep(self, consumer: str, state: _Consumer) -> None:
        """Heartbeat and rebalance; claim what previous owners of gained shards left."""
        started = time.monotonic()
        reply = await self._keep_shards(keys=self._ownership_keys, args=[consumer, self._lease_ms])
        owned = {int(shard) for shard in reply}
        for shard in state.positions.keys() - owned:
            del state.positions[shard]
        state.buffer = deque(d for d in state.buffer if d.shard in owned)
        gained = sorted(owned - state.positions.keys())
        if gained:
            await self._take_over(consumer, gained)
        state.positions.update(dict.fromkeys(gained, "0"))  # own pending entries first
        state.renew_at = started + self._lease_ms / 3000

    async def _take_over(self, consumer: str, shards: list[int]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for shard in shards:
            pipe.xgroup_create(self._streams[shard], self._group, id="0", mkstream=True)
        created = await pipe.execute(raise_on_error=False)
        for result in created:
            if isinstance(result, Exception) and not str(result).startswith("BUSYGROUP"):
                raise result
        cursors = dict.fromkeys(shards, "0-0")
        while cursors:  # XAUTOCLAIM pages through the group's pending entries
            pipe = self._client.pipeline(transaction=False)
            for shard, cursor in cursors.items():
                pipe.xautoclaim(
                    self._streams[shard], self._group, consumer, 0, cursor, count=CLAIM_BATCH
                )
            replies = await pipe.execute()
            cursors = {
                shard: _text(reply[0])
                for shard, reply in zip(cursors, replies, strict=True)
                if _text(reply[0]) != "0-0"
            }

    def _wait_ms(self, state: _Consumer, deadline: float) -> int:
        """How long a read may block: until the deadline or the renewal, whichever is first."""
        seconds = min(deadline, state.renew_at) - time.monotonic()
        return max(0, min(math.ceil(seconds * 1000), self._max_block_ms))

    async def _read(self, consumer: str, state: _Consumer, count: int, wait_ms: int) -> bool:
        """One XREADGROUP over all owned shards into the buffer. True when a shard has just
        finished its pending entries, so that reading again at once may find new ones."""
        streams: dict[KeyT, StreamIdT] = {
            self._streams[shard]: position for shard, position in state.positions.items()
        }
        try:
            reply = await self._client.xreadgroup(
                self._group, consumer, streams, count=count, block=wait_ms or None
            )
        except redis_exceptions.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            state.positions.clear()  # the stream was deleted: re-create the group, re-claim
            state.renew_at = 0.0
            return True
        drained = False
        for name, entries in _stream_entries(reply):
            drained |= self._buffer(state, self._shard_by_stream[name], entries)
        return drained

    def _buffer(self, state: _Consumer, shard: int, entries: list[Any]) -> bool:
        position = state.positions[shard]
        if position == NEW:
            state.buffer.extend(Delivery(shard, _text(i), f[b"p"], False) for i, f in entries)
            return False
        if not entries:
            state.positions[shard] = NEW  # pending entries done: on to new ones
            return True
        state.positions[shard] = _text(entries[-1][0])
        # A pending entry deleted from the stream comes back without fields: skip it.
        state.buffer.extend(Delivery(shard, _text(i), f[b"p"], True) for i, f in entries if f)
        return False


def _stream_entries(reply: Any) -> Iterable[tuple[bytes, list[Any]]]:
    """XREADGROUP's reply as ``(stream, entries)`` pairs, whichever shape redis-py gives."""
    if not reply:
        return []
    pairs: Iterable[tuple[bytes, list[Any]]] = reply.items() if isinstance(reply, dict) else reply
    return pairs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
