"""The Redis step feed across processes: two feed objects on one Redis stand for a worker and
an API process. Resuming from a position, the lag marker, workspace isolation, and that one
reader per workspace serves every local subscriber and stops with the last one."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from campaignflow.bus.step_feed import LAGGED, StepFilter
from campaignflow.bus.step_feed_redis import RedisStepFeed
from tests._support.step_feeds import Collector, step


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    name = f"test-feed-{secrets.token_hex(6)}"
    yield name
    keys = [key async for key in redis.scan_iter(match=f"{name}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def collect(feed: RedisStepFeed, filter: StepFilter, after: str | None = None) -> Collector:
    collector = Collector(feed.subscribe(filter, after=after), patience=5.0, quiet=0.3)
    for _ in range(500):  # subscribed once its workspace's reader has fixed its start
        if feed.subscribers(filter.workspace_id) and feed.reading(filter.workspace_id):
            await asyncio.sleep(0)  # and the subscriber has finished its replay, if any
            return collector
        await asyncio.sleep(0.01)
    raise AssertionError("never subscribed")


async def test_a_worker_publishes_and_another_process_receives_in_order(
    redis: Redis, prefix: str
) -> None:
    worker = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    api = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    everything = await collect(api, StepFilter("ws"))
    failures = await collect(api, StepFilter("ws", statuses=frozenset({"failed"})))
    other = await collect(api, StepFilter("other-ws"))

    await worker.publish([step(1), step(2, status="failed"), step(3, workspace="elsewhere")])
    await worker.publish([step(4)])

    seen = await everything.take(3)
    assert [e.seq for e in seen] == [1, 2, 4]
    assert all(e.id and e.workspace_id == "ws" for e in seen)
    assert [e.id for e in seen] == sorted((e.id for e in seen), key=_stream_order)
    assert seen[0].to_json() == {**step(1).to_json(), "id": seen[0].id}  # a faithful round trip
    assert [e.seq for e in await failures.take(1)] == [2]
    assert await other.nothing_more()  # never another workspace's
    await api.close()
    await worker.close()


def _stream_order(position: str) -> tuple[int, int]:
    millis, _, sequence = position.partition("-")
    return int(millis), int(sequence)


async def test_resuming_after_a_position_joins_replay_and_live_without_gap_or_repeat(
    redis: Redis, prefix: str
) -> None:
    worker = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    api = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    first = await collect(api, StepFilter("ws"))
    await worker.publish([step(1), step(2), step(3)])
    seen = await first.take(3)
    await first.stop()

    # The client was away while 4 and 5 happened; it reconnects with the last id it saw.
    await worker.publish([step(4), step(5, status="failed")])
    resumed = await collect(api, StepFilter("ws"), after=seen[1].id)
    await worker.publish([step(6)])
    assert [e.seq for e in await resumed.take(4)] == [3, 4, 5, 6]
    assert await resumed.nothing_more()

    failed_only = await collect(
        api, StepFilter("ws", statuses=frozenset({"failed"})), after=seen[0].id
    )
    assert [e.seq for e in await failed_only.take(1)] == [5]
    assert await failed_only.nothing_more()
    await api.close()
    await worker.close()


async def test_resuming_from_a_trimmed_or_bogus_position_says_lagged_first(
    redis: Redis, prefix: str
) -> None:
    worker = RedisStepFeed(redis, prefix=prefix, max_len=2, block_ms=200)
    api = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    watcher = await collect(api, StepFilter("ws"))
    for n in range(1, 6):  # exact trimming needs whole radix nodes: publish one by one
        await worker.publish([step(n)])
    seen = await watcher.take(5)
    await redis.xtrim(worker.key("ws"), maxlen=2, approximate=False)

    trimmed = await collect(api, StepFilter("ws"), after=seen[0].id)
    got = await trimmed.take(3)
    assert [e.kind for e in got] == [LAGGED, "step", "step"]
    assert [e.seq for e in got[1:]] == [4, 5]
    assert got[0].id == ""  # a marker has no position

    bogus = await collect(api, StepFilter("ws"), after="not-a-position")
    assert [e.kind for e in await bogus.take(1)] == [LAGGED]
    assert await bogus.nothing_more()
    await api.close()
    await worker.close()


async def test_a_slow_subscriber_gets_a_lag_marker_and_the_others_everything(
    redis: Redis, prefix: str
) -> None:
    worker = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    api = RedisStepFeed(redis, prefix=prefix, capacity=2, block_ms=200)
    slow = api.subscribe(StepFilter("ws"))
    first = asyncio.ensure_future(anext(slow))
    fast = await collect(api, StepFilter("ws"))
    for n in range(1, 6):
        await worker.publish([step(n)])
        await fast.take(1)  # the fast one keeps up, event by event
    assert (await first).seq == 1
    rest = [await anext(slow) for _ in range(3)]
    assert [e.seq for e in rest[:2]] == [2, 3]
    assert rest[2].kind == LAGGED
    await worker.publish([step(6)])
    async with asyncio.timeout(5):
        assert (await anext(slow)).seq == 6
    await slow.aclose()
    await api.close()
    await worker.close()


async def test_one_reader_per_workspace_that_stops_with_its_last_subscriber(
    redis: Redis, prefix: str
) -> None:
    api = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    one = await collect(api, StepFilter("ws"))
    two = await collect(api, StepFilter("ws"))
    assert api.subscribers("ws") == 2
    assert api.reading("ws")
    await one.stop()
    assert api.reading("ws")
    await two.stop()
    assert api.subscribers("ws") == 0
    assert not api.reading("ws")  # the reader task ended: nothing left behind
    await api.close()


async def test_an_unreachable_redis_costs_events_never_an_error(prefix: str) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    feed = RedisStepFeed(unreachable, prefix=prefix, owns_client=True)
    await feed.publish([step(1)])  # logged and dropped: the worker's batch is not failed
    await feed.close()


async def test_workers_publish_only_for_workspaces_a_reader_watches(
    redis: Redis, prefix: str
) -> None:
    worker = RedisStepFeed(redis, prefix=prefix, block_ms=200, unwatched_cache_seconds=0)
    api = RedisStepFeed(redis, prefix=prefix, block_ms=200)
    await worker.publish([step(1)])  # nobody watches "ws": nothing is written to Redis
    assert await redis.exists(worker.key("ws")) == 0
    assert await worker.watched({"ws"}) == set()

    watcher = await collect(api, StepFilter("ws"))
    assert 590 <= await redis.ttl(api.watch_key("ws")) <= 600
    assert await worker.watched({"ws", "quiet-ws"}) == {"ws"}
    await worker.publish([step(2), step(3, workspace="quiet-ws")])
    assert [e.seq for e in await watcher.take(1)] == [2]
    assert await redis.exists(worker.key("quiet-ws")) == 0
    await watcher.stop()
    # The watch outlives the reader, so a client reconnecting soon resumes without a gap.
    assert await redis.exists(api.watch_key("ws")) == 1
    await api.close()
    await worker.close()
