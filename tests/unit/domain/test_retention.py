"""The retention policy: defaults, bounds, the audit log kept longest, cut-offs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.pydantic_problems import validated
from campaignflow.domain.retention import (
    DATA_CLASSES,
    DEFAULT_POLICY,
    MAX_DAYS,
    RetentionPolicy,
    longer_than_audit_log,
)
from campaignflow.errors import InvalidBody

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_the_defaults_keep_the_audit_log_longest() -> None:
    assert longer_than_audit_log(DEFAULT_POLICY) is None
    assert DEFAULT_POLICY.audit_log == max(DEFAULT_POLICY.days(name) for name in DATA_CLASSES)


def test_a_class_left_out_takes_its_default() -> None:
    policy = RetentionPolicy.model_validate({"events": 30})
    assert policy.events == 30
    assert policy.webhook_payloads == DEFAULT_POLICY.webhook_payloads


def test_a_class_kept_longer_than_the_audit_log_is_refused_at_its_own_pointer() -> None:
    with pytest.raises(InvalidBody) as raised:
        validated(RetentionPolicy, {"processingLog": 4000, "auditLog": 3000})
    (problem,) = raised.value.problems
    assert problem.pointer == "/processingLog"
    assert "audit log" in problem.message


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1, "30", 1.5, None])
def test_days_out_of_bounds_or_not_integers_are_refused(days: object) -> None:
    with pytest.raises(InvalidBody) as raised:
        validated(RetentionPolicy, {"events": days})
    assert [problem.pointer for problem in raised.value.problems] == ["/events"]


def test_an_unknown_class_is_refused() -> None:
    with pytest.raises(InvalidBody) as raised:
        validated(RetentionPolicy, {"event": 30})
    assert [problem.pointer for problem in raised.value.problems] == ["/event"]


@given(
    st.fixed_dictionaries(
        {name: st.integers(1, MAX_DAYS) for name in DATA_CLASSES if name != "audit_log"}
    )
)
def test_a_policy_is_valid_exactly_when_the_audit_log_is_longest(days: dict[str, int]) -> None:
    audit = max(days.values())
    policy = RetentionPolicy.model_validate({**days, "audit_log": audit})
    cutoffs = policy.cutoffs(NOW)
    for name, value in days.items():
        assert cutoffs[name] == NOW - timedelta(days=value)  # type: ignore[index]
    if audit > 1:
        with pytest.raises(InvalidBody):
            validated(RetentionPolicy, {**days, "auditLog": audit - 1})


def test_the_stored_document_round_trips() -> None:
    policy = RetentionPolicy.model_validate({"events": 10, "auditLog": 4000})
    document = policy.model_dump(by_alias=True, mode="json")
    assert document["auditLog"] == 4000
    assert document["webhookPayloads"] == 90
    assert RetentionPolicy.model_validate(document) == policy
