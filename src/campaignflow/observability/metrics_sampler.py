"""The sampled gauges: queue depth and lag per workflow and node, open dead letters.

These are states of the database, not events of this process, so a worker process reads them
with one grouped query each every ``metrics.sampler_interval_seconds`` (15 s by default) rather
than counting them as they happen. Every worker process samples the same shared queue, so each
instance reports the same values: dashboards and alerts take ``max without(instance)``, never a
sum. A series whose node has no backlog any more is removed, not left at its last value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from prometheus_client import Gauge

from campaignflow.engine.clock import Clock
from campaignflow.errors import CampaignflowError
from campaignflow.observability.metrics import DEAD_LETTERS_OPEN, QUEUE_DEPTH, QUEUE_LAG
from campaignflow.store.database import Database
from campaignflow.store.metrics_queries import Backlog, open_dead_letters, queue_backlog

logger = logging.getLogger(__name__)

Labels = tuple[str, ...]


class GaugeFamily:
    """One gauge family whose whole set of series is replaced by each sample."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._shown: set[Labels] = set()

    def replace(self, values: Mapping[Labels, float]) -> None:
        for labels, value in values.items():
            self._gauge.labels(*labels).set(value)
        for gone in self._shown - values.keys():
            self._gauge.remove(*gone)
        self._shown = set(values)


def backlog_values(
    rows: list[Backlog], now_seconds: float
) -> tuple[dict[Labels, float], dict[Labels, float]]:
    """(depth, lag in seconds) per (workspace, workflow, node); a lag is never negative."""
    depth: dict[Labels, float] = {}
    lag: dict[Labels, float] = {}
    for row in rows:
        labels = (row.workspace_id, row.workflow_id, row.node_id)
        depth[labels] = float(row.depth)
        lag[labels] = max(0.0, now_seconds - row.oldest.timestamp())
    return depth, lag


# One per gauge and process, whichever sampler runs: the series a sample removes are those the
# previous sample showed, even when it was another sampler's (two engines in one process).
_SAMPLED = (GaugeFamily(QUEUE_DEPTH), GaugeFamily(QUEUE_LAG), GaugeFamily(DEAD_LETTERS_OPEN))


class MetricsSampler:
    def __init__(self, database: Database, clock: Clock, interval_seconds: float) -> None:
        self._database = database
        self._clock = clock
        self._interval = interval_seconds
        self._depth, self._lag, self._dead = _SAMPLED

    async def sample_once(self) -> None:
        now = self._clock.now()
        depth, lag = backlog_values(await queue_backlog(self._database, now), now.timestamp())
        self._depth.replace(depth)
        self._lag.replace(lag)
        dead = await open_dead_letters(self._database)
        self._dead.replace({(row.workspace_id, row.workflow_id): row.count for row in dead})

    async def run_until_cancelled(self) -> None:
        """Sample now, then every interval; a failed sample (the database away) is logged and
        the gauges keep their last values until the next one succeeds."""
        while True:
            try:
                await self.sample_once()
            except CampaignflowError:
                logger.warning("sampling the queue metrics failed; will retry", exc_info=True)
            await asyncio.sleep(self._interval)


def start_sampler(database: Database, clock: Clock, interval_seconds: float) -> asyncio.Task[None]:
    sampler = MetricsSampler(database, clock, interval_seconds)
    return asyncio.create_task(sampler.run_until_cancelled(), name="metrics-sampler")


async def stop_sampler(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
