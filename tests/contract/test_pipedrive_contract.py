"""Every Pipedrive request, as sent and at its production path, satisfies Pipedrive's own OpenAPI
files (v2 for persons, deals and activities; v1 for notes and the connection test), and the sync
adapter reads Pipedrive's answers right.

Prism serves each spec at ``/``; the path router in front of the two Prisms (``path_router.py``)
routes ``/api/v2/…`` and ``/v1/…`` to them, so a request with a wrong version prefix is a 404.
Pipedrive's schemas allow properties they do not list, which Prism therefore never reports; each
body is also checked against the properties the spec documents for its operation, so a
misspelt field (``person`` for ``person_id``) fails here rather than being ignored by Pipedrive.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import (
    CannotBuildRequest,
    ProviderResponse,
    RequestContext,
)
from campaignflow.integrations.crm import Activity, JsonScalar, PushRecord, PushResult
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.pipedrive import PIPEDRIVE
from campaignflow.integrations.providers.pipedrive_sync import (
    PERSONS_SYNC,
    person_body,
    person_record,
)
from tests._support.prism_pool import PrismPool
from tests.contract.conftest import context, operation_request, prepared
from tests.contract.path_router import (
    PIPEDRIVE_PREFIXES,
    PIPEDRIVE_SPECS,
    route,
    routes_for,
    running_router,
)
from tests.contract.prism import SPECS, Verdict, send
from tests.contract.strategies import emails, few, names

# One Prism per spec for the test process (xdist group); the first test waits for both to load
# their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

CREDENTIALS = {"api_key": "pd-contract-test-token"}
SCORE = "d4de1c1518b4531717c676029a45911c340390a6"  # custom fields: 40-hex keys
TIER = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
BUDGET = "ffeeddccbbaa99887766554433221100ffeeddcc"
INTERESTS = "1234567890abcdef1234567890abcdef12345678"
LEAD = "adf21080-0e10-11eb-879b-05d71fb426ec"
SINCE = datetime(2026, 11, 29, 8, 30, 15, 999_999, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture(scope="session")
def pipedrive_routes(prism_pool: PrismPool) -> Mapping[str, str]:
    """Production prefix → base URL of the Prism serving that version's spec."""
    return routes_for(PIPEDRIVE_PREFIXES, prism_pool.urls(PIPEDRIVE_SPECS))


@pytest.fixture
async def pipedrive(pipedrive_routes: Mapping[str, str]) -> AsyncIterator[RequestContext]:
    """A connection whose base URL is the path router in front of the Prisms."""
    async with running_router(pipedrive_routes) as url:
        yield context(PIPEDRIVE, CREDENTIALS, {"baseUrl": url})


def _offline() -> RequestContext:
    return context(PIPEDRIVE, CREDENTIALS)


# ------------------------------------------------------------------- the spec's own properties


@functools.cache
def _spec(version: str) -> dict[str, Any]:
    raw = gzip.decompress((SPECS / "pipedrive" / f"openapi-{version}.yaml.gz").read_bytes())
    spec: dict[str, Any] = yaml.load(raw, Loader=yaml.CSafeLoader)
    return spec


def _operation(method: str, production_path: str) -> dict[str, Any]:
    """The spec's operation for a production path (``/api/v2/persons/42`` → v2
    ``/persons/{id}``)."""
    for prefix, name in PIPEDRIVE_PREFIXES.items():
        if production_path.startswith(prefix + "/"):
            spec, path = _spec(name.rpartition("_")[2]), production_path[len(prefix) :]
            break
    else:
        raise AssertionError(f"no Pipedrive API version serves {production_path}")
    literal = [spec["paths"][path]] if path in spec["paths"] else []  # /persons/search first
    templated = [
        operations
        for template, operations in spec["paths"].items()
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
    ]
    for operations in literal + templated:
        if method.lower() in operations:
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    raise AssertionError(f"{method} {production_path} is not in the spec")


