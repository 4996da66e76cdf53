"""The retention purger: removes every workspace's data past its age, on a schedule.

A pass walks the workspaces and, for each data class, removes what is older than the class's
cut-off in batches of ``batch_size`` rows, each its own short transaction, pausing
``pause_seconds`` between batches so the engine's own writes always get the tables back quickly.
A pass stops a class after ``max_batches`` and leaves the rest to the next pass, so no pass runs
unbounded after a long outage or a policy made much shorter. Each pass over a class is recorded
(``retention_runs``: the cut-off, the rows removed, the batches) and logged; a pass that
found nothing due leaves no record.

Any number of workers may run the purger: batches are idempotent deletes of rows that are due,
so two purgers at once only share the work (the audit log's anchor row serialises them there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from campaignflow.domain.retention import DATA_CLASSES, DataClass, PurgeOutcome, RetentionPolicy
from campaignflow.errors import CampaignflowError
from campaignflow.services.retention import RetentionService
from campaignflow.store.database import Database
from campaignflow.store.retention import RetentionStore
from campaignflow.store.workflows import utc_now

if TYPE_CHECKING:
    from campaignflow.compliance.settings import RetentionSettings

logger = logging.getLogger(__name__)

PolicyOf = Callable[[str], Awaitable[RetentionPolicy]]


@dataclass(frozen=True, slots=True)
class PurgeLimits:
    batch_size: int = 1000
    max_batches: int = 100  # per class and pass: at most 100,000 rows before the next pass
    pause_seconds: float = 0.05


class RetentionPurger:
    """One pass over every workspace (:meth:`run_once`), or passes on an interval."""

    def __init__(
        self,
        store: RetentionStore,
        policy_of: PolicyOf,
        now: Callable[[], datetime],
        limits: PurgeLimits | None = None,
    ) -> None:
        self._store = store
        self._policy_of = policy_of
        self._now = now
        self._limits = limits or PurgeLimits()

    async def run_once(self) -> list[tuple[str, PurgeOutcome]]:
        """Purge every workspace once; the outcome per (workspace, class) that removed rows
        or stopped at its budget."""
        outcomes: list[tuple[str, PurgeOutcome]] = []
        for workspace_id in await self._store.workspace_ids():
            policy = await self._policy_of(workspace_id)
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
    purger = RetentionPurger(store, service.policy, utc_now, settings.limits())
    task = asyncio.create_task(
        purger.run_until_cancelled(settings.interval_seconds), name="retention"
    )
    return RetentionLoop(task)


async def stop_retention(loop: RetentionLoop | None) -> None:
    if loop is not None:
        await loop.stop()
