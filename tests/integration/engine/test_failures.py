"""Retries on the injected clock, the error branch, dead letters, replay, cancel and idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest

from campaignflow.engine.model import ExecutionRecord
from campaignflow.errors import Conflict
from campaignflow.store.executions import NewExecution
from tests.integration.engine.conftest import WORKSPACE, Harness, workflow


def calling(
    url: str, *, error_handling: dict[str, object], on_error: bool = False
) -> dict[str, object]:
    action: dict[str, object] = {
        "id": "call",
        "type": "action",
        "config": {"action": "http", "params": {"method": "POST", "url": url}},
        "next": "done",
    }
    nodes: list[dict[str, object]] = [action, {"id": "done", "type": "end"}]
    if on_error:
        action["onError"] = "fallback"
        nodes.append({"id": "fallback", "type": "end"})
    return workflow("calling", nodes, errorHandling=error_handling)


async def test_retryable_failures_back_off_exponentially_then_succeed(harness: Harness) -> None:
    policy = {
        "retryPolicy": "exponential",
        "maxRetries": 3,
        "initialInterval": "PT10S",
        "jitter": 0,
    }
    definition = calling(f"{harness.sink.url}/flaky/2", error_handling=policy)
    execution_id = await harness.start(await harness.deploy(definition))

    await harness.drain()
    assert (await harness.execution(execution_id)).status == "waiting"
    await harness.advance(timedelta(seconds=9))
    assert len(harness.sink.requests) == 1  # the first retry is due after 10 s, not before
    await harness.advance(timedelta(seconds=1))
    assert len(harness.sink.requests) == 2
    await harness.advance(timedelta(seconds=19))
    assert len(harness.sink.requests) == 2  # the second retry waits 20 s
    await harness.advance(timedelta(seconds=1))

    assert (await harness.execution(execution_id)).status == "completed"
    assert await harness.path(execution_id) == [
        ("call", "retrying"),
        ("call", "retrying"),
        ("call", "completed"),
        ("done", "completed"),
    ]
    keys = {request["headers"]["idempotency-key"] for request in harness.sink.requests}
    assert len(keys) == 1  # every attempt of one intent carries the same key


async def test_retry_after_from_the_provider_is_honoured(harness: Harness) -> None:
    policy = {"maxRetries": 1, "initialInterval": "PT1S", "maxInterval": "PT1S", "jitter": 0}
    url = f"{harness.sink.url}/status/429?retry_after=120"
    execution_id = await harness.start(await harness.deploy(calling(url, error_handling=policy)))
    await harness.drain()
    await harness.advance(timedelta(seconds=119))
    assert len(harness.sink.requests) == 1
    await harness.advance(timedelta(seconds=1))
    assert len(harness.sink.requests) == 2
    assert (await harness.execution(execution_id)).status == "failed"


async def test_exhausted_retries_make_a_dead_letter_and_fail_the_execution(
    harness: Harness,
) -> None:
    policy = {"retryPolicy": "linear", "maxRetries": 2, "initialInterval": "PT1M", "jitter": 0}
    definition = calling(f"{harness.sink.url}/status/503", error_handling=policy)
    execution_id = await harness.start(await harness.deploy(definition), {"order": 7})
    await harness.drain()
    await harness.advance(timedelta(minutes=1))
    await harness.advance(timedelta(minutes=2))

    execution = await harness.execution(execution_id)
    assert execution.status == "failed"
    assert execution.error is not None
    assert execution.error["node"] == "call"
    (letter,) = await harness.service.dead_letters(WORKSPACE)
    assert (letter.execution_id, letter.node_id, letter.status) == (execution_id, "call", "open")
    assert letter.attempts == 3
    assert [error["attempt"] for error in letter.errors] == [1, 2, 3]
    assert all(error["retryable"] for error in letter.errors)
    assert letter.input == {"order": 7}
    assert await harness.queue.next_due() is None


async def test_a_non_retryable_error_is_not_retried(harness: Harness) -> None:
    definition = calling(f"{harness.sink.url}/status/400", error_handling={"maxRetries": 5})
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    assert len(harness.sink.requests) == 1
    assert (await harness.execution(execution_id)).status == "failed"


async def test_on_error_branch_is_taken_when_retries_are_exhausted(harness: Harness) -> None:
    definition = calling(
        f"{harness.sink.url}/status/404", error_handling={"maxRetries": 3}, on_error=True
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()

    assert await harness.path(execution_id) == [("call", "failed"), ("fallback", "completed")]
    execution = await harness.execution(execution_id)
    assert execution.status == "completed"
    assert execution.state["steps"]["call"]["error"]["details"]["status"] == 404
    assert await harness.service.dead_letters(WORKSPACE) == []


async def test_replaying_a_dead_letter_reruns_the_failed_node_with_a_new_key(
    harness: Harness,
) -> None:
    definition = calling(f"{harness.sink.url}/switch", error_handling={"retryPolicy": "none"})
    execution_id = await harness.start(await harness.deploy(definition))
    harness.sink.down = True
    await harness.drain()
    (letter,) = await harness.service.dead_letters(WORKSPACE, status="open")
    harness.sink.down = False

    replayed = await harness.service.replay(WORKSPACE, letter.id)
    assert replayed.status == "replayed"
    assert (await harness.execution(execution_id)).status == "running"
    await harness.drain()

    assert (await harness.execution(execution_id)).status == "completed"
    first, second = (request["headers"]["idempotency-key"] for request in harness.sink.requests)
    assert first != second  # a deliberate replay is a new intent
    with pytest.raises(Conflict):
        await harness.service.replay(WORKSPACE, letter.id)
    with pytest.raises(Conflict):
        await harness.service.discard(WORKSPACE, letter.id)


async def test_discarding_a_dead_letter_leaves_the_execution_failed(harness: Harness) -> None:
    definition = calling(f"{harness.sink.url}/status/400", error_handling={})
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    (letter,) = await harness.service.dead_letters(WORKSPACE)

    discarded = await harness.service.discard(WORKSPACE, letter.id)

    assert discarded.status == "discarded"
    assert discarded.resolved_at == harness.clock.now()
    assert (await harness.execution(execution_id)).status == "failed"
    assert await harness.service.dead_letters(WORKSPACE, status="open") == []


async def test_retry_reruns_a_failed_execution_from_where_it_failed(harness: Harness) -> None:
    definition = calling(f"{harness.sink.url}/switch", error_handling={"retryPolicy": "none"})
    execution_id = await harness.start(await harness.deploy(definition))
    harness.sink.down = True
    await harness.drain()
    assert (await harness.execution(execution_id)).status == "failed"
    harness.sink.down = False

    await harness.service.retry(WORKSPACE, execution_id)
    await harness.drain()

    assert (await harness.execution(execution_id)).status == "completed"
    with pytest.raises(Conflict):
        await harness.service.retry(WORKSPACE, execution_id)


async def test_cancel_removes_timers_and_waits(harness: Harness) -> None:
    definition = workflow(
        "slow",
        [
            {"id": "fan", "type": "parallel", "config": {"branches": ["nap", "listen"]}},
            {"id": "nap", "type": "delay", "config": {"duration": "P1D"}},
            {
                "id": "listen",
                "type": "wait_for_event",
                "config": {"event": "clicked", "timeout": "P2D", "onTimeout": "bye"},
            },
            {"id": "bye", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    assert (await harness.execution(execution_id)).state["live"] == 2

    cancelled = await harness.service.cancel(WORKSPACE, execution_id)

    assert cancelled.status == "cancelled"
    assert await harness.queue.next_due() is None
    assert await harness.executions.waits(WORKSPACE, execution_id) == []
    with pytest.raises(Conflict):
        await harness.service.cancel(WORKSPACE, execution_id)
    await harness.advance(timedelta(days=3))
    assert (await harness.execution(execution_id)).status == "cancelled"


async def test_an_idempotency_key_returns_the_same_execution(harness: Harness) -> None:
    workflow_id = await harness.deploy(calling(f"{harness.sink.url}/ok", error_handling={}))
    first, created = await harness.service.execute(
        WORKSPACE, workflow_id, subject_id="c1", input={}, idempotency_key="k-1"
    )
    again, created_again = await harness.service.execute(
        WORKSPACE, workflow_id, subject_id="c1", input={}, idempotency_key="k-1"
    )
    other, _ = await harness.service.execute(
        WORKSPACE, workflow_id, subject_id="c1", input={}, idempotency_key="k-2"
    )
    assert created
    assert not created_again
    assert again.id == first.id != other.id
    await harness.drain()
    assert len(harness.sink.requests) == 2


async def test_a_stale_commit_is_not_written_and_its_tasks_run_again(harness: Harness) -> None:
    """A worker whose execution changed under it (here: cancelled) writes nothing for it."""
    definition = calling(f"{harness.sink.url}/ok", error_handling={})
    execution_id = await harness.start(await harness.deploy(definition))
    tasks = await harness.queue.claim(
        "w1", harness.clock.now(), lease=timedelta(minutes=1), limit=10
    )
    loaded = await harness.queue.load([(WORKSPACE, execution_id)])
    await harness.service.cancel(WORKSPACE, execution_id)  # bumps the revision
    compiled = await harness.service.compiled.get(WORKSPACE, "calling", 1)
    outcome = await harness.worker.interpreter.advance(
        loaded[(WORKSPACE, execution_id)], compiled, tasks, harness.clock.now()
    )
    revisions = {key: record.revision for key, record in loaded.items()}

    conflicts = await harness.queue.commit([outcome], revisions, "w1", harness.clock.now())

    assert conflicts == [(WORKSPACE, execution_id)]
    execution = await harness.execution(execution_id)
    assert execution.status == "cancelled"
    assert await harness.steps(execution_id) == []


def _napping(last_node: str) -> dict[str, object]:
    return workflow(
        "versions",
        [
            {"id": "nap", "type": "delay", "config": {"duration": "P1D"}, "next": last_node},
            {"id": last_node, "type": "end"},
        ],
    )


async def test_in_flight_executions_finish_on_their_version_by_default(harness: Harness) -> None:
    workflow_id = await harness.deploy(_napping("old-end"))
    old = await harness.start(workflow_id)
    await harness.drain()
    await harness.workflows.update(WORKSPACE, workflow_id, _napping("new-end"))
    new = await harness.start(workflow_id)
    await harness.drain()
    await harness.advance(timedelta(days=1))

    assert [node for node, _ in await harness.path(old)] == ["nap", "old-end"]
    assert [node for node, _ in await harness.path(new)] == ["nap", "new-end"]
    assert (await harness.execution(old)).workflow_version == 1


async def test_the_exit_policy_cancels_executions_of_older_versions(harness: Harness) -> None:
    workflow_id = await harness.deploy(_napping("old-end"))
    old = await harness.start(workflow_id)
    await harness.drain()
    record, _ = await harness.workflows.update(WORKSPACE, workflow_id, _napping("new-end"))
    new = await harness.start(workflow_id)
    await harness.drain()

    exited = await harness.service.exit_older_versions(WORKSPACE, workflow_id, record.version)

    assert exited == 1
    old_execution = await harness.execution(old)
    assert old_execution.status == "cancelled"
    assert old_execution.error is not None
    assert "inFlight=exit" in old_execution.error["reason"]
    await harness.advance(timedelta(days=1))
    assert await harness.path(old) == []
    assert (await harness.execution(new)).status == "completed"


async def test_a_node_retry_override_beats_the_workflow_policy(harness: Harness) -> None:
    definition = calling(
        f"{harness.sink.url}/status/503",
        error_handling={"retryPolicy": "exponential", "maxRetries": 5, "initialInterval": "PT1H"},
    )
    node = definition["nodes"][0]
    node["retry"] = {
        "retryPolicy": "linear",
        "maxRetries": 1,
        "initialInterval": "PT5S",
        "jitter": 0,
    }
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    await harness.advance(timedelta(seconds=5))

    assert len(harness.sink.requests) == 2  # one retry, after 5 s, not 5 retries an hour apart
    assert (await harness.execution(execution_id)).status == "failed"
    (letter,) = await harness.service.dead_letters(WORKSPACE)
    assert letter.attempts == 2


async def test_a_version_that_no_longer_validates_fails_its_executions_at_once(
    harness: Harness,
) -> None:
    """As if an older release stored it: the worker fails the execution with the reason
    instead of letting its task come back after every lease."""
    broken = workflow("legacy", [{"id": "done", "type": "end", "next": "nowhere"}])
    store = harness.workflows.store
    await store.create(
        WORKSPACE, "legacy", name="Legacy", definition=broken, content_hash="x", status="active"
    )
    new = NewExecution(WORKSPACE, "legacy", 1, "c1", "test", {}, {}, "done")
    (record,) = await harness.executions.start_many([new], harness.clock.now())

    await harness.drain()

    execution = await harness.execution(record.id)
    assert execution.status == "failed"
    assert execution.error is not None
    assert "no longer validates" in execution.error["message"]
    assert await harness.queue.next_due() is None


async def test_an_event_and_a_timeout_racing_take_one_path_only(harness: Harness) -> None:
    """The worker holds the timeout when the event arrives: the event wins, the worker's
    stale commit is refused, and the execution continues once, on the event's path."""
    definition = workflow(
        "race-wait",
        [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {"event": "paid", "timeout": "PT1H", "onTimeout": "late"},
                "next": "thanks",
            },
            {"id": "late", "type": "end"},
            {"id": "thanks", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    harness.clock.advance(timedelta(hours=1))
    lease = timedelta(minutes=1)
    tasks, loaded = await harness.queue.claim_batch(
        "slow", harness.clock.now(), lease=lease, limit=5
    )
    assert [task.kind for task in tasks] == ["timeout"]

    assert await harness.service.resume(
        WORKSPACE, execution_id, {"event": "paid", "properties": {}}
    )
    compiled = await harness.service.compiled.get(WORKSPACE, "race-wait", 1)
    key = (WORKSPACE, execution_id)
    outcome = await harness.worker.interpreter.advance(
        loaded[key], compiled, tasks, harness.clock.now()
    )
    revisions = {key: loaded[key].revision}
    assert await harness.queue.commit([outcome], revisions, "slow", harness.clock.now()) == [key]
    await harness.drain()

    assert await harness.path(execution_id) == [("wait", "completed"), ("thanks", "completed")]
    assert (await harness.execution(execution_id)).status == "completed"


async def test_concurrent_repeats_of_an_idempotency_key_start_one_execution(
    harness: Harness,
) -> None:
    """Both calls pass the look-up before either inserts: the loser's unique violation is
    answered with the winner's execution, not an error."""
    workflow_id = await harness.deploy(calling(f"{harness.sink.url}/ok", error_handling={}))

    def call() -> Awaitable[tuple[ExecutionRecord, bool]]:
        return harness.service.execute(
            WORKSPACE, workflow_id, subject_id="c1", input={}, idempotency_key="same"
        )

    (first, first_created), (second, second_created) = await asyncio.gather(call(), call())

    assert first.id == second.id
    assert sorted([first_created, second_created]) == [False, True]
    direct = NewExecution(WORKSPACE, workflow_id, 1, "c1", "api", {}, {}, "call", "same")
    with pytest.raises(Conflict):
        await harness.executions.start_many([direct], harness.clock.now())
