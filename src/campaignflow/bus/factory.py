"""Choosing the event bus from settings: Redis Streams when ``redis_url`` is set, else the
in-process bus of the embedded mode."""

from __future__ import annotations

from redis.asyncio import Redis

from campaignflow.bus.events import EventBus
from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.redis_streams import RedisStreamBus
from campaignflow.config import Settings

IN_PROCESS_MAX_BACKLOG = 10_000  # entries held in memory; each is one request's events of a shard


def open_bus(settings: Settings) -> EventBus:
    events = settings.events
    if settings.redis_url is None:
        return InProcessBus(
            shards=events.shards,
            max_backlog=min(events.max_backlog, IN_PROCESS_MAX_BACKLOG),
            retry_after_seconds=events.retry_after_seconds,
        )
    client = Redis.from_url(settings.redis_url)
    return RedisStreamBus(
        client,
        shards=events.shards,
        prefix=events.stream_prefix,
        lease_ms=int(events.shard_lease_seconds * 1000),
        max_backlog=events.max_backlog,
        retry_after_seconds=events.retry_after_seconds,
    )


def is_in_process(bus: EventBus) -> bool:
    """An in-process bus needs its router in the same process (ingestion waits for it)."""
    return isinstance(bus, InProcessBus)
