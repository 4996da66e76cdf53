"""Salesforce requests against JSON Schemas written from the REST API Developer Guide.

Salesforce publishes no API description we may redistribute, so each schema in
``salesforce_schemas/`` describes one endpoint's request (``tests/contract/endpoint_schemas.py``)
and every request the connector and its sync adapter build must validate. What a schema cannot
say (the URL's external id field is absent from an upsert body, a composite's subrequests are
themselves valid requests, the SOQL is well formed) is checked here, with a SOQL reader written
from the SOQL reference as the oracle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import (
    CannotBuildRequest,
    OutboundRequest,
    ProviderResponse,
    RequestContext,
)
from campaignflow.integrations.crm import Activity, PushRecord
from campaignflow.integrations.prepare import PreparedRequest, prepare
from campaignflow.integrations.providers.salesforce import (
    LOGIN_TOKEN_URL,
    SALESFORCE,
    SANDBOX_TOKEN_URL,
    token_url_for,
)
from campaignflow.integrations.providers.salesforce_sync import (
    API_NAME_PATTERN,
    PULL_PAGE,
    SOQL_KEYWORDS,
    SYNC,
    soql_datetime,
    soql_string,
)
from tests.contract.conftest import context
from tests.contract.endpoint_schemas import EndpointSchemas, document
from tests.contract.strategies import few

SCHEMAS = EndpointSchemas(Path(__file__).parent / "salesforce_schemas")
INSTANCE = "https://acme.my.salesforce.com"
SETTINGS = {"instanceUrl": INSTANCE}
CREDENTIALS = {"client_id": "3MVG9contract", "client_secret": "s3cret", "refresh_token": "5Aep8"}
ACCESS_TOKEN = "00D5e000000abcd!AQ4AQcontract"
CONTACT_ID = "0035e00000AbCdEAAZ"
LEAD_ID = "00Q5e00000AbCdEAAZ"
ACCOUNT_ID = "0015e00000AbCdEAAZ"
LOCATOR = "/services/data/v62.0/query/01gRO0000016PIAYA2-2000"
api_names = st.from_regex(API_NAME_PATTERN, fullmatch=True).filter(
    lambda name: (
        len(name) <= 80
        and name.upper() not in SOQL_KEYWORDS
        and name.lower() not in {"attributes", "id"}
    )
)
values = st.one_of(
    st.text(max_size=30), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.none(),
)  # fmt: skip


def ctx(settings: Mapping[str, Any] | None = None) -> RequestContext:
    return context(SALESFORCE, CREDENTIALS, settings or SETTINGS)


def prepared(request: OutboundRequest, c: RequestContext | None = None) -> PreparedRequest:
    """As the executor sends it: the instance URL, and the OAuth access token it fetched."""
    c = c or ctx()
    return prepare(
        SALESFORCE,
        request,
        base_url=SALESFORCE.resolved_base_url(c.settings, c.credentials),
        credentials=c.credentials,
        idempotency_key=c.idempotency_key,
        access_token=ACCESS_TOKEN,
    )


def operation(name: str, params: Mapping[str, Any]) -> PreparedRequest:
    op = SALESFORCE.operation(name)
    request = prepared(op.request(op.params.model_validate(dict(params)), ctx()))
    assert request.url.startswith(INSTANCE + "/services/data/v62.0/")
    assert request.headers["Authorization"] == "Bearer " + ACCESS_TOKEN
    return request


# ------------------------------------------------------------------------ the SOQL oracle

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:\\[nNrRtTbBfF"'\\]|\\u[0-9a-fA-F]{4}|[^'\\])*')
    |(?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)
    |(?P<number>[0-9]+)
    |(?P<name>[A-Za-z][A-Za-z0-9_]*)
    |(?P<op>>=|<=|!=|[=<>(),])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def soql_tokens(soql: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a SOQL statement; anything else is an error, as it is to
    Salesforce (SOQL and SOSL Reference: "Quoted String Escape Sequences", date formats)."""
    tokens, at = [], 0
    while at < len(soql.rstrip()):
        match = _TOKEN.match(soql, at)
        assert match is not None, f"not SOQL at {at}: {soql[at : at + 20]!r}"
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        at = match.end()
    return tokens


