"""Alert rules: validation with a pointer per problem, durations, and the state machine's
promises over any sequence of values (hypothesis): one fire and one resolve per incident, no
resolve without a fire, repeats only after the interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.alerting import (
    AlertRule,
    Notify,
    RuleState,
    decide,
    parse_span,
    validate_rule,
)
from campaignflow.domain.durations import InvalidDuration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VALID: dict[str, Any] = {
    "name": "failing",
    "metric": "executions.failed",
    "comparator": ">",
    "threshold": 5,
    "window": "5m",
}


def rule(**changes: Any) -> AlertRule:
    parsed, problems = validate_rule({**VALID, **changes})
    assert parsed is not None, problems
    return parsed


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86_400), ("PT5M", 300), ("P1DT1H", 90_000)],
)
def test_spans_in_both_notations(text: str, seconds: int) -> None:
    assert parse_span(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5", "5 m", "P1M", "5w", "", "-PT5M"])
def test_spans_that_are_not_fixed_lengths_are_refused(text: str) -> None:
    with pytest.raises(InvalidDuration):
        parse_span(text)


def test_a_valid_rule_reads_back_with_defaults() -> None:
    parsed = rule(filters={"workflowId": "w"}, repeatInterval="1h")
    assert (parsed.severity, parsed.for_, parsed.enabled) == ("warning", timedelta(0), True)
    assert parsed.document["filters"] == {"workflowId": "w"}
    assert parsed.document["repeatInterval"] == "1h"
    assert validate_rule(parsed.document)[0] == parsed  # the canonical form is valid input


def test_every_problem_is_reported_with_its_pointer() -> None:
    _, problems = validate_rule(
        {
            "metric": "queue.lag_seconds",
            "filters": {"workflowId": "w"},
            "comparator": "==",
            "threshold": float("nan"),
            "for": "P9D",
            "channels": ["a", "a", 3],
            "enabled": "yes",
        }
    )
    assert sorted(p.pointer for p in problems) == [
        "/channels/1",
        "/channels/2",
        "/comparator",
        "/enabled",
        "/filters/workflowId",
        "/for",
        "/name",
        "/threshold",
    ]


def test_a_windowed_metric_needs_its_window_and_a_gauge_does_not() -> None:
    _, problems = validate_rule({**VALID, "window": None})
    assert [p.pointer for p in problems] == ["/window"]
    assert validate_rule({**VALID, "metric": "dead_letters.open", "window": None})[0] is not None
    _, short = validate_rule({**VALID, "window": "10s"})
    assert [p.code for p in short] == ["out_of_range"]


def test_for_delays_the_fire_until_the_condition_has_held() -> None:
    slow = rule(**{"for": "2m"})
    pending = decide(slow, RuleState(), 9, T0)
    assert (pending.state.status, pending.notify) == ("pending", None)
    still = decide(slow, pending.state, 9, T0 + timedelta(minutes=1))
    assert (still.state.status, still.state.since) == ("pending", T0)
    fired = decide(slow, still.state, 9, T0 + timedelta(minutes=2))
    assert fired.notify == Notify("fire")
    assert decide(slow, pending.state, 1, T0 + timedelta(minutes=1)).state == RuleState()


def test_no_value_and_a_disabled_rule_count_as_clear() -> None:
    firing = decide(rule(), RuleState(), 9, T0).state
    assert decide(rule(), firing, None, T0).notify == Notify("resolve")
    assert decide(rule(enabled=False), firing, 9, T0).notify == Notify("resolve")
    assert decide(rule(comparator="<", threshold=1), RuleState(), None, T0).notify is None


values = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 10)), st.integers(0, 400)), max_size=60
)


@given(
    steps=values,
    for_s=st.sampled_from([0, 60, 300]),
    repeat_s=st.sampled_from([None, 60, 600]),
)
def test_one_fire_and_one_resolve_per_incident_and_repeats_only_after_the_interval(
    steps: list[tuple[int | None, int]], for_s: int, repeat_s: int | None
) -> None:
    changes: dict[str, Any] = {"for": f"{for_s}s", "threshold": 5}
    if repeat_s is not None:
        changes["repeatInterval"] = f"{repeat_s}s"
    watched = rule(**changes)
    state, now = RuleState(), T0
    open_incident = False
    last_notified: datetime | None = None
    for value, gap in steps:
        now += timedelta(seconds=gap)
        transition = decide(watched, state, value, now)
        kind = transition.notify.kind if transition.notify else None
        breached = value is not None and value > 5
        if kind == "fire":
            assert not open_incident
            assert breached
            open_incident, last_notified = True, now
        elif kind == "resolve":
            assert open_incident
            assert not breached
            open_incident = False
        elif kind == "repeat":
            assert open_incident
            assert breached
            assert repeat_s is not None
            assert last_notified is not None
            assert now - last_notified >= timedelta(seconds=repeat_s)
            last_notified = now
        elif open_incident and breached and repeat_s is not None:
            assert last_notified is not None
            assert now - last_notified < timedelta(seconds=repeat_s)
        assert (transition.state.status == "firing") == open_incident
        state = transition.state


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
RULE_KEYS = st.sampled_from(
    [
        "name",
        "description",
        "metric",
        "filters",
        "comparator",
        "threshold",
        "window",
        "for",
        "severity",
        "channels",
        "repeatInterval",
        "enabled",
    ]
)


@given(st.one_of(JSON, st.dictionaries(RULE_KEYS, JSON, max_size=12)))
def test_any_json_document_gets_a_rule_or_problems_never_an_exception(document: Any) -> None:
    rule, problems = validate_rule(document)
    assert (rule is None) == bool(problems)
    for problem in problems:
        assert problem.path == () or isinstance(problem.path[0], str)
