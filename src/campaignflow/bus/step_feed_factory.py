"""Choosing the step feed from settings, as :func:`campaignflow.bus.factory.open_bus` chooses
the event bus: Redis when ``redis_url`` is set (workers and API processes meet there), else the
in-process feed of the embedded mode."""

from __future__ import annotations

from redis.asyncio import Redis

from campaignflow.bus.step_feed import StepFeed
from campaignflow.bus.step_feed_memory import InProcessStepFeed
from campaignflow.bus.step_feed_redis import RedisStepFeed
from campaignflow.config import Settings


def open_step_feed(settings: Settings) -> StepFeed:
    """A new feed; its owner closes it at shutdown."""
    if settings.redis_url is None:
        return InProcessStepFeed()
    client = Redis.from_url(settings.redis_url)
    return RedisStepFeed(client, prefix=settings.events.stream_prefix, owns_client=True)
