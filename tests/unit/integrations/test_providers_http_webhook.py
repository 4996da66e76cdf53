"""The generic ``http`` connector (auth chosen by the connection) and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from pydantic import ValidationError

from campaignflow.integrations.connector import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CannotBuildRequest,
    NoAuth,
)
from campaignflow.integrations.prepare import MissingCredential, prepare
from campaignflow.integrations.providers.generic_http import HTTP, HttpCredentials, auth_for
from campaignflow.integrations.providers.webhook import (
    SIGNATURE_HEADER,
    WEBHOOK,
    sign,
    verify_outgoing_signature,
)
from tests.unit.integrations._contexts import NOW_UNIX, build, ctx

SECRET = "whsec_0123456789abcdef0123456789abcdef"
# printf '%s' '1790000000.{"type":"ping"}' | openssl dgst -sha256 -hmac "$SECRET"
PING_DIGEST = "2a345e26e973f97f6bef0bf142c7ec12e0ae8cbf60abd007f4d4ff76559a8cc3"
API = "https://api.example.com/v2"

# ------------------------------------------------------------------------------------- http


@pytest.mark.parametrize(
    ("credentials", "scheme"),
    [
        ({}, NoAuth()),
        ({"scheme": "none"}, NoAuth()),
        ({"scheme": "bearer", "token": "t"}, BearerAuth()),
        ({"scheme": "basic", "username": "u", "password": "p"}, BasicAuth()),
        ({"scheme": "api_key", "api_key": "k"}, ApiKeyAuth("header", "X-API-Key")),
        (
            {"scheme": "api_key", "api_key": "k", "header_name": "X-Key"},
            ApiKeyAuth("header", "X-Key"),
        ),
    ],
)
def test_the_connection_chooses_the_auth_scheme(credentials: dict[str, str], scheme: Any) -> None:
    assert auth_for(credentials) == scheme
    assert HTTP.resolved_auth(credentials) == scheme


def test_prepare_applies_the_chosen_scheme() -> None:
    request = build(HTTP, "request", {"path": "/orders"}, ctx(HTTP, settings={"baseUrl": API}))
    credentials = {"scheme": "api_key", "api_key": "k-1", "header_name": "X-Key"}
    sent = prepare(HTTP, request, base_url=API, credentials=credentials, idempotency_key="i-1")
    assert sent.url == f"{API}/orders"
    assert sent.headers["X-Key"] == "k-1"
    assert sent.headers["Idempotency-Key"] == "i-1"
    with pytest.raises(MissingCredential):
        prepare(HTTP, request, base_url=API, credentials={"scheme": "bearer"}, idempotency_key=None)


@pytest.mark.parametrize(
    "credentials",
    [
        {"scheme": "bearer"},
        {"scheme": "basic", "username": "u"},
        {"scheme": "api_key"},
        {"scheme": "none", "token": "t"},  # a stray secret is a mistake, not ignored
        {"scheme": "bearer", "token": "t", "password": "p"},
        {"scheme": "api_key", "api_key": "k", "header_name": "X Key"},
        {"scheme": "digest"},
    ],
)
def test_credentials_must_fit_their_scheme(credentials: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        HttpCredentials.model_validate(credentials)


def test_a_path_needs_the_connections_base_url() -> None:
    with pytest.raises(CannotBuildRequest, match="baseUrl"):
        build(HTTP, "request", {"path": "/orders"}, ctx(HTTP))


def test_credentials_are_never_sent_to_another_origin() -> None:
    bearer = {"scheme": "bearer", "token": "t"}
    same = ctx(HTTP, bearer, {"baseUrl": API})
    request = build(HTTP, "request", {"url": "https://API.example.com/other?x=1"}, same)
    assert request.url == "https://API.example.com/other?x=1"
    for url in (
        "https://evil.example.net/",
        "http://api.example.com/",
        "https://api.example.com:8443/",
    ):
        with pytest.raises(CannotBuildRequest, match="baseUrl's host"):
            build(HTTP, "request", {"url": url}, same)
    with pytest.raises(CannotBuildRequest):
        build(HTTP, "request", {"url": "https://api.example.com/"}, ctx(HTTP, bearer))
    anonymous = ctx(HTTP, {"scheme": "none"})
    assert build(HTTP, "request", {"url": "https://anywhere.example/"}, anonymous).url


@pytest.mark.parametrize(
    "params",
    [
        {},  # neither path nor url
        {"path": "/a", "url": "https://x.example/"},
        {"path": "a"},
        {"url": "ftp://x.example/"},
        {"path": "/a", "headers": {"X-A": "1\r\nX-Injected: 1"}},
        {"path": "/a", "headers": {"Bad Name": "1"}},
        {"path": "/a", "method": "TRACE"},
    ],
)
def test_request_parameters_are_checked(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HTTP.operation("request").params.model_validate(params)


# ---------------------------------------------------------------------------------- webhook


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    assert sign(SECRET, NOW_UNIX, b'{"type":"ping"}') == f"t={NOW_UNIX},v1={PING_DIGEST}"


def test_a_delivery_signs_exactly_the_bytes_it_sends_at_the_contexts_time() -> None:
    context = ctx(WEBHOOK, {"secret": SECRET}, {"url": "https://hooks.example.com/in"})
    request = build(WEBHOOK, "post", {"body": {"b": 1, "a": [True, None]}}, context)
    assert (request.method, request.url) == ("POST", "https://hooks.example.com/in")
    assert request.raw == b'{"b":1,"a":[true,null]}'
    assert request.headers["Content-Type"] == "application/json"
    expected = hmac.new(SECRET.encode(), f"{NOW_UNIX}.".encode() + request.raw, hashlib.sha256)
    assert request.headers[SIGNATURE_HEADER] == f"t={NOW_UNIX},v1={expected.hexdigest()}"
    sent = prepare(
        WEBHOOK, request, base_url="", credentials={"secret": SECRET}, idempotency_key="i"
    )
    assert sent.body == request.raw
    assert sent.headers["X-Campaignflow-Idempotency-Key"] == "i"


def test_a_delivery_needs_the_secret_and_an_encodable_body() -> None:
    settings = {"url": "https://hooks.example.com/in"}
    with pytest.raises(MissingCredential):
        build(WEBHOOK, "post", {"body": {}}, ctx(WEBHOOK, settings=settings))
    with pytest.raises(CannotBuildRequest, match="JSON"):
        build(WEBHOOK, "post", {"body": 2**70}, ctx(WEBHOOK, {"secret": SECRET}, settings))


@pytest.mark.parametrize(
    ("header", "now", "valid"),
    [
        (f"t={NOW_UNIX},v1={PING_DIGEST}", NOW_UNIX, True),
        (f"t={NOW_UNIX},v1={PING_DIGEST}", NOW_UNIX + 300, True),
        (f"t={NOW_UNIX},v1={PING_DIGEST}", NOW_UNIX - 300, True),
        (f"t={NOW_UNIX},v1={PING_DIGEST}", NOW_UNIX + 301, False),  # replayed too late
        (f"t={NOW_UNIX}, v1={'0' * 64}, v1={PING_DIGEST}", NOW_UNIX, True),  # rotation
        (f"t={NOW_UNIX + 1},v1={PING_DIGEST}", NOW_UNIX, False),  # timestamp is signed
        (f"v1={PING_DIGEST}", NOW_UNIX, False),
        (f"t=abc,v1={PING_DIGEST}", NOW_UNIX, False),
        (f"t={NOW_UNIX}", NOW_UNIX, False),
        (f"t={NOW_UNIX},v1={PING_DIGEST.upper()}", NOW_UNIX, False),
        ("", NOW_UNIX, False),
    ],
)
def test_receivers_verify_the_signature_and_its_age(header: str, now: int, valid: bool) -> None:
    assert verify_outgoing_signature(SECRET, header, b'{"type":"ping"}', now_unix=now) is valid


def test_webhook_settings_and_secret_are_checked() -> None:
    with pytest.raises(ValidationError):
        WEBHOOK.settings.model_validate({})
    with pytest.raises(ValidationError):
        WEBHOOK.credentials.model_validate({"secret": "short"})
