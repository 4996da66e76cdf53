"""LinkedIn Marketing: DMP segment users and the Conversions API, as ``linkedin_ads.*`` actions.

LinkedIn publishes no OpenAPI file. Requests follow the Marketing API documentation
(learn.microsoft.com/linkedin/marketing, "DMP Segment Users" and "Conversions API") in Rest.li
2.0 form; the contract tests check them against JSON Schemas written from those pages.

* ``add_segment_users`` / ``remove_segment_users``: ``POST /rest/dmpSegments/{id}/users`` as a
  ``BATCH_CREATE``, one element per person with ``action`` ``ADD`` or ``REMOVE``, ``userIds``
  ``SHA256_EMAIL`` (or ``SHA512_EMAIL``) and ``GOOGLE_AID``, names, title, company and country
  in clear. LinkedIn answers 201 for a person added twice or removed when absent ("by
  design"), so a retried step changes nothing. LinkedIn documents no per-request maximum for
  this endpoint; requests are capped at 5,000 people, the batch size LinkedIn allows for
  conversion events, and callers split longer lists with
  :func:`~campaignflow.integrations.audience_hashing.batches`.
* ``send_conversion_events``: ``POST /rest/conversionEvents`` as a ``BATCH_CREATE`` of at
  most 5,000 events to one conversion rule. An event's ``eventId`` defaults to the step's
  idempotency key (``<key>:<n>`` for several); LinkedIn deduplicates events by it (against
  the Insight Tag too), so a retried step is counted once.

Every request carries ``LinkedIn-Version`` (a connection setting, ``YYYYMM``; LinkedIn supports
each version for at least a year) and ``X-Restli-Protocol-Version: 2.0.0``.

Auth: a member's OAuth 2.0 access token as a bearer token; or, for apps that LinkedIn grants
programmatic refresh tokens, the client id, secret and refresh token, exchanged at
``https://www.linkedin.com/oauth/v2/accessToken`` (each connection picks by its credentials).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.audience_hashing import (
    Kind,
    hash_identifier,
    linkedin_email_sha512,
    normalize,
)
from campaignflow.integrations.connector import (
    AuthScheme,
    BearerAuth,
    CannotBuildRequest,
    ConnectionSettings,
    Connector,
    ConnectorModel,
    OAuth2RefreshToken,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import Params, Secret, body_field

DEFAULT_API_VERSION = "202607"
TOKEN_URL = "https://www.linkedin.com/oauth/v2/accessToken"  # noqa: S105 (a URL, not a secret)
MAX_BATCH = 5_000  # conversion events per BATCH_CREATE; also our cap for segment users
MAX_EVENT_AGE_MS = 90 * 86_400_000  # LinkedIn rejects events older than 90 days
RESTLI_HEADERS = {"X-Restli-Protocol-Version": "2.0.0", "X-RestLi-Method": "BATCH_CREATE"}

Id = Annotated[str, Field(pattern=r"^[0-9]{1,19}$")]
Text = Annotated[str, Field(min_length=1, max_length=500)]
_SHA256_LENGTH, _SHA512_LENGTH = 64, 128


def _email(value: str) -> str:
    """A SHA-256 or SHA-512 digest as given (lower case), else the normalised address, which
    the request builder hashes with the algorithm the step asks for."""
    text = value.strip()
    length_ok = len(text) in (_SHA256_LENGTH, _SHA512_LENGTH)
    if length_ok and all(ch in "0123456789abcdefABCDEF" for ch in text):
        return text.lower()
    return normalize("linkedin", Kind.EMAIL, value)


def _in_clear(kind: Kind) -> AfterValidator:
    return AfterValidator(lambda value: normalize("linkedin", kind, value))


Email = Annotated[Text, AfterValidator(_email)]
Name = Annotated[Text, _in_clear(Kind.FIRST_NAME)]
Country = Annotated[Text, _in_clear(Kind.COUNTRY)]
GoogleAid = Annotated[Text, _in_clear(Kind.MOBILE_ADVERTISER_ID)]


class LinkedInAdsCredentials(ConnectorModel):
    token: Secret | None = Field(
        None,
        description="A member's access token with rw_dmp_segments, rw_conversions and r_ads "
        "(LinkedIn's tokens last 60 days). Give it, or the three refresh-token credentials.",
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=500, description="The app's client id (refresh tokens)."
    )
    client_secret: Secret | None = Field(
        None, description="The app's client secret (refresh tokens)."
    )
    refresh_token: Secret | None = Field(
        None, description="A programmatic refresh token, for apps LinkedIn grants them to."
    )

    @model_validator(mode="after")
    def _token_or_refresh(self) -> Self:
        refresh = [self.client_id, self.client_secret, self.refresh_token]
        if self.token is None and None in refresh:
            raise ValueError("give token, or client_id, client_secret and refresh_token")
        return self


def auth_for(credentials: Mapping[str, str]) -> AuthScheme:
    """The refresh-token grant when the connection holds a refresh token, else its bearer."""
    if credentials.get("refresh_token"):
        return OAuth2RefreshToken(token_url=TOKEN_URL)
    return BearerAuth()


class LinkedInAdsSettings(ConnectionSettings):
    api_version: str = Field(
        DEFAULT_API_VERSION,
        alias="apiVersion",
        pattern=r"^20[2-9][0-9](0[1-9]|1[0-2])$",
        description="The LinkedIn-Version header (YYYYMM) of the Marketing API. LinkedIn "
        "supports each monthly version for at least a year.",
    )


def _headers(ctx: RequestContext, *, batch: bool = True) -> dict[str, str]:
    settings = ctx.settings
    version = (
        settings.api_version if isinstance(settings, LinkedInAdsSettings) else DEFAULT_API_VERSION
    )
    headers = {"LinkedIn-Version": version, **RESTLI_HEADERS}
    if not batch:
        del headers["X-RestLi-Method"]
    return headers


def _statuses(response: ProviderResponse) -> dict[str, Any]:
    """A BATCH_CREATE answers 200 with one status per element: the step reports them all and
    how many failed, since the request as a whole succeeded."""
    elements = body_field(response, "elements")
    elements = elements if isinstance(elements, list) else []
    statuses = [e.get("status") if isinstance(e, Mapping) else None for e in elements]
    failed = sum(1 for s in statuses if not (isinstance(s, int) and 200 <= s < 300))
    return {"status": response.status, "statuses": statuses, "failed": failed}


# ------------------------------------------------------------------------ DMP segment users


class SegmentUser(Params):
    """One person: an e-mail address (hashed before it leaves; a SHA-256 or SHA-512 digest is
    sent as it is), an Android advertising id, or first and last name (with company and title
    LinkedIn matches better)."""

    email: Email | None = Field(None, description="E-mail address.")
    google_aid: GoogleAid | None = Field(None, description="Android advertising id (GAID).")
    first_name: Name | None = Field(None, description="First name.")
    last_name: Name | None = Field(None, description="Last name.")
    title: Name | None = Field(None, description="Job title.")
    company: Name | None = Field(None, description="Company name.")
    country: Country | None = Field(None, description="ISO 3166-1 alpha-2 country, e.g. US.")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        named = self.first_name is not None and self.last_name is not None
        if self.email is None and self.google_aid is None and not named:
            raise ValueError("give an email or googleAid, or firstName and lastName")
        return self


class SegmentUsersParams(Params):
    """Adds people to, or removes them from, a DMP segment of type USER."""

    segment_id: Id = Field(description="The DMP segment's id.")
    users: Annotated[list[SegmentUser], Field(min_length=1, max_length=MAX_BATCH)] = Field(
        description=f"The people, at most {MAX_BATCH:,} per call."
    )
    email_hash: Literal["SHA256", "SHA512"] = Field(
        "SHA256", description="How e-mail addresses are hashed (SHA256_EMAIL or SHA512_EMAIL)."
    )


def _email_id(email: str, algorithm: Literal["SHA256", "SHA512"]) -> dict[str, str]:
    if len(email) == _SHA512_LENGTH and "@" not in email:
        return {"idType": "SHA512_EMAIL", "idValue": email}
    if len(email) == _SHA256_LENGTH and "@" not in email:
        return {"idType": "SHA256_EMAIL", "idValue": email}
    if algorithm == "SHA512":
        return {"idType": "SHA512_EMAIL", "idValue": linkedin_email_sha512(email)}
    return {"idType": "SHA256_EMAIL", "idValue": hash_identifier("linkedin", Kind.EMAIL, email)}


def _segment_element(
    user: SegmentUser, action: str, algorithm: Literal["SHA256", "SHA512"]
) -> dict[str, Any]:
    ids = [_email_id(user.email, algorithm)] if user.email is not None else []
    if user.google_aid is not None:
        ids.append({"idType": "GOOGLE_AID", "idValue": user.google_aid})
    element: dict[str, Any] = {"action": action, "userIds": ids}
    details = {
        "firstName": user.first_name,
        "lastName": user.last_name,
        "title": user.title,
        "company": user.company,
        "country": user.country,
    }
    element.update({name: value for name, value in details.items() if value is not None})
    return element


def _segment_request(
    action: Literal["ADD", "REMOVE"],
) -> Callable[[SegmentUsersParams, RequestContext], OutboundRequest]:
    def build(params: SegmentUsersParams, ctx: RequestContext) -> OutboundRequest:
        elements = [_segment_element(u, action, params.email_hash) for u in params.users]
        path = f"/rest/dmpSegments/{params.segment_id}/users"
        return OutboundRequest("POST", path, headers=_headers(ctx), json={"elements": elements})

    return build


# -------------------------------------------------------------------------- conversions API


class LinkedInConversionEvent(Params):
    """One conversion, identified by hashed e-mail or another LinkedIn-accepted id, or by
    first and last name (with company and title LinkedIn matches better)."""

    happened_at: AwareDatetime | None = Field(
        None, description="When it happened, within the last 90 days (default: now)."
    )
    value: Decimal | None = Field(
        None, ge=0, max_digits=18, decimal_places=6, description="Monetary value (with currency)."
    )
    currency: str | None = Field(
        None, pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of value, e.g. USD."
    )
    event_id: Text | None = Field(
        None,
        description="Deduplication id, the Insight Tag's for the same action (default: "
        "the step's idempotency key).",
    )
    email: (
        Annotated[
            Text, AfterValidator(lambda value: hash_identifier("linkedin", Kind.EMAIL, value))
        ]
        | None
    ) = Field(None, description="E-mail address (sent as SHA256_EMAIL).")
    first_party_tracking_uuid: Text | None = Field(
        None, description="The li_fat_id cookie (LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID)."
    )
    acxiom_id: Text | None = Field(None, description="Acxiom's id of the person (ACXIOM_ID).")
    oracle_moat_id: Text | None = Field(None, description="Oracle Moat id (ORACLE_MOAT_ID).")
    first_name: Name | None = Field(None, description="First name.")
    last_name: Name | None = Field(None, description="Last name.")
    title: Name | None = Field(None, description="Job title.")
    company_name: Name | None = Field(None, description="Company name.")
    country_code: Country | None = Field(None, description="ISO 3166-1 alpha-2 country.")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        info = [self.title, self.company_name, self.country_code]
        named = self.first_name is not None and self.last_name is not None
        if (self.first_name is None) != (self.last_name is None) or (any(info) and not named):
            raise ValueError("user information needs firstName and lastName")
        if not self.user_ids and not named:
            raise ValueError("give an email or another user id, or firstName and lastName")
        if (self.value is None) != (self.currency is None):
            raise ValueError("give value and currency together")
        return self

    @property
    def user_ids(self) -> list[dict[str, str]]:
        ids = {
            "SHA256_EMAIL": self.email,
            "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID": self.first_party_tracking_uuid,
            "ACXIOM_ID": self.acxiom_id,
            "ORACLE_MOAT_ID": self.oracle_moat_id,
        }
        return [{"idType": kind, "idValue": value} for kind, value in ids.items() if value]


class SendLinkedInConversionsParams(Params):
    """Streams conversion events to a conversion rule whose method is CONVERSIONS_API."""

    conversion_rule_id: Id = Field(description="The conversion rule's id.")
    events: Annotated[list[LinkedInConversionEvent], Field(min_length=1, max_length=MAX_BATCH)] = (
        Field(description=f"The events, at most {MAX_BATCH:,} per call.")
    )


def _conversion_element(
    event: LinkedInConversionEvent, rule: str, event_id: str, happened_ms: int
) -> dict[str, Any]:
    # userIds is required even when empty (matching by userInfo alone).
    user: dict[str, Any] = {"userIds": event.user_ids}
    info = {
        "firstName": event.first_name,
        "lastName": event.last_name,
        "title": event.title,
        "companyName": event.company_name,
        "countryCode": event.country_code,
    }
    if event.first_name is not None:
        user["userInfo"] = {name: value for name, value in info.items() if value is not None}
    element: dict[str, Any] = {
        "conversion": rule,
        "conversionHappenedAt": happened_ms,
        "eventId": event.event_id or event_id,
        "user": user,
    }
    if event.value is not None and event.currency is not None:
        element["conversionValue"] = {"currencyCode": event.currency, "amount": f"{event.value:f}"}
    return element


def send_conversion_events_request(
    params: SendLinkedInConversionsParams, ctx: RequestContext
) -> OutboundRequest:
    now_ms = ctx.now_unix * 1000
    rule = f"urn:lla:llaPartnerConversion:{params.conversion_rule_id}"
    many = len(params.events) > 1
    elements = []
    for index, event in enumerate(params.events):
        happened = (
            now_ms if event.happened_at is None else int(event.happened_at.timestamp() * 1000)
        )
        if happened < now_ms - MAX_EVENT_AGE_MS:
            raise CannotBuildRequest(
                f"linkedin_ads: events/{index}/happenedAt is more than 90 days ago; LinkedIn "
                "rejects it"
            )
        event_id = f"{ctx.idempotency_key}:{index}" if many else ctx.idempotency_key
        elements.append(_conversion_element(event, rule, event_id, happened))
    return OutboundRequest(
        "POST", "/rest/conversionEvents", headers=_headers(ctx), json={"elements": elements}
    )


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The authenticated member's ad accounts: needs a valid token with r_ads."""
    return OutboundRequest(
        "GET",
        "/rest/adAccountUsers",
        query={"q": "authenticatedUser"},
        headers=_headers(ctx, batch=False),
    )