def _properties(schema: Mapping[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= _properties(part)
    return names


def undocumented(request: PreparedRequest) -> set[str]:
    """Top-level body properties the spec does not document for the request's operation."""
    operation = _operation(request.method, urlsplit(request.url).path)
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return set(orjson.loads(request.body or b"{}")) - _properties(schema)


def _query(request: PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def _body(request: PreparedRequest) -> Any:
    return orjson.loads(request.body or b"null")


def _answer(verdict: Verdict) -> ProviderResponse:
    return ProviderResponse(verdict.status, {}, verdict.body)


# ------------------------------------------------------------------------------- operations

OPERATIONS = [
    ("find_person", {"email": "alice@example.com"}, "GET /api/v2/persons/search"),
    ("find_person", {"email": "o'brien+vip@mail.example.org"}, "GET /api/v2/persons/search"),
    ("create_person", {"name": "Alice Example"}, "POST /api/v2/persons"),
    (
        "create_person",
        {
            "name": "Alice Example",
            "emails": [
                {"value": "alice@example.com", "label": "work"},
                {"value": "alice@home.example", "label": "home"},
            ],
            "phones": [{"value": "+372 555 0100", "label": "mobile", "primary": True}],
            "ownerId": 3,
            "orgId": 12,
            "visibleTo": 3,
            "labelIds": [4, 5],
            "marketingStatus": "subscribed",
            "customFields": {
                SCORE: 87,
                TIER: "gold",
                BUDGET: {"value": 2500, "currency": "EUR"},
                INTERESTS: [31, 32],
            },
        },
        "POST /api/v2/persons",
    ),
    ("update_person", {"id": 42, "customFields": {SCORE: 87}}, "PATCH /api/v2/persons/42"),
    (
        "update_person",
        {
            "id": "42",
            "name": "Alice B. Example",
            "emails": [{"value": "alice@example.com"}],
            "visibleTo": 1,
            "customFields": {TIER: None},
        },
        "PATCH /api/v2/persons/42",
    ),
    ("create_deal", {"title": "Website redesign"}, "POST /api/v2/deals"),
    (
        "create_deal",
        {
            "title": "Website redesign",
            "value": 1500.5,
            "currency": "EUR",
            "personId": 42,
            "orgId": 12,
            "pipelineId": 1,
            "stageId": 2,
            "status": "open",
            "probability": 40,
            "expectedCloseDate": "2027-01-31",
            "ownerId": 3,
            "visibleTo": 3,
            "labelIds": [7],
            "customFields": {SCORE: 87},
        },
        "POST /api/v2/deals",
    ),
    ("update_deal", {"id": 7, "stageId": 3}, "PATCH /api/v2/deals/7"),
    (
        "update_deal",
        {"id": 7, "status": "lost", "lostReason": "No budget"},
        "PATCH /api/v2/deals/7",
    ),
    ("update_deal", {"id": 7, "status": "won", "value": 1800}, "PATCH /api/v2/deals/7"),
    (
        "add_activity",
        {"subject": "Lead score 87", "type": "task", "personId": 42, "done": True},
        "POST /api/v2/activities",
    ),
    (
        "add_activity",
        {
            "subject": "Demo call",
            "type": "call",
            "dueDate": "2026-12-01",
            "dueTime": "14:30",
            "duration": "00:45",
            "busy": True,
            "done": False,
            "personId": 42,
            "participants": [{"personId": 43}, {"personId": 44}],
            "dealId": 7,
            "orgId": 12,
            "leadId": LEAD,
            "ownerId": 3,
            "note": "<p>Asked for <b>pricing</b></p>",
            "publicDescription": "Product demo",
        },
        "POST /api/v2/activities",
    ),
    (
        "add_activity",
        {
            "subject": "Kick-off",
            "type": "meeting",
            "participants": [{"personId": 43, "primary": True}],
        },
        "POST /api/v2/activities",
    ),
    ("add_note", {"content": "<p>Scored 87</p>", "personId": 42}, "POST /v1/notes"),
    ("add_note", {"content": "Deal note", "dealId": 7}, "POST /v1/notes"),
    ("add_note", {"content": "Lead note", "leadId": LEAD, "orgId": 12}, "POST /v1/notes"),
]


@pytest.mark.parametrize(
    ("operation", "params", "endpoint"),
    OPERATIONS,
    ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(OPERATIONS)],
)
async def test_operation_requests_satisfy_the_spec_at_the_production_path(
    pipedrive: RequestContext,
    http: aiohttp.ClientSession,
    operation: str,
    params: dict[str, Any],
    endpoint: str,
) -> None:
    request = operation_request(PIPEDRIVE, operation, params, pipedrive)
    assert f"{request.method} {urlsplit(request.url).path}" == endpoint
    assert request.headers["x-api-token"] == CREDENTIALS["api_key"]
    assert "api_token" not in request.url  # the secret never goes into a URL
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    if request.body is not None:
        assert undocumented(request) == set()
    output = PIPEDRIVE.operation(operation).output(_answer(verdict))
    assert output == {"status": 200, "id": 1}  # the spec's examples all answer id 1


def test_find_person_asks_for_an_exact_e_mail_match() -> None:
    request = operation_request(PIPEDRIVE, "find_person", {"email": "A+b@example.com"}, _offline())
    assert _query(request) == {
        "term": "A+b@example.com",  # URL-encoded on the wire, decoded here
        "fields": "email",
        "exact_match": "true",
        "limit": "1",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"success": True, "data": {"items": []}, "additional_data": {"next_cursor": None}}, None),
        ({"success": True, "data": {"items": [{"result_score": 1, "item": {"id": 9}}]}}, 9),
        ({"success": True, "data": None}, None),
        ({"success": True, "data": {"items": [{"item": {"id": True}}]}}, None),
    ],
)
def test_find_person_outputs_the_first_match_or_null(body: Any, expected: int | None) -> None:
    output = PIPEDRIVE.operation("find_person").output(ProviderResponse(200, {}, body))
    assert output == {"status": 200, "id": expected}


