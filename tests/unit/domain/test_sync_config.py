"""A CRM connection's sync configuration: what it accepts, and a precise pointer for every
mistake it refuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from campaignflow.domain.pydantic_problems import validated
from campaignflow.domain.sync_config import SyncConfig, consistency_problems
from campaignflow.errors import InvalidBody

VALID: dict[str, Any] = {
    "syncStrategy": "scheduled",
    "schedule": "*/15 * * * *",
    "conflictResolution": "source-priority",
    "sourcePriority": ["salesforce", "campaignflow"],
    "tieWindow": "PT2S",
    "dataMapping": {
        "contactFields": {
            "email": "Email",
            "firstName": {"remote": "FirstName", "transform": "trim"},
            "lifecycle": {"remote": "Status__c", "valueMap": {"lead": "Open"}},
            "score": {"remote": "Score__c", "direction": "push", "transform": "number"},
        },
        "activityTypes": {"email.opened": "Email", "demo_booked": "Call"},
    },
}


def problems(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidBody) as caught:
        validated(SyncConfig, document)
    return {problem.pointer: problem.code for problem in caught.value.problems}


def test_the_documented_example_is_accepted_and_gives_its_merge_policy() -> None:
    config = validated(SyncConfig, VALID)
    policy = config.merge_policy(remote_skew=timedelta(seconds=3))
    assert policy.mode == "source-priority"
    assert policy.priority == ("salesforce", "campaignflow")
    assert policy.tie_window == timedelta(seconds=2)
    assert policy.remote_skew == timedelta(seconds=3)
    mappings = config.data_mapping.mappings()
    assert mappings["email"].remote == "Email"
    assert mappings["email"].direction == "both"
    assert mappings["lifecycle"].resolved_transform().push("lead") == "Open"


def test_a_scheduled_sync_needs_a_schedule_and_others_refuse_one() -> None:
    assert problems({**VALID, "schedule": None}) == {"/schedule": "required"}
    assert "/schedule" in problems({**VALID, "syncStrategy": "on-demand"})


def test_source_priority_needs_its_list_and_a_source_once() -> None:
    assert problems({**VALID, "sourcePriority": []}) == {"/sourcePriority": "required"}
    assert "/sourcePriority" in problems({**VALID, "sourcePriority": ["hubspot", "hubspot"]})


def test_every_mistake_is_reported_with_its_pointer() -> None:
    found = problems(
        {
            **VALID,
            "syncStrategy": "hourly",
            "schedule": "every hour",
            "tieWindow": "P1D",
            "dataMapping": {
                "contactFields": {
                    "email": "Email",
                    "altEmail": "Email",
                    "score": {"remote": "Score__c", "transform": "rot13"},
                    "bad name": "X",
                },
                "activityTypes": {"email.opened": ""},
            },
        }
    )
    assert set(found) >= {
        "/syncStrategy",
        "/schedule",
        "/tieWindow",
        "/dataMapping/contactFields/score/transform",
        "/dataMapping/activityTypes/email.opened",
    }
    assert any(pointer.startswith("/dataMapping/contactFields") for pointer in found)


def test_two_local_fields_cannot_map_to_one_crm_field() -> None:
    found = problems(
        {**VALID, "dataMapping": {"contactFields": {"email": "Email", "altEmail": "Email"}}}
    )
    assert found == {"/dataMapping/contactFields/altEmail": "duplicate"}


def test_a_value_map_must_be_one_to_one() -> None:
    mapping = {"lifecycle": {"remote": "Status__c", "valueMap": {"a": "X", "b": "X"}}}
    found = problems({**VALID, "dataMapping": {"contactFields": mapping}})
    assert list(found) == ["/dataMapping/contactFields/lifecycle/valueMap"]
    both = {"lifecycle": {"remote": "Status__c", "transform": "trim", "valueMap": {"a": "X"}}}
    found = problems({**VALID, "dataMapping": {"contactFields": both}})
    assert list(found) == ["/dataMapping/contactFields/lifecycle/valueMap"]


def test_unknown_keys_are_refused() -> None:
    assert "/direction" in problems({**VALID, "direction": "both"})


def test_the_cross_field_rules_are_also_found_on_a_document_with_bad_fields() -> None:
    document = {
        "syncStrategy": "scheduled",
        "conflictResolution": "source-priority",
        "dataMapping": {"contactFields": {"email": "Not A Field!"}},
    }
    # pydantic alone stops at the bad field ...
    assert "/schedule" not in problems(document)
    # ... so the API adds what the model's own cross-field check would have said
    assert {p.pointer: p.code for p in consistency_problems(document)} == {
        "/schedule": "required",
        "/sourcePriority": "required",
    }
    assert consistency_problems({**VALID}) == []
    assert consistency_problems(["not", "an", "object"]) == []


def test_a_bad_shorthand_is_reported_where_it_was_written() -> None:
    found = problems({**VALID, "dataMapping": {"contactFields": {"email": "Not A Field!"}}})
    assert list(found) == ["/dataMapping/contactFields/email"]
