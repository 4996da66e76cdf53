"""Mailchimp Transactional (Mandrill) and Mailchimp Marketing request builders."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from campaignflow.integrations.connector import ConnectionSettings, ProviderResponse
from campaignflow.integrations.prepare import MissingCredential, prepare
from campaignflow.integrations.providers.mailchimp_marketing import (
    MAILCHIMP_MARKETING,
    MailchimpCredentials,
    base_url_for,
    subscriber_hash,
)
from campaignflow.integrations.providers.mailchimp_transactional import MAILCHIMP_TRANSACTIONAL
from tests.unit.integrations._contexts import TRACKING, build, ctx

MANDRILL = MAILCHIMP_TRANSACTIONAL
MESSAGE = {"to": ["a@example.com", "b@example.com"], "from": "shop@example.com", "html": "<p/>"}

# --------------------------------------------------------------------------------- Mandrill


def test_mandrill_messages_carry_the_tracking_as_metadata_and_hide_recipients() -> None:
    request = build(MANDRILL, "send_message", MESSAGE, ctx(MANDRILL))
    assert (request.method, request.path) == ("POST", "/messages/send")
    message = request.json["message"]
    assert message["metadata"] == TRACKING
    assert message["preserve_recipients"] is False
    assert message["to"] == [
        {"email": "a@example.com", "type": "to"},
        {"email": "b@example.com", "type": "to"},
    ]
    assert (message["from_email"], message["html"]) == ("shop@example.com", "<p/>")


def test_the_api_key_goes_into_the_body_as_key() -> None:
    request = build(MANDRILL, "send_message", MESSAGE, ctx(MANDRILL))
    sent = prepare(
        MANDRILL, request, base_url=MANDRILL.base_url, credentials={"api_key": "md-1"},
        idempotency_key="k",
    )  # fmt: skip
    assert sent.url == "https://mandrillapp.com/api/1.0/messages/send"
    assert json.loads(sent.body or b"{}")["key"] == "md-1"
    assert "Authorization" not in sent.headers


def test_templates_merge_vars_and_options_use_mandrills_shapes() -> None:
    params = {
        "to": "a@example.com",
        "templateName": "welcome",
        "templateContent": {"header": "<h1>Hi</h1>"},
        "mergeVars": {"FNAME": "Ann"},
        "mergeLanguage": "handlebars",
        "replyTo": "help@example.com",
        "tags": ["welcome"],
    }
    settings = {"defaultFrom": "news@example.com", "defaultFromName": "News"}
    request = build(MANDRILL, "send_template", params, ctx(MANDRILL, settings=settings))
    assert request.path == "/messages/send-template"
    assert request.json["template_name"] == "welcome"
    assert request.json["template_content"] == [{"name": "header", "content": "<h1>Hi</h1>"}]
    message = request.json["message"]
    assert message["global_merge_vars"] == [{"name": "FNAME", "content": "Ann"}]
    assert message["headers"] == {"Reply-To": "help@example.com"}
    assert (message["from_email"], message["from_name"]) == ("news@example.com", "News")
    assert (message["merge_language"], message["tags"]) == ("handlebars", ["welcome"])


def test_mandrill_output_names_the_recipients_it_refused_despite_its_200() -> None:
    operation = MANDRILL.operation("send_message")
    response = ProviderResponse(
        200,
        {},
        [
            {"email": "a@example.com", "status": "sent", "_id": "m1"},
            {"email": "b@example.com", "status": "rejected", "_id": "m2", "reject_reason": "spam"},
        ],
    )
    output = operation.output(response)
    assert output["refused"] == ["b@example.com"]
    assert output["results"][1] == {
        "email": "b@example.com", "status": "rejected", "id": "m2", "rejectReason": "spam",
    }  # fmt: skip
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "m1"
    assert operation.provider_message_id(ProviderResponse(200, {}, "not a list")) is None


def test_mandrill_test_is_the_json_ping() -> None:
    assert MANDRILL.test is not None
    probe = MANDRILL.test(ctx(MANDRILL))
    assert (probe.method, probe.path, probe.json) == ("POST", "/users/ping2", {})


# -------------------------------------------------------------------------- Mailchimp Marketing


def test_the_subscriber_hash_is_the_md5_of_the_lower_cased_address() -> None:
    assert subscriber_hash("alice@example.com") == "c160f8cc69a4f0bf2b0362752353d060"
    assert subscriber_hash("Alice@Example.COM") == "c160f8cc69a4f0bf2b0362752353d060"


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("0123456789abcdef0123456789abcdef-us6", "https://us6.api.mailchimp.com/3.0"),
        ("0123456789abcdef0123456789abcdef-us21", "https://us21.api.mailchimp.com/3.0"),
    ],
)
def test_the_data_centre_comes_from_the_keys_suffix(key: str, url: str) -> None:
    assert base_url_for(ConnectionSettings(), {"api_key": key}) == url
    assert MAILCHIMP_MARKETING.resolved_base_url(ConnectionSettings(), {"api_key": key}) == url


def test_a_base_url_setting_wins_and_a_key_without_data_centre_is_refused() -> None:
    override = ConnectionSettings.model_validate({"baseUrl": "http://127.0.0.1:4010/"})
    resolved = MAILCHIMP_MARKETING.resolved_base_url(override, {"api_key": "k-us6"})
    assert resolved == "http://127.0.0.1:4010"
    with pytest.raises(MissingCredential, match="data-centre"):
        base_url_for(ConnectionSettings(), {"api_key": "0123456789abcdef"})
    with pytest.raises(ValidationError):
        MailchimpCredentials.model_validate({"api_key": "0123456789abcdef"})


def test_upsert_member_is_a_put_on_the_members_hash() -> None:
    params = {
        "listId": "L1",
        "email": "Alice@Example.com",
        "mergeFields": {"FNAME": "Alice"},
        "skipMergeValidation": True,
    }
    request = build(MAILCHIMP_MARKETING, "upsert_member", params, ctx(MAILCHIMP_MARKETING))
    assert (request.method, request.path) == (
        "PUT",
        "/lists/L1/members/c160f8cc69a4f0bf2b0362752353d060",
    )
    assert dict(request.query) == {"skip_merge_validation": "true"}
    assert request.json == {
        "email_address": "Alice@Example.com",
        "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Alice"},
    }


def test_update_tags_marks_added_tags_active_and_removed_ones_inactive() -> None:
    params = {"listId": "L1", "email": "alice@example.com", "add": ["vip"], "remove": ["trial"]}
    request = build(MAILCHIMP_MARKETING, "update_tags", params, ctx(MAILCHIMP_MARKETING))
    assert request.path == "/lists/L1/members/c160f8cc69a4f0bf2b0362752353d060/tags"
    assert request.json == {
        "tags": [{"name": "vip", "status": "active"}, {"name": "trial", "status": "inactive"}],
        "is_syncing": False,
    }


def test_basic_auth_sends_the_api_key_credential_as_password() -> None:
    request = build(
        MAILCHIMP_MARKETING, "upsert_member", {"listId": "L1", "email": "a@example.com"},
        ctx(MAILCHIMP_MARKETING),
    )  # fmt: skip
    sent = prepare(
        MAILCHIMP_MARKETING, request, base_url="https://us6.api.mailchimp.com/3.0",
        credentials={"api_key": "abc-us6"}, idempotency_key=None,
    )  # fmt: skip
    scheme, _, token = sent.headers["Authorization"].partition(" ")
    assert (scheme, base64.b64decode(token)) == ("Basic", b"campaignflow:abc-us6")
    with pytest.raises(MissingCredential, match="'api_key'"):
        prepare(
            MAILCHIMP_MARKETING, request, base_url="https://x", credentials={"password": "p"},
            idempotency_key=None,
        )  # fmt: skip
