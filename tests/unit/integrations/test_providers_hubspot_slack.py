"""HubSpot and Slack request builders."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from campaignflow.integrations.connector import ProviderResponse
from campaignflow.integrations.prepare import MissingCredential
from campaignflow.integrations.providers.hubspot import HUBSPOT
from campaignflow.integrations.providers.slack import SLACK, SlackCredentials
from tests.unit.integrations._contexts import IDEMPOTENCY_KEY, build, ctx

HOOK = "https://hooks.slack.com/services/T000/B000/XXXX"


def test_a_transactional_send_uses_the_steps_idempotency_key_as_send_id() -> None:
    params = {
        "emailId": 41266431213,
        "to": "a@example.com",
        "cc": ["c@example.com"],
        "contactProperties": {"firstname": "Ann", "orders": 3, "vip": True, "score": 2.5},
    }
    request = build(HUBSPOT, "send_transactional_email", params, ctx(HUBSPOT))
    assert (request.method, request.path) == (
        "POST",
        "/marketing/v3/transactional/single-email/send",
    )
    assert request.json == {
        "emailId": 41266431213,
        "message": {"to": "a@example.com", "sendId": IDEMPOTENCY_KEY, "cc": ["c@example.com"]},
        "contactProperties": {"firstname": "Ann", "orders": "3", "vip": "true", "score": "2.5"},
    }


def test_a_transactional_sends_recipients_include_cc_and_bcc() -> None:
    operation = HUBSPOT.operation("send_transactional_email")
    params = operation.params.model_validate(
        {"emailId": 1, "to": "a@example.com", "cc": ["c@example.com"], "bcc": ["b@example.com"]}
    )
    assert operation.recipients is not None
    assert operation.recipients(params) == ["a@example.com", "c@example.com", "b@example.com"]
    response = ProviderResponse(200, {}, {"statusId": "s-1", "status": "PENDING"})
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "s-1"
    assert operation.output(response) == {"status": 200, "statusId": "s-1", "sendStatus": "PENDING"}


def test_a_contact_upsert_is_keyed_by_email_with_string_values() -> None:
    params = {"email": "a@example.com", "properties": {"lifecyclestage": "lead", "lead_score": 42}}
    request = build(HUBSPOT, "upsert_contact", params, ctx(HUBSPOT))
    assert (request.method, request.path) == ("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert request.json == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "a@example.com",
                "properties": {"lifecyclestage": "lead", "lead_score": "42"},
            }
        ]
    }
    output = HUBSPOT.operation("upsert_contact").output
    answer = {"status": "COMPLETE", "results": [{"id": "512", "new": True}]}
    assert output(ProviderResponse(200, {}, answer)) == {
        "status": 200,
        "id": "512",
        "created": True,
    }
    assert output(ProviderResponse(200, {}, {})) == {"status": 200, "id": None, "created": None}


def test_hubspot_test_lists_one_contact() -> None:
    assert HUBSPOT.test is not None
    probe = HUBSPOT.test(ctx(HUBSPOT))
    assert (probe.method, probe.path) == ("GET", "/crm/v3/objects/contacts")
    assert dict(probe.query) == {"limit": "1", "archived": "false"}


def test_slack_posts_to_the_webhook_url_credential() -> None:
    params = {"text": "hello", "iconEmoji": ":wave:"}
    request = build(SLACK, "post_message", params, ctx(SLACK, {"webhook_url": HOOK}))
    assert (request.method, request.url) == ("POST", HOOK)
    assert request.json == {"text": "hello", "icon_emoji": ":wave:"}
    with pytest.raises(MissingCredential, match="webhook_url"):
        build(SLACK, "post_message", params, ctx(SLACK))


@pytest.mark.parametrize(
    "params",
    [{"text": ""}, {"text": "x", "iconEmoji": "wave"}, {"text": "x", "blocks": []}, {}],
)
def test_slack_parameters_are_checked(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SLACK.operation("post_message").params.model_validate(params)


def test_a_slack_webhook_url_must_be_https() -> None:
    assert SlackCredentials.model_validate({"webhook_url": HOOK}).webhook_url == HOOK
    with pytest.raises(ValidationError):
        SlackCredentials.model_validate({"webhook_url": "http://hooks.slack.com/services/x"})
