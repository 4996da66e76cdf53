"""Microsoft Teams, Mailgun and Postmark requests against JSON Schemas written from each
provider's public API reference (none publishes a machine-readable spec in a package).

Each schema in ``messaging_schemas/`` describes one endpoint's request and names it in
``x-endpoint``; its ``$comment`` cites the reference page. Mailgun's form is decoded into an
object first (a repeated field becomes an array, its JSON-valued fields are parsed).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from referencing import Registry, Resource

from campaignflow.integrations.connector import CannotBuildRequest, ProviderResponse
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.mailgun import MAILGUN
from campaignflow.integrations.providers.postmark import POSTMARK
from campaignflow.integrations.providers.teams import MAX_PAYLOAD_BYTES, TEAMS
from tests.contract.conftest import TRACKING, context, operation_request, prepared
from tests.contract.strategies import emails, few, texts

SCHEMAS = Path(__file__).parent / "messaging_schemas"
TEAMS_URL = (
    "https://prod-00.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sig=s3cr3t"
)
MAILGUN_SETTINGS = {"domain": "mg.example.com", "defaultFrom": "shop@mg.example.com"}
POSTMARK_KEY = {"api_key": "server-token-0000"}
JSON_FIELDS = {"t:variables", "recipient-variables"}
ARRAY_FIELDS = {"to", "cc", "bcc", "o:tag"}


@cache
def schemas() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in
            sorted(SCHEMAS.glob("*.json"))}  # fmt: skip


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas().values()
    )
    return jsonschema.Draft202012Validator(
        schemas()[name],
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def errors(name: str, document: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(document)]


def mailgun_form(body: bytes) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True):
        if name in JSON_FIELDS:
            document[name] = json.loads(value)
        elif name in ARRAY_FIELDS:
            document.setdefault(name, []).append(value)
        else:
            assert name not in document, f"{name} sent twice"
            document[name] = value
    return document


def test_every_schema_is_valid_cites_its_source_and_names_its_endpoint() -> None:
    assert set(schemas()) == {"teams_webhook_message", "mailgun_messages", "postmark_email",
                              "postmark_email_batch", "postmark_email_with_template"}  # fmt: skip
    for schema in schemas().values():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "https://" in schema["$comment"]
        assert "2026-" in schema["$comment"]
        assert set(schema["x-endpoint"]) == {"method", "path"}


# ------------------------------------------------------------------------------------ Teams


def teams(params: Mapping[str, Any]) -> PreparedRequest:
    TEAMS.credentials.model_validate({"webhook_url": TEAMS_URL})  # a Workflows URL is accepted
    ctx = context(TEAMS, {"webhook_url": TEAMS_URL})
    request = operation_request(TEAMS, "post_message", params, ctx)
    assert request.url == TEAMS_URL  # the webhook URL as given, its signature query intact
    assert "Authorization" not in request.headers
    return request


CARD = {
    "type": "AdaptiveCard",
    "version": "1.5",
    "body": [
        {"type": "TextBlock", "text": "Order shipped", "weight": "Bolder", "size": "Large"},
        {"type": "FactSet", "facts": [{"title": "Order", "value": "A-1042"}]},
    ],
    "actions": [{"type": "Action.OpenUrl", "title": "Track", "url": "https://example.com/t"}],
}


@pytest.mark.parametrize(
    "params",
    [{"text": "Campaign **spring** is live"}, {"text": "Done", "title": "Nightly sync"},
     {"card": CARD}],
)  # fmt: skip
def test_teams_messages_match_the_schema(params: dict[str, Any]) -> None:
    body = json.loads(teams(params).body or b"{}")
    assert errors("teams_webhook_message", body) == []
    card = body["attachments"][0]["content"]
    if "card" in params:
        assert card == CARD  # sent as it is
    else:
        assert card["body"][-1] == {"type": "TextBlock", "text": params["text"], "wrap": True}


@few
@given(text=st.text(min_size=1, max_size=2000), title=st.none() | st.text(min_size=1, max_size=200))
def test_any_accepted_teams_text_matches_the_schema(text: str, title: str | None) -> None:
    body = json.loads(teams({"text": text, "title": title}).body or b"{}")
    assert errors("teams_webhook_message", body) == []
    assert [block["text"] for block in body["attachments"][0]["content"]["body"]][-1] == text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "give text or card"),
        ({"text": "a", "card": CARD}, "give text or card"),
        ({"card": {**CARD, "type": "MessageCard"}}, "card.type"),
        ({"card": {**CARD, "version": "2.0"}}, "card.version"),
        ({"card": {**CARD, "body": []}}, "card.body"),
        ({"card": {**CARD, "body": [{"text": "no type"}]}}, "card.body"),
        ({"card": CARD, "title": "x"}, "title"),
        ({"text": "x" * 20_001}, "at most 20000"),
        ({"text": "é" * 15_000}, f"{MAX_PAYLOAD_BYTES // 1024} KB"),
        ({"text": "hi", "webhookUrl": "https://evil.example.com"}, "Extra inputs"),
    ],
)
def test_teams_parameters_teams_would_not_render_are_refused(
    params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        TEAMS.operation("post_message").params.model_validate(params)


def test_the_teams_schema_refuses_a_message_card() -> None:
    legacy = {"@type": "MessageCard", "@context": "http://schema.org/extensions", "text": "x"}
    assert errors("teams_webhook_message", legacy)


# ---------------------------------------------------------------------------------- Mailgun


def mailgun(params: Mapping[str, Any], settings: Mapping[str, Any] = MAILGUN_SETTINGS
            ) -> PreparedRequest:  # fmt: skip
    ctx = context(MAILGUN, {"api_key": "key-contract"}, settings)
    return operation_request(MAILGUN, "send_message", params, ctx)


MAILGUN_SENDS = [
    {"to": "alice@example.com", "subject": "Hi", "text": "Hello"},
    {"to": ["alice@example.com", "bob@example.org"], "from": "news@mg.example.com",
     "fromName": "Shop, Inc.", "subject": "Sale", "html": "<b>20% off</b>", "text": "20% off",
     "tags": ["sale", "spring 2026"], "variables": {"campaign": "spring"},
     "replyTo": "help@example.com", "trackOpens": True, "trackClicks": "htmlonly",
     "sendAt": 1_790_003_600, "testMode": True},
    {"to": "alice@example.com", "template": "order-shipped", "templateVersion": "v2",
     "templateVariables": {"order": "A-1042", "items": [{"sku": "A1"}]}},
]  # fmt: skip


@pytest.mark.parametrize("params", MAILGUN_SENDS)
def test_mailgun_sends_match_the_schema_and_carry_the_tracking_variables(
    params: dict[str, Any],
) -> None:
    request = mailgun(params)
    assert request.method == "POST"
    assert urlsplit(request.url).path == "/v3/mg.example.com/messages"
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"api:key-contract").decode()
    )
    form = mailgun_form(request.body or b"")
    assert errors("mailgun_messages", form) == []
    assert {key[2:]: value for key, value in form.items() if key.startswith("v:cf_")} == TRACKING


def test_mailgun_sends_each_recipient_their_own_message() -> None:
    form = mailgun_form(mailgun(MAILGUN_SENDS[1]).body or b"")
    assert form["to"] == ["alice@example.com", "bob@example.org"]
    assert form["recipient-variables"] == {"alice@example.com": {}, "bob@example.org": {}}
    assert form["from"] == '"Shop, Inc." <news@mg.example.com>'  # the comma quoted
    assert form["o:deliverytime"] == "Mon, 21 Sep 2026 15:13:20 GMT"
    single = mailgun_form(mailgun(MAILGUN_SENDS[0]).body or b"")
    assert "recipient-variables" not in single


def test_the_eu_region_uses_mailguns_eu_host() -> None:
    assert mailgun(MAILGUN_SENDS[0]).url.startswith("https://api.mailgun.net/v3/")
    eu = mailgun(MAILGUN_SENDS[0], {**MAILGUN_SETTINGS, "region": "eu"})
    assert eu.url.startswith("https://api.eu.mailgun.net/v3/mg.example.com/")


@few
@given(to=st.lists(emails, min_size=1, max_size=3, unique=True), subject=texts, html=texts)
def test_any_accepted_mailgun_message_matches_the_schema(
    to: list[str], subject: str, html: str
) -> None:
    form = mailgun_form(mailgun({"to": to, "subject": subject, "html": html}).body or b"")
    assert errors("mailgun_messages", form) == []
    assert (form["to"], form["subject"], form["html"]) == (to, subject, html)


def test_the_mailgun_connection_test_reads_the_domain() -> None:
    ctx = context(MAILGUN, {"api_key": "key-contract"}, MAILGUN_SETTINGS)
    assert MAILGUN.test is not None
    request = prepared(MAILGUN, MAILGUN.test(ctx), ctx)
    assert (request.method, request.url) == (
        "GET",
        "https://api.mailgun.net/v4/domains/mg.example.com",
    )


def test_the_mailgun_message_id_loses_its_brackets() -> None:
    response = ProviderResponse(200, {}, {"id": "<20261129.1@mg.example.com>", "message": "Queued"})
    operation = MAILGUN.operation("send_message")
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "20261129.1@mg.example.com"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"from": "a@x.io", "to": ["b@x.io"], "subject": "s"}, "is not valid under any"),
        ({"from": "a@x.io", "to": ["b@x.io"], "text": "t", "o:tag": ["a", "b", "c", "d"]},
         "is too long"),
        ({"from": "a@x.io", "to": ["b@x.io"], "text": "t", "o:tracking-opens": "maybe"},
         "is not one of"),
        ({"from": "a@x.io", "to": ["b@x.io"], "text": "t", "o:deliverytime": "2026-11-29"},
         "does not match"),
        ({"from": "a@x.io", "to": ["b@x.io"], "text": "t", "o:tags": ["x"]},
         "'o:tags' does not match any of the regexes"),
    ],
)  # fmt: skip
def test_the_mailgun_schema_refuses_what_mailgun_would_refuse(document: Any, expected: str) -> None:
    assert any(expected in error for error in errors("mailgun_messages", document))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "a@example.com", "text": "t"}, "subject"),
        ({"to": "a@example.com", "subject": "s"}, "text"),
        ({"to": "a@example.com", "template": "t", "text": "x"}, "template"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "templateVariables": {}},
         "templateVariables"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": ["a", "b", "c", "d"]},
         "tags"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": ["a", "a"]}, "tags"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": ["é"]}, "tags.0"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "variables": {"cf_send": "x"}},
         "variables"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "trackClicks": "sometimes"},
         "trackClicks"),
        ({"to": ["a@example.com", "not-an-address"], "subject": "s", "text": "t"}, "to"),
    ],
)  # fmt: skip
def test_mailgun_parameters_are_refused_before_any_request(
    params: dict[str, Any], field: str
) -> None:
    _refused(MAILGUN.operation("send_message").params, params, field)


def test_a_mailgun_connection_needs_a_domain_and_a_known_region() -> None:
    for settings in ({}, {"domain": "not a domain"}, {"domain": "mg.example.com", "region": "ap"}):
        with pytest.raises(ValidationError):
            MAILGUN.settings.model_validate(settings)
    with pytest.raises(CannotBuildRequest, match="defaultFrom"):
        mailgun(MAILGUN_SENDS[0], {"domain": "mg.example.com"})


# --------------------------------------------------------------------------------- Postmark


def postmark(operation: str, params: Mapping[str, Any]) -> PreparedRequest:
    ctx = context(POSTMARK, POSTMARK_KEY, {"defaultFrom": "shop@example.com"})
    request = operation_request(POSTMARK, operation, params, ctx)
    assert request.headers["X-Postmark-Server-Token"] == POSTMARK_KEY["api_key"]
    assert request.url.startswith("https://api.postmarkapp.com/")
    return request


SCHEMA_OF = {"/email": "postmark_email", "/email/batch": "postmark_email_batch",
             "/email/withTemplate": "postmark_email_with_template"}  # fmt: skip
EMAIL = {"to": "alice@example.com", "subject": "Receipt", "text": "Thanks"}
FULL_EMAIL = {
    "to": ["alice@example.com", "bob@example.org"], "cc": ["carol@example.net"],
    "bcc": ["audit@example.com"], "from": "billing@example.com", "fromName": "Billing, ACME",
    "replyTo": "help@example.com", "subject": "Invoice", "html": "<p>Hi</p>", "text": "Hi",
    "tag": "invoice", "trackOpens": True, "trackLinks": "HtmlAndText",
    "metadata": {"invoice": "INV-7", "client-id": "42"}, "messageStream": "outbound",
}  # fmt: skip
POSTMARK_SENDS = [
    ("send_email", EMAIL),
    ("send_email", FULL_EMAIL),
    ("send_email_batch", {"messages": [EMAIL, FULL_EMAIL, {**EMAIL, "to": "dan@example.com"}]}),
    ("send_with_template", {"to": "alice@example.com", "templateAlias": "welcome",
                            "templateModel": {"name": "Alice", "items": [1, 2]}}),
    ("send_with_template", {"to": "alice@example.com", "templateId": 1234567, "inlineCss": False,
                            "tag": "welcome", "metadata": {"k": "v"}}),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "params"), POSTMARK_SENDS)
def test_postmark_sends_match_the_schema_and_carry_the_tracking_metadata(
    operation: str, params: dict[str, Any]
) -> None:
    request = postmark(operation, params)
    body = json.loads(request.body or b"null")
    assert errors(SCHEMA_OF[urlsplit(request.url).path], body) == []
    for message in body if isinstance(body, list) else [body]:
        assert {k: v for k, v in message["Metadata"].items() if k.startswith("cf_")} == TRACKING


def test_postmark_addresses_and_names_are_formatted_as_postmark_reads_them() -> None:
    body = json.loads(postmark("send_email", FULL_EMAIL).body or b"{}")
    assert body["To"] == "alice@example.com, bob@example.org"
    assert body["From"] == '"Billing, ACME" <billing@example.com>'
    assert body["Metadata"] == {"invoice": "INV-7", "client-id": "42", **TRACKING}


def test_a_tracking_value_postmark_cannot_hold_is_left_out() -> None:
    ctx = context(POSTMARK, POSTMARK_KEY, {"defaultFrom": "shop@example.com"},
                  tracking={**TRACKING, "cf_send": "s" * 81})  # fmt: skip
    body = json.loads(operation_request(POSTMARK, "send_email", EMAIL, ctx).body or b"{}")
    assert "cf_send" not in body["Metadata"]
    assert body["Metadata"]["cf_node"] == TRACKING["cf_node"]
    assert errors("postmark_email", body) == []


@few
@given(to=st.lists(emails, min_size=1, max_size=50, unique=True), subject=texts, text=texts)
def test_any_accepted_postmark_email_matches_the_schema(
    to: list[str], subject: str, text: str
) -> None:
    body = json.loads(postmark("send_email", {"to": to, "subject": subject, "text": text}).body
                      or b"{}")  # fmt: skip
    assert errors("postmark_email", body) == []
    assert body["To"].split(", ") == to


def test_postmark_results_and_refusals_are_reported_per_message() -> None:
    batch = POSTMARK.operation("send_email_batch")
    response = ProviderResponse(200, {}, [
        {"ErrorCode": 0, "Message": "OK", "MessageID": "b7bc2f4a-e38e", "To": "a@example.com"},
        {"ErrorCode": 406, "Message": "Inactive recipient", "To": "b@example.com"},
    ])  # fmt: skip
    output = batch.output(response)
    assert output["refused"] == [1]
    assert output["results"][1]["errorCode"] == 406
    assert batch.provider_message_id is not None
    assert batch.provider_message_id(response) == "b7bc2f4a-e38e"
    single = POSTMARK.operation("send_email")
    assert single.provider_message_id is not None
    accepted = ProviderResponse(200, {}, {"ErrorCode": 0, "MessageID": "m-1"})
    assert single.provider_message_id(accepted) == "m-1"


def test_the_postmark_connection_test_reads_the_server() -> None:
    ctx = context(POSTMARK, POSTMARK_KEY)
    assert POSTMARK.test is not None
    request = prepared(POSTMARK, POSTMARK.test(ctx), ctx)
    assert (request.method, request.url) == ("GET", "https://api.postmarkapp.com/server")


@pytest.mark.parametrize(
    ("schema", "document", "expected"),
    [
        ("postmark_email", {"From": "a@x.io", "To": "b@x.io", "Subject": "s"},
         "is not valid under any"),
        ("postmark_email", {"From": "a@x.io", "To": "b@x.io", "TextBody": "t",
                            "TrackLinks": "All"}, "is not one of"),
        ("postmark_email", {"From": "a@x.io", "To": "b@x.io", "TextBody": "t",
                            "Metadata": {"k" * 21: "v"}}, "is too long"),
        ("postmark_email", {"From": "a@x.io", "To": ", ".join(["b@x.io"] * 51), "TextBody": "t"},
         "does not match"),
        ("postmark_email_batch", [], "should be non-empty"),
        ("postmark_email_with_template", {"From": "a@x.io", "To": "b@x.io", "TemplateModel": {},
                                          "TemplateId": 1, "TemplateAlias": "w"},
         "is valid under each of"),
        ("postmark_email_with_template", {"From": "a@x.io", "To": "b@x.io", "TemplateId": 1,
                                          "TemplateModel": {}, "HtmlBody": "x"},
         "Additional properties"),
    ],
)  # fmt: skip
def test_the_postmark_schemas_refuse_what_postmark_would_refuse(
    schema: str, document: Any, expected: str
) -> None:
    assert any(expected in error for error in errors(schema, document)), errors(schema, document)


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("send_email", {"to": "a@example.com", "text": "t"}, "subject"),
        ("send_email", {"to": "a@example.com", "subject": "s"}, "html or text"),
        ("send_email", {**EMAIL, "trackLinks": "All"}, "trackLinks"),
        ("send_email", {**EMAIL, "metadata": {"cf_send": "x"}}, "metadata"),
        ("send_email", {**EMAIL, "metadata": {f"k{i}": "v" for i in range(7)}}, "metadata"),
        ("send_email", {**EMAIL, "metadata": {"a": "v", "A": "w"}}, "metadata"),
        ("send_email", {**EMAIL, "metadata": {"k": "v" * 81}}, "metadata.k"),
        ("send_email", {**EMAIL, "to": [f"u{i}@example.com" for i in range(50)],
                        "cc": ["c@example.com"]}, "50"),
        ("send_email", {**EMAIL, "messageStream": "Outbound Stream"}, "messageStream"),
        ("send_email_batch", {"messages": []}, "messages"),
        ("send_email_batch", {"messages": [EMAIL] * 501}, "messages"),
        ("send_email_batch", {"messages": [EMAIL, {"to": "a@example.com", "text": "t"}]},
         "messages.1.subject"),
        ("send_with_template", {"to": "a@example.com"}, "templateId or templateAlias"),
        ("send_with_template", {"to": "a@example.com", "templateId": 0}, "templateId"),
    ],
)  # fmt: skip
def test_postmark_parameters_are_refused_before_any_request(
    operation: str, params: dict[str, Any], field: str
) -> None:
    _refused(POSTMARK.operation(operation).params, params, field)


def _refused(model: Any, params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(params)
    located = {".".join(str(part) for part in error["loc"]) for error in refused.value.errors()}
    messages = " ".join(error["msg"] for error in refused.value.errors())
    assert field in located or field in messages, (located, messages)
