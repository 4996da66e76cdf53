"""HubSpot requests against JSON Schemas written from HubSpot's public API reference.

HubSpot's OpenAPI files are "not licensed for external use", so there is no Prism mock: each
schema in ``hubspot_schemas/`` describes one endpoint's request (``x-endpoint`` names its
method and path), and every request the connector builds must match its endpoint and validate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import CannotBuildRequest, ProviderResponse
from campaignflow.integrations.crm import Activity, PullPage, PushRecord, RemoteRecord
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.hubspot import HUBSPOT
from campaignflow.integrations.providers.hubspot_sync import (
    SYNC,
    history_request,
    push_group,
    with_history,
)
from tests.contract.conftest import NOW_UNIX, context, operation_request, prepared
from tests.contract.endpoint_schemas import EndpointSchemas, document
from tests.contract.strategies import emails, few, texts

SCHEMAS = EndpointSchemas(Path(__file__).parent / "hubspot_schemas")
CREDENTIALS = {"token": "pat-eu1-contract-test"}
BASE = "https://api.hubapi.com"
property_names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: name != "email"
)
property_values = st.one_of(texts, st.integers(), st.floats(allow_nan=False), st.booleans())


def violations(request: PreparedRequest) -> list[str]:
    """What the endpoint's schema finds wrong with the request (its JSON body, or its query
    for a GET); a request to an endpoint without a schema fails the match itself."""
    return SCHEMAS.request_violations(request)


def body(request: PreparedRequest) -> Any:
    return document(request)


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


ASSOCIATIONS = "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations"
NEW_SCHEMAS = {
    "contacts_search",
    "contacts_batch_update",
    "contacts_batch_read",
    "notes_create",
    "associations_v4_default",
    "associations_v4_create",
}


def test_the_schemas_are_valid_and_name_their_endpoints() -> None:
    assert {(e.method, e.template) for e in SCHEMAS} == {
        ("POST", "/marketing/v3/transactional/single-email/send"),
        ("POST", "/crm/v3/objects/contacts/batch/upsert"),
        ("GET", "/crm/v3/objects/contacts"),
        ("POST", "/crm/v3/objects/contacts/search"),
        ("POST", "/crm/v3/objects/contacts/batch/update"),
        ("POST", "/crm/v3/objects/contacts/batch/read"),
        ("POST", "/crm/v3/objects/notes"),
        ("PUT", f"{ASSOCIATIONS}/default/{{toObjectType}}/{{toObjectId}}"),
        ("PUT", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}"),
    }
    for endpoint in SCHEMAS:
        if endpoint.name in NEW_SCHEMAS:
            assert "https://developers.hubspot.com/" in endpoint.schema["$comment"], endpoint.name
            assert "read 2026-" in endpoint.schema["$comment"], endpoint.name


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


PAIR = {"fromObjectType": "contacts", "fromObjectId": "1", "toObjectType": "companies",
        "toObjectId": "2"}  # fmt: skip
SEARCH = {"filterGroups": [], "sorts": [], "properties": [], "limit": 100, "after": "0"}


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
        ("search", {**SEARCH, "limit": 201}, "is greater than the maximum"),
        ("search", {**SEARCH, "filterGroups": [{"filters": []}] * 6}, "is too long"),
        ("search", {**SEARCH, "filterGroups": [{"filters": [{"propertyName": "email",
                                                             "operator": "LIKE"}]}]},
         "is not one of"),
        ("search", {**SEARCH, "after": 100}, "is not of type 'string'"),
        ("update", {"inputs": [{"id": "51", "properties": {"n": 1}}]}, "not of type 'string'"),
        ("update", {"inputs": [{"id": "51", "properties": {}}] * 101}, "is too long"),
        ("read", {"inputs": [{"id": "51"}], "properties": []}, "'propertiesWithHistory'"),
        ("note", {"properties": {"hs_note_body": "x"}, "associations": []}, "'hs_timestamp'"),
        ("note", {"properties": {"hs_timestamp": "2026-11-29 10:00"}, "associations": []},
         "does not match"),
        ("note", {"properties": {"hs_timestamp": "1", "hs_note_body": "x" * 65537},
                  "associations": []}, "is too long"),
        ("note", {"properties": {"hs_timestamp": "1"}, "associations": [
            {"to": {"id": "51"}, "types": [{"associationTypeId": 202}]}]},
         "'associationCategory' is a required property"),
        ("label", [], "should be non-empty"),
        ("label", [{"associationCategory": "SYSTEM", "associationTypeId": 1}], "is not one of"),
        ("default", {"associationTypeId": 1}, "is not of type 'null'"),
    ],
)  # fmt: skip
def test_the_schemas_refuse_what_hubspot_would_refuse(
    endpoint: str, document: Any, expected: str
) -> None:
    key = {
        "send": ("POST", "/marketing/v3/transactional/single-email/send"),
        "upsert": ("POST", "/crm/v3/objects/contacts/batch/upsert"),
        "search": ("POST", "/crm/v3/objects/contacts/search"),
        "update": ("POST", "/crm/v3/objects/contacts/batch/update"),
        "read": ("POST", "/crm/v3/objects/contacts/batch/read"),
        "note": ("POST", "/crm/v3/objects/notes"),
        "label": ("PUT", "/crm/v4/objects/notes/1/associations/contacts/51"),
        "default": ("PUT", "/crm/v4/objects/notes/1/associations/default/contacts/51"),
    }[endpoint]
    errors = SCHEMAS.violations(*key, document)
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("send_transactional_email", {"emailId": 0, "to": "a@example.com"}, "emailId"),
        ("send_transactional_email", {"emailId": 1, "to": ["a@example.com"]}, "to"),
        ("send_transactional_email", {"emailId": 1, "to": "a@example.com", "cc": ["nope"]}, "cc"),
        ("send_transactional_email", {"emailId": 1, "to": "a@x.io", "sendId": "mine"}, "sendId"),
        ("upsert_contact", {"email": "a@example.com", "properties": {"email": "b@example.com"}},
         "properties"),
        ("upsert_contact", {"email": "a@example.com", "properties": {"First Name": "A"}},
         "properties"),
        ("upsert_contact", {"email": "a@example.com", "properties": {"tags": ["a"]}}, "properties"),
        ("upsert_contact", {"email": "a@example"}, "email"),
        ("upsert_contacts", {"contacts": []}, "contacts"),
        ("upsert_contacts", {"contacts": [{"email": f"c{i}@example.com"} for i in range(101)]},
         "contacts"),
        ("upsert_contacts", {"contacts": [{"email": "a@example.com"}, {"email": "A@Example.com"}]},
         "contacts"),
        ("upsert_contacts", {"contacts": [{"email": "a@x.io", "properties": {"email": "b"}}]},
         "contacts"),
        ("create_note", {"contactId": "51", "body": ""}, "body"),
        ("create_note", {"contactId": "51", "body": "x" * 65537}, "body"),
        ("create_note", {"contactId": "ada@example.com", "body": "x"}, "contactId"),
        ("create_note", {"contactId": "51", "body": "x", "timestamp": "2026-11-29T10:00:00"},
         "timestamp"),
        ("associate", {**PAIR, "fromObjectType": "contacts/../deals"}, "fromObjectType"),
        ("associate", {**PAIR, "toObjectId": "2/../../x"}, "toObjectId"),
        ("associate", {**PAIR, "associationTypeId": 1}, "associationCategory"),
        ("associate", {**PAIR, "associationCategory": "USER_DEFINED"}, "associationCategory"),
    ],
)  # fmt: skip
def test_parameters_the_schemas_would_refuse_are_refused_naming_the_field(
    operation: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        HUBSPOT.operation(operation).params.model_validate(params)
    error = caught.value.errors()[0]
    # A rule across fields fails at the model, and its message names the field.
    assert error["loc"][:1] == (field,) or (error["loc"] == () and field in error["msg"])


# ------------------------------------------------------------ contacts, notes, associations


@few
@given(
    contacts=st.lists(
        st.tuples(emails, st.dictionaries(property_names, property_values, max_size=3)),
        min_size=1,
        max_size=8,
        unique_by=lambda contact: contact[0].lower(),
    )
)
def test_any_accepted_contact_batch_matches_the_schema(
    contacts: list[tuple[str, dict[str, Any]]],
) -> None:
    params = {"contacts": [{"email": e, "properties": p} for e, p in contacts]}
    request = _request("upsert_contacts", params)
    assert violations(request) == []
    assert [item["id"] for item in body(request)["inputs"]] == [e for e, _ in contacts]


def test_a_contact_batch_output_counts_what_was_written() -> None:
    answer = {
        "status": "COMPLETE",
        "results": [{"id": "51", "new": True}, {"id": "52", "new": False}],
        "numErrors": 1,
        "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "bad phone"}],
    }
    output = HUBSPOT.operation("upsert_contacts").output(ProviderResponse(207, {}, answer))
    assert output == {
        "status": 207,
        "ids": ["51", "52"],
        "created": 1,
        "errors": [{"category": "VALIDATION_ERROR", "message": "bad phone"}],
    }


def test_a_note_is_timestamped_and_associated_with_its_contact() -> None:
    request = _request("create_note", {"contactId": "51", "body": "<p>Called back</p>"})
    assert violations(request) == []
    now = datetime.fromtimestamp(NOW_UNIX, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert body(request) == {
        "properties": {"hs_timestamp": now, "hs_note_body": "<p>Called back</p>"},
        "associations": [
            {
                "to": {"id": "51"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
            }
        ],
    }
    params = {
        "contactId": "51",
        "body": "x",
        "timestamp": "2026-11-29T10:00:00.123456+02:00",
        "ownerId": "77",
    }
    properties = body(_request("create_note", params))["properties"]
    assert properties["hs_timestamp"] == "2026-11-29T08:00:00.123Z"
    assert properties["hubspot_owner_id"] == "77"


@few
@given(text=st.text(min_size=1, max_size=200), moment=st.datetimes(timezones=st.just(UTC)))
def test_any_accepted_note_matches_the_schema(text: str, moment: datetime) -> None:
    params = {"contactId": "51", "body": text, "timestamp": moment.isoformat()}
    assert violations(_request("create_note", params)) == []


def test_associations_are_default_or_labelled() -> None:
    default = _request("associate", PAIR)
    assert (default.method, default.body) == ("PUT", None)
    assert (
        urlsplit(default.url).path == "/crm/v4/objects/contacts/1/associations/default/companies/2"
    )
    assert violations(default) == []
    labelled = _request(
        "associate", {**PAIR, "associationTypeId": 37, "associationCategory": "USER_DEFINED"}
    )
    assert urlsplit(labelled.url).path == "/crm/v4/objects/contacts/1/associations/companies/2"
    assert body(labelled) == [{"associationCategory": "USER_DEFINED", "associationTypeId": 37}]
    assert violations(labelled) == []
    custom = _request("associate", {**PAIR, "toObjectType": "2-123456"})
    assert violations(custom) == []


# ------------------------------------------------------------------------------ sync: pull

SINCE = datetime(2026, 11, 2, 9, 15, 0, 250000, tzinfo=UTC)
SINCE_MS = "1793610900250"


def _sync(request: Any) -> PreparedRequest:
    ctx = context(HUBSPOT, CREDENTIALS)
    prepared_request = prepared(HUBSPOT, request, ctx)
    assert prepared_request.url.startswith(BASE + "/")
    return prepared_request


def test_a_pull_searches_contacts_modified_after_the_cursor_oldest_first() -> None:
    ctx = context(HUBSPOT, CREDENTIALS)
    request = _sync(SYNC.pull_request(SINCE, None, ["firstname", "email", "lifecyclestage"], ctx))
    assert violations(request) == []
    assert body(request) == {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": SINCE_MS}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "lastmodifieddate", "hs_object_id", "firstname", "lifecyclestage"],
        "limit": 100,
        "after": "0",
    }
    assert datetime.fromtimestamp(int(SINCE_MS) / 1000, UTC) == SINCE
    first = body(_sync(SYNC.pull_request(None, "300", [], ctx)))
    assert (first["filterGroups"], first["after"]) == ([], "300")


@pytest.mark.parametrize("page", ["", "1 OR 1=1", "../search", "x" * 1001])
def test_forged_page_tokens_are_refused(page: str) -> None:
    with pytest.raises(CannotBuildRequest):
        SYNC.pull_request(SINCE, page, [], context(HUBSPOT, CREDENTIALS))


@pytest.mark.parametrize("field", ["First Name", "firstName", "email,phone", "_x", ""])
def test_property_names_are_checked_naming_them(field: str) -> None:
    with pytest.raises(CannotBuildRequest, match=repr(field).replace("(", r"\(")):
        SYNC.pull_request(SINCE, None, [field], context(HUBSPOT, CREDENTIALS))
    with pytest.raises(CannotBuildRequest):
        SYNC.push_request([PushRecord("ct_1", {field: "x"}, "51")], context(HUBSPOT, CREDENTIALS))


def test_a_naive_cursor_is_refused() -> None:
    with pytest.raises(CannotBuildRequest):
        SYNC.pull_request(datetime(2026, 11, 2), None, [], context(HUBSPOT, CREDENTIALS))


def _result(record_id: str, modified: str, **properties: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "properties": {"hs_object_id": record_id, "lastmodifieddate": modified, **properties},
        "createdAt": "2026-01-05T10:00:00Z",
        "updatedAt": modified,
        "archived": False,
    }


def test_a_search_answer_becomes_records_and_its_cursor() -> None:
    answer = {
        "total": 250,
        "results": [
            _result("51", "2026-11-02T09:15:00.500Z", email="ada@example.com", firstname="Ada"),
            _result("52", "2026-11-02T09:16:00.000Z", email=None, firstname=None),
        ],
        "paging": {"next": {"after": "100", "link": "?after=100"}},
    }
    page = SYNC.parse_pull(ProviderResponse(200, {}, answer))
    assert page.next_page == "100"
    ada, nameless = page.records
    assert (ada.remote_id, ada.email, ada.deleted) == ("51", "ada@example.com", False)
    assert ada.modified_at == datetime(2026, 11, 2, 9, 15, 0, 500000, tzinfo=UTC)
    assert ada.fields == {"email": "ada@example.com", "firstname": "Ada"}
    assert (nameless.email, nameless.fields) == (None, {"email": None, "firstname": None})
    done = SYNC.parse_pull(ProviderResponse(200, {}, {"total": 2, "results": answer["results"]}))
    assert done.next_page is None


@pytest.mark.parametrize(("after", "expected"), [("9800", "9800"), ("9900", "9900"),
                                                 ("10000", None), ("12000", None)])  # fmt: skip
def test_a_pull_ends_where_search_stops_answering(after: str, expected: str | None) -> None:
    """Search refuses results past the 10,000th: the pull ends there, and the engine's next
    pull starts from the newest modification time it saw."""
    answer = {
        "results": [_result("51", "2026-11-02T09:15:00Z")],
        "paging": {"next": {"after": after}},
    }
    assert SYNC.parse_pull(ProviderResponse(200, {}, answer)).next_page == expected


def test_field_history_comes_from_a_batch_read_of_the_page() -> None:
    ctx = context(HUBSPOT, CREDENTIALS)
    search = SYNC.parse_pull(ProviderResponse(200, {}, {"results": [
        _result("51", "2026-11-02T09:15:00Z", email="ada@example.com", firstname="Ada"),
        _result("52", "2026-11-02T09:16:00Z", email="bob@example.com", firstname="Bob"),
    ]}))  # fmt: skip
    request = history_request(search, ["firstname", "phone"], ctx)
    assert request is not None
    read = _sync(request)
    assert violations(read) == []
    assert body(read) == {
        "inputs": [{"id": "51"}, {"id": "52"}],
        "properties": ["email", "lastmodifieddate", "hs_object_id", "firstname", "phone"],
        "propertiesWithHistory": ["firstname", "phone"],
    }
    answer = {"status": "COMPLETE", "results": [{
        "id": "51",
        "properties": {"firstname": "Ada L.", "phone": "+44 20"},
        "propertiesWithHistory": {
            "firstname": [
                {"value": "Ada L.", "timestamp": "2026-11-02T09:20:00.000Z", "sourceType": "CRM"},
                {"value": "Ada", "timestamp": "2026-11-01T08:00:00.000Z", "sourceType": "API"},
            ],
            "phone": [{"value": "+44 20", "timestamp": "2026-10-01T00:00:00.000Z",
                       "sourceType": "IMPORT"}],
        },
    }]}  # fmt: skip
    merged = with_history(search, ProviderResponse(200, {}, answer))
    ada, bob = merged.records
    assert ada.fields["firstname"] == "Ada L."  # the read is newer than the search
    assert ada.field_times == {
        "firstname": datetime(2026, 11, 2, 9, 20, tzinfo=UTC),
        "phone": datetime(2026, 10, 1, tzinfo=UTC),
    }
    assert ada.modified_at == datetime(2026, 11, 2, 9, 20, tzinfo=UTC)
    assert bob == search.records[1]  # not in the answer: unchanged
    assert history_request(PullPage([], None), ["firstname"], ctx) is None


# ------------------------------------------------------------------------------ sync: push


def _push(records: list[PushRecord]) -> PreparedRequest:
    request = _sync(SYNC.push_request(records, context(HUBSPOT, CREDENTIALS)))
    assert violations(request) == []
    return request


def test_unlinked_records_are_upserted_by_email_and_linked_ones_updated_by_id() -> None:
    unlinked = [
        PushRecord(
            "ct_1", {"firstname": "Ada", "score": 4.5, "vip": True}, email="ada@example.com"
        ),
        PushRecord("ct_2", {"email": "bob@example.com", "phone": None}),
    ]
    upsert = _push(unlinked)
    assert urlsplit(upsert.url).path == "/crm/v3/objects/contacts/batch/upsert"
    assert body(upsert)["inputs"] == [
        {"idProperty": "email", "id": "ada@example.com", "objectWriteTraceId": "ct_1",
         "properties": {"firstname": "Ada", "score": "4.5", "vip": "true",
                        "email": "ada@example.com"}},
        {"idProperty": "email", "id": "bob@example.com", "objectWriteTraceId": "ct_2",
         "properties": {"email": "bob@example.com", "phone": ""}},
    ]  # fmt: skip
    linked = [PushRecord("ct_3", {"email": "new@example.com", "firstname": "C"}, "53")]
    update = _push(linked)
    assert urlsplit(update.url).path == "/crm/v3/objects/contacts/batch/update"
    assert body(update)["inputs"] == [
        {"id": "53", "objectWriteTraceId": "ct_3",
         "properties": {"email": "new@example.com", "firstname": "C"}},
    ]  # fmt: skip


def test_a_batch_is_one_kind_of_push() -> None:
    mixed = [PushRecord("ct_1", {}, email="a@example.com"), PushRecord("ct_2", {}, "52")]
    assert [push_group(record) for record in mixed] == ["upsert", "update"]
    with pytest.raises(CannotBuildRequest, match="push_group"):
        SYNC.push_request(mixed, context(HUBSPOT, CREDENTIALS))
    with pytest.raises(CannotBuildRequest):
        SYNC.push_request([PushRecord("ct_1", {"firstname": "A"})], context(HUBSPOT, CREDENTIALS))


@few
@given(
    rows=st.lists(
        st.tuples(emails, st.dictionaries(property_names, st.one_of(property_values, st.none()),
                                          max_size=3)),
        min_size=1, max_size=8,
    ),
    linked=st.booleans(),
)  # fmt: skip
def test_any_push_batch_matches_the_schemas(
    rows: list[tuple[str, dict[str, Any]]], linked: bool
) -> None:
    records = [
        PushRecord(f"ct_{i}", fields, str(50 + i) if linked else None, email=email)
        for i, (email, fields) in enumerate(rows)
    ]
    sent = body(_push(records))["inputs"]
    distinct = len({email.lower() for email, _ in rows})
    assert len(sent) == (len(records) if linked else distinct)


UPSERTED = [
    PushRecord("ct_1", {"firstname": "Ada"}, email="Ada@Example.com"),
    PushRecord("ct_2", {"firstname": "Bob"}, email="bob@example.com"),
    PushRecord("ct_3", {"firstname": "Nobody"}),
    PushRecord("ct_4", {"firstname": "Twin"}, email="ADA@example.COM"),
    PushRecord("ct_5", {"firstname": "Cy"}, email="cy@example.com"),
    PushRecord("ct_6", {"firstname": "Di"}, email="di@example.com"),
]


def test_push_results_are_matched_by_trace_id_or_address_in_any_order() -> None:
    answer = {
        "status": "COMPLETE",
        "results": [
            {"id": "55", "new": False, "properties": {"email": "cy@example.com"}},
            {"id": "51", "new": True, "objectWriteTraceId": "ct_1",
             "properties": {"email": "ada@example.com"}},
        ],
        "numErrors": 2,
        "errors": [
            {"status": "error", "category": "VALIDATION_ERROR",
             "message": "Property values were not valid", "context": {"ids": ["bob@example.com"]}},
            {"status": "error", "category": "RATE_LIMITS", "message": "Secondly limit",
             "context": {"objectWriteTraceId": ["ct_6"]}},
        ],
    }  # fmt: skip
    results = SYNC.parse_push(UPSERTED, ProviderResponse(207, {}, answer))
    assert [r.key for r in results] == [r.key for r in UPSERTED]
    ada, bob, nobody, twin, cy, di = results
    assert (ada.ok, ada.remote_id) == (True, "51")
    assert (bob.ok, bob.retryable) == (False, False)
    assert bob.error == "VALIDATION_ERROR: Property values were not valid"
    assert (nobody.ok, nobody.retryable, twin.ok, twin.retryable) == (False, False, False, False)
    assert (cy.ok, cy.remote_id) == (True, "55")
    assert (di.ok, di.retryable) == (False, True)


def test_linked_push_results_and_missing_ones() -> None:
    linked = [PushRecord("ct_1", {"firstname": "A"}, "51"), PushRecord("ct_2", {}, "52"),
              PushRecord("ct_3", {}, "53")]  # fmt: skip
    answer = {
        "status": "COMPLETE",
        "results": [{"id": "51", "properties": {"firstname": "A"}}],
        "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects", "context": {"ids": ["52"]}}],
    }  # fmt: skip
    first, gone, unmentioned = SYNC.parse_push(linked, ProviderResponse(207, {}, answer))
    assert (first.ok, first.remote_id) == (True, "51")
    assert (gone.ok, gone.retryable, gone.remote_id) == (False, False, "52")
    assert (unmentioned.ok, unmentioned.retryable) == (False, True)


# -------------------------------------------------------------------------- sync: activity


def test_an_activity_is_an_escaped_note_on_the_contact() -> None:
    activity = Activity(
        remote_id="51",
        type="EMAIL_OPEN",
        subject="Opened <Spring> sale",
        occurred_at=datetime(2026, 11, 29, 23, 30, 0, 5000, tzinfo=timezone(timedelta(hours=-5))),
        note="Twice\nfrom mobile & desktop",
    )
    request = _sync(SYNC.activity_request(activity, context(HUBSPOT, CREDENTIALS)))
    assert violations(request) == []
    assert body(request)["properties"] == {
        "hs_timestamp": "2026-11-30T04:30:00.005Z",
        "hs_note_body": "<p><strong>Opened &lt;Spring&gt; sale</strong></p>"
        "<p>Twice<br>from mobile &amp; desktop</p>",
    }
    assert body(request)["associations"][0]["to"] == {"id": "51"}


def test_the_sync_declaration_matches_the_endpoints_limits() -> None:
    assert (SYNC.max_pull_page, SYNC.max_push_batch) == (100, 100)
    assert set(SYNC.system_fields) == {"email", "lastmodifieddate", "hs_object_id"}
    assert isinstance(SYNC.parse_pull(ProviderResponse(200, {}, {})), PullPage)
    assert RemoteRecord  # the adapter's records are the engine's type
