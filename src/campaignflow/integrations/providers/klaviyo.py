"""Klaviyo: ``klaviyo.upsert_profile``, ``create_event`` and ``subscribe_profiles``.

Klaviyo's API is JSON:API (``application/vnd.api+json``) with a private key in
``Authorization: Klaviyo-API-Key …`` and a dated ``revision`` header on every request (the
connection's ``revision`` setting; the default is the revision the contract tests check against,
through the models Klaviyo generates from its OpenAPI file for its Python SDK).

* ``upsert_profile`` uses ``POST /api/profile-import``, which creates the profile or updates the
  one with the same e-mail, phone number or external id: retrying it is harmless.
* ``create_event`` records a metric event on a profile. The step's idempotency key is the
  event's ``unique_id``, for which Klaviyo records one event per profile and metric, so a retried
  step cannot count twice.
* ``subscribe_profiles`` starts a bulk subscription job (up to 1,000 profiles) for e-mail and/or
  SMS marketing, optionally adding the profiles to a list. Subscribing is a state, not an
  increment: a retried step changes nothing more.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    ApiKeyAuth,
    ConnectionSettings,
    Connector,
    ConnectorModel,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import (
    HTTPS_URL_PATTERN,
    EmailAddress,
    JsonObject,
    Params,
    Secret,
    body_field,
)

PROVIDER = "klaviyo"
DEFAULT_REVISION = "2026-10-15"
MEDIA_TYPE = "application/vnd.api+json"
MAX_SUBSCRIBE = 1000
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
PhoneNumber = Annotated[str, Field(pattern=E164_PATTERN, examples=["+14155552671"])]
ExternalId = Annotated[str, Field(min_length=1, max_length=255)]
Text = Annotated[str, Field(min_length=1, max_length=255)]


class KlaviyoCredentials(ConnectorModel):
    api_key: Secret = Field(
        pattern=r"^pk_[A-Za-z0-9]+$",
        description="A private API key (pk_…) with the profiles:write, events:write, "
        "subscriptions:write and lists:write scopes (accounts:read for the connection test).",
    )


class KlaviyoSettings(ConnectionSettings):
    revision: str = Field(
        DEFAULT_REVISION,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.pre)?$",
        description="The API revision sent in the 'revision' header (YYYY-MM-DD).",
    )


def _headers(settings: ConnectionSettings) -> dict[str, str]:
    revision = settings.revision if isinstance(settings, KlaviyoSettings) else DEFAULT_REVISION
    return {"revision": revision, "Accept": MEDIA_TYPE}


def _post(path: str, body: dict[str, Any], ctx: RequestContext) -> OutboundRequest:
    headers = {**_headers(ctx.settings), "Content-Type": MEDIA_TYPE}
    return OutboundRequest("POST", path, headers=headers, json=body)


class Identity(Params):
    """How Klaviyo finds a profile: at least one of these."""

    email: EmailAddress | None = Field(None, description="The profile's e-mail address.")
    phone_number: PhoneNumber | None = Field(None, description="Phone number in E.164 format.")
    external_id: ExternalId | None = Field(None, description="The id in your own systems.")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.email is None and self.phone_number is None and self.external_id is None:
            raise ValueError("give email, phoneNumber or externalId")
        return self

    def identifiers(self) -> dict[str, str]:
        found = {
            "email": self.email,
            "phone_number": self.phone_number,
            "external_id": self.external_id,
        }
        return {key: value for key, value in found.items() if value is not None}


# ----------------------------------------------------------------------------- upsert_profile


class Location(Params):
    """Where the profile lives."""

    address1: Text | None = Field(None, description="First line of the street address.")
    address2: Text | None = Field(None, description="Second line of the street address.")
    city: Text | None = Field(None, description="City.")
    region: Text | None = Field(None, description="State, province or region.")
    zip: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        None, description="Postal code."
    )
    country: Text | None = Field(None, description="Country.")
    timezone: Text | None = Field(None, description="IANA time zone, e.g. Europe/Paris.")
    latitude: float | None = Field(None, ge=-90, le=90, description="Latitude.")
    longitude: float | None = Field(None, ge=-180, le=180, description="Longitude.")


class UpsertProfileParams(Identity):
    """Creates the profile, or updates the one with the same e-mail, phone or external id."""

    first_name: Text | None = Field(None, description="First name.")
    last_name: Text | None = Field(None, description="Last name.")
    organization: Text | None = Field(None, description="Company or organization.")
    title: Text | None = Field(None, description="Job title.")
    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] | None = Field(
        None, description="IETF BCP 47 locale, e.g. fr-FR."
    )
    image: Annotated[str, Field(pattern=HTTPS_URL_PATTERN, max_length=2000)] | None = Field(
        None, description="URL of the profile's image."
    )
    location: Location | None = Field(None, description="Address and place.")
    properties: JsonObject | None = Field(None, description="Custom properties by name.")


def upsert_profile_request(params: UpsertProfileParams, ctx: RequestContext) -> OutboundRequest:
    attributes: dict[str, Any] = params.identifiers()
    optional: dict[str, Any] = {
        "first_name": params.first_name,
        "last_name": params.last_name,
        "organization": params.organization,
        "title": params.title,
        "locale": params.locale,
        "image": params.image,
        "location": params.location.model_dump(exclude_none=True) if params.location else None,
        "properties": params.properties,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    return _post(
        "/api/profile-import", {"data": {"type": "profile", "attributes": attributes}}, ctx
    )


def _data_id(response: ProviderResponse) -> Any:
    data = body_field(response, "data")
    return data.get("id") if isinstance(data, dict) else None


def upsert_profile_output(response: ProviderResponse) -> dict[str, Any]:
    """Klaviyo answers 201 for a new profile and 200 for an updated one."""
    return {"status": response.status, "id": _data_id(response), "created": response.status == 201}


# ------------------------------------------------------------------------------- create_event


class CreateEventParams(Params):
    """Records that a profile did something (a metric), e.g. 'Placed Order'."""

    metric: str = Field(
        min_length=1, max_length=127, description="The metric's name (the event type)."
    )
    profile: Identity = Field(description="Who did it: email, phoneNumber or externalId.")
    properties: JsonObject = Field(
        default_factory=dict,
        max_length=400,
        description="The event's properties (at most 400), usable in flows and segments.",
    )
    value: float | None = Field(None, description="A monetary value, e.g. the order total.")
    value_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(
        None, description="ISO 4217 currency of the value, e.g. EUR."
    )
    time: AwareDatetime | None = Field(
        None, description="When it happened (ISO 8601 with offset); default: when received."
    )
    unique_id: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        None,
        description="Deduplication id (default: the step's idempotency key, so a retried step "
        "records one event).",
    )

    @model_validator(mode="after")
    def _currency_with_value(self) -> Self:
        if self.value_currency is not None and self.value is None:
            raise ValueError("valueCurrency needs a value")
        return self


def create_event_request(params: CreateEventParams, ctx: RequestContext) -> OutboundRequest:
    attributes: dict[str, Any] = {
        "properties": params.properties,
        "metric": {"data": {"type": "metric", "attributes": {"name": params.metric}}},
        "profile": {"data": {"type": "profile", "attributes": params.profile.identifiers()}},
        "unique_id": params.unique_id or ctx.idempotency_key,
    }
    optional = {
        "value": params.value,
        "value_currency": params.value_currency,
        "time": params.time.isoformat() if params.time else None,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    return _post("/api/events", {"data": {"type": "event", "attributes": attributes}}, ctx)


def accepted_output(response: ProviderResponse) -> dict[str, Any]:
    """Events and subscription jobs are accepted (202) and processed later; no body."""
    return {"status": response.status, "accepted": response.status == 202}


# ------------------------------------------------------------------------- subscribe_profiles


Channel = Literal["email", "sms"]


def _email_only() -> list[Channel]:
    return ["email"]


class Subscriber(Params):
    """A profile to subscribe, by the address of each channel."""

    email: EmailAddress | None = Field(None, description="E-mail address (email channel).")
    phone_number: PhoneNumber | None = Field(None, description="E.164 phone number (sms).")


class SubscribeProfilesParams(Params):
    """Subscribes profiles to e-mail and/or SMS marketing (consent given), optionally adding
    them to a list. Only profiles whose consent was collected may be subscribed."""

    profiles: list[Subscriber] = Field(
        min_length=1, max_length=MAX_SUBSCRIBE, description="Up to 1,000 profiles."
    )
    channels: Annotated[list[Channel], Field(min_length=1, max_length=2)] = Field(
        default_factory=_email_only,
        description="Channels to subscribe to: email, sms or both.",
    )
    list_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{6}$")] | None = Field(
        None, description="The list to add the subscribed profiles to (its 6-character id)."
    )
    custom_source: Text | None = Field(
        None, description="Where consent was collected, stored on the consent records."
    )

    @model_validator(mode="after")
    def _address_per_channel(self) -> Self:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        needed = {"email": "email", "sms": "phone_number"}
        for index, profile in enumerate(self.profiles):
            missing = [c for c in self.channels if getattr(profile, needed[c]) is None]
            if missing:
                raise ValueError(f"profiles/{index} has no address for {', '.join(missing)}")
        return self


def _subscriber(profile: Subscriber, channels: list[Channel]) -> dict[str, Any]:
    subscriptions = {channel: {"marketing": {"consent": "SUBSCRIBED"}} for channel in channels}
    attributes: dict[str, Any] = {"subscriptions": subscriptions}
    if profile.email is not None:
        attributes["email"] = profile.email
    if profile.phone_number is not None:
        attributes["phone_number"] = profile.phone_number
    return {"type": "profile", "attributes": attributes}


def subscribe_profiles_request(
    params: SubscribeProfilesParams, ctx: RequestContext
) -> OutboundRequest:
    profiles = [_subscriber(profile, params.channels) for profile in params.profiles]
    attributes: dict[str, Any] = {"profiles": {"data": profiles}}
    if params.custom_source is not None:
        attributes["custom_source"] = params.custom_source
    job: dict[str, Any] = {"type": "profile-subscription-bulk-create-job", "attributes": attributes}
    if params.list_id is not None:
        job["relationships"] = {"list": {"data": {"type": "list", "id": params.list_id}}}
    return _post("/api/profile-subscription-bulk-create-jobs", {"data": job}, ctx)


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The key's account: read-only (needs the accounts:read scope)."""
    return OutboundRequest("GET", "/api/accounts", headers=_headers(ctx.settings))


