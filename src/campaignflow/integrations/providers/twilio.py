"""Twilio Programmable Messaging: ``twilio.send_sms``.

Requests follow Twilio's own OpenAPI file (twilio-oai ``twilio_api_v2010.json``, checked by the
contract tests): ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, HTTP
Basic with the account SID and auth token, or an API key's SID and secret (Twilio's advice for
production: a key can be revoked without rotating the account's token).

Twilio echoes nothing of ours on its status callbacks except the callback URL itself, so the
step's tracking values ride as query parameters of ``StatusCallback`` (Twilio signs the full URL,
query included, in ``X-Twilio-Signature``). Twilio's Messages API takes no idempotency key: a
step retried after a lost answer may send the SMS twice, which is why only a timeout or a 5xx is
retried and a 4xx never is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, Field, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    AuthScheme,
    BasicAuth,
    CannotBuildRequest,
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
    Params,
    Secret,
    body_field,
    credential,
)

PROVIDER = "twilio"
API_VERSION = "2010-04-01"
# E.164: '+', a country code that does not start with 0, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
# A Twilio sender: an E.164 number, a short code, or an alphanumeric sender ID (at most 11
# letters, digits and spaces, at least one of them a letter: :func:`_sender_id`; not accepted
# in every country).
SENDER_PATTERN = r"^(\+[1-9][0-9]{1,14}|[0-9]{3,8}|[A-Za-z0-9 ]{1,11})$"
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
ACCOUNT_SID_PATTERN = r"^AC[0-9a-fA-F]{32}$"
SERVICE_SID_PATTERN = r"^MG[0-9a-fA-F]{32}$"

PhoneNumber = Annotated[str, Field(pattern=E164_PATTERN, examples=["+14155552671"])]


def _sender_id(value: str) -> str:
    """The part of the sender rule a pattern without look-ahead cannot say."""
    if value.startswith("+") or _SHORT_CODE.fullmatch(value) or any(c.isalpha() for c in value):
        return value
    raise ValueError("an alphanumeric sender ID needs at least one letter")


Sender = Annotated[
    str,
    Field(pattern=SENDER_PATTERN, examples=["+14155550100", "ACMEShop"]),
    AfterValidator(_sender_id),
]
ServiceSid = Annotated[str, Field(pattern=SERVICE_SID_PATTERN)]
MediaUrl = Annotated[str, Field(pattern=HTTPS_URL_PATTERN, max_length=2000)]
MediaUrls = Annotated[list[MediaUrl], Field(min_length=1, max_length=10)]


class TwilioCredentials(ConnectorModel):
    account_sid: str = Field(
        pattern=ACCOUNT_SID_PATTERN,
        description="The account's SID (AC…), from the Twilio Console; part of every URL.",
    )
    auth_token: Secret | None = Field(
        None, description="The account's auth token. Give it, or an API key's SID and secret."
    )
    api_key_sid: str | None = Field(
        None,
        pattern=r"^SK[0-9a-fA-F]{32}$",
        description="An API key's SID (SK…), used instead of the auth token.",
    )
    api_key_secret: Secret | None = Field(None, description="The API key's secret.")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        has_key = self.api_key_sid is not None or self.api_key_secret is not None
        if has_key and (self.api_key_sid is None or self.api_key_secret is None):
            raise ValueError("an API key needs both apiKeySid and apiKeySecret")
        if has_key == (self.auth_token is not None):
            raise ValueError("give either authToken or an API key (apiKeySid and apiKeySecret)")
        return self


# The names of the credentials that hold the Basic password (names, not values).
KEY_SECRET, AUTH_TOKEN = "api_key_secret", "auth_token"


def auth_for(credentials: Mapping[str, str]) -> AuthScheme:
    """Basic auth as the API key when the connection has one, else as the account."""
    if credentials.get("api_key_sid"):
        return BasicAuth(fixed_username=credentials["api_key_sid"], password_credential=KEY_SECRET)
    return BasicAuth(fixed_username=credentials.get("account_sid"), password_credential=AUTH_TOKEN)


class TwilioSettings(ConnectionSettings):
    default_from: Sender | None = Field(
        None,
        alias="defaultFrom",
        description="Sender for steps that give neither 'from' nor a messaging service: a Twilio "
        "number (E.164), a short code or an alphanumeric sender ID.",
    )
    messaging_service_sid: ServiceSid | None = Field(
        None,
        alias="messagingServiceSid",
        description="Default Messaging Service (MG…); Twilio picks the sender from its pool.",
    )
    status_callback_url: str | None = Field(
        None,
        alias="statusCallbackUrl",
        max_length=2000,
        pattern=HTTPS_URL_PATTERN,
        description="Where Twilio reports delivery (campaignflow's /api/v1/webhooks/twilio URL); "
        "the step's tracking values are added to its query.",
    )


class SendSmsParams(Params):
    """Sends one SMS (or MMS, with media) to one phone number."""

    to: PhoneNumber = Field(description="Recipient phone number in E.164 format (+14155552671).")
    sender: Sender | None = Field(
        None,
        alias="from",
        description="Sender (a Twilio number, short code or alphanumeric ID); default: the "
        "connection's defaultFrom or messaging service.",
    )
    messaging_service_sid: ServiceSid | None = Field(
        None, description="Messaging Service (MG…) to send through; overrides the connection's."
    )
    body: str = Field(
        min_length=1,
        max_length=1600,
        description="The text (Twilio's limit: 1,600 characters; more than 160 GSM-7 or 70 UCS-2 "
        "characters are sent, and billed, as several segments).",
    )
    media_url: MediaUrls | None = Field(
        None, description="Up to 10 public https URLs of images to send as an MMS."
    )
    validity_period: int | None = Field(
        None,
        ge=1,
        le=36000,
        description="Seconds the message may wait in Twilio's queue before it is dropped.",
    )
    shorten_urls: bool | None = Field(
        None, description="Shorten links in the body (needs a messaging service with a domain)."
    )

    @model_validator(mode="after")
    def _shortening_needs_a_service(self) -> Self:
        if self.shorten_urls and self.sender is not None and self.messaging_service_sid is None:
            raise ValueError("shortenUrls needs a messagingServiceSid")
        return self


def _sender(params: SendSmsParams, settings: ConnectionSettings) -> list[tuple[str, str]]:
    """``From`` and/or ``MessagingServiceSid``: the step's, else the connection's."""
    service = params.messaging_service_sid
    sender = params.sender
    if isinstance(settings, TwilioSettings) and sender is None and service is None:
        sender, service = settings.default_from, settings.messaging_service_sid
    if sender is None and service is None:
        raise CannotBuildRequest(
            "twilio: give 'from' or 'messagingServiceSid', or set defaultFrom or "
            "messagingServiceSid in the connection's settings"
        )
    if params.shorten_urls and service is None:
        raise CannotBuildRequest("twilio: shortenUrls needs a messaging service")
    pairs = [("From", sender)] if sender else []
    return pairs + ([("MessagingServiceSid", service)] if service else [])


def status_callback(base: str, tracking: Mapping[str, str]) -> str:
    """``base`` with the step's tracking values appended to its query."""
    if not tracking:
        return base
    parts = urlsplit(base)
    extra = urlencode(sorted(tracking.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def form_post(path: str, pairs: list[tuple[str, str]]) -> OutboundRequest:
    """A form-encoded POST; built from pairs because Twilio repeats ``MediaUrl``."""
    return OutboundRequest(
        "POST",
        path,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        raw=urlencode(pairs).encode(),
    )


def send_sms_request(params: SendSmsParams, ctx: RequestContext) -> OutboundRequest:
    account = credential(ctx.credentials, "account_sid", PROVIDER)
    pairs = [("To", params.to), *_sender(params, ctx.settings), ("Body", params.body)]
    pairs += [("MediaUrl", url) for url in params.media_url or ()]
    if params.validity_period is not None:
        pairs.append(("ValidityPeriod", str(params.validity_period)))
    if params.shorten_urls is not None:
        pairs.append(("ShortenUrls", "true" if params.shorten_urls else "false"))
    settings = ctx.settings
    if isinstance(settings, TwilioSettings) and settings.status_callback_url:
        pairs.append(
            ("StatusCallback", status_callback(settings.status_callback_url, ctx.tracking))
        )
    return form_post(f"/{API_VERSION}/Accounts/{account}/Messages.json", pairs)


def message_sid(response: ProviderResponse) -> str | None:
    """The message's SID (SM…/MM…), which Twilio's status callbacks carry as ``MessageSid``."""
    value = body_field(response, "sid")
    return value if isinstance(value, str) else None


def send_sms_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "sid": message_sid(response),
        "messageStatus": body_field(response, "status"),
        "segments": body_field(response, "num_segments"),
    }


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The account itself: read-only, and any valid credential may read it."""
    account = credential(ctx.credentials, "account_sid", PROVIDER)
    return OutboundRequest("GET", f"/{API_VERSION}/Accounts/{account}.json")


TWILIO = Connector(
    provider=PROVIDER,
    title="Twilio SMS",
    category="messaging",
    description="Send SMS and MMS through Twilio Programmable Messaging, from a number, short "
    "code, alphanumeric sender ID or messaging service.",
    base_url="https://api.twilio.com",
    auth=BasicAuth(password_credential=AUTH_TOKEN),
    auth_for=auth_for,
    credentials=TwilioCredentials,
    settings=TwilioSettings,
    operations=operations(
        Operation(
            name="send_sms",
            summary="Send an SMS (or MMS) to one phone number.",
            params=SendSmsParams,
            request=send_sms_request,
            output=send_sms_output,
            channel="sms",
            recipients=lambda params: [params.to],
            provider_message_id=message_sid,
        ),
    ),
    # Twilio limits an account to 100 concurrent API requests (error 20429 beyond; "Twilio API
    # concurrency limits", twilio.com/docs/usage/rest-api-best-practices) and queues messages
    # beyond each sender's throughput (1 segment/s for a US long code) for up to 4 hours
    # (validityPeriod), so requests may outpace delivery. 30/s with bursts of 50 keeps well
    # under the concurrency limit at Twilio's usual latencies.
    rate_limits=RateLimits(requests_per_minute=1800, burst_limit=50),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://www.twilio.com/docs/messaging/api/message-resource",
)
