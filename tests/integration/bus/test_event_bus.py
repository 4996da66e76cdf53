"""The event bus: per-shard order, acknowledgement, takeover, shard sharing, backpressure.

Every test of the first part runs on both buses (``bus_factory``); the rest are specific to
one implementation.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from campaignflow.bus.events import Backpressure, BusUnavailable, Delivery, EventBus
from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.redis_streams import RedisStreamBus
from tests.integration.bus.conftest import BusFactory


async def drain(bus: EventBus, consumer: str, expected: int, *, count: int = 5) -> list[Delivery]:
    """Consume and acknowledge batch by batch until ``expected`` entries came."""
    received: list[Delivery] = []
    async with asyncio.timeout(5):
        while len(received) < expected:
            batch = await bus.consume(consumer, count=count, block_ms=100)
            assert len(batch) <= count
            received += batch
            await bus.ack(consumer, batch)
    return received


def payloads(deliveries: list[Delivery], shard: int | None = None) -> list[bytes]:
    return [d.payload for d in deliveries if shard is None or d.shard == shard]


async def test_a_shard_delivers_in_publish_order_across_publishes(
    bus_factory: BusFactory,
) -> None:
    bus = bus_factory.create()
    publishers = [
        await bus_factory.publish(
            bus, [(3, b"3-%d-%d" % (n, i)) for i in range(3)] + [(7, b"7-%d" % n)]
        )
        for n in range(3)
    ]

    received = await drain(bus, "router-1", 12)

    assert payloads(received, 3) == [b"3-%d-%d" % (n, i) for n in range(3) for i in range(3)]
    assert payloads(received, 7) == [b"7-0", b"7-1", b"7-2"]
    assert not any(d.redelivered for d in received)
    await asyncio.wait_for(asyncio.gather(*publishers), 1)  # durable: acknowledged


async def test_acknowledged_entries_leave_the_backlog_and_never_come_back(
    bus_factory: BusFactory,
) -> None:
    bus = bus_factory.create()
    await bus_factory.publish(bus, [(0, b"a"), (5, b"b"), (5, b"c"), (15, b"d")])
    assert await bus.backlog() == 4

    received = await drain(bus, "router-1", 4)

    assert await bus.backlog() == 0
    assert await bus.consume("router-1", count=10, block_ms=50) == []
    await bus.release("router-1")  # the next owner finds nothing pending either
    other = bus_factory.peer(bus)
    assert await other.consume("router-2", count=10, block_ms=100) == []
    assert sorted(payloads(received)) == [b"a", b"b", b"c", b"d"]


async def test_a_stopped_consumers_entries_go_first_to_the_next_owner(
    bus_factory: BusFactory,
) -> None:
    bus = bus_factory.create()
    await bus_factory.publish(bus, [(2, b"1"), (2, b"2"), (9, b"x")])
    taken = await bus.consume("router-1", count=10, block_ms=100)
    assert sorted(payloads(taken)) == [b"1", b"2", b"x"]
    await bus_factory.publish(bus, [(2, b"3")])

    await bus_factory.abandon(bus, "router-1")  # no ack: stopped, or died
    received = await drain(bus_factory.peer(bus), "router-2", 4)

    assert [(d.payload, d.redelivered) for d in received if d.shard == 2] == [
        (b"1", True),
        (b"2", True),
        (b"3", False),
    ]
    assert [(d.payload, d.redelivered) for d in received if d.shard == 9] == [(b"x", True)]
    assert await bus.backlog() == 0


async def test_two_consumers_split_the_shards_and_each_entry_goes_to_one(
    bus_factory: BusFactory,
) -> None:
    first = bus_factory.create()
    second = bus_factory.peer(first)
    async with asyncio.timeout(5):  # the first takes all shards, then gives the second half
        while True:
            await asyncio.gather(
                first.consume("router-1", count=10, block_ms=20),
                second.consume("router-2", count=10, block_ms=20),
            )
            mine, theirs = first.owned_shards("router-1"), second.owned_shards("router-2")
            assert not mine & theirs
            if len(mine) == len(theirs) == 8:
                break
    entries = [(shard, b"%d-%d" % (shard, n)) for n in range(5) for shard in range(16)]
    await bus_factory.publish(first, entries)

    received: dict[str, list[Delivery]] = {"router-1": [], "router-2": []}

    async def run(bus: EventBus, consumer: str) -> None:
        while sum(map(len, received.values())) < len(entries):
            batch = await bus.consume(consumer, count=7, block_ms=50)
            received[consumer] += batch
            await bus.ack(consumer, batch)

    async with asyncio.timeout(5):
        await asyncio.gather(run(first, "router-1"), run(second, "router-2"))

    everything = received["router-1"] + received["router-2"]
    assert sorted(payloads(everything)) == sorted(payload for _, payload in entries)
    assert {d.shard for d in received["router-1"]} == mine
    assert {d.shard for d in received["router-2"]} == theirs
    for shard in range(16):
        assert payloads(everything, shard) == [b"%d-%d" % (shard, n) for n in range(5)]


async def test_backpressure_refuses_the_whole_publish(bus_factory: BusFactory) -> None:
    bus = bus_factory.create(max_backlog=3, retry_after_seconds=7)
    await bus_factory.publish(bus, [(1, b"a"), (1, b"b"), (4, b"c")])

    with pytest.raises(Backpressure) as refused:
        await bus_factory.publish(bus, [(1, b"d"), (6, b"e")])

    assert refused.value.retry_after_seconds == 7
    assert await bus.backlog() == 3
    received = await drain(bus, "router-1", 3)
    assert sorted(payloads(received)) == [b"a", b"b", b"c"]
    assert await bus.consume("router-1", count=10, block_ms=50) == []


# --- in-process only ----------------------------------------------------------------------


async def test_in_process_publish_returns_once_every_entry_is_acknowledged() -> None:
    bus = InProcessBus(shards=4)
    publisher = asyncio.create_task(bus.publish([(0, b"a"), (1, b"b")]))
    first = await bus.consume("router-1", count=1, block_ms=100)

    await bus.ack("router-1", first)
    await asyncio.sleep(0.01)
    assert not publisher.done()

    second = await bus.consume("router-1", count=1, block_ms=100)
    await bus.ack("router-1", second)
    await asyncio.wait_for(publisher, 1)
    assert await bus.backlog() == 0


async def test_in_process_entries_of_a_cancelled_publisher_stay_queued() -> None:
    bus = InProcessBus(shards=4)
    publisher = asyncio.create_task(bus.publish([(2, b"a"), (2, b"b")]))
    await asyncio.sleep(0)
    publisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publisher

    received = await drain(bus, "router-1", 2)

    assert payloads(received) == [b"a", b"b"]
    assert await bus.backlog() == 0


# --- Redis only ---------------------------------------------------------------------------


class CountingConnection(Connection):
    """Counts writes to the socket: one per command, one per pipeline."""

    writes: ClassVar[int] = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counting_client(redis_url: str) -> AsyncIterator[Redis]:
    pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = Redis(connection_pool=pool)
    yield client
    await client.aclose()
    await pool.aclose()


async def test_redis_publishes_ten_thousand_entries_in_two_round_trips(
    counting_client: Redis, redis_prefix: str
) -> None:
    bus = RedisStreamBus(counting_client, prefix=redis_prefix)
    await counting_client.ping()  # connect (and say hello) before counting
    CountingConnection.writes = 0

    await bus.publish([(n % 16, b"%d" % n) for n in range(10_000)])

    assert CountingConnection.writes <= 2  # the backlog check, then one pipeline
    assert await bus.backlog() == 10_000
    first = await counting_client.xrange(f"{redis_prefix}:events:0", count=2)
    assert [fields[b"p"] for _, fields in first] == [b"0", b"16"]


async def test_redis_unreachable_is_bus_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again once the block ends
    client = Redis(host="127.0.0.1", port=port, password="s3cret", retry=Retry(NoBackoff(), 0))
    bus = RedisStreamBus(client, shards=2)
    try:
        with pytest.raises(BusUnavailable) as unavailable:
            await bus.publish([(0, b"a")])
        assert "s3cret" not in str(unavailable.value)
        assert unavailable.value.__cause__ is not None  # the driver's error, for the logs
        with pytest.raises(BusUnavailable):
            await bus.consume("router-1", count=1, block_ms=10)
        with pytest.raises(BusUnavailable):
            await bus.backlog()
        await bus.close()  # gives nothing up, raises nothing
    finally:
        await client.aclose()