def test_a_person_is_linked_to_an_activity_as_primary_participant_never_by_person_id() -> None:
    """v2 answers 400 "'person_id' is a read-only field" though its spec lists it."""
    params = {"subject": "Call", "type": "call", "personId": 42, "participants": [{"personId": 5}]}
    body = _body(operation_request(PIPEDRIVE, "add_activity", params, _offline()))
    assert "person_id" not in body
    assert body["participants"] == [
        {"person_id": 42, "primary": True},
        {"person_id": 5, "primary": False},
    ]


def test_the_first_address_becomes_primary_when_none_is_marked() -> None:
    params = {"name": "A", "emails": [{"value": "a@example.com"}, {"value": "b@example.com"}]}
    body = _body(operation_request(PIPEDRIVE, "create_person", params, _offline()))
    assert body["emails"] == [
        {"value": "a@example.com", "primary": True},
        {"value": "b@example.com"},
    ]


def test_a_custom_field_is_cleared_with_null_and_values_keep_their_json_type() -> None:
    fields = {SCORE: None, TIER: 1.5, BUDGET: {"value": 1, "currency": "EUR"}}
    params = {"id": 1, "customFields": fields}
    body = _body(operation_request(PIPEDRIVE, "update_person", params, _offline()))
    assert body == {"custom_fields": fields}


people = st.fixed_dictionaries(
    {"name": names.filter(str.strip)},
    optional={
        "emails": st.lists(emails, min_size=1, max_size=3, unique=True).map(
            lambda addresses: [{"value": a} for a in addresses]
        ),
        "orgId": st.integers(1, 2**31 - 1),
        "visibleTo": st.sampled_from([1, 3, 5, 7]),
        "customFields": st.dictionaries(
            st.sampled_from([SCORE, TIER, BUDGET]),
            st.none() | st.integers(-(2**53), 2**53) | st.text(max_size=20) | st.booleans(),
        ),
    },
)


@few
@given(person=people)
async def test_any_accepted_person_passes_the_spec(
    pipedrive: RequestContext, http: aiohttp.ClientSession, person: dict[str, Any]
) -> None:
    verdict = await send(http, operation_request(PIPEDRIVE, "create_person", person, pipedrive))
    assert verdict.accepted, verdict.messages()


activities = st.fixed_dictionaries(
    {"subject": names.filter(str.strip), "type": st.sampled_from(["call", "task", "lead_scored"])},
    optional={
        "dueDate": st.dates().map(str),
        "done": st.booleans(),
        "duration": st.times().map(lambda t: t.strftime("%H:%M")),
        "personId": st.integers(1, 10**9),
        "dealId": st.integers(1, 10**9),
    },
)


@few
@given(activity=activities, due=st.times())
async def test_any_accepted_activity_passes_the_spec(
    pipedrive: RequestContext, http: aiohttp.ClientSession, activity: dict[str, Any], due: Any
) -> None:
    if "dueDate" in activity:
        activity = {**activity, "dueTime": due.strftime("%H:%M")}
    request = operation_request(PIPEDRIVE, "add_activity", activity, pipedrive)
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert undocumented(request) == set()


async def test_the_connection_test_request_satisfies_the_v1_spec(
    pipedrive: RequestContext, http: aiohttp.ClientSession
) -> None:
    assert PIPEDRIVE.test is not None
    request = prepared(PIPEDRIVE, PIPEDRIVE.test(pipedrive), pipedrive)
    assert urlsplit(request.url).path == "/v1/users/me"
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()


