"""The in-process event bus of embedded mode: ingestion and the routers share one process.

Memory is not durable, so :meth:`InProcessBus.publish` returns only once a consumer has
acknowledged every entry it appended: the sender hears "accepted" only after the router has
committed. A publisher that is cancelled leaves its entries queued. Otherwise the semantics are
those of the Redis bus: each shard has one owner at a time among the consumers that call
:meth:`~InProcessBus.consume` (fair share, ``ceil(shards / consumers)`` each), and the entries
a consumer left unacknowledged are redelivered first to the shard's next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from campaignflow.bus.events import Backpressure, BusUnavailable, Delivery, shard_of


@dataclass(eq=False)
class _Receipt:
    """What a publisher waits for: every entry it appended acknowledged."""

    remaining: int
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class _Entry:
    entry_id: str
    payload: bytes
    receipt: _Receipt


@dataclass(eq=False)
class _Shard:
    fresh: deque[_Entry] = field(default_factory=deque)  # never delivered
    unacked: dict[str, _Entry] = field(default_factory=dict)  # delivered; in log order
    again: deque[_Entry] = field(default_factory=deque)  # a former owner's, delivered first
    owner: str | None = None


class InProcessBus:
    """:class:`~campaignflow.bus.events.EventBus` in memory, for one process."""

    def __init__(
        self, *, shards: int = 16, max_backlog: int = 100_000, retry_after_seconds: int = 1
    ) -> None:
        self._shards = [_Shard() for _ in range(shards)]
        self._max_backlog = max_backlog
        self._retry_after_seconds = retry_after_seconds
        self._consumers: dict[str, int] = {}  # live consumer -> its round-robin turn
        self._backlog = 0
        self._last_id = 0
        self._changed = asyncio.Event()  # replaced on every change: a broadcast
        self._waiting: set[_Receipt] = set()
        self._closed = False

    @property
    def shards(self) -> int:
        return len(self._shards)

    def shard_for(self, key: str) -> int:
        return shard_of(key, len(self._shards))

    async def publish(self, entries: Sequence[tuple[int, bytes]]) -> None:
        if not entries:
            return
        if self._closed:
            raise BusUnavailable("The event bus is closed.")
        if self._backlog >= self._max_backlog:
            raise Backpressure(self._backlog, self._max_backlog, self._retry_after_seconds)
        if any(not 0 <= shard < len(self._shards) for shard, _ in entries):
            raise ValueError(f"shards are numbered 0 to {len(self._shards) - 1}")
        receipt = _Receipt(len(entries))
        for shard, payload in entries:
            self._last_id += 1
            self._shards[shard].fresh.append(_Entry(str(self._last_id), payload, receipt))
        self._backlog += len(entries)
        self._wake()
        self._waiting.add(receipt)
        try:
            await receipt.done.wait()
        finally:
            self._waiting.discard(receipt)
        if receipt.remaining:
            raise BusUnavailable("The event bus closed before the entries were processed.")

    async def consume(self, consumer: str, *, count: int, block_ms: int) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        if consumer not in self._consumers:
            self._consumers[consumer] = 0
            self._wake()  # the others give up shards above their new share
        while not self._closed and consumer in self._consumers:  # not released meanwhile
            self._rebalance(consumer)
            batch = self._take(consumer, count)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
        return []

    async def ack(self, consumer: str, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            entry = self._shards[delivery.shard].unacked.pop(delivery.entry_id, None)
            if entry is None:
                continue  # acknowledged already
            self._backlog -= 1
            entry.receipt.remaining -= 1
            if not entry.receipt.remaining:
                entry.receipt.done.set()

    def owned_shards(self, consumer: str) -> frozenset[int]:
        return frozenset(i for i, shard in enumerate(self._shards) if shard.owner == consumer)

    async def backlog(self) -> int:
        return self._backlog

    async def release(self, consumer: str) -> None:
        self._consumers.pop(consumer, None)
        for shard in self._shards:
            if shard.owner == consumer:
                shard.owner = None
        self._wake()

    async def close(self) -> None:
        """Consumers stop receiving; publishers still waiting get :class:`BusUnavailable`."""
        self._closed = True
        for receipt in self._waiting:
            receipt.done.set()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _rebalance(self, consumer: str) -> None:
        share = math.ceil(len(self._shards) / len(self._consumers))
        mine = [shard for shard in self._shards if shard.owner == consumer]
        for shard in mine[share:]:
            shard.owner = None
        if len(mine) > share:
            self._wake()
        free = [shard for shard in self._shards if shard.owner is None]
        for shard in free[: share - len(mine)]:
            shard.owner = consumer
            shard.again = deque(shard.unacked.values())

    def _take(self, consumer: str, count: int) -> list[Delivery]:
        owned = [i for i, shard in enumerate(self._shards) if shard.owner == consumer]
        if not owned:
            return []
        turn = self._consumers[consumer] % len(owned)
        self._consumers[consumer] += 1  # start at another shard next time: none starves
        batch: list[Delivery] = []
        for index in owned[turn:] + owned[:turn]:
            batch.extend(self._take_from(index, count - len(batch)))
            if len(batch) >= count:
                break
        return batch

    def _take_from(self, index: int, count: int) -> list[Delivery]:
        shard = self._shards[index]
        batch: list[Delivery] = []
        while shard.again and len(batch) < count:
            entry = shard.again.popleft()
            if entry.entry_id in shard.unacked:
                batch.append(Delivery(index, entry.entry_id, entry.payload, redelivered=True))
        while shard.fresh and len(batch) < count:
            entry = shard.fresh.popleft()
            shard.unacked[entry.entry_id] = entry
            batch.append(Delivery(index, entry.entry_id, entry.payload, redelivered=False))
        return batch
