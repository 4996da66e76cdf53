"""The event router: consumes the bus, acts on each batch in one transaction, then acknowledges.

A router serves every workspace. It keeps the routing table in memory and rebuilds it when the
catalog stamp changes (read before each batch). A batch that fails — the
database is down, a deadlock — is retried with backoff and never acknowledged before it
commits; it is not dropped either, so nothing accepted is lost (a poison event shows up as the
same error logged again and again, with its shard, rather than as silent loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from campaignflow.bus.events import Delivery, EventBus
from campaignflow.bus.wakeup import Wakeup
from campaignflow.domain.events import Event, decode_events
from campaignflow.engine.clock import Clock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.errors import CampaignflowError
from campaignflow.observability import tracing
from campaignflow.observability.metrics import execution_finished, trigger_matched
from campaignflow.store.catalog import catalog_stamp
from campaignflow.store.database import Database
from campaignflow.triggers.batch import BatchOutcome, BatchStores, route_batch
from campaignflow.triggers.catalog import load_catalog
from campaignflow.triggers.routing import RoutingTable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RouterOptions:
    batch_size: int = 2000  # bus entries per consume (each holds one or more events)
    block: timedelta = timedelta(milliseconds=200)
    # How often the catalog stamp is read; zero: before every batch, so an event sent after a
    # workflow was activated is routed with it (one cheap aggregate query per batch).
    catalog_interval: timedelta = timedelta(0)
    max_backoff: timedelta = timedelta(seconds=30)


class EventRouter:
    def __init__(
        self,
        database: Database,
        bus: EventBus,
        stores: BatchStores,
        wakeup: Wakeup,
        clock: Clock,
        *,
        consumer: str,
        options: RouterOptions | None = None,
    ) -> None:
        self._db = database
        self._bus = bus
        self._stores = stores
        self._wakeup = wakeup
        self._clock = clock
        self.consumer = consumer
        self.options = options or RouterOptions()
        self.table = RoutingTable.empty()
        self.totals = BatchOutcome()
        self._stamp: tuple[object, ...] | None = None
        self._checked_at = float("-inf")

    # ------------------------------------------------------------------ catalog

    async def refresh(self, *, force: bool = False) -> bool:
        """Rebuild the routing table if the catalog changed; ``True`` when it was rebuilt."""
        moment = time.monotonic()
        if not force and moment - self._checked_at < self.options.catalog_interval.total_seconds():
            return False
        self._checked_at = moment
        stamp = await catalog_stamp(self._db)
        if stamp == self._stamp and not force:
            return False
        self.table = await build_table(self._db, self._stores.compiled)
        self._stamp = stamp
        return True

    # ------------------------------------------------------------------ running

    async def run_until_cancelled(self) -> None:
        """Route until cancelled. Whatever ends it gives the shards up at once, so their
        unacknowledged entries are delivered again — to this router when it starts over
        (:func:`triggers.runner.keep_routing`), or to another."""
        try:
            while True:
                await self.run_once()
        finally:
            with contextlib.suppress(CampaignflowError):
                await self._bus.release(self.consumer)

    async def run_once(self) -> BatchOutcome:
        """Consume one batch (waiting up to ``block``), act on it, acknowledge it."""
        deliveries = await self._bus.consume(
            self.consumer,
            count=self.options.batch_size,
            block_ms=int(self.options.block.total_seconds() * 1000),
        )
        if not deliveries:
            return BatchOutcome()
        await self.refresh()  # after the wait: the catalog may have changed meanwhile
        outcome = await self._process_until_done(deliveries)
        await self._bus.ack(self.consumer, deliveries)
        self.totals.add(outcome)
        return outcome

    async def _process_until_done(self, deliveries: list[Delivery]) -> BatchOutcome:
        delay = 0.05
        while True:
            try:
                return await self.process(deliveries)
            except Exception as exc:
                shards = sorted({delivery.shard for delivery in deliveries})
                logger.error(
                    "routing a batch of shards %s failed; retrying in %.2f s: %s",
                    shards,
                    delay,
                    exc,
                    exc_info=not isinstance(exc, CampaignflowError),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_backoff.total_seconds())
                with contextlib.suppress(CampaignflowError):  # retried with the next attempt
                    await self.refresh(force=True)

    async def process(self, deliveries: list[Delivery]) -> BatchOutcome:
        events: list[Event] = []
        for delivery in deliveries:
            events.extend(decode_events(delivery.payload))
        now = self._clock.now()
        if tracing.enabled():
            outcome = await self._traced_route(events, now)
        else:
            async with self._db.transaction() as connection:
                outcome = await route_batch(connection, self._stores, self.table, events, now)
        if outcome.started or outcome.resumed:
            await self._wakeup.notify()
        record_batch(outcome, self._clock.now())
        return outcome

    async def _traced_route(self, events: list[Event], now: datetime) -> BatchOutcome:
        """The batch as one consumer span linked to the requests that accepted its events; the
        executions it starts record this span (``store.executions.new_records``)."""
        with tracing.tracer().start_as_current_span(
            "route events",
            kind=tracing.CONSUMER,
            links=tracing.links_to([event.trace for event in events]),
            attributes={"messaging.batch.message_count": len(events)},
        ) as span:
            async with self._db.transaction() as connection:
                outcome = await route_batch(connection, self._stores, self.table, events, now)
            span.set_attribute("campaignflow.executions_started", outcome.started)
            return outcome


def record_batch(outcome: BatchOutcome, committed_at: datetime) -> None:
    """The committed batch's metrics: trigger latency per starting event, exits."""
    trigger_matched(outcome.started_received, committed_at)
    for workspace_id, workflow_id, count in outcome.exited_by:
        execution_finished(workspace_id, workflow_id, "cancelled", count)


async def build_table(database: Database, compiled: CompiledWorkflows) -> RoutingTable:
    """The routing table of every active workflow's latest version and its API triggers."""
    catalog = await load_catalog(database, compiled)
    return RoutingTable.build(
        [(entry.workspace_id, entry.version, entry.compiled, entry.extra) for entry in catalog]
    )