# -------------------------------------------------------------------------- refused params


def _locations(error: ValidationError) -> list[tuple[str | int, ...]]:
    """Each error's place: pydantic's location (without ``[key]`` markers) and, for errors a
    model validator raised, the field it named (``domain_error(at=…)``)."""
    places = []
    for details in error.errors():
        loc = tuple(part for part in details["loc"] if part != "[key]")
        places.append(loc + tuple((details.get("ctx") or {}).get("at", ())))
    return places


NAME = {"name": "Alice"}
CALL = {"subject": "Call", "type": "call"}


@pytest.mark.parametrize(
    ("operation", "params", "place"),
    [
        ("find_person", {"email": "alice@example"}, ("email",)),
        ("find_person", {"email": "alice@example.com", "exactMatch": False}, ("exactMatch",)),
        ("create_person", {}, ("name",)),
        ("create_person", {"name": ""}, ("name",)),
        ("create_person", {**NAME, "firstName": "Al"}, ("firstName",)),
        ("create_person", {**NAME, "emails": [{"value": "a@b"}]}, ("emails", 0, "value")),
        ("create_person", {**NAME, "emails": []}, ("emails",)),
        (
            "create_person",
            {**NAME, "emails": [{"value": "a@b.co", "primary": True}] * 2},
            ("emails", 1),
        ),
        (
            "create_person",
            {**NAME, "phones": [{"value": "1", "label": "fax"}]},
            ("phones", 0, "label"),
        ),
        ("create_person", {**NAME, "visibleTo": 2}, ("visibleTo",)),
        ("create_person", {**NAME, "ownerId": 0}, ("ownerId",)),
        ("create_person", {**NAME, "labelIds": [4, 4]}, ("labelIds",)),
        ("create_person", {**NAME, "marketingStatus": "opted_in"}, ("marketingStatus",)),
        (
            "create_person",
            {**NAME, "customFields": {"lead_score": 1}},
            ("customFields", "lead_score"),
        ),
        (
            "create_person",
            {**NAME, "customFields": {SCORE.upper(): 1}},
            ("customFields", SCORE.upper()),
        ),
        ("create_person", {**NAME, "customFields": {SCORE: []}}, ("customFields", SCORE)),
        ("update_person", NAME, ("id",)),
        ("update_person", {"id": 42}, ()),
        ("update_person", {"id": "forty-two", **NAME}, ("id",)),
        ("create_deal", {"value": 5}, ("title",)),
        ("create_deal", {"title": "D", "currency": "euro"}, ("currency",)),
        ("create_deal", {"title": "D", "value": -1}, ("value",)),
        ("create_deal", {"title": "D", "probability": 101}, ("probability",)),
        ("create_deal", {"title": "D", "status": "deleted"}, ("status",)),
        ("create_deal", {"title": "D", "status": "won", "lostReason": "x"}, ("lostReason",)),
        ("create_deal", {"title": "D", "expectedCloseDate": "2026-13-01"}, ("expectedCloseDate",)),
        ("update_deal", {"id": 7}, ()),
        ("update_deal", {"stageId": 3}, ("id",)),
        ("add_activity", {"type": "call"}, ("subject",)),
        ("add_activity", {"subject": "Call"}, ("type",)),
        ("add_activity", {**CALL, "type": "phone call"}, ("type",)),
        ("add_activity", {**CALL, "dueDate": "2026-12-01", "dueTime": "24:00"}, ("dueTime",)),
        ("add_activity", {**CALL, "dueDate": "2026-12-01", "dueTime": "9:30"}, ("dueTime",)),
        ("add_activity", {**CALL, "dueTime": "09:30"}, ("dueDate",)),
        ("add_activity", {**CALL, "duration": "1:30"}, ("duration",)),
        ("add_activity", {**CALL, "leadId": "lead-1"}, ("leadId",)),
        ("add_activity", {**CALL, "personId": 1, "participants": [{"personId": 1}]}, ("personId",)),
        (
            "add_activity",
            {**CALL, "personId": 1, "participants": [{"personId": 2, "primary": True}]},
            ("participants",),
        ),
        ("add_activity", {**CALL, "participants": [{"personId": 2}] * 2}, ("participants",)),
        ("add_note", {"personId": 42}, ("content",)),
        ("add_note", {"content": "", "personId": 42}, ("content",)),
        ("add_note", {"content": "Hi"}, ()),
        ("add_note", {"content": "Hi", "personId": 42, "pinned": True}, ("pinned",)),
    ],
)
def test_parameters_pipedrive_would_refuse_are_refused_before_any_request_with_the_field_named(
    operation: str, params: dict[str, Any], place: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        PIPEDRIVE.operation(operation).params.model_validate(params)
    assert place in _locations(caught.value), caught.value


@pytest.mark.parametrize(
    ("operation", "params", "words"),
    [
        ("update_person", {"id": 42}, "at least one field"),
        ("add_note", {"content": "Hi"}, "personId, dealId, orgId, leadId"),
    ],
)
def test_a_refusal_without_a_single_field_says_which_fields_would_do(
    operation: str, params: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        PIPEDRIVE.operation(operation).params.model_validate(params)


# ------------------------------------------------------------------------------------- sync


def _pull(
    since: datetime | None, page: str | None, fields: list[str], ctx: RequestContext
) -> PreparedRequest:
    return prepared(PIPEDRIVE, PERSONS_SYNC.pull_request(since, page, fields, ctx), ctx)


@pytest.mark.parametrize(
    ("since", "page", "fields"),
    [
        (None, None, []),
        (SINCE, None, ["name", "email", SCORE]),
        (SINCE, "eyJmaWVsZCI6ImlkIn0", [f"{n:040x}" for n in range(16)]),
    ],
)
async def test_pull_requests_satisfy_the_spec(
    pipedrive: RequestContext,
    http: aiohttp.ClientSession,
    since: datetime | None,
    page: str | None,
    fields: list[str],
) -> None:
    request = _pull(since, page, fields, pipedrive)
    assert urlsplit(request.url).path == "/api/v2/persons"
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()


def test_a_pull_asks_for_changes_since_oldest_first_from_the_cursor() -> None:
    query = _query(_pull(SINCE, "abc", ["name", TIER, SCORE], _offline()))
    assert query == {
        "updated_since": "2026-11-29T06:30:15Z",  # UTC, floored: inclusive, so nothing missed
        "sort_by": "update_time",
        "sort_direction": "asc",
        "limit": "500",
        "cursor": "abc",
        "custom_fields": f"{TIER},{SCORE}",
    }


def test_a_pull_asks_for_every_custom_field_beyond_pipedrives_cap_of_15() -> None:
    query = _query(_pull(None, None, [f"{n:040x}" for n in range(16)], _offline()))
    assert "custom_fields" not in query
    assert "updated_since" not in query
    assert "cursor" not in query


def test_a_pull_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _pull(datetime(2026, 1, 1), None, [], _offline())


async def test_a_pull_page_from_prisms_example_is_read(
    pipedrive: RequestContext, http: aiohttp.ClientSession
) -> None:
    verdict = await send(http, _pull(SINCE, None, [], pipedrive))
    page = PERSONS_SYNC.parse_pull(_answer(verdict))
    assert (
        page.next_page
        == "eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6Nywic29ydERpcmVjdGlvbiI6ImFzYyIsImlkIjo3fQ"
    )
    [record] = page.records
    assert record.remote_id == "1"
    assert record.modified_at == datetime(2021, 1, 1, tzinfo=UTC)
    assert record.email == "email1@email.com"
    assert not record.deleted
    assert record.fields == {
        "name": "Person Name",
        "first_name": "Person",
        "last_name": "Name",
        "email": "email1@email.com",
        "phone": "12345",
        "org_id": 1,
        "owner_id": 1,
    }


def _person(person_id: int, update_time: str | None, **extra: Any) -> dict[str, Any]:
    person: dict[str, Any] = {"id": person_id, "name": f"P{person_id}", "update_time": update_time}
    return {**person, **extra}


def test_a_hand_written_page_with_a_cursor_a_deleted_person_and_custom_fields_is_read() -> None:
    body = {
        "success": True,
        "data": [
            _person(
                7,
                "2026-11-29T06:30:15Z",
                emails=[
                    {"value": "old@example.com", "primary": False, "label": "home"},
                    {"value": "new@example.com", "primary": True, "label": "work"},
                ],
                phones=[],
                org_id=None,
                custom_fields={SCORE: 87, BUDGET: {"value": 2500, "currency": "EUR"}, TIER: None},
            ),
            _person(
                8, "2026-11-29T07:00:00.123Z", is_deleted=True, emails=[{"value": "x@example.com"}]
            ),
            _person(9, None),  # no modification time: cannot be ordered, so not taken
            "not a person",
        ],
        "additional_data": {"next_cursor": "c2"},
    }
    page = PERSONS_SYNC.parse_pull(ProviderResponse(200, {}, body))
    assert page.next_page == "c2"
    assert [r.remote_id for r in page.records] == ["7", "8"]
    first, deleted = page.records
    assert first.email == "new@example.com"  # the primary one, not the first
    assert first.fields["phone"] is None
    assert first.fields["org_id"] is None
    assert first.fields[SCORE] == 87
    assert first.fields[BUDGET] == '{"currency":"EUR","value":2500}'  # nested: as JSON text
    assert first.fields[TIER] is None
    assert first.modified_at == datetime(2026, 11, 29, 6, 30, 15, tzinfo=UTC)
    assert deleted.deleted
    assert deleted.email == "x@example.com"
    assert deleted.modified_at == datetime(2026, 11, 29, 7, 0, 0, 123_000, tzinfo=UTC)


@pytest.mark.parametrize("additional", [{"next_cursor": None}, {"next_cursor": ""}, {}, None])
def test_the_last_page_has_no_next_page(additional: Any) -> None:
    body = {"success": True, "data": [], "additional_data": additional}
    assert PERSONS_SYNC.parse_pull(ProviderResponse(200, {}, body)).next_page is None


def _push(*records: PushRecord, ctx: RequestContext | None = None) -> PreparedRequest:
    ctx = ctx or _offline()
    return prepared(PIPEDRIVE, PERSONS_SYNC.push_request(records, ctx), ctx)


NEW = PushRecord(
    key="contact-1",
    fields={"first_name": "Alice", "last_name": "Example", "phone": "+372 555 0100", SCORE: 87},
    email="alice@example.com",
)
LINKED = PushRecord(
    key="contact-2",
    remote_id="42",
    fields={"name": "Bob Example", "email": "bob@example.com", "org_id": "12", TIER: None},
)


@pytest.mark.parametrize("record", [NEW, LINKED], ids=["create", "update"])
async def test_push_requests_satisfy_the_spec_and_their_answer_links_the_record(
    pipedrive: RequestContext, http: aiohttp.ClientSession, record: PushRecord
) -> None:
    request = _push(record, ctx=pipedrive)
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert undocumented(request) == set()
    assert PERSONS_SYNC.parse_push([record], _answer(verdict)) == [PushResult(record.key, "1")]


def test_an_unlinked_record_is_created_and_a_linked_one_updated() -> None:
    create, update = _push(NEW), _push(LINKED)
    assert (create.method, urlsplit(create.url).path) == ("POST", "/api/v2/persons")
    assert _body(create) == {
        "name": "Alice Example",  # v2 has no first/last name to write: they make the name
        "emails": [{"value": "alice@example.com", "primary": True}],
        "phones": [{"value": "+372 555 0100", "primary": True}],
        "custom_fields": {SCORE: 87},
    }
    assert (update.method, urlsplit(update.url).path) == ("PATCH", "/api/v2/persons/42")
    assert _body(update) == {
        "name": "Bob Example",
        "emails": [{"value": "bob@example.com", "primary": True}],
        "org_id": 12,  # v2 refuses numbers as text
        "custom_fields": {TIER: None},
    }


def test_an_update_leaves_out_what_the_record_does_not_set() -> None:
    record = PushRecord("c", {"name": None, "email": "", SCORE: 5}, remote_id="42", email="x@y.co")
    assert _body(_push(record)) == {"custom_fields": {SCORE: 5}}


@pytest.mark.parametrize(
    ("records", "words"),
    [
        ((NEW, LINKED), "one person per request"),
        ((replace(NEW, fields={"nickname": "Al"}),), "unknown person field 'nickname'"),
        ((replace(NEW, fields={"email": "a@example.com"}),), "needs a name"),
        ((replace(LINKED, remote_id="abc"),), "remote_id must be a Pipedrive id"),
        ((replace(LINKED, fields={"owner_id": "me"}),), "owner_id must be a Pipedrive id"),
        ((replace(LINKED, fields={"org_id": True}),), "org_id must be a Pipedrive id"),
    ],
)
def test_a_push_pipedrive_would_refuse_is_not_built(
    records: tuple[PushRecord, ...], words: str
) -> None:
    with pytest.raises((CannotBuildRequest, ValueError), match=words):
        _push(*records)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            400,
            {
                "success": False,
                "error": "Name must be given",
                "error_info": "See docs",
                "data": None,
            },
            "pipedrive 400: Name must be given",
        ),
        (404, {"success": False, "error": "Person not found"}, "pipedrive 404: Person not found"),
        (422, "upstream said no", "pipedrive 422: upstream said no"),
        (400, None, "pipedrive 400: no reason given"),
        (200, {"success": False, "error": "Bad custom field"}, "pipedrive 200: Bad custom field"),
        (200, {"success": True, "data": {}}, "pipedrive: no person id in 2xx"),
    ],
)
def test_a_refused_push_fails_the_record_without_retry_with_pipedrives_reason(
    status: int, body: Any, reason: str
) -> None:
    [result] = PERSONS_SYNC.parse_push([LINKED], ProviderResponse(status, {}, body))
    assert result == PushResult(LINKED.key, LINKED.remote_id, error=reason, retryable=False)
    assert not result.ok


