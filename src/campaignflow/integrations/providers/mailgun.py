"""Mailgun: ``mailgun.send_message`` (``POST /v3/{domain}/messages``).

The request is a form, HTTP Basic as ``api`` with the API key, to the US or EU API host as the
connection's ``region`` says (an EU domain exists only on api.eu.mailgun.net). Recipients of one
step never see each other: with more than one ``to``, ``recipient-variables`` is set, and Mailgun
then sends each recipient a message of their own (its "batch sending").

The step's tracking values go in ``v:`` custom variables, which Mailgun echoes in every event
of its webhooks as ``user-variables``. Mailgun's ``o:tag`` may be repeated (at most 3 per
message), which is why the form is built from pairs. Mailgun takes no idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formataddr, formatdate
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlencode

import orjson
from pydantic import Field, field_validator, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    BasicAuth,
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
    EmailAddress,
    EmailAddresses,
    JsonObject,
    Params,
    Secret,
    SenderSettings,
    body_field,
    sender,
    unique,
)

PROVIDER = "mailgun"
BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
DOMAIN_PATTERN = r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
# Mailgun: at most 3 tags per message, each ASCII and at most 128 characters.
Tag = Annotated[str, Field(pattern=r"^[\x20-\x7e]{1,128}$")]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
TRACKING_PREFIX = "cf_"


class MailgunCredentials(ConnectorModel):
    api_key: Secret = Field(
        description="A Mailgun API key (a domain sending key is enough), sent as the password "
        "of HTTP Basic with the user 'api'."
    )
    webhook_signing_key: Secret | None = Field(
        None,
        description="The HTTP webhook signing key (Sending > Webhooks), used to verify the "
        "signature of incoming events.",
    )


class MailgunSettings(SenderSettings):
    domain: str = Field(
        pattern=DOMAIN_PATTERN,
        max_length=253,
        description="The sending domain as registered at Mailgun (e.g. mg.example.com).",
    )
    region: Literal["us", "eu"] = Field(
        "us", description="Where the domain lives: 'eu' for domains created in the EU region."
    )


def base_url_for(settings: ConnectionSettings, _credentials: Mapping[str, str]) -> str:
    region = settings.region if isinstance(settings, MailgunSettings) else "us"
    return BASE_URLS[region]


class SendMessageParams(Params):
    """One message to each recipient: inline content or a stored template."""

    to: EmailAddresses = Field(
        description="Recipient address, or a list of up to 1,000; each receives their own message."
    )
    sender: EmailAddress | None = Field(
        None,
        alias="from",
        description="Sender address on the domain; default: the connection's defaultFrom.",
    )
    from_name: str | None = Field(None, max_length=200, description="Sender display name.")
    subject: str | None = Field(
        None, min_length=1, max_length=998, description="Subject; required without a template."
    )
    text: str | None = Field(None, min_length=1, description="Plain-text content.")
    html: str | None = Field(None, min_length=1, description="HTML content.")
    template: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="A stored template's name; replaces text and html.",
    )
    template_version: str | None = Field(
        None, min_length=1, max_length=255, description="The template version (default: active)."
    )
    template_variables: JsonObject | None = Field(
        None, description="Values for the template's {{variables}} (sent as t:variables)."
    )
    tags: Annotated[list[Tag], Field(min_length=1, max_length=3)] | None = Field(
        None, description="Up to 3 distinct tags for Mailgun's statistics."
    )
    variables: dict[VariableName, str] | None = Field(
        None,
        description="Custom variables (name → text) attached to the message and echoed in its "
        "events; names starting with 'cf_' are campaignflow's.",
    )
    reply_to: EmailAddress | None = Field(None, description="Reply-To address.")
    track_opens: bool | None = Field(None, description="Track opens (domain default if unset).")
    track_clicks: Literal["yes", "no", "htmlonly"] | None = Field(
        None, description="Track clicks: yes, no, or htmlonly (domain default if unset)."
    )
    send_at: int | None = Field(
        None,
        ge=0,
        description="Unix time to deliver at (Mailgun schedules up to 3 days ahead, 7 on some "
        "plans).",
    )
    test_mode: bool | None = Field(
        None, description="Accept the message without delivering it (Mailgun's test mode)."
    )

    @field_validator("tags")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else unique(value)

    @field_validator("variables")
    @classmethod
    def _not_ours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and any(name.startswith(TRACKING_PREFIX) for name in value):
            raise ValueError(f"names starting with {TRACKING_PREFIX!r} are reserved")
        return value

    @model_validator(mode="after")
    def _content_or_template(self) -> Self:
        if self.template is None:
            if self.text is None and self.html is None:
                raise ValueError("give text or html content, or a template")
            if self.subject is None:
                raise ValueError("a subject is required unless a template is given")
            if self.template_variables is not None or self.template_version is not None:
                raise ValueError("templateVariables and templateVersion need a template")
        elif self.text is not None or self.html is not None:
            raise ValueError("a template replaces text and html: give one or the other")
        return self

    @property
    def recipients(self) -> list[str]:
        return self.to


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _options(params: SendMessageParams) -> list[tuple[str, str]]:
    pairs = [("o:tag", tag) for tag in params.tags or ()]
    if params.track_opens is not None:
        pairs.append(("o:tracking-opens", _yes_no(params.track_opens)))
    if params.track_clicks is not None:
        pairs.append(("o:tracking-clicks", params.track_clicks))
    if params.send_at is not None:
        pairs.append(("o:deliverytime", formatdate(params.send_at, usegmt=True)))
    if params.test_mode is not None:
        pairs.append(("o:testmode", _yes_no(params.test_mode)))
    return pairs


def _content(params: SendMessageParams) -> list[tuple[str, str]]:
    optional = [
        ("subject", params.subject),
        ("text", params.text),
        ("html", params.html),
        ("template", params.template),
        ("t:version", params.template_version),
    ]
    pairs = [(name, value) for name, value in optional if value is not None]
    if params.template_variables is not None:
        pairs.append(("t:variables", orjson.dumps(params.template_variables).decode()))
    return pairs


def send_message_request(params: SendMessageParams, ctx: RequestContext) -> OutboundRequest:
    address, name = sender(params.sender, params.from_name, ctx.settings, PROVIDER)
    pairs = [("from", formataddr((name, address)) if name else address)]
    pairs += [("to", recipient) for recipient in params.recipients]
    if len(params.recipients) > 1:  # one message per recipient, none sees the others
        variables: dict[str, JsonObject] = {address: {} for address in params.recipients}
        pairs.append(("recipient-variables", orjson.dumps(variables).decode()))
    pairs += _content(params)
    if params.reply_to is not None:
        pairs.append(("h:Reply-To", params.reply_to))
    pairs += _options(params)
    custom = {**(params.variables or {}), **ctx.tracking}
    pairs += [(f"v:{name}", value) for name, value in custom.items()]
    domain = _domain(ctx.settings)
    return OutboundRequest(
        "POST",
        f"/v3/{domain}/messages",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        raw=urlencode(pairs).encode(),
    )


def _domain(settings: ConnectionSettings) -> str:
    assert isinstance(settings, MailgunSettings)  # the connector's own settings model
    return settings.domain


def message_id(response: ProviderResponse) -> str | None:
    """Mailgun's ``<…@domain>`` id without its brackets, as its events carry it
    (``message.headers.message-id``)."""
    value = body_field(response, "id")
    return value.strip("<>") if isinstance(value, str) else None


def send_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "messageId": message_id(response),
        "message": body_field(response, "message"),
    }


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """The sending domain: read-only, and it fails if the key cannot use the domain."""
    return OutboundRequest("GET", f"/v4/domains/{_domain(ctx.settings)}")


MAILGUN = Connector(
    provider=PROVIDER,
    title="Mailgun",
    category="email",
    description="Transactional and bulk e-mail through Mailgun: inline content or stored "
    "templates, tags, open and click tracking; US or EU region.",
    base_url=BASE_URLS["us"],
    base_url_for=base_url_for,
    auth=BasicAuth(fixed_username="api", password_credential="api_key"),  # noqa: S106
    credentials=MailgunCredentials,
    settings=MailgunSettings,
    operations=operations(
        Operation(
            name="send_message",
            summary="Send an e-mail to one or more recipients (one message each).",
            params=SendMessageParams,
            request=send_message_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
    ),
    # Mailgun publishes no per-second request limit for its messages API: accounts have
    # hourly/daily sending limits shown in the control panel, and a 429 beyond them
    # (documentation.mailgun.com, "Rate limits"). 10/s with bursts of 50 is a cautious pace;
    # one request may carry up to 1,000 recipients.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=50),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages",
)
