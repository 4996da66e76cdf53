"""The retention purger: removes every workspace's data past its age, on a schedule.

A pass walks the workspaces and, for each data class, removes what is older than the class's
cut-off in batches of ``batch_size`` rows, each its own short transaction, pausing
``pause_seconds`` between batches so the engine's own writes always get the tables back quickly.
A pass stops a class after ``max_batches`` and leaves the rest to the next pass, so no pass runs
unbounded after a long outage or a policy made much shorter. Each pass over a class is recorded
(``retention_runs``: the cut-off, the rows removed, the batches) and logged; a pass that
found nothing due leaves no record.

On PostgreSQL a pass starts with the event log's monthly partitions (``store.partitions``): it
creates the months ahead, then drops every partition whose rows are past the longest event
retention of any workspace (events and webhook payloads alike), so their space goes back to the
operating system; each drop is recorded as a run of class ``events`` per workspace that had rows
in it, in the dropping transaction. The row batches then remove the rest exactly at each
workspace's own cut-off. A partition step that fails or cannot get its lock is logged and left
to the next pass; the row batches run regardless.

Any number of workers may run the purger: batches are idempotent deletes of rows that are due,
so two purgers at once only share the work (the audit log's anchor row serialises them there;
an advisory lock lets one process at a time change partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from campaignflow.domain.retention import (
    DATA_CLASSES,
    DataClass,
    PurgeLimits,
    PurgeOutcome,
    RetentionPolicy,
)
from campaignflow.errors import CampaignflowError
from campaignflow.services.retention import RetentionService
from campaignflow.store.database import Database
from campaignflow.store.partitions import DropHook, DroppedPartition, EventPartitions
from campaignflow.store.retention import RetentionStore, record_drop
from campaignflow.store.workflows import utc_now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from campaignflow.compliance.settings import RetentionSettings

logger = logging.getLogger(__name__)

PolicyOf = Callable[[str], Awaitable[RetentionPolicy]]
_EVENT_CLASSES: tuple[DataClass, ...] = ("events", "webhook_payloads")  # both live in `events`


class RetentionPurger:
    """One pass over every workspace (:meth:`run_once`), or passes on an interval."""

    def __init__(
        self,
        store: RetentionStore,
        policy_of: PolicyOf,
        now: Callable[[], datetime],
        limits: PurgeLimits | None = None,
        partitions: EventPartitions | None = None,
    ) -> None:
        self._store = store
        self._policy_of = policy_of
        self._now = now
        self._limits = limits or PurgeLimits()
        self._partitions = partitions

    async def run_once(self) -> list[tuple[str, PurgeOutcome]]:
        """Purge every workspace once; the outcome per (workspace, class) that removed rows
        or stopped at its budget, and per (workspace, dropped partition) that held its rows."""
        policies = {w: await self._policy_of(w) for w in await self._store.workspace_ids()}
        outcomes = await self._drop_partitions(policies)
        for workspace_id, policy in policies.items():
            for data_class in DATA_CLASSES:
                outcome = await self.purge(workspace_id, data_class, policy)
                if outcome.purged or not outcome.complete:
                    outcomes.append((workspace_id, outcome))
        return outcomes

    async def purge(
        self, workspace_id: str, data_class: DataClass, policy: RetentionPolicy
    ) -> PurgeOutcome:
        """One class of one workspace, batch after batch."""
        now = self._now()
        cutoff = policy.cutoffs(now)[data_class]
        limits = self._limits
        purged = batches = 0
        complete = False
        while batches < limits.max_batches:
            removed = await self._store.purge_batch(
                workspace_id, data_class, cutoff, limits.batch_size
            )
            batches += 1
            purged += removed
            if removed < limits.batch_size:
                complete = True
                break
            await asyncio.sleep(limits.pause_seconds)
        if purged or not complete:  # a pass that found nothing due leaves no record
            await self._store.record_run(
                workspace_id,
                data_class,
                cutoff,
                started_at=now,
                finished_at=self._now(),
                purged=purged,
                details={"batches": batches, "complete": complete},
            )
        if purged:
            logger.info(
                "retention: purged %d %s rows of workspace %s older than %s",
                purged,
                data_class,
                workspace_id,
                cutoff.isoformat(),
            )
        return PurgeOutcome(data_class, cutoff, purged, batches, complete=complete)

    async def _drop_partitions(
        self, policies: dict[str, RetentionPolicy]
    ) -> list[tuple[str, PurgeOutcome]]:
        """The partition step of a pass (PostgreSQL): months ahead, then expired ones."""
        if self._partitions is None:
            return []
        now = self._now()
        cutoff = partition_cutoff(policies.values(), now)
        try:
            await self._partitions.ensure_ahead(now)
            if cutoff is None:  # no workspace: nothing is known to be past its age
                return []
            dropped = await self._partitions.drop_expired(cutoff, self._recorder(cutoff, now))
        except CampaignflowError:
            logger.warning("event partition upkeep failed; the row batches go on", exc_info=True)
            return []
        outcomes: list[tuple[str, PurgeOutcome]] = []
        for gone in dropped:
            _log_drop(gone)
            for workspace_id, rows in sorted(gone.rows_by_workspace.items()):
                outcomes.append((workspace_id, _drop_outcome(gone, cutoff, rows)))
        return outcomes

    def _recorder(self, cutoff: datetime, started_at: datetime) -> DropHook:
        """Records each drop in the transaction that drops (``store.retention.record_drop``)."""

        async def record(connection: AsyncConnection, gone: DroppedPartition) -> None:
            await record_drop(
                connection, gone, cutoff, started_at=started_at, finished_at=self._now()
            )

        return record

    async def run_until_cancelled(self, interval_seconds: float) -> None:
        """A pass every ``interval_seconds``; a failed pass is logged and the next one runs."""
        while True:
            try:
                await self.run_once()
            except CampaignflowError:
                logger.warning("retention pass failed; the next one retries", exc_info=True)
            except Exception:  # a bug must not end the loop: the next pass may well work
                logger.exception("retention pass failed")
            await asyncio.sleep(interval_seconds)


def partition_cutoff(policies: Iterable[RetentionPolicy], now: datetime) -> datetime | None:
    """Before this instant the event log holds nothing any workspace keeps: the earliest
    cut-off of the events and webhook payloads of every policy; ``None`` without policies."""
    cutoffs = [
        policy.cutoffs(now)[data_class] for policy in policies for data_class in _EVENT_CLASSES
    ]
    return min(cutoffs, default=None)


def _drop_outcome(gone: DroppedPartition, cutoff: datetime, rows: int) -> PurgeOutcome:
    return PurgeOutcome("events", cutoff, rows, 1, partitions_dropped=(gone.partition.name,))


def _log_drop(gone: DroppedPartition) -> None:
    partition = gone.partition
    logger.info(
        "retention: dropped event partition %s (received before %s): %d rows, %d bytes",
        partition.name,
        partition.upper.isoformat() if partition.upper else "-",
        gone.rows,
        gone.bytes,
    )


async def ensure_event_partitions(database: Database) -> None:
    """At start-up (``up``, ``worker``): the event log's months ahead exist before the first
    event is routed, so a fresh install never writes into the DEFAULT partition. SQLite has
    no partitions."""
    if database.dialect == "postgresql":
        await EventPartitions(database).ensure_ahead(utc_now())


@dataclass
class RetentionLoop:
    """The purger of a process, as a task."""

    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def start_retention(database: Database, settings: RetentionSettings) -> RetentionLoop | None:
    """Run the purger in this process (``worker``, and ``up``'s embedded worker), unless
    switched off; its first pass runs at once."""
    if not settings.enabled:
        return None
    store = RetentionStore(database)
    service = RetentionService(store, utc_now)
    partitions = EventPartitions(database) if database.dialect == "postgresql" else None
    purger = RetentionPurger(store, service.policy, utc_now, settings.limits(), partitions)
    task = asyncio.create_task(
        purger.run_until_cancelled(settings.interval_seconds), name="retention"
    )
    return RetentionLoop(task)


async def stop_retention(loop: RetentionLoop | None) -> None:
    if loop is not None:
        await loop.stop()
