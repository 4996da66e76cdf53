"""Batched Lua script calls against a real Redis: concurrent calls share pipelines and keep
their order, an unknown script is loaded and the call sent again, one call's error is that
call's alone, and a caller that gives up does not disturb the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from campaignflow.bus.script_calls import Script, ScriptCalls
from tests._support.servers import free_port

# These tests flush Redis's script cache, or watch the exact commands a script call sends: run
# in one process, one after another, so a flush never lands in the middle of another's watch.
pytestmark = pytest.mark.xdist_group("redis-script-cache")


# Appends ARGV[1] to the list at KEYS[1]; returns the list's length.
APPEND = Script("return redis.call('RPUSH', KEYS[1], ARGV[1])")


class CountingClient:
    """Counts the pipelines sent through a client."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.pipelines = 0

    def pipeline(self, **options: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(**options)


class FlushingPipeline:
    """A pipeline whose script cache another client flushes just before it is sent."""

    def __init__(self, client: Redis, **options: Any) -> None:
        self._client = client
        self._pipe = client.pipeline(**options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    async def execute(self, **options: Any) -> Any:
        await self._client.script_flush()
        return await self._pipe.execute(**options)


class FlushingClient:
    """Flushes Redis's script cache before every pipeline, as a concurrent ``SCRIPT FLUSH``
    (or a restart) could at the worst moment."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    def pipeline(self, **options: Any) -> Any:
        return FlushingPipeline(self.client, **options)


async def test_concurrent_calls_share_pipelines_and_run_in_call_order(
    redis_client: Redis, redis_prefix: str
) -> None:
    counting = CountingClient(redis_client)
    calls = ScriptCalls(counting, max_batch=100)  # type: ignore[arg-type]
    key = f"{redis_prefix}:list"
    try:
        lengths = await asyncio.gather(*(calls.call(APPEND, key, [n]) for n in range(250)))
    finally:
        await calls.aclose()

    assert lengths == list(range(1, 251))
    stored = await redis_client.lrange(key, 0, -1)
    assert [int(value) for value in stored] == list(range(250))
    assert counting.pipelines <= 4  # 1 for the first call, then batches of at most 100


async def test_a_script_redis_does_not_know_is_loaded_and_sent_again(
    redis_client: Redis, redis_prefix: str
) -> None:
    calls = ScriptCalls(redis_client)
    key = f"{redis_prefix}:list"
    try:
        await redis_client.script_flush()
        first = await calls.call(APPEND, key, ["a"])
        await redis_client.script_flush()
        both = await asyncio.gather(calls.call(APPEND, key, ["b"]), calls.call(APPEND, key, ["c"]))
    finally:
        await calls.aclose()

    assert first == 1
    assert list(both) == [2, 3]
    assert await redis_client.lrange(key, 0, -1) == [b"a", b"b", b"c"]


async def test_a_flush_between_the_miss_and_the_second_send_does_not_fail_the_call(
    redis_client: Redis, redis_prefix: str
) -> None:
    calls = ScriptCalls(FlushingClient(redis_client))  # type: ignore[arg-type]
    key = f"{redis_prefix}:list"
    try:
        lengths = await asyncio.gather(*(calls.call(APPEND, key, [n]) for n in range(3)))
    finally:
        await calls.aclose()

    assert sorted(lengths) == [1, 2, 3]
    assert await redis_client.lrange(key, 0, -1) == [b"0", b"1", b"2"]


async def test_an_error_in_one_call_is_that_calls_alone(
    redis_client: Redis, redis_prefix: str
) -> None:
    calls = ScriptCalls(redis_client)
    await redis_client.set(f"{redis_prefix}:text", "not a list")
    try:
        results = await asyncio.gather(
            calls.call(APPEND, f"{redis_prefix}:list", ["x"]),
            calls.call(APPEND, f"{redis_prefix}:text", ["x"]),
            calls.call(APPEND, f"{redis_prefix}:list", ["y"]),
            return_exceptions=True,
        )
    finally:
        await calls.aclose()

    assert results[0] == 1
    assert isinstance(results[1], redis_exceptions.ResponseError)
    assert "WRONGTYPE" in str(results[1])
    assert results[2] == 2


async def test_a_caller_that_gives_up_leaves_the_others_answered(
    redis_client: Redis, redis_prefix: str
) -> None:
    calls = ScriptCalls(redis_client)
    key = f"{redis_prefix}:list"
    try:
        impatient = asyncio.create_task(calls.call(APPEND, key, ["gone"]))
        patient = asyncio.create_task(calls.call(APPEND, key, ["kept"]))
        await asyncio.sleep(0)
        impatient.cancel()
        assert await patient in (1, 2)  # sent or not, the other call is answered
    finally:
        await calls.aclose()
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_an_unreachable_redis_fails_every_call_of_the_batch() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    calls = ScriptCalls(client)
    try:
        results = await asyncio.gather(
            *(calls.call(APPEND, "k", [n]) for n in range(3)), return_exceptions=True
        )
    finally:
        await calls.aclose()
        await client.aclose()

    assert all(isinstance(result, redis_exceptions.ConnectionError) for result in results)
