"""Klaviyo requests against the request models and serializers Klaviyo generates from its own
OpenAPI file for its Python SDK (``klaviyo-api`` 25.0.0, revision 2026-10-15; the OpenAPI file
itself is not published in a package). Each body must load into the operation's model with
nothing dropped, and the SDK must send the same method, URL, headers and body."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_client.api.accounts_api import AccountsApi
from openapi_client.api.events_api import EventsApi
from openapi_client.api.profiles_api import ProfilesApi
from openapi_client.api_client import ApiClient
from openapi_client.configuration import Configuration
from openapi_client.models.event_create_query_v2 import EventCreateQueryV2
from openapi_client.models.profile_upsert_query import ProfileUpsertQuery
from openapi_client.models.subscription_create_job_create_query import (
    SubscriptionCreateJobCreateQuery,
)
from pydantic import ValidationError

from campaignflow.integrations.connector import ProviderResponse
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.klaviyo import DEFAULT_REVISION, KLAVIYO
from tests.contract.conftest import context, operation_request, prepared
from tests.contract.strategies import emails, few

KEY = "pk_0123456789abcdef0123456789abcdef01"
SDK_REVISION = "2026-10-15"  # klaviyo_api.KlaviyoAPI._REVISION of klaviyo-api 25.0.0


def sdk() -> ApiClient:
    configuration = Configuration(
        api_key={"Klaviyo-API-Key": KEY}, api_key_prefix={"Klaviyo-API-Key": "Klaviyo-API-Key"}
    )
    client = ApiClient(configuration)
    client.default_headers["revision"] = SDK_REVISION
    return client


def _upsert(body: dict[str, Any]) -> tuple[Any, ...]:
    model = ProfileUpsertQuery.from_dict(body)
    return ProfilesApi(sdk())._create_or_update_profile_serialize(model, None, None, None, None,
                                                                  None, 0)  # fmt: skip


def _event(body: dict[str, Any]) -> tuple[Any, ...]:
    model = EventCreateQueryV2.from_dict(body)
    return EventsApi(sdk())._create_event_serialize(model, None, None, None, 0)


def _subscribe(body: dict[str, Any]) -> tuple[Any, ...]:
    model = SubscriptionCreateJobCreateQuery.from_dict(body)
    return ProfilesApi(sdk())._bulk_subscribe_profiles_serialize(model, None, None, None, 0)


SDK: Mapping[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "upsert_profile": _upsert,
    "create_event": _event,
    "subscribe_profiles": _subscribe,
}


def _same(sdk_value: Any, ours: Any) -> bool:
    """``ours`` as the SDK serialized it: every value of ours present and equal, and anything
    the SDK adds of its own only a null or a default flag (it writes unset fields as null and
    ``backfill``/``historical_import`` as false). A field the model does not know is dropped by
    the SDK, so it fails here."""
    if isinstance(ours, dict):
        return (
            isinstance(sdk_value, dict)
            and all(
                _same(sdk_value[key], value) if key in sdk_value else False
                for key, value in ours.items()
            )
            and all(sdk_value[key] in (None, False) for key in sdk_value.keys() - ours.keys())
        )
    if isinstance(ours, list):
        return (
            isinstance(sdk_value, list)
            and len(sdk_value) == len(ours)
            and all(_same(a, b) for a, b in zip(sdk_value, ours, strict=True))
        )
    if isinstance(sdk_value, datetime):
        return isinstance(ours, str) and datetime.fromisoformat(ours) == sdk_value
    return type(sdk_value) is type(ours) and sdk_value == ours


def assert_sdk_agrees(operation: str, request: PreparedRequest) -> dict[str, Any]:
    body = json.loads(request.body or b"{}")
    method, url, headers, sdk_body, _ = SDK[operation](body)  # validates against the model
    assert (request.method, request.url) == (method, url)
    assert _same(sdk_body, body), (sdk_body, body)
    for name in ("Authorization", "revision", "Content-Type", "Accept"):
        assert request.headers[name] == headers[name], name
    return dict(body)


def _request(operation: str, params: Mapping[str, Any]) -> PreparedRequest:
    ctx = context(KLAVIYO, {"api_key": KEY})
    return operation_request(KLAVIYO, operation, params, ctx)


CASES = [
    ("upsert_profile", {"email": "alice@example.com"}),
    ("upsert_profile", {
        "email": "alice@example.com", "phoneNumber": "+33612345678", "externalId": "crm-42",
        "firstName": "Alice", "lastName": "Martin", "organization": "ACME", "title": "CTO",
        "locale": "fr-FR", "image": "https://cdn.example.com/alice.png",
        "location": {"city": "Paris", "country": "France", "zip": "75001",
                     "timezone": "Europe/Paris", "latitude": 48.8566, "longitude": 2.3522},
        "properties": {"plan": "pro", "seats": 5, "tags": ["a", "b"], "vip": True},
    }),
    ("upsert_profile", {"externalId": "crm-43", "properties": {}}),
    ("create_event", {"metric": "Placed Order", "profile": {"email": "alice@example.com"}}),
    ("create_event", {
        "metric": "Placed Order", "profile": {"phoneNumber": "+14155552671", "externalId": "x"},
        "properties": {"orderId": "A-1042", "items": [{"sku": "A1", "qty": 2}]},
        "value": 42.5, "valueCurrency": "EUR", "time": "2026-11-29T10:15:00+01:00",
        "uniqueId": "order-A-1042",
    }),
    ("subscribe_profiles", {"profiles": [{"email": "alice@example.com"}]}),
    ("subscribe_profiles", {
        "profiles": [{"email": "alice@example.com", "phoneNumber": "+14155552671"},
                     {"email": "bob@example.org", "phoneNumber": "+447700900123"}],
        "channels": ["email", "sms"], "listId": "Y6nRLr", "customSource": "Checkout form",
    }),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "params"), CASES)
def test_requests_are_what_klaviyos_own_sdk_would_send(
    operation: str, params: dict[str, Any]
) -> None:
    assert_sdk_agrees(operation, _request(operation, params))


def test_the_default_revision_is_the_one_checked_here() -> None:
    assert DEFAULT_REVISION == SDK_REVISION
    request = _request("upsert_profile", {"email": "a@example.com"})
    assert request.headers["revision"] == SDK_REVISION
    newer = context(KLAVIYO, {"api_key": KEY}, {"revision": "2027-01-15"})
    op = KLAVIYO.operation("upsert_profile")
    built = op.request(op.params.model_validate({"email": "a@example.com"}), newer)
    assert built.headers["revision"] == "2027-01-15"


def test_an_event_is_recorded_once_per_step() -> None:
    body = assert_sdk_agrees("create_event", _request("create_event", CASES[3][1]))
    assert body["data"]["attributes"]["unique_id"] == "send:ex_01J9Z6:send-welcome"


def test_subscriptions_name_each_channel_with_marketing_consent() -> None:
    body = assert_sdk_agrees("subscribe_profiles", _request("subscribe_profiles", CASES[6][1]))
    profile = body["data"]["attributes"]["profiles"]["data"][0]["attributes"]
    assert profile["subscriptions"] == {
        "email": {"marketing": {"consent": "SUBSCRIBED"}},
        "sms": {"marketing": {"consent": "SUBSCRIBED"}},
    }
    assert body["data"]["relationships"]["list"]["data"] == {"type": "list", "id": "Y6nRLr"}


@few
@given(
    email=emails,
    properties=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
        max_size=5,
    ),
)
def test_any_accepted_profile_is_what_the_sdk_would_send(
    email: str, properties: dict[str, Any]
) -> None:
    params = {"email": email, "properties": properties}
    assert_sdk_agrees("upsert_profile", _request("upsert_profile", params))


def test_the_connection_test_request_is_the_sdks_get_accounts() -> None:
    ctx = context(KLAVIYO, {"api_key": KEY})
    assert KLAVIYO.test is not None
    request = prepared(KLAVIYO, KLAVIYO.test(ctx), ctx)
    method, url, headers, body, _ = AccountsApi(sdk())._get_accounts_serialize(
        None, None, None, None, 0
    )
    assert (request.method, request.url, request.body, body) == (method, url, None, None)
    assert request.headers["Authorization"] == headers["Authorization"] == f"Klaviyo-API-Key {KEY}"


def test_outputs_report_what_klaviyo_answered() -> None:
    created = ProviderResponse(201, {}, {"data": {"type": "profile", "id": "01HZX"}})
    updated = ProviderResponse(200, {}, {"data": {"type": "profile", "id": "01HZX"}})
    upsert = KLAVIYO.operation("upsert_profile").output
    assert upsert(created) == {"status": 201, "id": "01HZX", "created": True}
    assert upsert(updated)["created"] is False
    assert KLAVIYO.operation("create_event").output(ProviderResponse(202, {}, None)) == {
        "status": 202, "accepted": True}  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("upsert_profile", {"firstName": "Alice"}, "externalId"),
        ("upsert_profile", {"email": "alice@example"}, "email"),
        ("upsert_profile", {"phoneNumber": "0612345678"}, "phoneNumber"),
        ("upsert_profile", {"email": "a@example.com", "locale": "french"}, "locale"),
        ("upsert_profile", {"email": "a@example.com", "location": {"latitude": 91}},
         "location.latitude"),
        ("upsert_profile", {"email": "a@example.com", "nickname": "A"}, "nickname"),
        ("create_event", {"metric": "x" * 128, "profile": {"email": "a@example.com"}}, "metric"),
        ("create_event", {"metric": "Viewed", "profile": {}}, "profile"),
        ("create_event", {"metric": "Paid", "profile": {"email": "a@example.com"},
                          "valueCurrency": "EUR"}, "valueCurrency"),
        ("create_event", {"metric": "Paid", "profile": {"email": "a@example.com"},
                          "time": "2026-11-29T10:15:00"}, "time"),
        ("subscribe_profiles", {"profiles": []}, "profiles"),
        ("subscribe_profiles", {"profiles": [{"email": "a@example.com"}], "channels": ["sms"]},
         "profiles/0"),
        ("subscribe_profiles", {"profiles": [{"email": "a@example.com"}], "channels": ["push"]},
         "channels.0"),
        ("subscribe_profiles", {"profiles": [{"email": "a@example.com"}] * 1001}, "profiles"),
        ("subscribe_profiles", {"profiles": [{"email": "a@example.com"}], "listId": "x"},
         "listId"),
    ],
)  # fmt: skip
def test_parameters_klaviyo_would_refuse_are_refused_before_any_request(
    operation: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        KLAVIYO.operation(operation).params.model_validate(params)
    located = {".".join(str(part) for part in error["loc"]) for error in refused.value.errors()}
    messages = " ".join(error["msg"] for error in refused.value.errors())
    assert field in located or field in messages, (located, messages)
