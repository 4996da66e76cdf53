"""Committed outcomes become step-feed events: every step, then the execution's end, in one
publish; and no message or output leaves with them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from campaignflow.bus.step_feed import StepEvent, StepFeed, StepFilter
from campaignflow.engine.feed_observer import StepFeedObserver, error_type, step_events
from campaignflow.engine.model import ExecutionRecord, Outcome, StepEntry, StepStatus

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def execution(status: str = "running", **changes: object) -> ExecutionRecord:
    record = ExecutionRecord(
        workspace_id="ws",
        id="ex-1",
        workflow_id="welcome",
        workflow_version=2,
        subject_id="contact-1",
        status=status,
        trigger="api",
        input={"email": "a@example.com"},
        contact={"id": "contact-1"},
        state={},
        revision=1,
        created_at=T0,
        updated_at=T0,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def entry(seq: int, status: StepStatus, error: dict[str, object] | None = None) -> StepEntry:
    return StepEntry(
        seq=seq,
        node_id=f"n{seq}",
        node_type="action",
        token="",
        attempt=seq,
        status=status,
        started_at=T0 + timedelta(seconds=seq),
        finished_at=T0 + timedelta(seconds=seq, milliseconds=500),
        output={"secret": "not for the feed"},
        error=error,
    )


class Recording(StepFeed):
    """Records what is published; ``watching`` are the workspaces someone looks at."""

    def __init__(self, watching: Collection[str] = ("ws",)) -> None:
        self.batches: list[list[StepEvent]] = []
        self.watching = set(watching)
        self.asked: list[set[str]] = []

    async def watched(self, workspace_ids: Collection[str]) -> set[str]:
        self.asked.append(set(workspace_ids))
        return self.watching & set(workspace_ids)

    async def publish(self, events: Sequence[StepEvent]) -> None:
        self.batches.append(list(events))

    def subscribe(self, filter: StepFilter, *, after: str | None = None):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def close(self) -> None:
        pass


async def test_a_batch_is_published_in_one_call_steps_then_the_end() -> None:
    failed = {"message": "HTTP 503 from https://x", "retryable": True, "details": {"status": 503}}
    running = Outcome(execution(), steps=[entry(1, StepStatus.COMPLETED)])
    ended = Outcome(
        execution(
            "failed",
            id="ex-2",
            finished_at=T0 + timedelta(seconds=9),
            error={"node": "n2", "message": "boom", "retryable": False},
        ),
        steps=[entry(2, StepStatus.FAILED, failed)],
    )
    feed = Recording()
    await StepFeedObserver(feed).committed([running, ended], T0 + timedelta(seconds=10))

    assert len(feed.batches) == 1
    events = feed.batches[0]
    assert [(e.kind, e.execution_id, e.status) for e in events] == [
        ("step", "ex-1", "completed"),
        ("step", "ex-2", "failed"),
        ("execution", "ex-2", "failed"),
    ]
    first = events[0]
    assert (first.seq, first.node_id, first.node_type, first.attempt) == (1, "n1", "action", 1)
    assert first.started_at == T0 + timedelta(seconds=1)
    assert first.at == T0 + timedelta(seconds=1, milliseconds=500)
    assert (first.workflow_id, first.workflow_version) == ("welcome", 2)
    assert events[1].error_type == "http_503"
    end = events[2]
    assert end.at == T0 + timedelta(seconds=9)
    assert end.started_at == T0
    assert end.error_type == "permanent"
    wire = str([e.to_json() for e in events])
    for private in ("boom", "not for the feed", "a@example.com", "contact-1", "https://x"):
        assert private not in wire


async def test_nothing_is_published_for_a_batch_without_steps() -> None:
    feed = Recording()
    await StepFeedObserver(feed).committed([Outcome(execution())], T0)
    assert feed.batches == []


def test_an_execution_that_ends_without_a_time_uses_the_commit_time() -> None:
    (event,) = step_events([Outcome(execution("cancelled"))], T0)
    assert (event.kind, event.status, event.at) == ("execution", "cancelled", T0)


def test_error_types_name_the_class_of_failure_only() -> None:
    assert error_type(None) is None
    assert error_type({"message": "held", "policy": {"rule": "quiet_hours"}}) == "policy"
    assert error_type({"details": {"status": 429}, "retryable": True}) == "http_429"
    assert error_type({"details": {"breaker": "open"}, "retryable": True}) == "circuit_open"
    assert error_type({"details": {"rateLimit": 60}, "retryable": True}) == "rate_limited"
    assert error_type({"message": "timeout", "retryable": True}) == "retryable"
    assert error_type({"message": "bad template", "retryable": False}) == "permanent"
    assert error_type({"details": {"status": True}, "retryable": False}) == "permanent"


async def test_nothing_is_built_or_published_for_a_workspace_nobody_watches() -> None:
    ours = Outcome(execution(), steps=[entry(1, StepStatus.COMPLETED)])
    theirs = Outcome(
        execution(workspace_id="globex", id="ex-9"), steps=[entry(1, StepStatus.COMPLETED)]
    )
    feed = Recording(watching=())
    await StepFeedObserver(feed).committed([ours, theirs], T0)
    assert feed.batches == []
    assert feed.asked == [{"ws", "globex"}]  # one question for the batch

    feed = Recording(watching=("globex",))
    await StepFeedObserver(feed).committed([ours, theirs], T0)
    (batch,) = feed.batches
    assert [(e.workspace_id, e.execution_id) for e in batch] == [("globex", "ex-9")]
