"""Amazon SES requests against AWS's own service model of SES v2 (botocore's ``sesv2``): each
request's parameters pass botocore's validator, botocore serializes them into exactly the body,
path and method we send, its endpoint resolver agrees on the host, and its SigV4 signer on the
signature."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from unittest import mock

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, ServiceModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import AwsSigV4Auth, CannotBuildRequest, ProviderResponse
from campaignflow.integrations.prepare import PreparedRequest, prepare
from campaignflow.integrations.providers.amazon_ses import (
    AMAZON_SES,
    decode_tag_value,
    encode_tag_value,
)
from tests.contract.conftest import NOW_UNIX, TRACKING, context
from tests.contract.strategies import emails, few, texts

CREDENTIALS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
               "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}  # fmt: skip
SETTINGS = {"region": "eu-west-1", "defaultFrom": "shop@example.com"}


@cache
def sesv2() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sesv2")


def botocore_request(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What botocore would send for ``params``; they must first pass its validator."""
    model: OperationModel = sesv2().operation_model(operation)
    report = ParamValidator().validate(dict(params), model.input_shape)
    assert not report.has_errors(), report.generate_report()
    return dict(create_serializer("rest-json").serialize_to_request(dict(params), model))


def _prepare(
    request: Any,
    settings: Mapping[str, Any] = SETTINGS,
    credentials: Mapping[str, str] = CREDENTIALS,
) -> PreparedRequest:
    """As the executor prepares it: the connection's settings (its region) and the time of
    sending passed (``conftest.prepared`` passes neither yet)."""
    ctx = context(AMAZON_SES, credentials, settings)
    base_url = AMAZON_SES.resolved_base_url(ctx.settings, ctx.credentials)
    return prepare(
        AMAZON_SES,
        request,
        base_url=base_url,
        credentials=credentials,
        idempotency_key=ctx.idempotency_key,
        settings=ctx.settings,
        now_unix=NOW_UNIX,
    )


def send(
    params: Mapping[str, Any],
    settings: Mapping[str, Any] = SETTINGS,
    tracking: Mapping[str, str] = TRACKING,
) -> PreparedRequest:
    ctx = context(AMAZON_SES, CREDENTIALS, settings, tracking=tracking)
    op = AMAZON_SES.operation("send_email")
    return _prepare(op.request(op.params.model_validate(dict(params)), ctx), settings)


def assert_botocore_agrees(request: PreparedRequest, operation: str = "SendEmail") -> None:
    body = json.loads(request.body or b"{}")
    expected = botocore_request(operation, body)
    assert request.method == expected["method"]
    assert request.url == f"https://email.eu-west-1.amazonaws.com{expected['url_path']}"
    assert json.loads(expected["body"] or b"{}") == body
    assert request.headers["Authorization"] == botocore_signature(request)


