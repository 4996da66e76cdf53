"""Handing a feed's events to the subscribers of this process, each at its own pace.

Both step feeds end here: the in-process one delivers as it publishes, the Redis one as its
reader task reads a workspace's stream. A subscriber owns a bounded buffer; publishing only
appends to it, never waits, so a slow SSE client cannot hold up a worker's batch or the other
subscribers. When a buffer is full the subscriber is marked *lagged*: further events are dropped
for it until it has drained what it holds, then it receives one ``lagged`` marker and continues
with what comes next — the order it sees stays true, with the gap named.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from campaignflow.bus.step_feed import StepEvent, StepFilter, lagged

#: Events one subscriber may hold before it is marked lagged (a few seconds of a busy
#: workspace; an SSE client that keeps up never holds more than a handful).
DEFAULT_CAPACITY = 1_000


def utc_now() -> datetime:
    return datetime.now(UTC)


class Subscription:
    """One subscriber's buffer; :meth:`next` waits for the next event, ``None`` once closed."""

    def __init__(
        self, filter: StepFilter, capacity: int, now: Callable[[], datetime] = utc_now
    ) -> None:
        self.filter = filter
        self._capacity = capacity
        self._now = now
        self._events: deque[StepEvent] = deque()
        self._lagged = False
        self._closed = False
        self._wake = asyncio.Event()

    def offer(self, event: StepEvent) -> None:
        """Take ``event`` if it matches and there is room; otherwise (full) mark the lag."""
        if self._closed or not self.filter.matches(event):
            return
        if self._lagged or len(self._events) >= self._capacity:
            self._lagged = True
        else:
            self._events.append(event)
        self._wake.set()

    def close(self) -> None:
        """The feed is closing: :meth:`next` returns ``None`` once the buffer is drained."""
        self._closed = True
        self._wake.set()

    async def next(self) -> StepEvent | None:
        while True:
            if self._events:
                return self._events.popleft()
            if self._lagged:
                self._lagged = False
                return lagged(self.filter.workspace_id, self._now())
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()


class Fanout:
    """The subscriptions of one process, by workspace."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._by_workspace: dict[str, set[Subscription]] = {}
        self._closed = False

    def add(self, filter: StepFilter) -> Subscription:
        subscription = Subscription(filter, self._capacity)
        if self._closed:
            subscription.close()
        else:
            self._by_workspace.setdefault(filter.workspace_id, set()).add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> bool:
        """Forget ``subscription``; ``True`` when its workspace has no subscriber left."""
        workspace = subscription.filter.workspace_id
        subscriptions = self._by_workspace.get(workspace)
        if subscriptions is None:
            return True
        subscriptions.discard(subscription)
        if subscriptions:
            return False
        del self._by_workspace[workspace]
        return True

    def count(self, workspace_id: str) -> int:
        """Subscribers of the workspace in this process (a gauge, and what tests check)."""
        return len(self._by_workspace.get(workspace_id, ()))

    def deliver(self, workspace_id: str, events: Iterable[StepEvent]) -> None:
        subscriptions = self._by_workspace.get(workspace_id)
        if not subscriptions:
            return
        for event in events:
            for subscription in tuple(subscriptions):
                subscription.offer(event)

    def close(self) -> None:
        self._closed = True
        for subscriptions in self._by_workspace.values():
            for subscription in subscriptions:
                subscription.close()
        self._by_workspace.clear()
