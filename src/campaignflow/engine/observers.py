"""What sees a worker's batches after the fact: metrics, the live step feed.

The worker tells its observers what it claimed and what it committed, once per batch, after the
transaction: an observer sees only what is durable (a conflicted outcome is not reported; its
tasks run again), and it never slows a claim or a commit with I/O of its own inside them.
Observers must not raise: a failure to count or publish costs visibility, never work, so the
worker logs and drops anything an observer raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from campaignflow.engine.model import Outcome, TaskRecord

logger = logging.getLogger(__name__)


class BatchObserver(Protocol):
    def claimed(self, tasks: Sequence[TaskRecord], now: datetime) -> None:
        """A batch was claimed at ``now`` (timer lateness is ``now - task.run_at``)."""
        ...

    async def committed(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """These outcomes were committed at ``now`` (steps, final statuses, dead letters)."""
        ...


async def notify_committed(
    observers: Sequence[BatchObserver], outcomes: Sequence[Outcome], now: datetime
) -> None:
    for observer in observers:
        try:
            await observer.committed(outcomes, now)
        except Exception:
            logger.exception("batch observer %r failed", observer)


def notify_claimed(
    observers: Sequence[BatchObserver], tasks: Sequence[TaskRecord], now: datetime
) -> None:
    for observer in observers:
        try:
            observer.claimed(tasks, now)
        except Exception:
            logger.exception("batch observer %r failed", observer)
