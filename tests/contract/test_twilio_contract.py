"""Twilio requests against Twilio's own OpenAPI file (twilio-oai ``twilio_api_v2010.json``,
``specs/twilio/``): the path and its parameters, the Basic security scheme, and the form body,
decoded into an object and validated against the operation's request schema."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import CannotBuildRequest, ProviderResponse
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.twilio import E164_PATTERN, SENDER_PATTERN, TWILIO
from tests.contract.conftest import TRACKING, context, operation_request, prepared
from tests.contract.strategies import few

SPEC = Path(__file__).parent / "specs" / "twilio" / "twilio_api_v2010.json.gz"
SPEC_SHA256 = "475b69553e34e797af05d34679cdad3bc3b8b4b8b92e6ac044fa6ebc255bf052"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
ACCOUNT = "/2010-04-01/Accounts/{Sid}.json"
SID = "AC" + "0123456789abcdef" * 2
KEY_SID = "SK" + "fedcba9876543210" * 2
SERVICE = "MG" + "00112233445566778899aabbccddeeff"
TOKEN = {"account_sid": SID, "auth_token": "contract-test-token"}
CALLBACK = "https://hooks.example.com/api/v1/webhooks/twilio?connection=sms"


@cache
def spec() -> dict[str, Any]:
    raw = gzip.decompress(SPEC.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SPEC_SHA256, "specs/twilio: file changed"
    return dict(json.loads(raw))


@cache
def form_validator() -> jsonschema.Draft7Validator:
    """The Messages POST form schema, stricter than the spec in one way: no field the spec
    does not name (Twilio ignores unknown fields, which would hide a misspelt one)."""
    operation = spec()["paths"][MESSAGES]["post"]
    schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    document = {**schema, "additionalProperties": False, "components": spec()["components"]}
    checker = jsonschema.FormatChecker()
    checker.checks("phone-number")(lambda value: bool(re.fullmatch(SENDER_PATTERN, value)))
    return jsonschema.Draft7Validator(document, format_checker=checker)


def decoded_form(body: bytes) -> dict[str, Any]:
    """The form as an object, each value typed as the spec's schema types it."""
    properties = spec()["paths"][MESSAGES]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]["schema"]["properties"]  # fmt: skip
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True):
        values.setdefault(name, []).append(value)
    document: dict[str, Any] = {}
    for name, found in values.items():
        kind = properties.get(name, {}).get("type")
        if kind == "array":
            document[name] = found
        elif len(found) != 1:
            document[name] = found  # a scalar repeated: the schema will refuse it
        elif kind == "integer" and found[0].isdigit():
            document[name] = int(found[0])
        elif kind == "boolean" and found[0] in {"true", "false"}:
            document[name] = found[0] == "true"
        else:
            document[name] = found[0]
    return document


def _path_matches(template: str, method: str, request: PreparedRequest) -> bool:
    """The request's path fits ``template`` with each path parameter matching its pattern."""
    operation = spec()["paths"][template][method.lower()]
    patterns = {p["name"]: p["schema"]["pattern"].strip("^$") for p in operation["parameters"]
                if p["in"] == "path"}  # fmt: skip
    regex = re.escape(template)
    for name, pattern in patterns.items():
        regex = regex.replace(re.escape("{" + name + "}"), f"(?:{pattern})")
    return request.method == method and re.fullmatch(regex, urlsplit(request.url).path) is not None


def violations(request: PreparedRequest) -> list[str]:
    problems = [] if _path_matches(MESSAGES, "POST", request) else ["path or method"]
    if request.headers.get("Content-Type") != "application/x-www-form-urlencoded":
        problems.append("content type")
    document = decoded_form(request.body or b"")
    problems += [f"{e.json_path}: {e.message}" for e in form_validator().iter_errors(document)]
    return problems