def decode_string(literal: str) -> str:
    body, out, index = literal[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
        elif body[index + 1] == "u":
            out.append(chr(int(body[index + 2 : index + 6], 16)))
            index += 6
        else:
            out.append(
                _ESCAPES[body[index + 1].lower() if body[index + 1].isalpha() else body[index + 1]]
            )
            index += 2
    return "".join(out)


@dataclass
class Soql:
    fields: list[str]
    sobject: str
    conditions: list[tuple[str, str, Any]]
    connectives: list[str]
    order_by: list[str]
    limit: int | None


class _Reader:
    """Reads the SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT n] statements the adapter
    writes; a keyword or operator out of place (an injection) is an assertion error."""

    def __init__(self, soql: str) -> None:
        self.tokens = soql_tokens(soql)
        self.at = 0

    def take(self, kind: str, text: str | None = None) -> str:
        assert self.at < len(self.tokens), f"expected {text or kind} at the end"
        got_kind, got = self.tokens[self.at]
        assert got_kind == kind, (kind, text, got)
        assert text is None or got.upper() == text, (kind, text, got)
        self.at += 1
        return got

    def peek(self, text: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at][1].upper() == text

    def names(self) -> list[str]:
        found = [self.name()]
        while self.peek(","):
            self.take("op", ",")
            found.append(self.name())
        return found

    def name(self) -> str:
        name = self.take("name")
        assert name.upper() not in SOQL_KEYWORDS | {"ORDER", "BY"}, name
        return name

    def condition(self, soql: Soql) -> None:
        self.term(soql)
        while self.peek("AND") or self.peek("OR"):
            soql.connectives.append(self.take("name").upper())
            self.term(soql)

    def term(self, soql: Soql) -> None:
        if self.peek("("):
            self.take("op", "(")
            self.condition(soql)
            self.take("op", ")")
            return
        field, op = self.name(), self.take("op")
        kind, text = self.tokens[self.at]
        assert kind in {"string", "datetime", "number"}, (field, kind, text)
        self.at += 1
        value: Any = decode_string(text) if kind == "string" else text
        soql.conditions.append((field, op, value))

    def read(self) -> Soql:
        self.take("name", "SELECT")
        soql = Soql(self.names(), "", [], [], [], None)
        self.take("name", "FROM")
        soql.sobject = self.name()
        if self.peek("WHERE"):
            self.take("name", "WHERE")
            self.condition(soql)
        if self.peek("ORDER"):
            self.take("name", "ORDER")
            self.take("name", "BY")
            soql.order_by = self.names()
        if self.peek("LIMIT"):
            self.take("name", "LIMIT")
            soql.limit = int(self.take("number"))
        assert self.at == len(self.tokens), f"trailing tokens {self.tokens[self.at :]}"
        lowered = [field.lower() for field in soql.fields]
        assert len(set(lowered)) == len(lowered), "a field selected twice"
        assert all(re.fullmatch(API_NAME_PATTERN, f) for f in [*soql.fields, soql.sobject])
        return soql


def read_soql(soql: str) -> Soql:
    return _Reader(soql).read()


# ------------------------------------------------------------------ validating a request


def violations(request: PreparedRequest) -> list[str]:
    url = urlsplit(request.url)
    return _violations(request.method, url.path, document(request))


def _violations(method: str, path: str, body: Any) -> list[str]:
    errors = SCHEMAS.violations(method, path, body)
    endpoint, parameters = SCHEMAS.match(method, path)
    check = _SEMANTICS.get(endpoint.name)
    return errors + (check(parameters, body) if check and not errors else [])


def _upsert_body(parameters: Mapping[str, str], body: Any) -> list[str]:
    key = parameters["externalIdField"].lower()
    return [f"the body names the key {name}" for name in body if name.lower() in {key, "id"}]


def _collection_upsert(parameters: Mapping[str, str], body: Any) -> list[str]:
    errors = []
    for index, record in enumerate(body["records"]):
        if record["attributes"]["type"] != parameters["sObject"]:
            errors.append(f"record {index} is a {record['attributes']['type']}")
        key = next((n for n in record if n.lower() == parameters["externalIdField"].lower()), None)
        if key is None or record[key] in (None, ""):
            errors.append(f"record {index} has no {parameters['externalIdField']}")
    return errors


def _composite(_parameters: Mapping[str, str], body: Any) -> list[str]:
    subrequests = body["compositeRequest"]
    errors = []
    references = [sub["referenceId"] for sub in subrequests]
    if len(set(references)) != len(references):
        errors.append("two subrequests share a referenceId")
    heavy = [sub for sub in subrequests if re.search(r"/(composite/sobjects|query)", sub["url"])]
    if len(heavy) > 5:
        errors.append("more than 5 collections or query subrequests")
    for sub in subrequests:
        errors += [
            f"{sub['referenceId']}: {e}"
            for e in _violations(sub["method"], sub["url"], sub.get("body"))
        ]
    return errors


def _query(_parameters: Mapping[str, str], query: Any) -> list[str]:
    read_soql(query["q"])  # asserts on anything that is not well-formed
    return []


_SEMANTICS = {
    "sobject_upsert_by_external_id": _upsert_body,
    "collections_upsert": _collection_upsert,
    "composite": _composite,
    "query": _query,
    "query_all": _query,
}


def test_every_schema_names_its_reference_and_endpoint() -> None:
    assert {(e.method, e.template) for e in SCHEMAS} == {
        (
            "PATCH",
            "/services/data/{version}/sobjects/{sObject}/{externalIdField}/{externalIdValue}",
        ),
        ("POST", "/services/data/{version}/sobjects/Task"),
        ("PATCH", "/services/data/{version}/composite/sobjects/{sObject}/{externalIdField}"),
        ("PATCH", "/services/data/{version}/composite/sobjects"),
        ("POST", "/services/data/{version}/composite"),
        ("GET", "/services/data/{version}/query"),
        ("GET", "/services/data/{version}/queryAll"),
        ("GET", "/services/data/{version}/query/{queryLocator}"),
        ("GET", "/services/data/{version}/queryAll/{queryLocator}"),
    }
    for endpoint in SCHEMAS:
        assert "https://developer.salesforce.com/docs/" in endpoint.schema["$comment"]
        assert re.search(r"read 20[0-9]{2}-[0-9]{2}-[0-9]{2}", endpoint.schema["$comment"])


# ------------------------------------------------------------------------------ operations

UPSERTS = [
    {"externalIdValue": "ada@example.com", "fields": {"LastName": "Lovelace"}},
    {
        "externalIdField": "Customer_Number__c",
        "externalIdValue": "C-1042/7 ü?#%",
        "fields": {"FirstName": "Ada", "Score__c": 4.5, "HasOptedOutOfEmail": False, "Title": None},
    },
]


@pytest.mark.parametrize("operation_name", ["upsert_contact", "upsert_lead"])
@pytest.mark.parametrize("params", UPSERTS)
def test_upserts_by_external_id_match_the_schema(
    operation_name: str, params: dict[str, Any]
) -> None:
    request = operation(operation_name, params)
    assert request.method == "PATCH"
    assert violations(request) == []
    _, parameters = SCHEMAS.match("PATCH", urlsplit(request.url).path)
    assert parameters["sObject"] == ("Contact" if operation_name == "upsert_contact" else "Lead")
    assert parameters["externalIdValue"] == params["externalIdValue"]  # one segment, exact


@few
@given(value=st.text(min_size=1, max_size=60).filter(lambda v: v not in {".", ".."}),
       fields=st.dictionaries(api_names, values, max_size=4))  # fmt: skip
def test_any_external_id_value_stays_one_exact_path_segment(
    value: str, fields: dict[str, Any]
) -> None:
    fields = {k: v for k, v in fields.items() if k.lower() != "email"}
    request = operation("upsert_contact", {"externalIdValue": value, "fields": fields})
    assert violations(request) == []
    _, parameters = SCHEMAS.match("PATCH", urlsplit(request.url).path)
    assert parameters["externalIdValue"] == value
    assert json.loads(request.body or b"{}") == fields


def test_a_task_matches_the_schema() -> None:
    params = {
        "subject": "Opened: Spring sale",
        "whoId": CONTACT_ID,
        "whatId": ACCOUNT_ID,
        "activityDate": "2026-11-29",
        "status": "Completed",
        "description": "Opened the e-mail twice.",
        "taskSubtype": "Email",
        "type": "Email",
    }
    request = operation("create_task", params)
    assert violations(request) == []
    assert json.loads(request.body or b"{}") == {
        "Subject": "Opened: Spring sale",
        "WhoId": CONTACT_ID,
        "WhatId": ACCOUNT_ID,
        "ActivityDate": "2026-11-29",
        "Status": "Completed",
        "Description": "Opened the e-mail twice.",
        "TaskSubtype": "Email",
        "Type": "Email",
    }
    assert violations(operation("create_task", {"subject": "x", "whoId": LEAD_ID})) == []


@few
@given(
    sobject=api_names,
    key=api_names,
    rows=st.lists(st.dictionaries(api_names, values, max_size=3), min_size=1, max_size=5),
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=5, max_size=5),
)
def test_any_accepted_record_batch_matches_the_schema(
    sobject: str, key: str, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    records = [
        {**{k: v for k, v in row.items() if k.lower() != key.lower()}, key: keys[index]}
        for index, row in enumerate(rows)
    ]
    params = {"sobject": sobject, "externalIdField": key, "records": records}
    request = operation("upsert_records", params)
    assert violations(request) == []
    body = json.loads(request.body or b"{}")
    assert body["allOrNone"] is False
    assert [r["attributes"] for r in body["records"]] == [{"type": sobject}] * len(records)


def test_the_batch_output_reports_each_record() -> None:
    answer = [
        {"id": ACCOUNT_ID, "success": True, "errors": [], "created": True},
        {"success": False, "errors": [{"statusCode": "DUPLICATE_VALUE", "message": "dup"}]},
    ]
    output = SALESFORCE.operation("upsert_records").output(ProviderResponse(200, {}, answer))
    assert output["failed"] == 1
    assert output["results"][1] == {
        "id": None, "success": False, "created": None, "errors": ["DUPLICATE_VALUE"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "created"),
    [
        (201, {"id": CONTACT_ID, "success": True, "errors": [], "created": True}, True),
        (200, {"id": CONTACT_ID, "success": True, "errors": [], "created": False}, False),
        (204, None, False),
    ],
)
def test_the_upsert_output_says_whether_it_created(status: int, body: Any, created: bool) -> None:
    output = SALESFORCE.operation("upsert_contact").output(ProviderResponse(status, {}, body))
    assert output["created"] is created


def test_the_connection_test_matches_the_schema() -> None:
    assert SALESFORCE.test is not None
    request = prepared(SALESFORCE.test(ctx()))
    assert violations(request) == []
    assert read_soql(document(request)["q"]).limit == 1


@pytest.mark.parametrize(
    ("operation_name", "params", "field"),
    [
        ("upsert_contact", {"externalIdValue": "a", "fields": {"email": "b"}}, "fields"),
        ("upsert_contact", {"externalIdValue": "a", "fields": {"Id": CONTACT_ID}}, "fields"),
        ("upsert_contact", {"externalIdValue": "a", "fields": {"First Name": "A"}}, "fields"),
        ("upsert_contact", {"externalIdValue": "a", "fields": {"Name__c__x__y": "A"}}, "fields"),
        ("upsert_contact", {"externalIdValue": "a", "fields": {"attributes": "A"}}, "fields"),
        ("upsert_contact", {"externalIdValue": "a", "fields": {"Tags": ["a"]}}, "fields"),
        ("upsert_contact", {"externalIdValue": ".."}, "externalIdValue"),
        ("upsert_contact", {"externalIdValue": ""}, "externalIdValue"),
        ("upsert_lead", {"externalIdField": "Email, Name", "externalIdValue": "a"},
         "externalIdField"),
        ("upsert_lead", {"externalIdField": "WHERE", "externalIdValue": "a"}, "externalIdField"),
        ("create_task", {"subject": "x" * 256}, "subject"),
        ("create_task", {"subject": "x", "whoId": ACCOUNT_ID}, "whoId"),
        ("create_task", {"subject": "x", "whoId": "003'); DROP"}, "whoId"),
        ("create_task", {"subject": "x", "activityDate": "2026-02-30"}, "activityDate"),
        ("create_task", {"subject": "x", "taskSubtype": "Meeting"}, "taskSubtype"),
        ("upsert_records", {"sobject": "Contact", "externalIdField": "Ext__c", "records": []},
         "records"),
        ("upsert_records", {"sobject": "Contact", "externalIdField": "Ext__c",
                            "records": [{"Ext__c": str(i)} for i in range(201)]}, "records"),
        ("upsert_records", {"sobject": "Contact", "externalIdField": "Ext__c",
                            "records": [{"LastName": "no key"}]}, "records"),
        ("upsert_records", {"sobject": "Contact", "externalIdField": "Ext__c",
                            "records": [{"Ext__c": "1", "Id": CONTACT_ID}]}, "records"),
    ],
)  # fmt: skip
def test_parameters_salesforce_would_refuse_are_refused_naming_the_field(
    operation_name: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        SALESFORCE.operation(operation_name).params.model_validate(params)
    assert caught.value.errors()[0]["loc"][0] == field


# -------------------------------------------------------------------------------- settings


def test_settings_need_an_https_instance_and_a_collections_capable_version() -> None:
    settings = SALESFORCE.settings
    for bad, field in [
        ({}, "instanceUrl"),
        ({"instanceUrl": "http://acme.my.salesforce.com"}, "instanceUrl"),
        ({"instanceUrl": "https://acme.my.salesforce.com/x?y"}, "instanceUrl"),
        ({**SETTINGS, "apiVersion": "v45.0"}, "apiVersion"),
        ({**SETTINGS, "apiVersion": "62"}, "apiVersion"),
        ({**SETTINGS, "syncExternalIdField": "Email FROM User"}, "syncExternalIdField"),
    ]:
        with pytest.raises(ValidationError) as caught:
            settings.model_validate(bad)
        assert caught.value.errors()[0]["loc"][0] == field
    assert token_url_for(settings.model_validate(SETTINGS)) == LOGIN_TOKEN_URL
    assert (
        token_url_for(settings.model_validate({**SETTINGS, "sandbox": True})) == SANDBOX_TOKEN_URL
    )
    request = prepared(SYNC.activity_request(_activity(), ctx({**SETTINGS, "apiVersion": "v64.0"})),
                       ctx({**SETTINGS, "apiVersion": "v64.0"}))  # fmt: skip
    assert request.url == INSTANCE + "/services/data/v64.0/sobjects/Task"


# ------------------------------------------------------------------------------ sync: pull

SINCE = datetime(2026, 11, 2, 9, 15, 0, tzinfo=UTC)


def _pull(since: datetime | None, page: str | None, fields: list[str]) -> PreparedRequest:
    return prepared(SYNC.pull_request(since, page, fields, ctx()))


def test_a_pull_selects_contacts_modified_after_the_cursor_oldest_first() -> None:
    request = _pull(SINCE, None, ["FirstName", "email", "Customer_Tier__c"])
    assert violations(request) == []
    assert urlsplit(request.url).path == "/services/data/v62.0/queryAll"  # deleted ones too
    soql = read_soql(document(request)["q"])
    assert soql.fields == ["Id", "Email", "SystemModstamp", "IsDeleted", "FirstName",
                           "Customer_Tier__c"]  # fmt: skip
    assert (soql.sobject, soql.order_by, soql.limit) == (
        "Contact", ["SystemModstamp", "Id"], PULL_PAGE,
    )  # fmt: skip
    assert soql.conditions == [("SystemModstamp", ">", "2026-11-02T09:15:00Z")]
    assert read_soql(document(_pull(None, None, []))["q"]).conditions == []


def test_a_continuation_is_keyset_on_stamp_and_id() -> None:
    page = f"after:2026-11-02T09:15:00Z,{CONTACT_ID}"
    request = _pull(SINCE, page, ["FirstName"])
    assert violations(request) == []
    soql = read_soql(document(request)["q"])
    assert soql.conditions == [
        ("SystemModstamp", ">", "2026-11-02T09:15:00Z"),
        ("SystemModstamp", "=", "2026-11-02T09:15:00Z"),
        ("Id", ">", CONTACT_ID),
    ]
    assert soql.connectives == ["OR", "AND"]


def test_a_query_locator_is_followed_as_given() -> None:
    request = _pull(SINCE, LOCATOR, ["FirstName"])
    assert (request.method, request.url) == ("GET", INSTANCE + LOCATOR)
    assert violations(request) == []


@pytest.mark.parametrize(
    "page",
    [
        f"after:2026-11-02T09:15:00Z,{CONTACT_ID[:-3]}' OR Name != '",
        "after:2026-11-02T09:15:00Z,003' OR IsDeleted = true OR Id > '",
        "after:2026-11-02 09:15:00,0035e00000AbCdEAAZ",
        "/services/data/v62.0/sobjects/User/005000000000001",
        "/services/data/v62.0/query/01gRO0000016PIAYA2-2000/../../sobjects/User",
        "https://evil.example/services/data/v62.0/query/01gRO0000016PIAYA2-2000",
        "anything",
    ],
)
def test_forged_page_tokens_are_refused(page: str) -> None:
    with pytest.raises(CannotBuildRequest):
        SYNC.pull_request(SINCE, page, [], ctx())


@pytest.mark.parametrize(
    "field",
    [
        "Email, (SELECT Id FROM Cases)",
        "Name FROM User WHERE Id != null --",
        "FirstName'",
        "Account.Name",
        "FROM",
        "limit",
        "Bad__",
        "",
    ],
)
def test_field_names_that_are_not_api_names_are_refused_naming_them(field: str) -> None:
    with pytest.raises(CannotBuildRequest, match=re.escape(repr(field))):
        SYNC.pull_request(SINCE, None, ["FirstName", field], ctx())


@few
@given(fields=st.lists(api_names, max_size=8))
def test_any_api_names_make_a_well_formed_query_selecting_each_once(fields: list[str]) -> None:
    request = _pull(SINCE, None, fields)
    assert violations(request) == []
    selected = {name.lower() for name in read_soql(document(request)["q"]).fields}
    assert selected == {n.lower() for n in ["Id", "Email", "SystemModstamp", "IsDeleted", *fields]}


@given(value=st.text(max_size=80))
def test_a_string_literal_reads_back_as_the_value_it_escapes(value: str) -> None:
    tokens = soql_tokens(f"SELECT Id FROM Contact WHERE Name = {soql_string(value)}")
    assert tokens[-1][0] == "string"  # one literal, nothing after it
    assert decode_string(tokens[-1][1]) == value


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
        timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)  # fmt: skip
def test_a_datetime_literal_is_the_utc_second_of_the_moment(moment: datetime) -> None:
    literal = soql_datetime(moment)
    assert soql_tokens(literal) == [("datetime", literal)]
    parsed = datetime.strptime(literal, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(0) <= moment - parsed < timedelta(seconds=1)


def test_a_naive_cursor_is_refused() -> None:
    with pytest.raises(CannotBuildRequest):
        SYNC.pull_request(datetime(2026, 11, 2), None, [], ctx())


def _row(index: int, **extra: Any) -> dict[str, Any]:
    record_id = f"0035e00000Ab{index:03d}AAZ"
    url = f"/services/data/v62.0/sobjects/Contact/{record_id}"
    return {
        "attributes": {"type": "Contact", "url": url},
        "Id": record_id,
        "Email": f"c{index}@example.com",
        "SystemModstamp": f"2026-11-02T09:{15 + index:02d}:00.000+0000",
        "IsDeleted": False,
        "FirstName": f"C{index}",
        **extra,
    }  # fmt: skip


def test_a_pull_answer_becomes_records_with_deletions_and_nested_values() -> None:
    address = {"city": "London", "country": "UK"}
    answer = {
        "totalSize": 2,
        "done": True,
        "records": [_row(1, MailingAddress=address), _row(2, IsDeleted=True, Email=None)],
    }
    page = SYNC.parse_pull(ProviderResponse(200, {}, answer))
    assert page.next_page is None
    first, second = page.records
    assert (first.remote_id, first.email, first.deleted) == (
        "0035e00000Ab001AAZ",
        "c1@example.com",
        False,
    )
    assert first.modified_at == datetime(2026, 11, 2, 9, 16, tzinfo=UTC)
    assert first.fields == {"Email": "c1@example.com", "FirstName": "C1",
                            "MailingAddress": '{"city":"London","country":"UK"}'}  # fmt: skip
    assert (second.deleted, second.email) == (True, None)


def test_a_batched_answer_continues_at_its_locator_and_a_full_page_after_its_last_record() -> None:
    batched = {"totalSize": PULL_PAGE, "done": False, "nextRecordsUrl": LOCATOR,
               "records": [_row(1)]}  # fmt: skip
    assert SYNC.parse_pull(ProviderResponse(200, {}, batched)).next_page == LOCATOR
    last_batch = {"totalSize": PULL_PAGE, "done": True, "records": [_row(1), _row(2)]}
    page = SYNC.parse_pull(ProviderResponse(200, {}, last_batch))
    assert page.next_page == "after:2026-11-02T09:17:00Z,0035e00000Ab002AAZ"
    follow = read_soql(document(_pull(SINCE, page.next_page, []))["q"])
    assert ("Id", ">", "0035e00000Ab002AAZ") in follow.conditions
    short = {"totalSize": 2, "done": True, "records": [_row(1), _row(2)]}
    assert SYNC.parse_pull(ProviderResponse(200, {}, short)).next_page is None


def test_an_answer_without_ids_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="Id"):
        SYNC.parse_pull(ProviderResponse(200, {}, {"done": True, "records": [{"Email": "x"}]}))


# ------------------------------------------------------------------------------ sync: push

UNLINKED = PushRecord("ct_1", {"FirstName": "Ada", "LastName": "Lovelace"}, email="ada@example.com")
LINKED = PushRecord("ct_2", {"LastName": "Hopper", "Email": "grace@example.com"}, CONTACT_ID)
NO_EMAIL = PushRecord("ct_3", {"LastName": "Nobody"})


def _push(records: list[PushRecord], settings: Mapping[str, Any] | None = None) -> Any:
    c = ctx(settings)
    request = prepared(SYNC.push_request(records, c), c)
    assert violations(request) == []
    return json.loads(request.body or b"{}")


def test_a_push_upserts_unlinked_records_and_updates_linked_ones_in_one_composite() -> None:
    body = _push([UNLINKED, LINKED])
    assert body["allOrNone"] is False
    upserts, updates = body["compositeRequest"]
    assert (upserts["referenceId"], upserts["url"]) == (
        "upserts", "/services/data/v62.0/composite/sobjects/Contact/Email",
    )  # fmt: skip
    assert upserts["body"]["records"] == [
        {"attributes": {"type": "Contact"}, "FirstName": "Ada", "LastName": "Lovelace",
         "Email": "ada@example.com"},
    ]  # fmt: skip
    assert (updates["referenceId"], updates["url"]) == (
        "updates", "/services/data/v62.0/composite/sobjects",
    )  # fmt: skip
    assert updates["body"]["records"] == [
        {"attributes": {"type": "Contact"}, "LastName": "Hopper", "Email": "grace@example.com",
         "Id": CONTACT_ID},
    ]  # fmt: skip


def test_a_push_upserts_by_the_connections_external_id_field() -> None:
    record = PushRecord("ct_1", {"Campaignflow_Id__c": "ct_1", "LastName": "L"}, email="a@x.io")
    body = _push([record], {**SETTINGS, "syncExternalIdField": "Campaignflow_Id__c"})
    (upserts,) = body["compositeRequest"]
    assert upserts["url"].endswith("/composite/sobjects/Contact/Campaignflow_Id__c")
    assert "Email" not in upserts["body"]["records"][0]


@few
@given(
    rows=st.lists(
        st.tuples(st.dictionaries(api_names, values, max_size=3), st.booleans()),
        min_size=1, max_size=6,
    )
)  # fmt: skip
def test_any_push_batch_matches_the_schemas(rows: list[tuple[dict[str, Any], bool]]) -> None:
    records = [
        PushRecord(f"ct_{i}", {k: v for k, v in fields.items() if k.lower() != "email"},
                   CONTACT_ID if linked else None, email=f"c{i}@example.com")
        for i, (fields, linked) in enumerate(rows)
    ]  # fmt: skip
    body = _push(records)
    sent = sum(len(sub["body"]["records"]) for sub in body["compositeRequest"])
    assert sent == len(records)


def test_push_field_names_are_checked_like_pull_field_names() -> None:
    for fields in ({"Bad Name": "x"}, {"Id": CONTACT_ID}, {"email": "a", "Email": "b"}):
        with pytest.raises(CannotBuildRequest):
            SYNC.push_request([PushRecord("ct_1", fields)], ctx())


def _composite_answer(*subs: tuple[str, int, Any]) -> ProviderResponse:
    answer = [
        {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": reference}
        for reference, status, body in subs
    ]
    return ProviderResponse(200, {}, {"compositeResponse": answer})


MISSING_FIELD = {
    "statusCode": "REQUIRED_FIELD_MISSING",
    "message": "Required fields are missing: [LastName]",
    "fields": ["LastName"],
}
LOCKED_ROW = {
    "statusCode": "UNABLE_TO_LOCK_ROW",
    "message": "unable to obtain exclusive access to this record",
    "fields": [],
}


def test_push_results_follow_each_record_and_classify_salesforce_errors() -> None:
    other = PushRecord("ct_4", {"LastName": "Locked"}, email="locked@example.com")
    answer = _composite_answer(
        ("upserts", 200, [
            {"id": "0035e00000New01AAZ", "success": True, "errors": [], "created": True},
            {"success": False, "errors": [MISSING_FIELD]},
            {"id": "0035e00000Old01AAZ", "success": False, "errors": [LOCKED_ROW]},
        ]),
        ("updates", 200, [{"id": CONTACT_ID, "success": True, "errors": []}]),
    )  # fmt: skip
    results = SYNC.parse_push([UNLINKED, LINKED, NO_EMAIL, other], answer)
    assert [r.key for r in results] == ["ct_1", "ct_2", "ct_3", "ct_4"]
    ada, grace, nobody, locked = results
    assert (ada.ok, ada.remote_id) == (True, "0035e00000New01AAZ")
    assert (grace.ok, grace.remote_id) == (True, CONTACT_ID)
    assert (nobody.ok, nobody.retryable) == (False, False)
    assert nobody.error is not None
    assert nobody.error.startswith("REQUIRED_FIELD_MISSING")
    assert (locked.ok, locked.retryable, locked.remote_id) == (False, True, "0035e00000Old01AAZ")


def test_a_failed_subrequest_fails_each_of_its_records_and_a_missing_one_is_retried() -> None:
    limit = _composite_answer(
        ("upserts", 400, [{"errorCode": "INVALID_FIELD", "message": "No such column 'Tier__c'"}]),
        ("updates", 403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests"}]),
    )
    ada, grace = SYNC.parse_push([UNLINKED, LINKED], limit)
    assert (ada.ok, ada.retryable) == (False, False)
    assert ada.error == "INVALID_FIELD: No such column 'Tier__c'"
    assert (grace.ok, grace.retryable) == (False, True)
    short = _composite_answer(("upserts", 200, []))
    assert [(r.ok, r.retryable) for r in SYNC.parse_push([UNLINKED, LINKED], short)] == [
        (False, True), (False, True),
    ]  # fmt: skip


# -------------------------------------------------------------------------- sync: activity


def _activity(**changes: Any) -> Activity:
    values = {
        "remote_id": CONTACT_ID,
        "type": "Email",
        "subject": "Opened: Spring sale",
        "occurred_at": datetime(2026, 11, 29, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        "note": "Opened twice.",
    }
    return Activity(**{**values, **changes})


def test_an_activity_is_a_completed_task_on_the_contact() -> None:
    request = prepared(SYNC.activity_request(_activity(), ctx()))
    assert violations(request) == []
    assert json.loads(request.body or b"{}") == {
        "WhoId": CONTACT_ID,
        "Subject": "Opened: Spring sale",
        "ActivityDate": "2026-11-30",  # 23:30 at UTC-5 is the 30th in UTC
        "Status": "Completed",
        "Type": "Email",
        "TaskSubtype": "Email",
        "Description": "Opened twice.",
    }
    long = _activity(type="Webinar attended", subject="s" * 300, note=None)
    body = json.loads(prepared(SYNC.activity_request(long, ctx())).body or b"{}")
    assert (len(body["Subject"]), body["TaskSubtype"], "Description" in body) == (
        255,
        "Task",
        False,
    )
    assert violations(prepared(SYNC.activity_request(long, ctx()))) == []


# ------------------------------------------------------------------ the schemas themselves

DATA = "/services/data/v62.0"
CONTACT_ROW = {"attributes": {"type": "Contact"}, "Email": "a@x.io"}
SUBREQUEST = {"method": "GET", "url": f"{DATA}/limits", "referenceId": "a"}
UPSERT_PATH = f"{DATA}/sobjects/Contact/Email/a@x.io"


@pytest.mark.parametrize(
    ("method", "path", "document_", "expected"),
    [
        ("PATCH", UPSERT_PATH, {"Id": CONTACT_ID}, "should not be valid"),
        ("PATCH", UPSERT_PATH, {"Tags": ["a"]}, "is not of type"),
        ("PATCH", "/services/data/62/sobjects/Contact/Email/a@x.io", {}, "does not match"),
        ("POST", f"{DATA}/sobjects/Task", {"Subject": "x" * 256}, "is too long"),
        ("POST", f"{DATA}/sobjects/Task", {"Subject": "x", "WhoId": ACCOUNT_ID}, "does not match"),
        ("POST", f"{DATA}/sobjects/Task", {"Subject": "x", "ActivityDate": "2026-13-01"},
         "is not a 'date'"),
        ("POST", f"{DATA}/sobjects/Task", {"Subject": "x", "Owner": "me"}, "Additional properties"),
        ("PATCH", f"{DATA}/composite/sobjects/Contact/Email", {"records": [{"Email": "a@x.io"}]},
         "'attributes' is a required property"),
        ("PATCH", f"{DATA}/composite/sobjects/Contact/Email", {"records": [CONTACT_ROW] * 201},
         "is too long"),
        ("PATCH", f"{DATA}/composite/sobjects", {"records": [CONTACT_ROW]},
         "'Id' is a required property"),
        ("POST", f"{DATA}/composite", {"compositeRequest": [{**SUBREQUEST, "method": "patch"}]},
         "is not one of"),
        ("POST", f"{DATA}/composite",
         {"compositeRequest": [{**SUBREQUEST, "httpHeaders": {"Authorization": "Bearer x"}}]},
         "should not be valid"),
        ("GET", f"{DATA}/query", {"q": "DELETE FROM Contact"}, "does not match"),
    ],
)  # fmt: skip
def test_the_schemas_refuse_what_salesforce_would_refuse(
    method: str, path: str, document_: Any, expected: str
) -> None:
    errors = SCHEMAS.violations(method, path, document_)
    assert any(expected in error for error in errors), errors


def test_the_checks_beyond_the_schemas_catch_what_they_are_for() -> None:
    path = "/services/data/v62.0/sobjects/Contact/Email/a@x.io"
    assert _violations("PATCH", path, {"email": "b@x.io"}) == ["the body names the key email"]
    collection = "/services/data/v62.0/composite/sobjects/Contact/Email"
    lead = {"records": [{"attributes": {"type": "Lead"}, "Email": "a@x.io"}]}
    assert _violations("PATCH", collection, lead) == ["record 0 is a Lead"]
    keyless = {"records": [{"attributes": {"type": "Contact"}, "LastName": "L"}]}
    assert _violations("PATCH", collection, keyless) == ["record 0 has no Email"]
    for injected in [
        "SELECT Id FROM Contact WHERE Name = 'a' OR Name != 'b' LIMIT 1 FROM",
        "SELECT Id, FROM FROM Contact",
        "SELECT Id FROM Contact WHERE Name = 'unterminated",
        "SELECT Id FROM Contact WHERE Name = 'bad \\x escape'",
        "SELECT Id, id FROM Contact",
    ]:
        with pytest.raises(AssertionError):
            read_soql(injected)
