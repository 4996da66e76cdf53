"""Amazon SES (API v2): ``amazon_ses.send_email`` (``POST /v2/email/outbound-emails``).

Requests are signed with AWS Signature Version 4 (service ``ses``) for the connection's
``region``, whose endpoint is ``email.{region}.amazonaws.com``; the contract tests build each
request with botocore from AWS's own service model as well and compare. Content is simple
(subject, text, HTML) or a stored template with its data.

The step's tracking values go in ``EmailTags``, which SES returns in every event it publishes
for the message (``mail.tags`` of the configuration set's event destination). Tag values may
hold only ASCII letters, digits, ``_`` and ``-``, so a value is escaped: every other character,
and ``-`` itself, becomes ``-`` and its UTF-8 bytes in hex (``send:a`` → ``send-3Aa``);
:func:`decode_tag_value` undoes it (a value that then exceeds SES's 256 characters is left out;
the ``MessageId`` recorded at sending still ties the events to the step). SES takes no
idempotency key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import formataddr
from typing import Annotated, Any, Self

import orjson
from pydantic import Field, field_validator, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    AwsSigV4Auth,
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
    EmailAddress,
    EmailAddresses,
    JsonObject,
    Params,
    Secret,
    SenderSettings,
    body_field,
    sender,
)

PROVIDER = "amazon_ses"
MAX_ADDRESSES = 50  # SES: at most 50 recipients per message, To, Cc and Bcc together
MAX_TEMPLATE_DATA = 262_144  # bytes of TemplateData, AWS's service model
TAG_PATTERN = r"^[A-Za-z0-9_-]{1,256}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
Addresses = Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_ADDRESSES)]
TagText = Annotated[str, Field(pattern=TAG_PATTERN)]
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_ESCAPE = re.compile(r"(?:-[0-9A-F]{2})+")


class SesCredentials(ConnectorModel):
    access_key_id: str = Field(
        pattern=r"^[A-Z0-9]{16,128}$",
        description="An IAM access key id (AKIA…, or ASIA… for temporary credentials) allowed "
        "ses:SendEmail.",
    )
    secret_access_key: Secret = Field(description="The access key's secret.")
    session_token: Secret | None = Field(
        None, description="The session token of temporary credentials (STS), if they are."
    )


class SesSettings(SenderSettings):
    region: str = Field(
        pattern=REGION_PATTERN,
        description="The AWS region whose SES sends (where the identities are verified), e.g. "
        "eu-west-1.",
    )
    configuration_set: str | None = Field(
        None,
        alias="configurationSet",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Configuration set for steps that name none; its event destination is "
        "where delivery, open and click events go.",
    )


def base_url_for(settings: ConnectionSettings, _credentials: Mapping[str, str]) -> str:
    if not isinstance(settings, SesSettings):
        raise CannotBuildRequest("amazon_ses: the connection has no region")
    return f"https://email.{settings.region}.amazonaws.com"


def encode_tag_value(value: str) -> str:
    """``value`` in the characters SES allows in tags, reversibly (see the module doc)."""
    return _UNSAFE.sub(lambda m: "".join(f"-{byte:02X}" for byte in m[0].encode()), value)


def decode_tag_value(value: str) -> str:
    """The inverse of :func:`encode_tag_value`."""
    return _ESCAPE.sub(lambda m: bytes.fromhex(m[0].replace("-", "")).decode(), value)


class SendEmailParams(Params):
    """One message, from inline content or a stored template."""

    to: EmailAddresses = Field(description="Recipient address, or a list of them.")
    cc: Addresses | None = Field(None, description="Cc addresses.")
    bcc: Addresses | None = Field(None, description="Bcc addresses.")
    sender: EmailAddress | None = Field(
        None,
        alias="from",
        description="Sender (a verified identity); default: the connection's defaultFrom.",
    )
    from_name: str | None = Field(None, max_length=200, description="Sender display name.")
    reply_to: Addresses | None = Field(None, description="Reply-To addresses.")
    subject: str | None = Field(
        None, min_length=1, max_length=998, description="Subject; required without a template."
    )
    text: str | None = Field(None, min_length=1, description="Plain-text content.")
    html: str | None = Field(None, min_length=1, description="HTML content.")
    template: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="A stored SES template's name; replaces subject, text and html.",
    )
    template_data: JsonObject | None = Field(
        None, description="Values for the template's {{variables}}."
    )
    tags: dict[TagText, TagText] | None = Field(
        None,
        max_length=40,
        description="Message tags (name → value; letters, digits, '_' and '-') returned in the "
        "message's events; names starting with 'cf_' are campaignflow's.",
    )
    configuration_set: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Configuration set (default: the connection's).",
    )

    @field_validator("tags")
    @classmethod
    def _not_ours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and any(name.startswith("cf_") for name in value):
            raise ValueError("tag names starting with 'cf_' are reserved")
        return value

    @model_validator(mode="after")
    def _content(self) -> Self:
        if self.template is None:
            if self.text is None and self.html is None:
                raise ValueError("give text or html content, or a template")
            if self.subject is None:
                raise ValueError("a subject is required unless a template is given")
            if self.template_data is not None:
                raise ValueError("templateData needs a template")
        elif self.text is not None or self.html is not None or self.subject is not None:
            raise ValueError("a template replaces subject, text and html: give one or the other")
        elif len(orjson.dumps(self.template_data or {})) > MAX_TEMPLATE_DATA:
            raise ValueError("templateData is larger than SES's 256 KiB")
        if len(self.recipients) > MAX_ADDRESSES:
            raise ValueError(f"at most {MAX_ADDRESSES} addresses in to, cc and bcc together")
        return self

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *(self.cc or ()), *(self.bcc or ())]


def _content(params: SendEmailParams) -> dict[str, Any]:
    if params.template is not None:
        data = orjson.dumps(params.template_data or {}).decode()
        return {"Template": {"TemplateName": params.template, "TemplateData": data}}
    body = {
        name: {"Data": value, "Charset": "UTF-8"}
        for name, value in (("Text", params.text), ("Html", params.html))
        if value
    }
    subject = {"Data": params.subject, "Charset": "UTF-8"}
    return {"Simple": {"Subject": subject, "Body": body}}


def _tags(params: SendEmailParams, tracking: Mapping[str, str]) -> list[dict[str, str]]:
    tags = {**(params.tags or {}), **{k: encode_tag_value(v) for k, v in tracking.items()}}
    return [{"Name": name, "Value": value} for name, value in tags.items() if len(value) <= 256]


def send_email_request(params: SendEmailParams, ctx: RequestContext) -> OutboundRequest:
    address, name = sender(params.sender, params.from_name, ctx.settings, PROVIDER)
    destination = {"ToAddresses": params.to, "CcAddresses": params.cc, "BccAddresses": params.bcc}
    settings = ctx.settings
    default_set = settings.configuration_set if isinstance(settings, SesSettings) else None
    optional: dict[str, Any] = {
        "ReplyToAddresses": params.reply_to,
        "EmailTags": _tags(params, ctx.tracking) or None,
        "ConfigurationSetName": params.configuration_set or default_set,
    }
    body: dict[str, Any] = {
        "FromEmailAddress": formataddr((name, address)) if name else address,
        "Destination": {key: value for key, value in destination.items() if value},
        "Content": _content(params),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return OutboundRequest("POST", "/v2/email/outbound-emails", json=body)


def message_id(response: ProviderResponse) -> str | None:
    """SES's id of the message, which its events carry as ``mail.messageId``."""
    value = body_field(response, "MessageId")
    return value if isinstance(value, str) else None


def send_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "messageId": message_id(response)}


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """``GetAccount``: read-only; shows whether the account is out of the sandbox."""
    return OutboundRequest("GET", "/v2/email/account")


AMAZON_SES = Connector(
    provider=PROVIDER,
    title="Amazon SES",
    category="email",
    description="E-mail through Amazon Simple Email Service (API v2), signed with AWS SigV4: "
    "inline content or stored templates, message tags, configuration sets.",
    base_url="https://email.us-east-1.amazonaws.com",
    base_url_for=base_url_for,
    auth=AwsSigV4Auth(service="ses", region_setting="region"),
    credentials=SesCredentials,
    settings=SesSettings,
    operations=operations(
        Operation(
            name="send_email",
            summary="Send an e-mail to up to 50 recipients.",
            params=SendEmailParams,
            request=send_email_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
    ),
    # SES's sending quota is per account and region (Amazon SES Developer Guide, "Managing
    # your Amazon SES sending quotas"): a new account in the sandbox may send 1 message per
    # second, production accounts get their own rate (often 14/s and up), counted per
    # recipient. The default is the sandbox's; raise requestsPerMinute to the account's rate.
    rate_limits=RateLimits(requests_per_minute=60, burst_limit=1),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html",
)
