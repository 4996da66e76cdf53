"""Meta, Google Ads and LinkedIn requests against JSON Schemas written from their references.

None of the three publishes an OpenAPI file (NOTES §1), so there is no Prism mock: each schema
in ``ads_schemas/`` describes one endpoint's request as the provider documents it (``$comment``
names the source and its version, ``x-endpoint`` the method and path template, ``x-headers``
headers the request must carry, ``x-encoding: form`` Graph API parameters sent form-encoded
with JSON-text values). Every request the connectors build must match its endpoint, carry its
headers and authentication, and validate; parameters the provider would refuse are refused by
the parameter models before anything is built, at the field that is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from campaignflow.integrations.connector import (
    BearerAuth,
    CannotBuildRequest,
    Connector,
    ConnectorModel,
    OAuth2RefreshToken,
    RequestContext,
)
from campaignflow.integrations.prepare import MissingCredential, PreparedRequest, prepare
from campaignflow.integrations.providers.google_ads import GOOGLE_ADS
from campaignflow.integrations.providers.linkedin_ads import LINKEDIN_ADS
from campaignflow.integrations.providers.meta_ads import META_ADS
from tests.contract.conftest import NOW_UNIX, context
from tests.contract.strategies import emails

SCHEMAS = Path(__file__).parent / "ads_schemas"
KEY = "send:ex_01J9Z6:send-welcome"  # conftest.context's idempotency key
ACCESS_TOKEN = "ya29.contract-test"  # what the executor's OAuth cache would hand prepare()
META_CREDENTIALS = {"token": "EAAB-contract-test", "app_secret": "app-secret"}
GOOGLE_CREDENTIALS = {
    "client_id": "1234.apps.googleusercontent.com",
    "client_secret": "client-secret",
    "refresh_token": "1//refresh",
    "developer_token": "DEV-TOKEN",
}
LINKEDIN_CREDENTIALS = {"token": "AQX-contract-test"}
HEX64 = re.compile(r"[0-9a-f]{64}")
varied = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run: a contract failure must reproduce
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: re.Pattern[str]
    schema: Mapping[str, Any]
    validator: jsonschema.Draft202012Validator


def _template(path: str) -> re.Pattern[str]:
    """``/{version}/customers/{customer_id}:run`` → a pattern of one segment per name."""
    parts = re.split(r"(\{[a-z_]+\})", path)
    return re.compile("".join("[^/:]+" if p.startswith("{") else re.escape(p) for p in parts))


@cache
def endpoints() -> tuple[Endpoint, ...]:
    found = []
    for file in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(file.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        x = schema["x-endpoint"]
        found.append(Endpoint(x["method"], _template(x["path"]), schema, validator))
    return tuple(found)


def endpoint_of(request: PreparedRequest) -> Endpoint:
    path = urlsplit(request.url).path
    matches = [e for e in endpoints() if e.method == request.method and e.path.fullmatch(path)]
    assert len(matches) == 1, f"{request.method} {path} matches {len(matches)} schemas"
    return matches[0]


def document(request: PreparedRequest, endpoint: Endpoint) -> Any:
    """What the schema describes: the query of a GET, the decoded form parameters of a Graph
    API call (JSON-text values parsed), else the JSON body."""
    if request.method == "GET":
        query = dict(parse_qsl(urlsplit(request.url).query))
        query.pop("appsecret_proof", None)  # checked on its own: a proof, not a parameter
        return query
    body = (request.body or b"").decode()
    if endpoint.schema.get("x-encoding") == "form":
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        pairs = parse_qsl(body, keep_blank_values=True)
        return {name: json.loads(v) if v[:1] in "{[" else v for name, v in pairs}
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(body)


def violations(request: PreparedRequest) -> list[str]:
    endpoint = endpoint_of(request)
    found = [
        f"{e.json_path}: {e.message}"
        for e in endpoint.validator.iter_errors(document(request, endpoint))
    ]
    for name, pattern in endpoint.schema.get("x-headers", {}).items():
        if not re.fullmatch(pattern, request.headers.get(name, "")):
            found.append(f"header {name}: {request.headers.get(name)!r} !~ {pattern}")
    return found


def build(
    connector: Connector,
    operation: str,
    params: Mapping[str, Any],
    ctx: RequestContext,
    *,
    access_token: str | None = None,
) -> PreparedRequest:
    """Validate, build and prepare as the executor does (with the OAuth token it would hold)."""
    op = connector.operation(operation)
    outbound = op.request(op.params.model_validate(dict(params)), ctx)
    return prepare(
        connector,
        outbound,
        base_url=connector.resolved_base_url(ctx.settings, ctx.credentials),
        credentials=ctx.credentials,
        idempotency_key=ctx.idempotency_key,
        access_token=access_token,
    )


def payload_of(request: PreparedRequest) -> Any:
    return document(request, endpoint_of(request))


def test_the_schemas_are_valid_cite_their_source_and_name_their_endpoints() -> None:
    assert {(e.method, e.schema["x-endpoint"]["path"]) for e in endpoints()} == {
        ("POST", "/{api_version}/{custom_audience_id}/users"),
        ("DELETE", "/{api_version}/{custom_audience_id}/users"),
        ("POST", "/{api_version}/{pixel_id}/events"),
        ("GET", "/{api_version}/me"),
        ("POST", "/{version}/customers/{customer_id}/offlineUserDataJobs:create"),
        ("POST", "/{version}/customers/{customer_id}/offlineUserDataJobs/{job_id}:addOperations"),
        ("POST", "/{version}/customers/{customer_id}/offlineUserDataJobs/{job_id}:run"),
        ("POST", "/{version}/customers/{customer_id}:uploadClickConversions"),
        ("GET", "/{version}/customers:listAccessibleCustomers"),
        ("POST", "/rest/dmpSegments/{segment_id}/users"),
        ("POST", "/rest/conversionEvents"),
        ("GET", "/rest/adAccountUsers"),
    }
    for endpoint in endpoints():
        assert re.search(r"https://|googleapis/googleapis", endpoint.schema["$comment"])


# ------------------------------------------------------------------------------------- Meta


def meta(params: Mapping[str, Any], operation: str, **settings_: Any) -> PreparedRequest:
    ctx = context(META_ADS, META_CREDENTIALS, settings_ or None)
    request = build(META_ADS, operation, params, ctx)
    assert request.url.startswith("https://graph.facebook.com/v26.0/")
    assert request.headers["Authorization"] == "Bearer " + META_CREDENTIALS["token"]
    assert "access_token" not in request.url  # the token stays out of URLs
    proof = hmac.new(b"app-secret", META_CREDENTIALS["token"].encode(), hashlib.sha256)
    assert dict(parse_qsl(urlsplit(request.url).query))["appsecret_proof"] == proof.hexdigest()
    return request


PEOPLE = [
    [{"email": "alice@example.com"}],
    [
        {"email": " Alice@Example.com ", "phone": "+1 (650) 555-1212", "firstName": "Alice",
         "lastName": "Martin", "dateOfBirth": "1990-04-01", "gender": "female", "city": "Paris",
         "state": "IDF", "zip": "75002", "country": "FR", "externalId": "crm-42"},
        {"phone": "+44 (0)20 7183 8750"},
        {"mobileAdvertiserId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"},
    ],
]  # fmt: skip


@pytest.mark.parametrize("operation", ["add_audience_users", "remove_audience_users"])
@pytest.mark.parametrize("users", PEOPLE)
def test_audience_updates_match_the_schema_and_send_no_personal_data_in_clear(
    operation: str, users: list[dict[str, str]]
) -> None:
    request = meta({"audienceId": "23851234567890123", "users": users}, operation)
    assert request.method == ("POST" if operation == "add_audience_users" else "DELETE")
    assert urlsplit(request.url).path == "/v26.0/23851234567890123/users"
    assert violations(request) == []
    payload = payload_of(request)["payload"]
    body = (request.body or b"").decode().lower()
    for person in users:
        for name, value in person.items():
            if name not in {"externalId", "mobileAdvertiserId"}:
                assert value.strip().lower() not in body, name
    for row in payload["data"]:
        assert len(row) == len(payload["schema"])
        for column, cell in zip(payload["schema"], row, strict=True):
            if column not in {"EXTERN_ID", "MADID"}:
                assert cell == "" or HEX64.fullmatch(cell), column


def test_a_value_a_person_lacks_is_sent_empty_not_as_the_digest_of_nothing() -> None:
    """sha256('') is a value like any other to Meta; a missing one is the empty string."""
    users = [{"email": "a@example.com"}, {"phone": "+1 650 555 1212"}]
    payload = payload_of(meta({"audienceId": "1", "users": users}, "add_audience_users"))
    assert payload["payload"]["schema"] == ["EMAIL", "PHONE"]
    assert payload["payload"]["data"] == [
        [hashlib.sha256(b"a@example.com").hexdigest(), ""],
        ["", hashlib.sha256(b"16505551212").hexdigest()],
    ]


def test_an_upload_session_is_sent_with_metas_names() -> None:
    session = {"sessionId": 42, "batchSeq": 2, "lastBatch": True, "estimatedTotal": 25_000}
    params = {"audienceId": "1", "users": [{"email": "a@example.com"}], "session": session}
    request = meta(params, "add_audience_users")
    assert violations(request) == []
    assert payload_of(request)["session"] == {
        "session_id": 42,
        "batch_seq": 2,
        "last_batch_flag": True,
        "estimated_num_total": 25_000,
    }


meta_people = st.lists(
    st.fixed_dictionaries(
        {"email": emails},
        optional={
            "phone": st.from_regex(r"\+[1-9][0-9]{7,12}", fullmatch=True),
            "firstName": st.text(min_size=1, max_size=20).filter(
                lambda name: any(ch.isalpha() for ch in name)
            ),
            "zip": st.from_regex(r"[0-9]{5}(-[0-9]{4})?", fullmatch=True),
            "gender": st.sampled_from(["f", "m", "Female", "MALE"]),
            "dateOfBirth": st.dates().filter(lambda d: d.year >= 1900).map(str),
        },
    ),
    min_size=1,
    max_size=5,
)


@varied
@given(users=meta_people)
def test_any_accepted_audience_update_matches_the_schema(users: list[dict[str, str]]) -> None:
    assert violations(meta({"audienceId": "1", "users": users}, "add_audience_users")) == []


EVENTS = [
    {"eventName": "Lead", "actionSource": "system_generated", "userData": {"email": "a@b.co"}},
    {
        "eventName": "Purchase",
        "actionSource": "website",
        "eventTime": NOW_UNIX - 3600,
        "eventSourceUrl": "https://shop.example.com/checkout",
        "userData": {
            "email": "Alice@Example.com",
            "phone": "+33 6 12 34 56 78",
            "firstName": "Alice",
            "dateOfBirth": "1990-04-01",
            "country": "fr",
            "externalId": "crm-42",
            "clientIpAddress": "2001:db8::1",
            "clientUserAgent": "Mozilla/5.0",
            "fbc": "fb.1.1554763741205.AbCdEfGh",
            "fbp": "fb.1.1596403881668.1116446470",
        },
        "value": 42.5,
        "currency": "EUR",
        "customData": {"content_ids": ["sku-1"], "order_id": "A-1042"},
        "limitedDataUse": True,
    },
]


@pytest.mark.parametrize("event", EVENTS)
def test_conversion_events_match_the_schema_and_dedupe_on_the_step(event: dict[str, Any]) -> None:
    request = meta({"pixelId": "1234567890", "events": [event]}, "send_conversion_events")
    assert urlsplit(request.url).path == "/v26.0/1234567890/events"
    assert violations(request) == []
    sent = payload_of(request)["data"][0]
    assert sent["event_id"] == KEY  # Meta drops the retried step's event as a duplicate
    assert sent["event_time"] == event.get("eventTime", NOW_UNIX)
    assert all(HEX64.fullmatch(sent["user_data"][k]) for k in ("em",))


def test_several_events_of_one_step_get_distinct_ids_and_given_ids_are_kept() -> None:
    events = [
        {**EVENTS[0], "eventId": "order-1"},
        EVENTS[0],
        EVENTS[0],
    ]
    request = meta(
        {"pixelId": "1", "events": events, "testEventCode": "TEST123"}, "send_conversion_events"
    )
    assert violations(request) == []
    sent = payload_of(request)
    assert [e["event_id"] for e in sent["data"]] == ["order-1", f"{KEY}:1", f"{KEY}:2"]
    assert sent["test_event_code"] == "TEST123"


def test_an_event_older_than_seven_days_is_not_sent() -> None:
    stale = {**EVENTS[0], "eventTime": NOW_UNIX - 7 * 86_400 - 1}
    with pytest.raises(CannotBuildRequest, match="events/0/eventTime"):
        meta({"pixelId": "1", "events": [stale]}, "send_conversion_events")


def test_the_meta_api_version_is_a_connection_setting() -> None:
    ctx = context(META_ADS, {"token": "t"}, {"apiVersion": "v27.0"})
    request = build(META_ADS, "add_audience_users", {"audienceId": "1", "users": PEOPLE[0]}, ctx)
    assert urlsplit(request.url).path == "/v27.0/1/users"
    assert "appsecret_proof" not in request.url  # no app secret, no proof


# ----------------------------------------------------------------------------------- Google

JOB = "customers/1234567890/offlineUserDataJobs/555"


def google(params: Mapping[str, Any], operation: str) -> PreparedRequest:
    ctx = context(GOOGLE_ADS, GOOGLE_CREDENTIALS, {"loginCustomerId": "9998887777"})
    request = build(GOOGLE_ADS, operation, params, ctx, access_token=ACCESS_TOKEN)
    assert request.url.startswith("https://googleads.googleapis.com/v25/")
    assert request.headers["Authorization"] == "Bearer " + ACCESS_TOKEN
    assert request.headers["developer-token"] == "DEV-TOKEN"
    assert request.headers["login-customer-id"] == "9998887777"
    return request


def test_google_uses_the_refresh_token_grant_and_cannot_send_without_its_token() -> None:
    assert GOOGLE_ADS.auth == OAuth2RefreshToken(token_url="https://oauth2.googleapis.com/token")
    ctx = context(GOOGLE_ADS, GOOGLE_CREDENTIALS)
    with pytest.raises(MissingCredential, match=r"OAuth 2\.0 access token"):
        build(GOOGLE_ADS, "run_customer_match_job", {"jobResourceName": JOB}, ctx)


@pytest.mark.parametrize(
    "params",
    [
        {"customerId": "123-456-7890", "userListId": "42"},
        {"customerId": "1234567890", "userListId": "42", "adUserDataConsent": "GRANTED",
         "adPersonalizationConsent": "DENIED", "enableMatchRateRangePreview": True,
         "validateOnly": True},
    ],
)  # fmt: skip
def test_customer_match_jobs_are_created_for_one_user_list(params: dict[str, Any]) -> None:
    request = google(params, "create_customer_match_job")
    path = "/v25/customers/1234567890/offlineUserDataJobs:create"
    assert urlsplit(request.url).path == path
    assert violations(request) == []
    metadata = payload_of(request)["job"]["customerMatchUserListMetadata"]
    assert metadata["userList"] == "customers/1234567890/userLists/42"


MEMBERS = [
    {"email": "Jane.Doe@gmail.com"},
    {"phone": "+1 650 555 1212", "email": "jane@example.com"},
    {"firstName": "Jane", "lastName": "O'Doe", "countryCode": "us", "postalCode": "94043"},
]


@pytest.mark.parametrize(
    "params",
    [
        {"jobResourceName": JOB, "add": MEMBERS},
        {"jobResourceName": JOB, "remove": MEMBERS[:1], "add": MEMBERS[1:]},
        {"jobResourceName": JOB, "removeAll": True, "add": MEMBERS, "enableWarnings": True},
        {"jobResourceName": JOB, "add": [{"mobileId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}]},
        {"jobResourceName": JOB, "remove": [{"thirdPartyUserId": "crm-42"}], "validateOnly": True},
    ],
)
def test_customer_match_operations_match_the_schema(params: dict[str, Any]) -> None:
    request = google(params, "add_customer_match_operations")
    assert urlsplit(request.url).path == f"/v25/{JOB}:addOperations"
    assert violations(request) == []
    operations = payload_of(request)["operations"]
    if params.get("removeAll"):
        assert operations[0] == {"removeAll": True}  # first, so the adds that follow stay
    assert payload_of(request)["enablePartialFailure"] is True


def test_gmail_addresses_are_hashed_without_the_dots_google_ignores() -> None:
    request = google({"jobResourceName": JOB, "add": MEMBERS[:1]}, "add_customer_match_operations")
    identifier = payload_of(request)["operations"][0]["create"]["userIdentifiers"][0]
    assert identifier == {"hashedEmail": hashlib.sha256(b"janedoe@gmail.com").hexdigest()}


google_members = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "email": emails,
            "phone": st.from_regex(r"\+[1-9][0-9]{7,12}", fullmatch=True),
        },
    ).filter(bool),
    min_size=1,
    max_size=5,
)


@varied
@given(add=google_members, remove=st.lists(st.fixed_dictionaries({"email": emails}), max_size=3))
def test_any_accepted_customer_match_batch_matches_the_schema(
    add: list[dict[str, str]], remove: list[dict[str, str]]
) -> None:
    request = google(
        {"jobResourceName": JOB, "add": add, "remove": remove}, "add_customer_match_operations"
    )
    assert violations(request) == []
    assert len(payload_of(request)["operations"]) == len(add) + len(remove)


def test_running_a_job_names_it_in_the_path() -> None:
    request = google({"jobResourceName": JOB}, "run_customer_match_job")
    assert urlsplit(request.url).path == f"/v25/{JOB}:run"
    assert violations(request) == []
    assert payload_of(request) == {}


CONVERSIONS = [
    {"conversionActionId": "77", "conversionDateTime": "2026-11-28 10:32:45-08:00",
     "gclid": "EAIaIQobChMI"},
    {"conversionActionId": "77", "conversionDateTime": "2026-11-28T18:32:45Z", "wbraid": "Cj0KCQ",
     "email": "Jane.Doe@gmail.com", "phone": "+1 650 555 1212", "conversionValue": 19.9,
     "currencyCode": "USD", "orderId": "A-1042", "adUserDataConsent": "GRANTED"},
    {"conversionActionId": "77", "conversionDateTime": "2026-11-28T19:32:45+01:00",
     "email": "a@b.co"},
]  # fmt: skip


@pytest.mark.parametrize("conversion", CONVERSIONS)
def test_click_conversions_match_the_schema_and_count_once_per_step(
    conversion: dict[str, Any],
) -> None:
    request = google(
        {"customerId": "123-456-7890", "conversions": [conversion]}, "upload_click_conversions"
    )
    assert urlsplit(request.url).path == "/v25/customers/1234567890:uploadClickConversions"
    assert violations(request) == []
    body = payload_of(request)
    assert body["partialFailure"] is True
    sent = body["conversions"][0]
    assert sent["orderId"] == conversion.get("orderId", KEY)  # one conversion per order id
    assert sent["conversionAction"] == "customers/1234567890/conversionActions/77"


def test_conversion_times_are_sent_in_googles_format_with_their_offset() -> None:
    request = google(
        {"customerId": "1234567890", "conversions": CONVERSIONS}, "upload_click_conversions"
    )
    assert [c["conversionDateTime"] for c in payload_of(request)["conversions"]] == [
        "2026-11-28 10:32:45-08:00",
        "2026-11-28 18:32:45+00:00",
        "2026-11-28 19:32:45+01:00",
    ]
    assert [c["orderId"] for c in payload_of(request)["conversions"]] == [
        f"{KEY}:0",
        "A-1042",
        f"{KEY}:2",
    ]


def test_the_google_connection_test_matches_its_schema() -> None:
    ctx = context(GOOGLE_ADS, GOOGLE_CREDENTIALS)
    assert GOOGLE_ADS.test is not None
    request = prepare(
        GOOGLE_ADS,
        GOOGLE_ADS.test(ctx),
        base_url=GOOGLE_ADS.base_url,
        credentials=ctx.credentials,
        idempotency_key=None,
        access_token=ACCESS_TOKEN,
    )
    assert violations(request) == []
    assert "login-customer-id" not in request.headers  # only when the connection names one


# --------------------------------------------------------------------------------- LinkedIn


def linkedin(params: Mapping[str, Any], operation: str) -> PreparedRequest:
    ctx = context(LINKEDIN_ADS, LINKEDIN_CREDENTIALS)
    request = build(LINKEDIN_ADS, operation, params, ctx)
    assert request.url.startswith("https://api.linkedin.com/rest/")
    assert request.headers["Authorization"] == "Bearer " + LINKEDIN_CREDENTIALS["token"]
    assert request.headers["LinkedIn-Version"] == "202607"
    return request


SEGMENT_USERS = [
    {"email": "Jane@Example.com"},
    {"email": "jane@example.com", "googleAid": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
     "firstName": "Jane", "lastName": "Doe", "title": "CTO", "company": "Acme", "country": "us"},
    {"firstName": "Jane", "lastName": "Doe", "company": "Acme"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "action"), [("add_segment_users", "ADD"), ("remove_segment_users", "REMOVE")]
)
@pytest.mark.parametrize("email_hash", ["SHA256", "SHA512"])
def test_segment_updates_match_the_schema(operation: str, action: str, email_hash: str) -> None:
    params = {"segmentId": "10804", "users": SEGMENT_USERS, "emailHash": email_hash}
    request = linkedin(params, operation)
    assert urlsplit(request.url).path == "/rest/dmpSegments/10804/users"
    assert violations(request) == []
    elements = payload_of(request)["elements"]
    assert {e["action"] for e in elements} == {action}
    digest = getattr(hashlib, email_hash.lower())(b"jane@example.com").hexdigest()
    assert elements[0]["userIds"] == [{"idType": f"{email_hash}_EMAIL", "idValue": digest}]


def test_an_email_digest_is_sent_under_its_own_type_never_hashed_again() -> None:
    sha256 = hashlib.sha256(b"jane@example.com").hexdigest()
    params = {"segmentId": "1", "users": [{"email": sha256.upper()}], "emailHash": "SHA512"}
    request = linkedin(params, "add_segment_users")
    assert payload_of(request)["elements"][0]["userIds"] == [
        {"idType": "SHA256_EMAIL", "idValue": sha256}
    ]


LINKEDIN_EVENTS = [
    {"email": "Jane@Example.com"},
    {"email": "jane@example.com", "firstPartyTrackingUuid": "df5gf5-gh6t7-ph4j7h-fgf6n1",
     "happenedAt": "2026-11-01T12:00:00Z", "value": "1500.0", "currency": "USD",
     "eventId": "abc12345", "firstName": "Mike", "lastName": "Smith", "title": "CTO",
     "companyName": "Microsoft", "countryCode": "us"},
    {"firstName": "Jason", "lastName": "Bourne", "acxiomId": "AX-1", "oracleMoatId": "OM-2"},
    {"firstName": "Jason", "lastName": "Bourne"},
]  # fmt: skip


@pytest.mark.parametrize("event", LINKEDIN_EVENTS)
def test_linkedin_conversions_match_the_schema_and_dedupe_on_the_step(
    event: dict[str, Any],
) -> None:
    request = linkedin({"conversionRuleId": "104012", "events": [event]}, "send_conversion_events")
    assert urlsplit(request.url).path == "/rest/conversionEvents"
    assert violations(request) == []
    sent = payload_of(request)["elements"][0]
    assert sent["conversion"] == "urn:lla:llaPartnerConversion:104012"
    assert sent["eventId"] == event.get("eventId", KEY)
    assert "userIds" in sent["user"]  # required, even empty


def test_conversion_times_are_epoch_milliseconds_and_stale_ones_are_not_sent() -> None:
    request = linkedin(
        {"conversionRuleId": "1", "events": LINKEDIN_EVENTS[:2]}, "send_conversion_events"
    )
    happened = [e["conversionHappenedAt"] for e in payload_of(request)["elements"]]
    assert happened == [NOW_UNIX * 1000, 1_793_534_400_000]
    stale = {**LINKEDIN_EVENTS[0], "happenedAt": "2026-01-01T00:00:00Z"}
    with pytest.raises(CannotBuildRequest, match="events/0/happenedAt"):
        linkedin({"conversionRuleId": "1", "events": [stale]}, "send_conversion_events")


def test_linkedin_connections_pick_bearer_or_refresh_token_by_their_credentials() -> None:
    assert LINKEDIN_ADS.resolved_auth({"token": "t"}) == BearerAuth()
    refresh = {"client_id": "c", "client_secret": "s", "refresh_token": "r"}
    auth = LINKEDIN_ADS.resolved_auth(refresh)
    assert auth == OAuth2RefreshToken(token_url="https://www.linkedin.com/oauth/v2/accessToken")
    with pytest.raises(ValidationError, match="give token, or client_id"):
        LINKEDIN_ADS.credentials.model_validate({"client_id": "c"})


def test_the_linkedin_connection_test_matches_its_schema() -> None:
    ctx = context(LINKEDIN_ADS, LINKEDIN_CREDENTIALS)
    assert LINKEDIN_ADS.test is not None
    request = prepare(
        LINKEDIN_ADS,
        LINKEDIN_ADS.test(ctx),
        base_url=LINKEDIN_ADS.base_url,
        credentials=ctx.credentials,
        idempotency_key=None,
    )
    assert violations(request) == []
    assert "X-RestLi-Method" not in request.headers  # a FINDER, not a batch


def test_the_meta_connection_test_matches_its_schema() -> None:
    ctx = context(META_ADS, META_CREDENTIALS)
    assert META_ADS.test is not None
    request = prepare(
        META_ADS, META_ADS.test(ctx), base_url=META_ADS.base_url,
        credentials=ctx.credentials, idempotency_key=None,
    )  # fmt: skip
    assert violations(request) == []


# ------------------------------------------------------------- refused before any request


def _users(count: int) -> list[dict[str, str]]:
    return [{"email": f"user{i}@example.com"} for i in range(count)]


REFUSED = [
    (META_ADS, "add_audience_users", {"audienceId": "1", "users": _users(11_000)}, ("users",),
     "at most 10000"),
    (META_ADS, "remove_audience_users", {"audienceId": "1", "users": [{"email": "nope"}]},
     ("users", 0, "email"), "email must look like"),
    (META_ADS, "add_audience_users", {"audienceId": "1", "users": [{"phone": "0650 555 1212"}]},
     ("users", 0, "phone"), "country calling code"),
    (META_ADS, "add_audience_users", {"audienceId": "1", "users": [{}]}, ("users", 0),
     "at least one identifier"),
    (META_ADS, "add_audience_users", {"audienceId": "act_1", "users": _users(1)},
     ("audienceId",), "pattern"),
    (META_ADS, "send_conversion_events", {"pixelId": "1", "events": [EVENTS[0]] * 1_001},
     ("events",), "at most 1000"),
    (META_ADS, "send_conversion_events",
     {"pixelId": "1", "events": [{**EVENTS[0], "actionSource": "website"}]}, ("events", 0),
     "eventSourceUrl"),
    (META_ADS, "send_conversion_events",
     {"pixelId": "1", "events": [{**EVENTS[0], "actionSource": "web"}]},
     ("events", 0, "actionSource"), "Input should be"),
    (META_ADS, "send_conversion_events",
     {"pixelId": "1", "events": [{**EVENTS[0], "userData": {"country": "UK"}}]},
     ("events", 0, "userData", "country"), "ISO 3166-1"),
    (META_ADS, "send_conversion_events", {"pixelId": "1", "events": [{**EVENTS[0], "value": 3}]},
     ("events", 0), "value and currency"),
    (GOOGLE_ADS, "upload_click_conversions",
     {"customerId": "1234567890", "conversions": [CONVERSIONS[0]] * 2_001}, ("conversions",),
     "at most 2000"),
    (GOOGLE_ADS, "upload_click_conversions",
     {"customerId": "1234567890", "conversions": [{**CONVERSIONS[0], "gbraid": "x"}]},
     ("conversions", 0), "at most one of gclid"),
    (GOOGLE_ADS, "upload_click_conversions",
     {"customerId": "1234567890",
      "conversions": [{**CONVERSIONS[0], "conversionDateTime": "2026-11-28 10:32:45"}]},
     ("conversions", 0, "conversionDateTime"), "timezone"),
    (GOOGLE_ADS, "upload_click_conversions",
     {"customerId": "12345", "conversions": CONVERSIONS[:1]}, ("customerId",), "pattern"),
    (GOOGLE_ADS, "add_customer_match_operations",
     {"jobResourceName": JOB, "add": [{"firstName": "Jane", "lastName": "Doe"}]}, ("add", 0),
     "countryCode and postalCode"),
    (GOOGLE_ADS, "add_customer_match_operations",
     {"jobResourceName": JOB, "add": [{"email": "a@b.co"}, {"thirdPartyUserId": "crm-1"}]}, (),
     "one kind of key"),
    (GOOGLE_ADS, "add_customer_match_operations",
     {"jobResourceName": JOB, "add": [{"mobileId": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
                                       "email": "a@b.co"}]}, ("add", 0), "cannot be combined"),
    (GOOGLE_ADS, "add_customer_match_operations", {"jobResourceName": JOB}, (),
     "add or remove"),
    (GOOGLE_ADS, "add_customer_match_operations",
     {"jobResourceName": "customers/1/offlineUserDataJobs/2", "add": MEMBERS[:1]},
     ("jobResourceName",), "pattern"),
    (LINKEDIN_ADS, "add_segment_users", {"segmentId": "1", "users": _users(5_001)}, ("users",),
     "at most 5000"),
    (LINKEDIN_ADS, "add_segment_users", {"segmentId": "1", "users": [{"email": "jane@"}]},
     ("users", 0, "email"), "email must look like"),
    (LINKEDIN_ADS, "add_segment_users", {"segmentId": "1", "users": [{"firstName": "Jane"}]},
     ("users", 0), "firstName and lastName"),
    (LINKEDIN_ADS, "send_conversion_events",
     {"conversionRuleId": "1", "events": [{"title": "CTO", "email": "a@b.co"}]}, ("events", 0),
     "firstName and lastName"),
    (LINKEDIN_ADS, "send_conversion_events", {"conversionRuleId": "1", "events": [{}]},
     ("events", 0), "give an email"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("connector", "operation", "params", "location", "message"),
    REFUSED,
    ids=[f"{c.provider}.{o}:{'/'.join(map(str, loc)) or 'params'}" for c, o, _, loc, _ in REFUSED],
)
def test_parameters_the_provider_would_refuse_are_refused_at_the_field(
    connector: Connector,
    operation: str,
    params: dict[str, Any],
    location: tuple[str | int, ...],
    message: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        connector.operation(operation).params.model_validate(params)
    errors = refused.value.errors()
    assert any(e["loc"] == location and message in e["msg"] for e in errors), errors


def test_google_refuses_more_than_100000_identifiers_in_one_request() -> None:
    both = [{"email": f"u{i}@example.com", "phone": f"+1650{i:07d}"} for i in range(50_001)]
    params = {"jobResourceName": JOB, "add": both}
    with pytest.raises(ValidationError, match="100,002 identifiers: Google accepts 100,000"):
        GOOGLE_ADS.operation("add_customer_match_operations").params.model_validate(params)


# ----------------------------------------------------------- the schemas refuse what they must

REFUSED_BY_SCHEMA = [
    ("meta_custom_audience_users_add",
     {"payload": {"schema": ["EMAIL"], "data": [["x"]] * 10_001}}, "is too long"),
    ("meta_custom_audience_users_add",
     {"payload": {"schema": ["E-MAIL"], "data": [["x"]]}}, "is not valid under any"),
    ("meta_custom_audience_users_add", {"session": {"session_id": 1}}, "'payload' is a required"),
    ("meta_conversions_api_events",
     {"data": [{"event_name": "Lead", "event_time": 1, "action_source": "website",
                "user_data": {"em": "a@example.com", "client_user_agent": "UA"}}]},
     "'event_source_url' is a required"),
    ("meta_conversions_api_events",
     {"data": [{"event_name": "Lead", "event_time": 1, "action_source": "crm",
                "user_data": {"em": "0" * 64}}]}, "is not one of"),
    ("google_upload_click_conversions",
     {"conversions": [{"conversionAction": "customers/1/conversionActions/2",
                       "conversionDateTime": "2026-11-28 10:00:00+00:00"}],
      "partialFailure": False}, "True was expected"),
    ("google_upload_click_conversions",
     {"conversions": [{"conversionAction": "customers/1/conversionActions/2",
                       "conversionDateTime": "2026-11-28 10:00:00+00:00",
                       "consent": {"adPersonalization": "GRANTED"}}], "partialFailure": True},
     "Additional properties"),
    ("google_offline_user_data_jobs_add_operations",
     {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": "a@example.com"}]}}]},
     "does not match"),
    ("google_offline_user_data_jobs_add_operations",
     {"operations": [{"create": {"userIdentifiers": [{"mobileId": "x"}] * 21}}]}, "is too long"),
    ("google_offline_user_data_jobs_create", {"job": {"type": "CUSTOMER_MATCH_USER_LIST"}},
     "is not valid under any"),
    ("linkedin_dmp_segment_users",
     {"elements": [{"action": "ADD",
                    "userIds": [{"idType": "SHA256_EMAIL", "idValue": "jane@x.io"}]}]},
     "does not match"),
    ("linkedin_dmp_segment_users", {"elements": [{"action": "ADD", "userIds": []}]},
     "is not valid under any"),
    ("linkedin_conversion_events",
     {"elements": [{"conversion": "urn:lla:llaPartnerConversion:1", "conversionHappenedAt": 1,
                    "user": {"userInfo": {"firstName": "A", "lastName": "B"}}}]},
     "'userIds' is a required"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "document_", "expected"), REFUSED_BY_SCHEMA)
def test_the_schemas_refuse_what_the_providers_refuse(
    name: str, document_: Any, expected: str
) -> None:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = [error.message for error in validator.iter_errors(document_)]
    errors += [s.message for e in validator.iter_errors(document_) for s in e.context or ()]
    assert any(expected in error for error in errors), errors


# --------------------------------------------------------------------- published declarations


def _models() -> list[tuple[str, type[BaseModel]]]:
    found: list[tuple[str, type[BaseModel]]] = []
    for connector in (META_ADS, GOOGLE_ADS, LINKEDIN_ADS):
        found += [(f"{connector.provider} credentials", connector.credentials)]
        found += [(f"{connector.provider} settings", connector.settings)]
        found += [
            (f"{connector.provider}.{n}", op.params) for n, op in connector.operations.items()
        ]
    return found


@pytest.mark.parametrize(("where", "model"), _models(), ids=[w for w, _ in _models()])
def test_every_model_refuses_unknown_keys_documents_fields_and_publishes_a_schema(
    where: str, model: type[BaseModel]
) -> None:
    assert issubclass(model, ConnectorModel)
    assert model.model_config.get("extra") == "forbid"
    assert [name for name, info in model.model_fields.items() if not info.description] == []
    schema = model.model_json_schema(by_alias=True)
    json.dumps(schema)
    if "." in where:
        assert all("_" not in name for name in schema["properties"]), where


def test_the_ad_connectors_declare_category_rate_limits_and_a_connection_test() -> None:
    for connector in (META_ADS, GOOGLE_ADS, LINKEDIN_ADS):
        assert connector.category == "ads"
        assert connector.test is not None
        assert connector.rate_limits.requests_per_minute >= 1
    secrets = [
        (META_ADS, ["token", "app_secret"]),
        (GOOGLE_ADS, ["client_secret", "refresh_token", "developer_token"]),
        (LINKEDIN_ADS, ["token", "client_secret", "refresh_token"]),
    ]
    for connector, names in secrets:
        properties = connector.credentials.model_json_schema()["properties"]
        for name in names:
            options = [properties[name], *properties[name].get("anyOf", [])]
            assert any(option.get("writeOnly") for option in options), (connector.provider, name)
