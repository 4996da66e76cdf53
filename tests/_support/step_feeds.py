"""Step-feed test helpers: a step event to publish, and a subscriber that keeps up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from campaignflow.bus.step_feed import StepEvent

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def step(
    n: int, *, workspace: str = "ws", workflow: str = "welcome", status: str = "completed"
) -> StepEvent:
    return StepEvent(
        kind="step",
        workspace_id=workspace,
        execution_id=f"ex-{n}",
        workflow_id=workflow,
        workflow_version=1,
        status=status,
        at=AT + timedelta(seconds=n),
        seq=n,
        node_id="greet",
        node_type="action",
        attempt=1,
        started_at=AT,
    )


class Collector:
    """A subscriber that keeps up: takes every event into a queue as it comes. ``patience``:
    how long :meth:`take` waits; ``quiet``: how long :meth:`nothing_more` listens."""

    def __init__(
        self, events: AsyncIterator[StepEvent], patience: float = 2.0, quiet: float = 0.05
    ) -> None:
        self.got: asyncio.Queue[StepEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(events))
        self.patience = patience
        self.quiet = quiet

    async def _run(self, events: AsyncIterator[StepEvent]) -> None:
        async for event in events:
            self.got.put_nowait(event)

    async def take(self, count: int) -> list[StepEvent]:
        async with asyncio.timeout(self.patience):
            return [await self.got.get() for _ in range(count)]

    async def nothing_more(self) -> bool:
        await asyncio.sleep(self.quiet)
        return self.got.empty()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.wait([self.task])