custom_values = st.none() | st.integers(-(2**31), 2**31) | st.text(max_size=20) | st.booleans()


@given(
    name=names.filter(str.strip),
    email=st.none() | emails,
    phone=st.none() | st.text("+0123456789 ", min_size=1, max_size=15).filter(str.strip),
    ids=st.fixed_dictionaries(
        {}, optional={"org_id": st.integers(1, 10**9), "owner_id": st.integers(1, 10**9)}
    ),
    custom=st.dictionaries(st.sampled_from([SCORE, TIER, INTERESTS]), custom_values),
)
def test_what_a_push_writes_a_pull_reads_back_under_the_same_names(
    name: str,
    email: str | None,
    phone: str | None,
    ids: dict[str, int],
    custom: dict[str, JsonScalar],
) -> None:
    fields: dict[str, JsonScalar] = {"name": name, "email": email, "phone": phone, **ids, **custom}
    body = person_body(PushRecord("k", fields), create=True)
    stored = {  # what Pipedrive keeps and a pull returns (lists of entries, custom_fields)
        "id": 5,
        "update_time": "2026-11-29T06:30:15Z",
        **{k: v for k, v in body.items() if k != "custom_fields"},
        "custom_fields": body.get("custom_fields", {}),
    }
    record = person_record(stored)
    assert record is not None
    expected = {k: v for k, v in fields.items() if v is not None}
    assert {k: v for k, v in record.fields.items() if v is not None} == {
        k: v for k, v in expected.items() if k in record.fields
    }
    assert set(expected) <= set(record.fields)
    assert record.email == email


