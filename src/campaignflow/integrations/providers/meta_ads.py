"""Meta ads: customer-file custom audiences and the Conversions API, as ``meta_ads.*`` actions.

Meta publishes no OpenAPI file. The requests follow the Graph API reference (Custom Audience
Users, Conversions API) and the parameter names of Meta's SDK generator
(facebook-business-sdk-codegen ``api_specs/specs/CustomAudience.json`` and ``AdsPixel.json``);
the contract tests check them against JSON Schemas written from those pages.

* ``add_audience_users`` / ``remove_audience_users``: ``POST`` / ``DELETE``
  ``/{version}/{audience_id}/users`` with ``payload`` ``{schema, is_raw, data}``, a multi-key
  customer file whose columns are the identifiers the step gives, each hashed by Meta's rules
  (:mod:`campaignflow.integrations.audience_hashing`), a missing value as ``""``. At most
  10,000 people per call (Meta's limit, refused by the parameters model; callers split larger
  lists with :func:`~campaignflow.integrations.audience_hashing.batches`). Adding someone twice
  or removing a non-member changes nothing, so a retried step cannot double anything.
* ``send_conversion_events``: ``POST /{version}/{pixel_id}/events`` with ``data``, at most
  1,000 events. An event's ``event_id`` defaults to the step's idempotency key (``<key>:<n>``
  when one step sends several): Meta drops an event whose ``event_name`` and ``event_id`` it
  has seen in the last 48 hours, so a retried step is counted once.

Graph API parameters are sent form-encoded with object values as JSON text, as Meta's SDK and
its reference examples send them (a ``DELETE`` of 10,000 rows could not carry them in the URL).

The access token goes in ``Authorization: Bearer`` rather than ``access_token=`` in the query:
the Graph API accepts both, and a header keeps the token out of URLs, which proxies and access
logs record. With the app secret in the connection, requests also carry ``appsecret_proof``
(HMAC-SHA256 of the token), which apps set to "Require App Secret" demand.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import AfterValidator, Field, IPvAnyAddress, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.audience_hashing import (
    Kind,
    hash_identifier,
    normalize,
    sha256_hex,
)
from campaignflow.integrations.connector import (
    BearerAuth,
    CannotBuildRequest,
    ConnectionSettings,
    Connector,
    ConnectorModel,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    Verdict,
    operations,
)
from campaignflow.integrations.providers._common import (
    HTTPS_URL_PATTERN,
    JsonObject,
    Params,
    Secret,
    body_field,
)

DEFAULT_API_VERSION = "v26.0"
MAX_AUDIENCE_USERS = 10_000  # "only up to 10000 at a time" (Custom Audience Users reference)
MAX_EVENTS = 1_000  # Conversions API: at most 1,000 events per request
MAX_EVENT_AGE_S = 7 * 86_400  # an older event_time fails the whole request

GraphId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", examples=["23851234567890123"])]
Text = Annotated[str, Field(min_length=1, max_length=500)]
ActionSource = Literal[
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
]


def _hashed(kind: Kind) -> AfterValidator:
    return AfterValidator(lambda value: hash_identifier("meta", kind, value))


def _in_clear(kind: Kind) -> AfterValidator:
    return AfterValidator(lambda value: normalize("meta", kind, value))


Email = Annotated[Text, _hashed(Kind.EMAIL)]
Phone = Annotated[Text, _hashed(Kind.PHONE)]
FirstName = Annotated[Text, _hashed(Kind.FIRST_NAME)]
LastName = Annotated[Text, _hashed(Kind.LAST_NAME)]
City = Annotated[Text, _hashed(Kind.CITY)]
State = Annotated[Text, _hashed(Kind.STATE)]
Zip = Annotated[Text, _hashed(Kind.ZIP)]
Country = Annotated[Text, _hashed(Kind.COUNTRY)]
Gender = Annotated[Text, _hashed(Kind.GENDER)]
# Kept as YYYYMMDD: a customer file hashes year, month and day as three columns.
BirthDate = Annotated[Text, _in_clear(Kind.DATE_OF_BIRTH)]
MobileId = Annotated[Text, _in_clear(Kind.MOBILE_ADVERTISER_ID)]
ExternId = Annotated[Text, _in_clear(Kind.EXTERNAL_ID)]


class MetaAdsCredentials(ConnectorModel):
    token: Secret = Field(
        description="A system user's access token with the ads_management permission (and "
        "access to the ad account's audiences and pixel). Sent as a bearer token."
    )
    app_secret: Secret | None = Field(
        None,
        description="The app's secret. When given, every request carries appsecret_proof, "
        "which apps set to 'Require App Secret' demand.",
    )


class MetaAdsSettings(ConnectionSettings):
    api_version: str = Field(
        DEFAULT_API_VERSION,
        alias="apiVersion",
        pattern=r"^v[0-9]{2}\.0$",
        description="Graph API version, e.g. v26.0. Meta retires each version about two years "
        "after its release: set a newer one before this one expires.",
    )


def _version(ctx: RequestContext) -> str:
    settings = ctx.settings
    return settings.api_version if isinstance(settings, MetaAdsSettings) else DEFAULT_API_VERSION


def _proof(ctx: RequestContext) -> dict[str, str]:
    """``appsecret_proof`` when the connection has the app secret (and a token to prove)."""
    secret, token = ctx.credentials.get("app_secret"), ctx.credentials.get("token")
    if not secret or not token:
        return {}
    digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return {"appsecret_proof": digest}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------- custom audience users


class AudienceMember(Params):
    """One person of a customer file: any of these identifiers, at least one. Each is
    normalised and hashed by Meta's rules; a value that is already a SHA-256 digest (64 hex
    digits) is sent as it is."""

    email: Email | None = Field(None, description="E-mail address.")
    phone: Phone | None = Field(
        None, description="Phone number with its country code, e.g. +1 650 555 1212."
    )
    first_name: FirstName | None = Field(None, description="First name.")
    last_name: LastName | None = Field(None, description="Last name.")
    date_of_birth: BirthDate | None = Field(None, description="Date of birth, YYYY-MM-DD.")
    gender: Gender | None = Field(None, description="f, m, female or male.")
    city: City | None = Field(None, description="City.")
    state: State | None = Field(None, description="State; the two-letter code in the US.")
    zip: Zip | None = Field(None, description="ZIP or postal code.")
    country: Country | None = Field(None, description="ISO 3166-1 alpha-2 country, e.g. US.")
    external_id: ExternId | None = Field(
        None, description="Your own id of the person (Meta's EXTERN_ID, sent unhashed)."
    )
    mobile_advertiser_id: MobileId | None = Field(
        None, description="IDFA or Android advertising id (sent unhashed, in lower case)."
    )

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if not any(getattr(self, name) is not None for name in type(self).model_fields):
            raise ValueError("give at least one identifier of the person")
        return self


def _year(member: AudienceMember) -> str | None:
    return member.date_of_birth[:4] if member.date_of_birth else None


def _month(member: AudienceMember) -> str | None:
    return member.date_of_birth[4:6] if member.date_of_birth else None


def _day(member: AudienceMember) -> str | None:
    return member.date_of_birth[6:] if member.date_of_birth else None


def _column(name: str) -> Callable[[AudienceMember], str | None]:
    return lambda member: getattr(member, name)


def _hash_part(
    read: Callable[[AudienceMember], str | None],
) -> Callable[[AudienceMember], str | None]:
    return lambda member: None if (part := read(member)) is None else sha256_hex(part)


# Meta's multi-key columns, in a fixed order; a column is sent when any member has a value.
_COLUMNS: tuple[tuple[str, Callable[[AudienceMember], str | None]], ...] = (
    ("EXTERN_ID", _column("external_id")),
    ("EMAIL", _column("email")),
    ("PHONE", _column("phone")),
    ("GEN", _column("gender")),
    ("DOBY", _hash_part(_year)),
    ("DOBM", _hash_part(_month)),
    ("DOBD", _hash_part(_day)),
    ("LN", _column("last_name")),
    ("FN", _column("first_name")),
    ("CT", _column("city")),
    ("ST", _column("state")),
    ("ZIP", _column("zip")),
    ("COUNTRY", _column("country")),
    ("MADID", _column("mobile_advertiser_id")),
)


class UploadSession(Params):
    """Meta's upload session, for a list sent in several calls: Meta reports on the session
    as a whole once the last batch arrives."""

    session_id: int = Field(ge=1, le=2**63 - 1, description="Your id of the whole upload.")
    batch_seq: int = Field(ge=1, description="This call's position in the upload, from 1.")
    last_batch: bool = Field(description="Whether this is the upload's last call.")
    estimated_total: int | None = Field(
        None, ge=1, description="Roughly how many people the whole upload holds."
    )


class AudienceUsersParams(Params):
    """Adds people to, or removes them from, a customer-file custom audience."""

    audience_id: GraphId = Field(description="The custom audience's id.")
    users: Annotated[list[AudienceMember], Field(min_length=1, max_length=MAX_AUDIENCE_USERS)] = (
        Field(description=f"The people, at most {MAX_AUDIENCE_USERS:,} per call.")
    )
    session: UploadSession | None = Field(
        None, description="The upload session, when a list is sent in several calls."
    )


def audience_payload(users: list[AudienceMember]) -> dict[str, Any]:
    """``{schema, is_raw, data}`` as Meta's SDK sends a multi-key file (``is_raw`` true: the
    values were single keys hashed one by one, not pre-combined)."""
    columns = [(name, read) for name, read in _COLUMNS if any(read(user) for user in users)]
    rows = [[read(user) or "" for _, read in columns] for user in users]
    return {"schema": [name for name, _ in columns], "is_raw": True, "data": rows}


def _session(session: UploadSession) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "session_id": session.session_id,
        "batch_seq": session.batch_seq,
        "last_batch_flag": session.last_batch,
    }
    if session.estimated_total is not None:
        fields["estimated_num_total"] = session.estimated_total
    return fields


def _users_request(
    method: str,
) -> Callable[[AudienceUsersParams, RequestContext], OutboundRequest]:
    def build(params: AudienceUsersParams, ctx: RequestContext) -> OutboundRequest:
        form = {"payload": _json_text(audience_payload(params.users))}
        if params.session is not None:
            form["session"] = _json_text(_session(params.session))
        path = f"/{_version(ctx)}/{params.audience_id}/users"
        return OutboundRequest(method, path, query=_proof(ctx), form=form)

    return build


def users_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "audienceId": body_field(response, "audience_id"),
        "sessionId": body_field(response, "session_id"),
        "numReceived": body_field(response, "num_received"),
        "numInvalidEntries": body_field(response, "num_invalid_entries"),
    }


# ---------------------------------------------------------------------------- conversions API


class EventUserData(Params):
    """Who converted. Contact details are normalised and hashed by Meta's rules (a SHA-256
    digest is sent as it is); the browser identifiers are sent as they are."""

    email: Email | None = Field(None, description="E-mail address (em).")
    phone: Phone | None = Field(None, description="Phone number with country code (ph).")
    first_name: FirstName | None = Field(None, description="First name (fn).")
    last_name: LastName | None = Field(None, description="Last name (ln).")
    date_of_birth: Annotated[Text, _hashed(Kind.DATE_OF_BIRTH)] | None = Field(
        None, description="Date of birth, YYYY-MM-DD (db)."
    )
    gender: Gender | None = Field(None, description="f, m, female or male (ge).")
    city: City | None = Field(None, description="City (ct).")
    state: State | None = Field(None, description="State (st).")
    zip: Zip | None = Field(None, description="ZIP or postal code (zp).")
    country: Country | None = Field(None, description="ISO 3166-1 alpha-2 country (country).")
    external_id: Annotated[Text, _hashed(Kind.EXTERNAL_ID)] | None = Field(
        None, description="Your id of the person, hashed as Meta recommends (external_id)."
    )
    client_ip_address: IPvAnyAddress | None = Field(
        None, description="The browser's IP address (client_ip_address)."
    )
    client_user_agent: Text | None = Field(
        None, description="The browser's user agent; required for website events."
    )
    fbc: str | None = Field(
        None, pattern=r"^fb\.[0-9]\.[0-9]+\.\S+$", description="The _fbc click-id cookie."
    )
    fbp: str | None = Field(
        None, pattern=r"^fb\.[0-9]\.[0-9]+\.[0-9]+$", description="The _fbp browser-id cookie."
    )

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if not any(getattr(self, name) is not None for name in type(self).model_fields):
            raise ValueError("give at least one customer information parameter")
        return self


_USER_DATA_KEYS = {
    "email": "em",
    "phone": "ph",
    "first_name": "fn",
    "last_name": "ln",
    "date_of_birth": "db",
    "gender": "ge",
    "city": "ct",
    "state": "st",
    "zip": "zp",
    "country": "country",
    "external_id": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbc": "fbc",
    "fbp": "fbp",
}


class ConversionEvent(Params):
    """One server event."""

    event_name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\r\n]+$",
        description="A standard event (Purchase, Lead, CompleteRegistration, …) or your own.",
    )
    action_source: ActionSource = Field(description="Where the conversion happened.")
    event_time: int | None = Field(
        None,
        ge=0,
        description="Unix time of the event, at most 7 days ago (default: when the step runs).",
    )
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Deduplication id, matching the Pixel's eventID for the same action "
        "(default: the step's idempotency key).",
    )
    event_source_url: str | None = Field(
        None,
        pattern=HTTPS_URL_PATTERN,
        max_length=2000,
        description="The page's URL; required for website events.",
    )
    user_data: EventUserData = Field(description="Who converted.")
    value: float | None = Field(None, ge=0, description="Monetary value (with currency).")
    currency: str | None = Field(
        None, pattern=r"^[A-Za-z]{3}$", description="ISO 4217 currency of value, e.g. USD."
    )
    custom_data: JsonObject | None = Field(
        None, description="Further custom_data fields (content_ids, order_id, …)."
    )
    opt_out: bool | None = Field(None, description="Use the event for attribution only.")
    limited_data_use: bool = Field(
        False, description="Process under Limited Data Use (data_processing_options LDU)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.action_source == "website" and self.event_source_url is None:
            raise ValueError("website events need eventSourceUrl")
        if self.action_source == "website" and self.user_data.client_user_agent is None:
            raise ValueError("website events need userData.clientUserAgent")
        if (self.value is None) != (self.currency is None):
            raise ValueError("give value and currency together")
        clash = {"value", "currency"} & set(self.custom_data or {})
        if clash:
            raise ValueError(f"give {' and '.join(sorted(clash))} as parameters, not customData")
        return self


class SendConversionEventsParams(Params):
    """Sends server events to a pixel (dataset) through the Conversions API."""

    pixel_id: GraphId = Field(description="The pixel's (dataset's) id.")
    events: Annotated[list[ConversionEvent], Field(min_length=1, max_length=MAX_EVENTS)] = Field(
        description=f"The events, at most {MAX_EVENTS:,} per call."
    )
    test_event_code: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,100}$",
        description="Route the events to Events Manager's Test Events tool (e.g. TEST1234).",
    )


def _user_data(user: EventUserData) -> dict[str, Any]:
    values = user.model_dump(exclude_none=True, mode="json")
    return {_USER_DATA_KEYS[name]: value for name, value in values.items()}


def _event(event: ConversionEvent, event_id: str, event_time: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_name": event.event_name,
        "event_time": event_time,
        "event_id": event.event_id or event_id,
        "action_source": event.action_source,
        "user_data": _user_data(event.user_data),
    }
    custom = dict(event.custom_data or {})
    if event.value is not None and event.currency is not None:
        custom.update(value=event.value, currency=event.currency.lower())
    optional: dict[str, Any] = {
        "custom_data": custom or None,
        "event_source_url": event.event_source_url,
        "opt_out": event.opt_out,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if event.limited_data_use:
        # Country and state 0: Meta geolocates the event itself.
        body.update(
            data_processing_options=["LDU"],
            data_processing_options_country=0,
            data_processing_options_state=0,
        )
    return body


def send_conversion_events_request(
    params: SendConversionEventsParams, ctx: RequestContext
) -> OutboundRequest:
    many = len(params.events) > 1
    data = []
    for index, event in enumerate(params.events):
        event_time = ctx.now_unix if event.event_time is None else event.event_time
        if event_time < ctx.now_unix - MAX_EVENT_AGE_S:
            raise CannotBuildRequest(
                f"meta_ads: events/{index}/eventTime is more than 7 days ago; Meta refuses the "
                "whole request"
            )
        event_id = f"{ctx.idempotency_key}:{index}" if many else ctx.idempotency_key
        data.append(_event(event, event_id, event_time))
    form = {"data": _json_text(data)}
    if params.test_event_code is not None:
        form["test_event_code"] = params.test_event_code
    path = f"/{_version(ctx)}/{params.pixel_id}/events"
    return OutboundRequest("POST", path, query=_proof(ctx), form=form)


def events_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "eventsReceived": body_field(response, "events_received"),
        "messages": body_field(response, "messages"),
        "fbtraceId": body_field(response, "fbtrace_id"),
    }


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The token's own id: valid for any token, and fails on an expired or revoked one."""
    return OutboundRequest("GET", f"/{_version(ctx)}/me", query={"fields": "id", **_proof(ctx)})


