"""Pipedrive's webhooks: a deal's stage change (v2 and v1 bodies) is ``crm.deal.stage_changed``
about the deal's person; anything else is ignored; a bad body is refused with pointers; the
Basic credentials are checked in constant time."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.integrations.webhooks import pipedrive
from campaignflow.integrations.webhooks.payloads import MalformedWebhook, ParsedWebhook
from campaignflow.integrations.webhooks.providers import SCHEMES, SignedRequest
from campaignflow.integrations.webhooks.signatures import WebhookRejected, verify_basic_auth


def v2(previous: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {
        "meta": {
            "action": "change",
            "entity": "deal",
            "entity_id": "42",
            "id": "9f1c6a3e-5a77-4c35-b3b5-0d8f0f1bb2a1",
            "timestamp": "2026-11-29T10:00:00.000Z",
            "version": "2.0",
        },
        "data": {"id": 42, "stage_id": 3, "pipeline_id": 1, "person_id": 7, "status": "open"}
        | data,
        "previous": previous,
    }


def parsed(document: Any) -> ParsedWebhook:
    return pipedrive.parse(json.dumps(document).encode())


def test_a_stage_change_is_an_event_about_the_deals_person() -> None:
    result = parsed(v2({"stage_id": 2}))
    assert (result.ignored, result.rejected) == (0, [])
    [event] = result.events
    assert event.name == "crm.deal.stage_changed"
    assert event.event_id == "9f1c6a3e-5a77-4c35-b3b5-0d8f0f1bb2a1"
    assert event.crm_record == "7"
    assert event.email is None  # the intake resolves the person to its linked contact
    assert event.occurred_at == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert event.details == {
        "dealId": "42",
        "stageId": "3",
        "previousStageId": "2",
        "pipelineId": "1",
        "status": "open",
        "personId": "7",
    }


def test_the_v1_format_is_read_too_and_its_id_is_stable_across_redeliveries() -> None:
    body = {
        "event": "updated.deal",
        "meta": {"action": "updated", "object": "deal", "id": 42, "timestamp": 1796032800},
        "current": {"id": 42, "stage_id": 5, "person_id": 8, "pipeline_id": 1},
        "previous": {"stage_id": 4, "pipeline_id": 1},
    }
    first, again = parsed(body).events, parsed(body).events
    assert [e.details["stageId"] for e in first] == ["5"]
    assert first[0].crm_record == "8"
    assert first[0].event_id == again[0].event_id
    assert first[0].occurred_at == datetime.fromtimestamp(1796032800, UTC)


@pytest.mark.parametrize(
    "document",
    [
        v2({"title": "Old title"}),  # a deal change that is not a stage change
        {**v2({"stage_id": 2}), "meta": {**v2({})["meta"], "entity": "person"}},
        {**v2({"stage_id": 2}), "meta": {**v2({})["meta"], "action": "create"}},
    ],
    ids=["other-field", "person", "created"],
)
def test_other_notifications_are_ignored(document: dict[str, Any]) -> None:
    result = parsed(document)
    assert (result.events, result.ignored, result.rejected) == ([], 1, [])


def test_a_stage_change_without_a_person_concerns_no_contact() -> None:
    [event] = parsed(v2({"stage_id": 2}, person_id=None)).events
    assert event.crm_record is None
    assert "personId" not in event.details


def test_a_bad_stage_change_is_refused_with_pointers() -> None:
    document = v2({"stage_id": 2}, stage_id=None)
    document["meta"]["timestamp"] = "yesterday"
    result = parsed(document)
    assert result.events == []
    assert result.rejected == [0]
    assert {p.pointer for p in result.problems} == {"/data/stage_id", "/meta/timestamp"}


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedWebhook):
        pipedrive.parse(b"{not json")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_is_read_or_refused_as_a_client_error(document: Any) -> None:
    result = pipedrive.parse(json.dumps(document).encode())
    assert len(result.events) + result.ignored + len(result.rejected) == 1


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_basic_credentials_must_match_the_connections() -> None:
    verify_basic_auth("cf", "s3cret", basic("cf", "s3cret"))
    for presented in (None, "", basic("cf", "wrong"), basic("other", "s3cret"), "Bearer x"):
        with pytest.raises(WebhookRejected):
            verify_basic_auth("cf", "s3cret", presented)


def test_the_scheme_refuses_a_connection_without_webhook_credentials() -> None:
    scheme = SCHEMES["pipedrive"]
    request = SignedRequest(
        "POST", "https://cf.example/x", {"authorization": basic("cf", "pw")}, {}, b"{}"
    )
    scheme.verify(request, {}, {"webhook_user": "cf", "webhook_password": "pw"}, 0.0)
    with pytest.raises(WebhookRejected, match="webhook_user"):
        scheme.verify(request, {}, {"api_key": "x"}, 0.0)
