"""SendGrid's pure request builders: what each recipient gets, and what comes back."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from campaignflow.integrations.connector import CannotBuildRequest, ProviderResponse
from campaignflow.integrations.providers.sendgrid import SENDGRID, SendGridSettings
from tests.unit.integrations._contexts import TRACKING, build, ctx

# The Signed Event Webhook verification key of sendgrid-python's own tests (NOTES.md §4).
SENDGRID_TEST_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
    "2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
MAIL = {"to": ["a@example.com", "b@example.com"], "from": "shop@example.com", "subject": "Hi"}


def test_each_recipient_gets_a_personalization_carrying_the_steps_tracking() -> None:
    request = build(SENDGRID, "send_email", {**MAIL, "text": "x"}, ctx(SENDGRID))
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    personalizations = request.json["personalizations"]
    assert [p["to"] for p in personalizations] == [
        [{"email": "a@example.com"}],
        [{"email": "b@example.com"}],
    ]  # nobody sees the other recipients
    assert all(p["custom_args"] == TRACKING for p in personalizations)
    assert "custom_args" not in request.json  # the spec types the top-level one as a string


def test_no_custom_args_without_tracking() -> None:
    request = build(SENDGRID, "send_email", {**MAIL, "text": "x"}, ctx(SENDGRID, tracking={}))
    assert all("custom_args" not in p for p in request.json["personalizations"])


def test_plain_text_comes_before_html_as_sendgrid_requires() -> None:
    params = {**MAIL, "html": "<p>x</p>", "text": "x"}
    request = build(SENDGRID, "send_email", params, ctx(SENDGRID))
    assert [part["type"] for part in request.json["content"]] == ["text/plain", "text/html"]


def test_a_template_send_carries_its_data_per_recipient_and_no_content() -> None:
    params = {
        "to": "a@example.com",
        "from": "shop@example.com",
        "templateId": "d-1",
        "dynamicTemplateData": {"firstName": "Ann"},
    }
    request = build(SENDGRID, "send_email", params, ctx(SENDGRID))
    assert request.json["template_id"] == "d-1"
    assert request.json["personalizations"][0]["dynamic_template_data"] == {"firstName": "Ann"}
    assert "content" not in request.json
    assert "subject" not in request.json


def test_optional_fields_map_to_sendgrids_names() -> None:
    params = {
        **MAIL,
        "text": "x",
        "fromName": "Shop",
        "replyTo": "help@example.com",
        "categories": ["a"],
        "sendAt": 1_790_003_600,
        "unsubscribeGroupId": 7,
    }
    body = build(SENDGRID, "send_email", params, ctx(SENDGRID)).json
    assert body["from"] == {"email": "shop@example.com", "name": "Shop"}
    assert body["reply_to"] == {"email": "help@example.com"}
    assert (body["categories"], body["send_at"], body["asm"]) == (
        ["a"],
        1_790_003_600,
        {"group_id": 7},
    )


def test_the_connections_default_sender_fills_in_and_a_missing_one_is_an_error() -> None:
    params = {"to": "a@example.com", "templateId": "d-1"}
    settings = {"defaultFrom": "news@example.com", "defaultFromName": "News"}
    body = build(SENDGRID, "send_email", params, ctx(SENDGRID, settings=settings)).json
    assert body["from"] == {"email": "news@example.com", "name": "News"}
    with pytest.raises(CannotBuildRequest, match="defaultFrom"):
        build(SENDGRID, "send_email", params, ctx(SENDGRID))


@pytest.mark.parametrize(
    "params",
    [
        {"to": "a@example.com", "subject": "s"},  # no content, no template
        {"to": "a@example.com", "text": "x"},  # no subject, no template
        {"to": "a@example.com", "text": "x", "subject": "s", "dynamicTemplateData": {}},
    ],
)
def test_content_rules_are_checked_before_anything_is_built(params: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SENDGRID.operation("send_email").params.model_validate(params)


def test_recipients_and_message_id_for_the_delivery_log() -> None:
    operation = SENDGRID.operation("send_email")
    params = operation.params.model_validate({**MAIL, "text": "x"})
    assert operation.recipients is not None
    assert operation.recipients(params) == ["a@example.com", "b@example.com"]
    one = operation.params.model_validate({**MAIL, "to": "c@example.com", "text": "x"})
    assert operation.recipients(one) == ["c@example.com"]
    response = ProviderResponse(202, {"x-message-id": "LRzXl_NHStOGhQ4kofSm_A"}, None)
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "LRzXl_NHStOGhQ4kofSm_A"
    assert operation.output(response) == {"status": 202, "messageId": "LRzXl_NHStOGhQ4kofSm_A"}


def test_upsert_contacts_sends_sendgrids_field_names_and_list_ids() -> None:
    params = {
        "contacts": [
            {"email": "a@example.com", "firstName": "Ann", "customFields": {"e1_N": 3}},
            {"email": "b@example.com"},
        ],
        "listIds": ["CA7A3796-E8A8-4029-9CCB-DF8937940562"],
    }
    request = build(SENDGRID, "upsert_contacts", params, ctx(SENDGRID))
    assert (request.method, request.path) == ("PUT", "/v3/marketing/contacts")
    assert request.json == {
        "contacts": [
            {"email": "a@example.com", "first_name": "Ann", "custom_fields": {"e1_N": 3}},
            {"email": "b@example.com"},
        ],
        "list_ids": ["ca7a3796-e8a8-4029-9ccb-df8937940562"],
    }
    output = SENDGRID.operation("upsert_contacts").output
    assert output(ProviderResponse(202, {}, {"job_id": "j1"})) == {"status": 202, "jobId": "j1"}


def test_create_list_and_the_connection_test() -> None:
    request = build(SENDGRID, "create_list", {"name": "VIP"}, ctx(SENDGRID))
    assert (request.method, request.path, request.json) == (
        "POST",
        "/v3/marketing/lists",
        {"name": "VIP"},
    )
    assert SENDGRID.test is not None
    probe = SENDGRID.test(ctx(SENDGRID))
    assert (probe.method, probe.path, dict(probe.query)) == (
        "GET",
        "/v3/marketing/lists",
        {"page_size": "1"},
    )


def test_the_webhook_public_key_must_be_a_p256_key() -> None:
    settings = SendGridSettings.model_validate({"webhookPublicKey": SENDGRID_TEST_KEY})
    assert settings.webhook_public_key == SENDGRID_TEST_KEY
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    other_curve = base64.b64encode(
        p384.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    for bad in ("not base64!", base64.b64encode(b"not a key").decode(), other_curve):
        with pytest.raises(ValidationError):
            SendGridSettings.model_validate({"webhookPublicKey": bad})
