"""Stopping a router that runs as a background task: it stops even when the cancellation
comes back as a connection error, as redis-py may turn the cancellation of a blocking
``XREADGROUP`` into one. The router here is a test double: what is under test is the loop that
runs it, and only a double can raise that error on cue at the moment of cancellation."""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from campaignflow.triggers.runner import RunningRouter, keep_routing, stop_router


class BlockingRouter:
    """Blocks like a router waiting on the bus; cancelled, it raises what redis-py raises."""

    def __init__(self) -> None:
        self.runs = 0
        self.blocking = asyncio.Event()

    async def run_until_cancelled(self) -> None:
        self.runs += 1
        self.blocking.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None


async def test_a_router_stops_even_when_its_cancellation_comes_back_as_a_connection_error() -> None:
    router = BlockingRouter()
    stopping = asyncio.Event()
    task = asyncio.create_task(keep_routing(router, stopping))  # type: ignore[arg-type]
    await router.blocking.wait()
    running = RunningRouter(router, task, stopping)  # type: ignore[arg-type]

    stopper = asyncio.create_task(stop_router(running))
    done, _ = await asyncio.wait({stopper}, timeout=5)
    assert stopper in done, "the router never stopped"
    assert task.done()
    assert router.runs == 1  # not restarted as if the bus had failed


async def test_a_failure_while_running_still_restarts_the_router() -> None:
    router = BlockingRouter()
    stopping = asyncio.Event()
    task = asyncio.create_task(keep_routing(router, stopping))  # type: ignore[arg-type]
    await router.blocking.wait()
    router.blocking.clear()
    task.cancel()  # not a stop: the error looks like an outage, and the loop goes on
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await router.blocking.wait()
    assert router.runs == 2
    await stop_router(RunningRouter(router, task, stopping))  # type: ignore[arg-type]
    assert task.done()