KLAVIYO = Connector(
    provider=PROVIDER,
    title="Klaviyo",
    category="email",
    description="Klaviyo marketing automation: create or update profiles, record events that "
    "trigger flows, subscribe profiles to e-mail and SMS marketing.",
    base_url="https://a.klaviyo.com",
    auth=ApiKeyAuth(location="header", name="Authorization", prefix="Klaviyo-API-Key "),
    credentials=KlaviyoCredentials,
    settings=KlaviyoSettings,
    operations=operations(
        Operation(
            name="upsert_profile",
            summary="Create or update a profile by e-mail, phone number or external id.",
            params=UpsertProfileParams,
            request=upsert_profile_request,
            output=upsert_profile_output,
        ),
        Operation(
            name="create_event",
            summary="Record an event (a metric) on a profile.",
            params=CreateEventParams,
            request=create_event_request,
            output=accepted_output,
        ),
        Operation(
            name="subscribe_profiles",
            summary="Subscribe up to 1,000 profiles to e-mail and/or SMS marketing.",
            params=SubscribeProfilesParams,
            request=subscribe_profiles_request,
            output=accepted_output,
        ),
    ),
    # Klaviyo's limits are per account and endpoint (developers.klaviyo.com, "Rate limits",
    # and each endpoint's reference for revision 2026-10-15): profile import and bulk
    # subscribe allow bursts of 75/s and 750/min steady, events 350/s and 3,500/min. One
    # bucket per connection, so the stricter pair applies to all three.
    rate_limits=RateLimits(requests_per_minute=750, burst_limit=75),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.klaviyo.com/en/reference/api_overview",
)