def basic_user(request: PreparedRequest) -> str:
    scheme = spec()["components"]["securitySchemes"]["accountSid_authToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "basic")
    kind, _, token = request.headers["Authorization"].partition(" ")
    assert kind == "Basic"
    return base64.b64decode(token).decode().partition(":")[0]


def _request(params: Mapping[str, Any], credentials: Mapping[str, str] = TOKEN,
             settings: Mapping[str, Any] | None = None) -> PreparedRequest:  # fmt: skip
    TWILIO.credentials.model_validate(credentials)
    ctx = context(TWILIO, credentials, settings)
    request = operation_request(TWILIO, "send_sms", params, ctx)
    assert request.url.startswith("https://api.twilio.com/2010-04-01/")
    return request


SENDS = [
    {"to": "+14155552671", "from": "+14155550100", "body": "Your code is 123456"},
    {"to": "+447700900123", "from": "ACMEShop", "body": "Sale: 20% off & free shipping!"},
    {"to": "+33612345678", "messagingServiceSid": SERVICE, "body": "Bonjour 👋 — à bientôt",
     "mediaUrl": ["https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg?x=1&y=2"],
     "validityPeriod": 600, "shortenUrls": True},
    {"to": "+14155552671", "from": "55555", "body": "Short code"},
]  # fmt: skip


def test_the_spec_file_is_twilios_and_names_our_endpoints() -> None:
    assert spec()["info"]["title"] == "Twilio - Api"
    assert "post" in spec()["paths"][MESSAGES]
    assert "get" in spec()["paths"][ACCOUNT]


@pytest.mark.parametrize("params", SENDS)
def test_sends_satisfy_the_spec(params: dict[str, Any]) -> None:
    request = _request(params)
    assert violations(request) == []
    assert basic_user(request) == SID
    sent = decoded_form(request.body or b"")
    assert sent["To"] == params["to"]
    assert sent["Body"] == params["body"]
    assert sent.get("MediaUrl") == params.get("mediaUrl")


def test_the_status_callback_carries_the_steps_tracking_values() -> None:
    request = _request(SENDS[0], settings={"statusCallbackUrl": CALLBACK})
    assert violations(request) == []
    callback = urlsplit(decoded_form(request.body or b"")["StatusCallback"])
    assert callback.geturl().startswith(CALLBACK + "&")
    query = {name: values[0] for name, values in parse_qs(callback.query).items()}
    assert query == {"connection": "sms", **TRACKING}


def test_an_api_key_authenticates_instead_of_the_account() -> None:
    credentials = {"account_sid": SID, "api_key_sid": KEY_SID, "api_key_secret": "s3cret"}
    request = _request(SENDS[0], credentials)
    assert basic_user(request) == KEY_SID
    assert base64.b64decode(request.headers["Authorization"][6:]).decode() == f"{KEY_SID}:s3cret"
    assert f"/Accounts/{SID}/" in request.url  # the account is still the one in the path


def test_the_connections_default_sender_or_service_is_used() -> None:
    by_number = _request(
        {"to": "+14155552671", "body": "x"}, settings={"defaultFrom": "+15005550006"}
    )
    assert decoded_form(by_number.body or b"")["From"] == "+15005550006"
    by_service = _request({"to": "+14155552671", "body": "x"},
                          settings={"messagingServiceSid": SERVICE})  # fmt: skip
    sent = decoded_form(by_service.body or b"")
    assert sent["MessagingServiceSid"] == SERVICE
    assert "From" not in sent
    assert violations(by_number) == violations(by_service) == []


def test_a_step_without_any_sender_fails_before_sending() -> None:
    with pytest.raises(CannotBuildRequest, match="messagingServiceSid"):
        _request({"to": "+14155552671", "body": "x"})


@few
@given(
    to=st.from_regex(E164_PATTERN, fullmatch=True),
    body=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=1600
    ),
)
def test_any_accepted_number_and_text_arrive_intact(to: str, body: str) -> None:
    request = _request({"to": to, "from": "+14155550100", "body": body})
    assert violations(request) == []
    sent = decoded_form(request.body or b"")
    assert (sent["To"], sent["Body"]) == (to, body)


def test_the_connection_test_request_reads_the_account() -> None:
    ctx = context(TWILIO, TOKEN)
    assert TWILIO.test is not None
    request = prepared(TWILIO, TWILIO.test(ctx), ctx)
    assert _path_matches(ACCOUNT, "GET", request)
    assert basic_user(request) == SID


def test_the_message_sid_is_the_provider_message_id() -> None:
    response = ProviderResponse(201, {}, {"sid": "SM" + "a" * 32, "status": "queued",
                                          "num_segments": "1"})  # fmt: skip
    operation = TWILIO.operation("send_sms")
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "SM" + "a" * 32
    assert operation.output(response)["messageStatus"] == "queued"
    assert operation.recipients is not None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"Body": "x"}, "'To' is a required property"),
        ({"To": "+14155552671", "MessagingServiceSid": "MG123"}, "does not match"),
        ({"To": "+14155552671", "ValidityPeriod": "600"}, "is not of type 'integer'"),
        ({"To": "+14155552671", "Bodyy": "typo"}, "Additional properties"),
        ({"To": "4155552671;drop"}, "is not a 'phone-number'"),
    ],
)
def test_the_spec_refuses_what_twilio_would_refuse(document: dict[str, Any], expected: str) -> None:
    errors = [error.message for error in form_validator().iter_errors(document)]
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "4155552671", "from": "+14155550100", "body": "x"}, "to"),
        ({"to": "+04155552671", "from": "+14155550100", "body": "x"}, "to"),
        ({"to": "+14155552671", "from": "TooLongSenderId", "body": "x"}, "from"),
        ({"to": "+14155552671", "from": "+14155550100", "body": ""}, "body"),
        ({"to": "+14155552671", "from": "+14155550100", "body": "x" * 1601}, "body"),
        ({"to": "+14155552671", "from": "+1415555", "body": "x",
          "mediaUrl": ["http://cdn.example.com/a.png"]}, "mediaUrl.0"),
        ({"to": "+14155552671", "from": "+1415555", "body": "x",
          "mediaUrl": [f"https://cdn.example.com/{i}.png" for i in range(11)]}, "mediaUrl"),
        ({"to": "+14155552671", "from": "+1415555", "body": "x", "validityPeriod": 36001},
         "validityPeriod"),
        ({"to": "+14155552671", "from": "+1415555", "body": "x", "shortenUrls": True},
         "shortenUrls"),
        ({"to": "+14155552671", "from": "123456789", "body": "x"}, "from"),
        ({"to": "+14155552671", "from": "+1415555", "body": "x", "statusCallback": CALLBACK},
         "statusCallback"),
    ],
)  # fmt: skip
def test_parameters_twilio_would_refuse_are_refused_before_any_request(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        TWILIO.operation("send_sms").params.model_validate(params)
    located = {".".join(str(part) for part in error["loc"]) for error in refused.value.errors()}
    messages = " ".join(error["msg"] for error in refused.value.errors())
    assert field in located or field in messages, (located, messages)


@pytest.mark.parametrize(
    "credentials",
    [
        {"account_sid": SID},
        {"account_sid": SID, "auth_token": "t", "api_key_sid": KEY_SID, "api_key_secret": "s"},
        {"account_sid": SID, "api_key_sid": KEY_SID},
        {"account_sid": "AC123", "auth_token": "t"},
    ],
)
def test_credentials_need_exactly_one_way_to_authenticate(credentials: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TWILIO.credentials.model_validate(credentials)
