"""Starting and carrying CRM sync runs: the scheduler queues them, a worker loop takes them.

Each CRM connection with a sync configuration has a due time (``connections.sync_due_at``):

* ``scheduled``: the next tick of its cron; a full run (retry, pull, push) is queued then;
* ``real-time``: every few seconds (``realtime_interval``) a push-only run is queued, if a contact
  changed since the last run's position (so an idle workspace records no runs); a full run,
  which also pulls the CRM's changes, every ``realtime_pull_interval``;
* ``on-demand``: never; a run is queued by ``POST /api/v1/connections/{id}/sync``.

The due time is moved before the run is queued, so two workers ticking together queue one run
(the second meets the first's, one active run per connection). Any number of workers take
runs: :meth:`SyncStore.claim` gives each run to one worker at a time, and a run whose worker
died (its lease expired) to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from campaignflow.domain.sync_config import SyncConfig
from campaignflow.errors import CampaignflowError, Conflict
from campaignflow.integrations.sync.cursor import Cursor
from campaignflow.integrations.sync.runner import SyncRunner
from campaignflow.store.contacts import ContactStore
from campaignflow.store.crm_sync import DueConnection, SyncStore
from campaignflow.triggers.time_plan import cron_ticks

logger = logging.getLogger(__name__)

_YEAR = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class SyncWorkerOptions:
    idle_seconds: float = 1.0  # sleep when there is nothing to do
    realtime_interval: timedelta = timedelta(seconds=2)
    realtime_pull_interval: timedelta = timedelta(minutes=5)
    lease: timedelta = timedelta(seconds=60)
    due_batch: int = 100


def next_due(config: SyncConfig, now: datetime, options: SyncWorkerOptions) -> datetime | None:
    """When the connection's next run is due after ``now`` (None: only on demand)."""
    if config.sync_strategy == "scheduled":
        assert config.schedule is not None  # the model requires it
        ticks = cron_ticks(config.schedule, ZoneInfo(config.timezone), now, now + _YEAR, limit=1)
        return ticks[0] if ticks else None
    if config.sync_strategy == "real-time":
        return now + options.realtime_interval
    return None


async def start_cursor(store: SyncStore, workspace_id: str, connection_id: str) -> Cursor:
    """Where a new run starts: where the last run that ended got to."""
    last = await store.last_finished(workspace_id, connection_id)
    return Cursor() if last is None else Cursor.from_document(last.cursor)


class SyncScheduler:
    def __init__(
        self,
        store: SyncStore,
        contacts: ContactStore,
        *,
        options: SyncWorkerOptions | None = None,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._options = options or SyncWorkerOptions()

    async def tick(self, now: datetime) -> int:
        """Queue the runs due at ``now``; how many were queued."""
        queued = 0
        for due in await self._store.due_connections(now, self._options.due_batch):
            try:
                queued += await self._start(due, now)
            except CampaignflowError:
                logger.warning(
                    "sync of connection %s: could not queue a run", due.connection_id, exc_info=True
                )
        return queued

    async def _start(self, due: DueConnection, now: datetime) -> int:
        try:
            config = SyncConfig.model_validate(due.sync)
        except ValidationError:
            logger.warning(
                "sync of connection %s: stored configuration no longer valid; "
                "switched off until it is set again",
                due.connection_id,
            )
            await self._store.set_due(due.workspace_id, due.connection_id, None)
            return 0
        await self._store.set_due(
            due.workspace_id, due.connection_id, next_due(config, now, self._options)
        )
        previous = await start_cursor(self._store, due.workspace_id, due.connection_id)
        push_only = False
        pulled = previous.last_pull_at
        recently = pulled is not None and now < pulled + self._options.realtime_pull_interval
        if config.sync_strategy == "real-time" and recently:
            changed = await self._contacts.changed_since(due.workspace_id, previous.local_after, 1)
            if not changed:
                return 0
            push_only = True
        trigger = "scheduled" if config.sync_strategy == "scheduled" else "real-time"
        try:
            await self._store.queue(
                due.workspace_id,
                due.connection_id,
                trigger=trigger,
                requested_by=None,
                cursor=previous.next_run(push_only=push_only).to_document(),
                now=now,
            )
        except Conflict:
            return 0  # a run is still going; the next tick tries again
        return 1


class SyncWorker:
    """Ticks the scheduler and carries runs, one at a time, until cancelled."""

    def __init__(
        self,
        store: SyncStore,
        scheduler: SyncScheduler,
        runner: SyncRunner,
        *,
        owner: str,
        now: Callable[[], datetime],
        options: SyncWorkerOptions | None = None,
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._runner = runner
        self._owner = owner
        self._now = now
        self._options = options or SyncWorkerOptions()

    async def run_once(self) -> bool:
        """Tick, then carry one run if there is one; whether there was."""
        await self._scheduler.tick(self._now())
        run = await self._store.claim(self._owner, self._now(), self._options.lease)
        if run is None:
            return False
        try:
            await self._runner.run(run)
        except CampaignflowError:
            # The run keeps its lease until it expires, then resumes at its cursor elsewhere.
            logger.exception("sync run %s stopped", run.id)
        return True

    async def run_until_cancelled(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:  # a bug in one round must not end syncing for the process
                logger.exception("sync worker: a round failed; trying again")
                busy = False
            if not busy:
                await asyncio.sleep(self._options.idle_seconds)


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
