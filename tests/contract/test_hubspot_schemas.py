"""HubSpot requests against JSON Schemas written from HubSpot's public API reference.

HubSpot's OpenAPI files are "not licensed for external use", so there is no Prism mock: each
schema in ``hubspot_schemas/`` describes one endpoint's request (``x-endpoint`` names its
method and path), and every request the connector builds must match its endpoint and validate.
"""

from __future__ import annotations

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

from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.hubspot import HUBSPOT
from tests.contract.conftest import context, operation_request, prepared
from tests.contract.strategies import emails, few, texts

SCHEMAS = Path(__file__).parent / "hubspot_schemas"
CREDENTIALS = {"token": "pat-eu1-contract-test"}
BASE = "https://api.hubapi.com"


@cache
def validators() -> dict[tuple[str, str], jsonschema.Draft202012Validator]:
    """(method, path) → the validator of that endpoint's request."""
    found = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        endpoint = schema["x-endpoint"]
        found[endpoint["method"], endpoint["path"]] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    return found


def violations(request: PreparedRequest) -> list[str]:
    """What the endpoint's schema finds wrong with the request (its JSON body, or its query
    for a GET); a request to an endpoint without a schema is itself a violation."""
    url = urlsplit(request.url)
    validator = validators().get((request.method, url.path))
    if validator is None:
        return [f"no schema for {request.method} {url.path}"]
    if request.method == "GET":
        document: Any = dict(parse_qsl(url.query))
    else:
        document = json.loads(request.body or b"null")
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def _request(operation: str, params: Mapping[str, Any]) -> PreparedRequest:
    ctx = context(HUBSPOT, CREDENTIALS)
    request = operation_request(HUBSPOT, operation, params, ctx)
    assert request.url.startswith(BASE + "/")
    assert request.headers["Authorization"] == "Bearer " + CREDENTIALS["token"]
    return request


SEND = [
    {"emailId": 41266431213, "to": "alice@example.com"},
    {
        "emailId": 41266431,
        "to": "alice@example.com",
        "from": "The Shop <shop@example.com>",
        "replyTo": ["help@example.com"],
        "cc": ["boss@example.com"],
        "bcc": ["archive@example.com", "audit@example.com"],
        "contactProperties": {"firstname": "Alice", "orders": 3, "vip": True},
        "customProperties": {"orderId": "A-1042", "items": [{"sku": "A1"}]},
    },
]
UPSERT = [
    {"email": "alice@example.com"},
    {
        "email": "bob@example.org",
        "properties": {"firstname": "Bob", "lifecyclestage": "lead", "lead_score": 42.5},
    },
]


def test_the_schemas_are_valid_and_name_their_endpoints() -> None:
    assert set(validators()) == {
        ("POST", "/marketing/v3/transactional/single-email/send"),
        ("POST", "/crm/v3/objects/contacts/batch/upsert"),
        ("GET", "/crm/v3/objects/contacts"),
    }


@pytest.mark.parametrize("params", SEND)
def test_transactional_sends_match_the_schema_and_send_once_per_step(
    params: dict[str, Any],
) -> None:
    request = _request("send_transactional_email", params)
    assert violations(request) == []
    body = json.loads(request.body or b"{}")
    assert body["message"]["sendId"] == "send:ex_01J9Z6:send-welcome"  # the idempotency key


@pytest.mark.parametrize("params", UPSERT)
def test_contact_upserts_match_the_schema(params: dict[str, Any]) -> None:
    request = _request("upsert_contact", params)
    assert violations(request) == []


@few
@given(
    email=emails,
    properties=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda n: n != "email"),
        st.one_of(texts, st.integers(), st.floats(allow_nan=False), st.booleans()),
        max_size=4,
    ),
)
def test_any_accepted_contact_matches_the_schema(email: str, properties: dict[str, Any]) -> None:
    request = _request("upsert_contact", {"email": email, "properties": properties})
    assert violations(request) == []


def test_the_connection_test_request_matches_the_schema() -> None:
    ctx = context(HUBSPOT, CREDENTIALS)
    assert HUBSPOT.test is not None
    assert violations(prepared(HUBSPOT, HUBSPOT.test(ctx), ctx)) == []


@pytest.mark.parametrize(
    ("endpoint", "document", "expected"),
    [
        ("send", {"emailId": "41266431", "message": {"to": "a@example.com"}}, "not of type"),
        ("send", {"emailId": 1, "message": {}}, "'to' is a required property"),
        ("send", {"emailId": 1, "message": {"to": "no-at-sign"}}, "is not a 'email'"),
        ("send", {"emailId": 1, "message": {"to": "a@example.com", "send_id": "x"}}, "send_id"),
        ("send", {"emailId": 1, "message": {"to": "a@x.io"}, "contactProperties": {"n": 1}},
         "not of type 'string'"),
        ("upsert", {"inputs": [{"id": "a@example.com", "properties": {}}]}, "'idProperty'"),
        ("upsert", {"inputs": [{"idProperty": "email", "id": "a@x.io", "properties": {"n": 5}}]},
         "not of type 'string'"),
        ("upsert", {"inputs": []}, "should be non-empty"),
        ("upsert", {"properties": {"email": "a@example.com"}, "associations": []}, "'inputs'"),
    ],
)  # fmt: skip
def test_the_schemas_refuse_what_hubspot_would_refuse(
    endpoint: str, document: Any, expected: str
) -> None:
    key = {
        "send": ("POST", "/marketing/v3/transactional/single-email/send"),
        "upsert": ("POST", "/crm/v3/objects/contacts/batch/upsert"),
    }[endpoint]
    errors = [error.message for error in validators()[key].iter_errors(document)]
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("send_transactional_email", {"emailId": 0, "to": "a@example.com"}),
        ("send_transactional_email", {"emailId": 1, "to": ["a@example.com"]}),
        ("send_transactional_email", {"emailId": 1, "to": "a@example.com", "cc": ["nope"]}),
        ("send_transactional_email", {"emailId": 1, "to": "a@x.io", "sendId": "mine"}),
        ("upsert_contact", {"email": "a@example.com", "properties": {"email": "b@example.com"}}),
        ("upsert_contact", {"email": "a@example.com", "properties": {"First Name": "A"}}),
        ("upsert_contact", {"email": "a@example.com", "properties": {"tags": ["a"]}}),
        ("upsert_contact", {"email": "a@example"}),
    ],
)
def test_parameters_the_schemas_would_refuse_are_refused_before_any_request(
    operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        HUBSPOT.operation(operation).params.model_validate(params)