async def test_the_activity_request_satisfies_the_spec(
    pipedrive: RequestContext, http: aiohttp.ClientSession
) -> None:
    activity = Activity(
        remote_id="42",
        type="email",
        subject="Opened: Spring sale",
        occurred_at=datetime(2026, 11, 29, 1, 5, 59, tzinfo=timezone(timedelta(hours=3))),
        note="<p>Opened the spring sale e-mail</p>",
    )
    ctx = pipedrive
    request = prepared(PIPEDRIVE, PERSONS_SYNC.activity_request(activity, ctx), ctx)
    assert (request.method, urlsplit(request.url).path) == ("POST", "/api/v2/activities")
    assert _body(request) == {
        "subject": "Opened: Spring sale",
        "type": "email",
        "due_date": "2026-11-28",  # in UTC, as Pipedrive reads due dates and times
        "due_time": "22:05",
        "done": True,
        "participants": [{"person_id": 42, "primary": True}],
        "note": "<p>Opened the spring sale e-mail</p>",
    }
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert undocumented(request) == set()


def test_an_activity_needs_a_linked_person_and_an_aware_time() -> None:
    at = datetime(2026, 11, 29, tzinfo=UTC)
    with pytest.raises(CannotBuildRequest, match="remote_id"):
        PERSONS_SYNC.activity_request(Activity("", "call", "s", at), _offline())
    with pytest.raises(ValueError, match="timezone-aware"):
        PERSONS_SYNC.activity_request(
            Activity("1", "call", "s", at.replace(tzinfo=None)), _offline()
        )


