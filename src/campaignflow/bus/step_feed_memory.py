"""The step feed of the embedded mode: the worker and the API share one process.

Publishing stamps each event with its workspace's next position and hands it to the local
subscribers (:mod:`campaignflow.bus.step_feed_fanout`). A small ring buffer per workspace keeps
the latest events, so a client that reconnects with ``Last-Event-ID`` gets what it missed as
far back as the buffer goes; further back, it is told it lagged.

Only watched workspaces (a subscriber now, or within :data:`WATCH_SECONDS`) have their events
kept: a workspace nobody looks at costs the worker nothing.

Positions are ``<epoch>-<n>``: ``n`` counts a workspace's events from 1 and ``epoch`` names the
feed's lifetime (its start, in milliseconds), so a position from before a restart is never
mistaken for one of this lifetime.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace

from campaignflow.bus.step_feed import WATCH_SECONDS, StepEvent, StepFilter, lagged
from campaignflow.bus.step_feed_fanout import DEFAULT_CAPACITY, Fanout, utc_now

#: Events kept per workspace for resuming (memory: ~1 KB each).
DEFAULT_HISTORY = 1_000


class InProcessStepFeed:
    """``history``: events kept per workspace for ``after``; ``capacity``: per subscriber."""

    def __init__(
        self,
        *,
        history: int = DEFAULT_HISTORY,
        capacity: int = DEFAULT_CAPACITY,
        watch_seconds: float = WATCH_SECONDS,
    ) -> None:
        self._epoch = str(time.time_ns() // 1_000_000)
        self._history_size = history
        self._watch_seconds = watch_seconds
        self._history: dict[str, deque[StepEvent]] = {}
        self._counts: dict[str, int] = {}
        self._fanout = Fanout(capacity)
        self._watched_until: dict[str, float] = {}  # monotonic, once a subscriber has left

    async def watched(self, workspace_ids: Collection[str]) -> set[str]:
        now = time.monotonic()
        return {
            workspace
            for workspace in workspace_ids
            if self._fanout.count(workspace) or self._watched_until.get(workspace, 0.0) > now
        }

    async def publish(self, events: Sequence[StepEvent]) -> None:
        watched = await self.watched({event.workspace_id for event in events})
        for event in events:
            workspace = event.workspace_id
            if workspace not in watched:
                continue
            count = self._counts.get(workspace, 0) + 1
            self._counts[workspace] = count
            placed = replace(event, id=f"{self._epoch}-{count}")
            kept = self._history.get(workspace)
            if kept is None:
                kept = self._history[workspace] = deque(maxlen=self._history_size)
            kept.append(placed)
            self._fanout.deliver(workspace, (placed,))

    async def subscribe(
        self, filter: StepFilter, *, after: str | None = None
    ) -> AsyncIterator[StepEvent]:
        # Registering and reading the ring buffer happen with no await between them, so no
        # event falls between the replay and the live part, and none is seen twice.
        subscription = self._fanout.add(filter)
        try:
            for event in self._since(filter, after):
                yield event
            while (live := await subscription.next()) is not None:
                yield live
        finally:
            self._fanout.remove(subscription)
            self._watched_until[filter.workspace_id] = time.monotonic() + self._watch_seconds

    def _since(self, filter: StepFilter, after: str | None) -> list[StepEvent]:
        """The kept events after position ``after``, led by a lag marker when some of those
        are no longer kept (or ``after`` is of an earlier lifetime of the feed)."""
        if after is None:
            return []
        epoch, _, number = after.partition("-")
        if epoch != self._epoch or not number.isdigit():
            return [lagged(filter.workspace_id, utc_now())]
        position = int(number)
        kept = self._history.get(filter.workspace_id, deque())
        replay = [e for e in kept if _number(e) > position and filter.matches(e)]
        if kept and _number(kept[0]) > position + 1:
            return [lagged(filter.workspace_id, utc_now()), *replay]
        return replay

    def subscribers(self, workspace_id: str) -> int:
        """Live subscriptions of the workspace in this process."""
        return self._fanout.count(workspace_id)

    async def close(self) -> None:
        self._fanout.close()


def _number(event: StepEvent) -> int:
    return int(event.id.rpartition("-")[2])
