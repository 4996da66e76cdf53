from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from campaignflow.domain.durations import parse_duration
from campaignflow.domain.schedules import WEEKDAYS
from campaignflow.domain.workflow import (
    ErrorHandling,
    RetryOverride,
    Weekday,
    WorkflowDefinition,
)

from .factories import minimal_document


def test_weekday_literal_matches_the_schedule_names() -> None:
    assert get_args(Weekday) == WEEKDAYS


def test_error_handling_defaults() -> None:
    policy = ErrorHandling()
    assert (policy.retry_policy, policy.max_retries, policy.jitter) == ("exponential", 3, 0.2)
    assert policy.initial_interval == parse_duration("PT10S")
    assert policy.max_interval == parse_duration("PT1H")


def test_override_replaces_only_what_it_sets() -> None:
    policy = ErrorHandling(max_retries=5)
    merged = policy.with_override(RetryOverride(retry_policy="none"))
    assert (merged.retry_policy, merged.max_retries) == ("none", 5)
    assert policy.with_override(None) is policy
    assert policy.with_override(RetryOverride()) is policy


def test_intervals_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="shorter than initialInterval"):
        ErrorHandling.model_validate({"initialInterval": "PT2H", "maxInterval": "PT1H"})


def test_definition_is_frozen_and_indexes_nodes() -> None:
    definition = WorkflowDefinition.model_validate(minimal_document(start="hello"))
    assert definition.nodes_by_id["hello"].type == "action"
    assert definition.start_node_id == "hello"
    with pytest.raises(ValidationError):
        definition.name = "changed"  # type: ignore[misc]