# ---------------------------------------------------- the harness can fail (oracle checks)


def _broken(request: PreparedRequest, change: Any) -> PreparedRequest:
    body = _body(request)
    change(body)
    return replace(request, body=orjson.dumps(body))


def _set(key: str, value: Any) -> Any:
    return lambda body: body.__setitem__(key, value)


def _drop(key: str) -> Any:
    return lambda body: body.pop(key)


def _names(violation: Mapping[str, Any], field: str) -> bool:
    """Whether Prism's violation is about ``field``: at its location (a wrong value) or in
    its message (a missing required property is reported at the enclosing object)."""
    return field in violation.get("location", []) or f"'{field}'" in violation.get("message", "")


@pytest.mark.parametrize(
    ("call", "change", "where"),
    [
        (("create_person", NAME), _set("name", 5), "name"),
        (("create_person", NAME), _set("emails", {"value": "a@example.com"}), "emails"),
        (("update_person", {"id": 1, **NAME}), _set("org_id", "12"), "org_id"),
        (("create_deal", {"title": "D"}), _drop("title"), "title"),
        (
            ("create_deal", {"title": "D"}),
            _set("expected_close_date", "soon"),
            "expected_close_date",
        ),
        (("add_activity", CALL), _set("participants", {"person_id": 1}), "participants"),
        (("add_note", {"content": "x", "personId": 1}), _drop("content"), "content"),
        (("add_note", {"content": "x", "leadId": LEAD}), _set("lead_id", "lead-1"), "lead_id"),
    ],
)
async def test_a_request_that_breaks_the_spec_is_refused_with_the_field_named(
    pipedrive: RequestContext,
    http: aiohttp.ClientSession,
    call: tuple[str, dict[str, Any]],
    change: Any,
    where: str,
) -> None:
    request = _broken(operation_request(PIPEDRIVE, *call, pipedrive), change)
    verdict = await send(http, request)
    assert not verdict.accepted
    assert verdict.status == 422
    assert any(_names(v, where) for v in verdict.violations), verdict.violations


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/api/v2/persons/search?term=a%40b.co&fields=email&exact_match=yes", "exact_match"),
        ("/api/v2/persons/search?term=a%40b.co&fields=email,name", "fields"),
        ("/api/v2/persons?sort_by=name", "sort_by"),
        ("/api/v2/persons?limit=many", "limit"),
    ],
)
async def test_a_query_that_breaks_the_spec_is_refused(
    pipedrive: RequestContext, http: aiohttp.ClientSession, path: str, where: str
) -> None:
    base = operation_request(PIPEDRIVE, "find_person", {"email": "a@b.co"}, pipedrive)
    origin = base.url.split("/api/v2/")[0]
    verdict = await send(http, replace(base, url=origin + path))
    assert not verdict.accepted
    assert any(_names(v, where) for v in verdict.violations), verdict.violations