# Meta answers its throttling with HTTP 400 (or 403) and a code in the body
# (developers.facebook.com/docs/graph-api/overview/rate-limiting): 4 (application), 17 (user),
# 32 (page), 613 (a call's own limit), 80000-80014 (business use cases, e.g. 80003 custom
# audiences), subcode 2446079 (ad account). Retried like a 429: Meta is pacing us.
_THROTTLED = frozenset({4, 17, 32, 613, *range(80000, 80015)})
_THROTTLED_SUBCODES = frozenset({2446079})
_TRANSIENT = frozenset({1, 2})  # "unknown error", "service temporarily unavailable"


def classify(status: int, body: Any) -> Verdict | None:
    """Meta's own verdict on an error answer; None leaves it to the status."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if status < 400 or not isinstance(error, Mapping):
        return None
    code, subcode = error.get("code"), error.get("error_subcode")
    if code in _THROTTLED or subcode in _THROTTLED_SUBCODES:
        return Verdict(ok=False, retryable=True, breaker_failure=False)
    if code in _TRANSIENT or error.get("is_transient") is True:
        return Verdict(ok=False, retryable=True, breaker_failure=True)
    return None


META_ADS = Connector(
    provider="meta_ads",
    classify=classify,
    title="Meta Ads",
    category="ads",
    description="Meta (Facebook, Instagram) ads: add people to or remove them from customer-"
    "file custom audiences, and send server events through the Conversions API. Personal "
    "data is normalised and SHA-256-hashed by Meta's rules before it leaves.",
    base_url="https://graph.facebook.com",
    auth=BearerAuth(),
    credentials=MetaAdsCredentials,
    settings=MetaAdsSettings,
    operations=operations(
        Operation(
            name="add_audience_users",
            summary="Add people to a customer-file custom audience.",
            params=AudienceUsersParams,
            request=_users_request("POST"),
            output=users_output,
        ),
        Operation(
            name="remove_audience_users",
            summary="Remove people from a customer-file custom audience.",
            params=AudienceUsersParams,
            request=_users_request("DELETE"),
            output=users_output,
        ),
        Operation(
            name="send_conversion_events",
            summary="Send server events to a pixel through the Conversions API.",
            params=SendConversionEventsParams,
            request=send_conversion_events_request,
            output=events_output,
        ),
    ),
    # Meta publishes no fixed request rate: Marketing API calls are metered per business use
    # case (call count, CPU and time as percentages in X-Business-Use-Case-Usage), with quotas
    # that grow with the app's Marketing API access tier ("Marketing API Rate Limiting", updated
    # 2026-05-05). Two calls a second with bursts of 10 stays well inside the basic tier; a
    # connection with Full access can raise requestsPerMinute.
    rate_limits=RateLimits(requests_per_minute=120, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences",
)
