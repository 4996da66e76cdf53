"""Running a router as a background task of a process (the API's in embedded mode, a worker's
in production), with a consumer name unique to the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaignflow.config import Settings
from campaignflow.triggers.router import EventRouter, RouterOptions

if TYPE_CHECKING:
    from campaignflow.engine.runtime import Engine

logger = logging.getLogger(__name__)

_RESTART_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class RunningRouter:
    router: EventRouter
    task: asyncio.Task[None]
    stopping: asyncio.Event


def consumer_name() -> str:
    """Unique per process and start, readable in Redis (``XINFO CONSUMERS``)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def router_options(settings: Settings) -> RouterOptions:
    return RouterOptions(batch_size=settings.events.router_batch_size)


def start_router(engine: Engine, settings: Settings) -> RunningRouter:
    router = engine.router(consumer_name(), router_options(settings))
    stopping = asyncio.Event()
    return RunningRouter(router, asyncio.create_task(keep_routing(router, stopping)), stopping)


async def keep_routing(router: EventRouter, stopping: asyncio.Event | None = None) -> None:
    """Route until cancelled; an unexpected failure (the bus unreachable at start) is logged
    and the loop starts again, since a stopped router would stall ingestion.

    A router told to stop stops, whatever its last call raised: redis-py may turn the
    cancellation of a blocking ``XREADGROUP`` into a connection error, which would otherwise
    look like an outage and restart the router, and its process would never exit."""
    while stopping is None or not stopping.is_set():
        try:
            await router.run_until_cancelled()
        except Exception:
            if stopping is not None and stopping.is_set():
                return
            logger.exception("the event router stopped; restarting in %.0f s", _RESTART_DELAY)
            await asyncio.sleep(_RESTART_DELAY)


async def stop_router(running: RunningRouter) -> None:
    running.stopping.set()
    running.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running.task