def botocore_signature(request: PreparedRequest) -> str:
    """botocore's SigV4 signature of the same request, keys, region and time."""
    unsigned = {
        k: v for k, v in request.headers.items() if k not in {"Authorization", "X-Amz-Date"}
    }
    aws = AWSRequest(method=request.method, url=request.url, headers=unsigned, data=request.body)
    keys = Credentials(CREDENTIALS["access_key_id"], CREDENTIALS["secret_access_key"])
    moment = datetime.fromtimestamp(NOW_UNIX, UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        SigV4Auth(keys, sesv2().signing_name, "eu-west-1").add_auth(aws)
    return str(aws.headers["Authorization"])


SENDS = [
    {"to": "alice@example.com", "subject": "Hi", "text": "Hello"},
    {
        "to": ["alice@example.com", "bob@example.org"],
        "cc": ["carol@example.net"],
        "bcc": ["audit@example.com"],
        "from": "news@example.com",
        "fromName": "Élise, from the Shop",
        "replyTo": ["help@example.com"],
        "subject": "Votre commande",
        "text": "Merci !",
        "html": "<p>Merci&nbsp;!</p>",
        "tags": {"campaign": "spring-2026", "kind": "receipt"},
        "configurationSet": "transactional",
    },
    {"to": "alice@example.com", "template": "order-shipped",
     "templateData": {"order": "A-1042", "items": [{"sku": "A1", "qty": 2}]}},
]  # fmt: skip


@pytest.mark.parametrize("params", SENDS)
def test_sends_are_what_botocore_would_send_from_awss_model(params: dict[str, Any]) -> None:
    request = send(params)
    assert_botocore_agrees(request)
    body = json.loads(request.body or b"{}")
    tags = {tag["Name"]: decode_tag_value(tag["Value"]) for tag in body["EmailTags"]}
    assert {k: tags[k] for k in TRACKING} == TRACKING  # echoed in the message's events
    assert body["Destination"]["ToAddresses"] == (
        [params["to"]] if isinstance(params["to"], str) else params["to"]
    )


def test_the_display_name_is_mime_encoded_and_the_default_configuration_set_applies() -> None:
    request = send(SENDS[1], {**SETTINGS, "configurationSet": "fallback"})
    body = json.loads(request.body or b"{}")
    assert body["FromEmailAddress"] == "=?utf-8?q?=C3=89lise=2C_from_the_Shop?= <news@example.com>"
    assert body["ConfigurationSetName"] == "transactional"  # the step's wins
    other = json.loads(send(SENDS[0], {**SETTINGS, "configurationSet": "fallback"}).body or b"")
    assert other["ConfigurationSetName"] == "fallback"


def test_the_region_picks_the_endpoint_as_botocore_resolves_it() -> None:
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        client = botocore.session.get_session().create_client(
            "sesv2", region_name=region, aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="x")  # fmt: skip
        settings = AMAZON_SES.settings.model_validate({"region": region})
        assert AMAZON_SES.resolved_base_url(settings, {}) == client.meta.endpoint_url
    assert isinstance(AMAZON_SES.auth, AwsSigV4Auth)
    assert AMAZON_SES.auth.service == sesv2().signing_name == "ses"


def test_the_connection_test_request_is_get_account() -> None:
    ctx = context(AMAZON_SES, CREDENTIALS, SETTINGS)
    assert AMAZON_SES.test is not None
    request = _prepare(AMAZON_SES.test(ctx))
    assert request.body is None
    assert_botocore_agrees(request, "GetAccount")


def test_temporary_credentials_send_their_session_token() -> None:
    credentials = {**CREDENTIALS, "session_token": "IQoJb3JpZ2luX2VjEXAMPLE"}
    ctx = context(AMAZON_SES, credentials, SETTINGS)
    op = AMAZON_SES.operation("send_email")
    request = _prepare(op.request(op.params.model_validate(SENDS[0]), ctx), credentials=credentials)
    assert request.headers["X-Amz-Security-Token"] == "IQoJb3JpZ2luX2VjEXAMPLE"
    assert "x-amz-security-token" in request.headers["Authorization"]


@few
@given(
    to=st.lists(emails, min_size=1, max_size=3, unique=True),
    sender=emails,
    subject=texts,
    html=texts,
    key=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60),
)
def test_any_accepted_message_passes_botocores_validator(
    to: list[str], sender: str, subject: str, html: str, key: str
) -> None:
    params = {"to": to, "from": sender, "subject": subject, "html": html}
    request = send(params, tracking={**TRACKING, "cf_send": key})
    assert_botocore_agrees(request)
    body = json.loads(request.body or b"{}")
    tags = {tag["Name"]: tag["Value"] for tag in body["EmailTags"]}
    assert decode_tag_value(tags["cf_send"]) == key


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80))
def test_tag_values_are_escaped_into_what_ses_allows_and_back(value: str) -> None:
    encoded = encode_tag_value(value)
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in encoded)
    assert decode_tag_value(encoded) == value


def test_a_connection_without_a_sender_cannot_send() -> None:
    with pytest.raises(CannotBuildRequest, match="defaultFrom"):
        send(SENDS[0], {"region": "eu-west-1"})


def test_the_message_id_is_the_provider_message_id() -> None:
    operation = AMAZON_SES.operation("send_email")
    response = ProviderResponse(200, {}, {"MessageId": "0102018f-example-000000"})
    assert operation.provider_message_id is not None
    assert operation.provider_message_id(response) == "0102018f-example-000000"
    assert operation.output(response) == {"status": 200, "messageId": "0102018f-example-000000"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "a@example", "subject": "s", "text": "t"}, "to"),
        ({"to": "a@example.com", "text": "t"}, "subject"),
        ({"to": "a@example.com", "subject": "s"}, "text"),
        ({"to": "a@example.com", "template": "t", "subject": "s"}, "template"),
        ({"to": "a@example.com", "template": "bad name"}, "template"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "templateData": {}}, "templateData"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": {"cf_send": "x"}}, "tags"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": {"k": "a b"}}, "tags.k"),
        ({"to": [f"u{i}@example.com" for i in range(40)], "subject": "s", "text": "t",
          "cc": [f"c{i}@example.com" for i in range(11)]}, "50"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "Destination": {}}, "Destination"),
    ],
)  # fmt: skip
def test_parameters_ses_would_refuse_are_refused_before_any_request(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        AMAZON_SES.operation("send_email").params.model_validate(params)
    located = {".".join(str(part) for part in error["loc"]) for error in refused.value.errors()}
    messages = " ".join(error["msg"] for error in refused.value.errors())
    assert field in located or field in messages, (located, messages)


@pytest.mark.parametrize(
    "settings", [{}, {"region": "Europe"}, {"region": "eu-west-1", "configurationSet": "a b"}]
)
def test_settings_need_a_valid_region(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AMAZON_SES.settings.model_validate(settings)
