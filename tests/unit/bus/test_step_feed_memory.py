"""The in-process step feed: fan-out with filters, bounded buffers with a lag marker, resuming
from a position, and that closing a subscriber or the feed leaves nothing behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from campaignflow.bus.step_feed import LAGGED, StepFilter, event_from_json
from campaignflow.bus.step_feed_memory import InProcessStepFeed
from tests._support.step_feeds import Collector, step


async def collect(
    feed: InProcessStepFeed, filter: StepFilter, after: str | None = None
) -> Collector:
    collector = Collector(feed.subscribe(filter, after=after))
    await asyncio.sleep(0)  # an async generator subscribes on its first step
    return collector


def test_the_wire_form_is_camel_case_and_reads_back() -> None:
    event = step(3)
    wire = event.to_json()
    assert wire == {
        "kind": "step",
        "workspaceId": "ws",
        "executionId": "ex-3",
        "workflowId": "welcome",
        "workflowVersion": 1,
        "status": "completed",
        "at": "2026-05-01T09:00:03+00:00",
        "seq": 3,
        "nodeId": "greet",
        "nodeType": "action",
        "attempt": 1,
        "startedAt": "2026-05-01T09:00:00+00:00",
        "errorType": None,
        "id": "",
    }
    assert event_from_json(wire, "7-1") == replace(event, id="7-1")


async def test_each_subscriber_gets_what_its_filter_matches_in_order() -> None:
    feed = InProcessStepFeed()
    everything = await collect(feed, StepFilter("ws"))
    failures = await collect(feed, StepFilter("ws", statuses=frozenset({"failed"})))
    other = await collect(feed, StepFilter("ws", workflow_ids=frozenset({"other"})))
    await feed.publish([step(1), step(2, status="failed"), step(3, workspace="elsewhere")])
    await feed.publish([step(4, workflow="other")])

    seen = await everything.take(3)
    assert [e.seq for e in seen] == [1, 2, 4]  # never another workspace's
    assert [e.id.rpartition("-")[2] for e in seen] == ["1", "2", "3"]  # the workspace's count
    assert [e.seq for e in await failures.take(1)] == [2]
    assert [e.seq for e in await other.take(1)] == [4]
    assert await everything.nothing_more()
    assert await failures.nothing_more()
    await feed.close()


async def test_a_slow_subscriber_is_told_it_lagged_and_never_blocks_publishing() -> None:
    feed = InProcessStepFeed(capacity=2)
    slow = feed.subscribe(StepFilter("ws"))
    first = asyncio.ensure_future(anext(slow))
    await asyncio.sleep(0)
    fast = await collect(feed, StepFilter("ws"))
    for n in range(1, 6):
        async with asyncio.timeout(1):  # publishing returns at once, whatever "slow" does
            await feed.publish([step(n)])
        await asyncio.sleep(0)  # "fast" takes each as it comes

    assert [e.seq for e in await fast.take(5)] == [1, 2, 3, 4, 5]
    assert (await first).seq == 1
    assert [(await anext(slow)).seq for _ in range(2)] == [2, 3]
    marker = await anext(slow)  # 4 and 5 did not fit: one marker in their place
    assert marker.kind == LAGGED
    assert marker.id == ""
    await feed.publish([step(6)])
    assert (await anext(slow)).seq == 6  # and it goes on with what comes next
    await slow.aclose()
    await feed.close()


async def test_resuming_after_a_position_replays_what_was_missed_then_goes_live() -> None:
    feed = InProcessStepFeed()
    first = await collect(feed, StepFilter("ws"))
    await feed.publish([step(1), step(2), step(3, status="failed"), step(4)])
    seen = await first.take(4)
    await first.stop()

    resumed = await collect(feed, StepFilter("ws"), after=seen[1].id)
    await feed.publish([step(5)])
    assert [e.seq for e in await resumed.take(3)] == [3, 4, 5]  # no gap, no repeat
    assert await resumed.nothing_more()

    filtered = await collect(feed, StepFilter("ws", statuses=frozenset({"failed"})), seen[0].id)
    assert [e.seq for e in await filtered.take(1)] == [3]
    assert await filtered.nothing_more()
    await feed.close()


async def test_resuming_further_back_than_kept_or_from_another_lifetime_says_lagged() -> None:
    feed = InProcessStepFeed(history=2)
    watcher = await collect(feed, StepFilter("ws"))
    await feed.publish([step(n) for n in range(1, 5)])
    seen = await watcher.take(4)

    trimmed = await collect(feed, StepFilter("ws"), after=seen[0].id)
    got = await trimmed.take(3)
    assert [e.kind for e in got] == [LAGGED, "step", "step"]
    assert [e.seq for e in got[1:]] == [3, 4]  # event 2 is gone: the marker says so

    exact = await collect(feed, StepFilter("ws"), after=seen[1].id)
    assert [e.seq for e in await exact.take(2)] == [3, 4]  # nothing lost: no marker
    assert await exact.nothing_more()

    restarted = await collect(InProcessStepFeed(), StepFilter("ws"), after=seen[3].id)
    assert [e.kind for e in await restarted.take(1)] == [LAGGED]
    await feed.close()


async def test_closing_a_subscriber_or_the_feed_leaves_no_subscription() -> None:
    feed = InProcessStepFeed()
    one = await collect(feed, StepFilter("ws"))
    two = await collect(feed, StepFilter("ws"))
    assert feed.subscribers("ws") == 2
    await one.stop()
    assert feed.subscribers("ws") == 1
    await feed.close()
    async with asyncio.timeout(1):
        await two.task  # the subscriber's iteration ends with the feed
    assert feed.subscribers("ws") == 0


async def test_only_watched_workspaces_are_kept_and_a_watch_outlives_its_subscriber() -> None:
    feed = InProcessStepFeed(watch_seconds=600)
    assert await feed.watched({"ws", "other"}) == set()
    await feed.publish([step(1)])  # nobody has looked at "ws": not kept
    watcher = await collect(feed, StepFilter("ws"))
    assert await feed.watched({"ws", "other"}) == {"ws"}
    await feed.publish([step(2)])
    (seen,) = await watcher.take(1)
    await watcher.stop()

    assert await feed.watched({"ws"}) == {"ws"}  # still watched: a reconnect resumes
    await feed.publish([step(3)])
    resumed = await collect(feed, StepFilter("ws"), after=seen.id)
    assert [e.seq for e in await resumed.take(1)] == [3]
    await resumed.stop()

    forgetful = InProcessStepFeed(watch_seconds=0)
    gone = await collect(forgetful, StepFilter("ws"))
    await gone.stop()
    assert await forgetful.watched({"ws"}) == set()
    await feed.close()
    await forgetful.close()