LINKEDIN_ADS = Connector(
    provider="linkedin_ads",
    title="LinkedIn Ads",
    category="ads",
    description="LinkedIn Marketing: add people to or remove them from DMP segments (matched "
    "audiences), and stream conversion events. E-mail addresses are normalised and hashed "
    "before they leave.",
    base_url="https://api.linkedin.com",
    auth=BearerAuth(),
    auth_for=auth_for,
    credentials=LinkedInAdsCredentials,
    settings=LinkedInAdsSettings,
    operations=operations(
        Operation(
            name="add_segment_users",
            summary="Add people to a DMP segment.",
            params=SegmentUsersParams,
            request=_segment_request("ADD"),
            output=_statuses,
        ),
        Operation(
            name="remove_segment_users",
            summary="Remove people from a DMP segment.",
            params=SegmentUsersParams,
            request=_segment_request("REMOVE"),
            output=_statuses,
        ),
        Operation(
            name="send_conversion_events",
            summary="Stream conversion events to a conversion rule.",
            params=SendLinkedInConversionsParams,
            request=send_conversion_events_request,
            output=_statuses,
        ),
    ),
    # DMP Segment Users: 600 requests per minute per member (500 in versions before 2024);
    # the Conversions API allows 600 per minute and 300,000 a day. Daily per-app limits are
    # unpublished (Developer Portal > Analytics) and LinkedIn sends no rate headers, only 429s.
    rate_limits=RateLimits(requests_per_minute=500, burst_limit=20),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://learn.microsoft.com/en-us/linkedin/marketing/matched-audiences/create-and-manage-segment-users",
)
