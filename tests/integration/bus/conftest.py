"""Both event buses behind one fixture, ``bus_factory``, so one suite checks both.

The Redis buses of a test share a random key prefix, deleted afterwards (the server is shared)
and a short lease (300 ms), so a consumer that stops is replaced quickly. In-process
``publish`` waits for the acknowledgement, so :meth:`BusFactory.publish` runs it in a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from campaignflow.bus.events import EventBus
from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.redis_streams import RedisStreamBus

LEASE_MS = 300


class BusFactory:
    kind = ""

    def __init__(self) -> None:
        self.buses: list[EventBus] = []
        self.publishers: list[asyncio.Task[None]] = []

    def create(self, **options: Any) -> EventBus:
        """The test's bus (the first call) with these options."""
        raise NotImplementedError

    def peer(self, bus: EventBus) -> EventBus:
        """The same bus as another process would see it (Redis), or the bus itself."""
        raise NotImplementedError

    async def abandon(self, bus: EventBus, consumer: str) -> None:
        """The consumer stops without acknowledging; return once another may take over."""
        raise NotImplementedError

    async def publish(
        self, bus: EventBus, entries: Sequence[tuple[int, bytes]]
    ) -> asyncio.Task[None]:
        """Publish and return once the entries are appended (the task ends once durable)."""
        task = asyncio.create_task(bus.publish(entries))
        self.publishers.append(task)
        await asyncio.wait([task], timeout=None if self.kind == "redis" else 0.01)
        if task.done():
            task.result()  # raises Backpressure, BusUnavailable
        return task

    async def close(self) -> None:
        for task in self.publishers:
            task.cancel()
        await asyncio.gather(*self.publishers, return_exceptions=True)
        for bus in self.buses:
            await bus.close()


class InProcessBuses(BusFactory):
    kind = "in_process"

    def create(self, **options: Any) -> EventBus:
        bus = InProcessBus(**options)
        self.buses.append(bus)
        return bus

    def peer(self, bus: EventBus) -> EventBus:
        return bus

    async def abandon(self, bus: EventBus, consumer: str) -> None:
        await bus.release(consumer)  # in one process, stopping means releasing


class RedisBuses(BusFactory):
    kind = "redis"

    def __init__(self, client: Redis, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix
        self.options: dict[str, Any] = {}

    def create(self, **options: Any) -> EventBus:
        self.options = {"prefix": self.prefix, "lease_ms": LEASE_MS, **options}
        return self._new()

    def peer(self, bus: EventBus) -> EventBus:
        return self._new()

    def _new(self) -> EventBus:
        bus = RedisStreamBus(self.client, **self.options)
        self.buses.append(bus)
        return bus

    async def abandon(self, bus: EventBus, consumer: str) -> None:
        pass  # its lease expires; whoever consumes next waits for that


@contextlib.asynccontextmanager
async def private_prefix(client: Redis) -> AsyncIterator[str]:
    """A key prefix of the caller's own; its keys are deleted afterwards."""
    prefix = f"test-bus-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    async with private_prefix(redis_client) as prefix:
        yield prefix


@pytest.fixture(params=["in_process", "redis"])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Buses of one kind; the in-process run needs no Redis."""
    if request.param == "in_process":
        factory: BusFactory = InProcessBuses()
        yield factory
        await factory.close()
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        async with private_prefix(client) as prefix:
            factory = RedisBuses(client, prefix)
            yield factory
            await factory.close()
    finally:
        await client.aclose()
