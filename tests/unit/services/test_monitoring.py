"""The monitoring service's pure parts: the stream's filter and who may see an event, the
summary window, and the summary's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaignflow.bus.step_feed import StepEvent, StepFilter, lagged
from campaignflow.errors import InvalidField
from campaignflow.security.principal import Credential, CredentialKind, Principal
from campaignflow.security.rbac import ALL_SCOPES, Permission, Role
from campaignflow.services.monitoring import (
    MAX_FILTER_VALUES,
    NodeWaiting,
    may_watch,
    parse_window,
    step_filter,
    summarize,
)
from campaignflow.store.workflow_summary import Durations, WaitingCount

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def principal(
    scopes: frozenset[Permission] = ALL_SCOPES,
    role: Role = Role.VIEWER,
    grants: dict[str, Role] | None = None,
) -> Principal:
    credential = Credential(CredentialKind.API_KEY, "key-1", scopes)
    return Principal("ws", "p-1", role, credential, grants or {})


def event(workflow: str) -> StepEvent:
    return StepEvent("step", "ws", "ex-1", workflow, 1, "completed", AT)


def test_the_filter_is_the_principals_workspace_with_the_asked_values() -> None:
    assert step_filter(principal(), None, None) == StepFilter("ws")
    assert step_filter(principal(), [], []) == StepFilter("ws")
    assert step_filter(principal(), ["a", "b", "a"], ["failed", "timed_out"]) == StepFilter(
        "ws", frozenset({"a", "b"}), frozenset({"failed", "timed_out"})
    )
    # An execution's statuses are valid too (its end is an event).
    assert step_filter(principal(), None, ["cancelled"]).statuses == {"cancelled"}


def test_an_unknown_status_points_at_the_value() -> None:
    with pytest.raises(InvalidField) as caught:
        step_filter(principal(), None, ["failed", "exploded"])
    assert caught.value.pointer == "/status/1"
    assert "exploded" in caught.value.message
    assert "timed_out" in caught.value.message  # the valid ones are listed


def test_too_many_or_too_long_filter_values_are_refused() -> None:
    with pytest.raises(InvalidField) as long_id:
        step_filter(principal(), ["ok", "x" * 65], None)
    assert long_id.value.pointer == "/workflowId/1"
    with pytest.raises(InvalidField) as many:
        step_filter(principal(), [f"w{n}" for n in range(MAX_FILTER_VALUES + 1)], None)
    assert many.value.pointer == "/workflowId"


def test_an_event_is_shown_only_to_who_may_read_its_workflow() -> None:
    viewer = principal()
    assert may_watch(viewer, event("welcome"))
    # A key scoped to executions only may read no workflow: it sees no step …
    narrow = principal(frozenset({Permission.EXECUTIONS_READ}))
    assert not may_watch(narrow, event("welcome"))
    # … but is still told when it lagged (the marker names no execution).
    assert may_watch(narrow, lagged("ws", AT))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, timedelta(hours=1)),
        ("PT1M", timedelta(minutes=1)),
        ("PT90M", timedelta(minutes=90)),
        ("P30D", timedelta(days=30)),
        ("P1W", timedelta(days=7)),
    ],
)
def test_windows_within_bounds(text: str | None, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["PT59S", "P31D", "P1M", "P1Y", "1h", "", "-PT1H"])
def test_windows_out_of_bounds_or_malformed_point_at_window(text: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_window(text)
    assert caught.value.pointer == "/window"


def test_the_summary_arithmetic() -> None:
    counts = {"completed": 6, "failed": 1, "cancelled": 1, "running": 2, "pending": 1, "waiting": 4}
    durations = Durations(8, {0.5: 2.0, 0.9: 5.0, 0.95: 6.0, 0.99: 7.5})
    waiting = [
        WaitingCount("pause", "delay", 3),
        WaitingCount("send", "ready", 1),
        WaitingCount("send", "retry", 2),
        WaitingCount("wait-click", "event", 4),
    ]
    summary = summarize(
        "welcome", timedelta(minutes=30), AT, counts=counts, durations=durations, waiting=waiting
    )
    assert summary.since == AT - timedelta(minutes=30)
    assert summary.started == 15
    assert summary.throughput_per_minute == 0.5
    assert (summary.completed, summary.failed, summary.cancelled) == (6, 1, 1)
    assert (summary.running, summary.waiting) == (3, 4)
    assert summary.success_rate == 0.75
    assert (summary.durations.p50, summary.durations.p99) == (2.0, 7.5)
    assert summary.waiting_at == [
        NodeWaiting("pause", delay=3),
        NodeWaiting("send", ready=1, retry=2),
        NodeWaiting("wait-click", event=4),
    ]
    assert [node.total for node in summary.waiting_at] == [3, 3, 4]


def test_no_finished_execution_means_no_success_rate() -> None:
    summary = summarize(
        "welcome",
        timedelta(hours=1),
        AT,
        counts={"running": 2},
        durations=Durations(0, {0.5: None, 0.9: None, 0.95: None, 0.99: None}),
        waiting=[],
    )
    assert summary.success_rate is None
    assert summary.durations.p50 is None
    assert summary.started == 2