async def test_a_request_without_the_token_is_refused(
    pipedrive: RequestContext, http: aiohttp.ClientSession
) -> None:
    request = operation_request(PIPEDRIVE, "create_person", NAME, pipedrive)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "x-api-token"}
    verdict = await send(http, replace(request, headers=headers))
    assert verdict.status == 401


@pytest.mark.parametrize(
    "wrong", ["/persons", "/v2/persons", "/api/v1/persons", "/api/v2x/persons", "/v1x/notes"]
)
async def test_a_request_at_a_wrong_version_prefix_is_not_found(
    pipedrive: RequestContext, http: aiohttp.ClientSession, wrong: str
) -> None:
    """Prism alone would answer ``/persons``; the router is what makes the prefix count."""
    request = operation_request(PIPEDRIVE, "create_person", NAME, pipedrive)
    origin = request.url.split("/api/v2/")[0]
    verdict = await send(http, replace(request, url=origin + wrong))
    assert verdict.status == 404


def test_the_documented_properties_check_catches_a_misspelt_field() -> None:
    request = operation_request(PIPEDRIVE, "add_activity", CALL, _offline())
    assert undocumented(_broken(request, _set("person", 42))) == {"person"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api/v2/persons?term=a%40b.co", "http://v2/persons?term=a%40b.co"),
        ("/api/v2/persons/42", "http://v2/persons/42"),
        ("/v1/notes", "http://v1/notes"),
        ("/v1/users/me?x=%2F", "http://v1/users/me?x=%2F"),
        ("/api/v2", None),  # a prefix alone is no resource
        ("/api/v2x/persons", None),
        ("/persons", None),
    ],
)
def test_the_router_strips_only_whole_known_prefixes_and_keeps_the_encoding(
    raw: str, expected: str | None
) -> None:
    assert route(raw, {"/api/v2": "http://v2", "/v1": "http://v1"}) == expected


def test_the_router_takes_the_longest_matching_prefix() -> None:
    routes = {"/api": "http://api", "/api/v2": "http://v2"}
    assert route("/api/v2/persons", routes) == "http://v2/persons"
    assert route("/api/v1/persons", routes) == "http://api/v1/persons"
