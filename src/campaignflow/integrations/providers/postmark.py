"""Postmark: ``postmark.send_email``, ``send_email_batch`` (up to 500) and ``send_with_template``.

Every call carries the server's API token in ``X-Postmark-Server-Token``. A message goes to its
``To``, ``Cc`` and ``Bcc`` together (at most 50 addresses, Postmark's limit), as any e-mail to
several people does; steps that must reach people separately give one message each in a batch.

The step's tracking values go in each message's ``Metadata``, which Postmark returns in every
webhook event of the message. Postmark keeps metadata keys to 20 characters and values to 80
and allows 10 fields: a tracking value longer than 80 characters is left out, and the
``MessageID`` recorded when the step sent still ties the events to it. Postmark takes no
idempotency key. The batch endpoint answers 200 even when some messages are refused; the step
output lists each message's ``ErrorCode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import formataddr
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

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
    EmailAddress,
    EmailAddresses,
    JsonObject,
    Params,
    Secret,
    SenderSettings,
    sender,
)

PROVIDER = "postmark"
MAX_ADDRESSES = 50  # To, Cc and Bcc of one message together
MAX_BATCH = 500
MAX_METADATA = 10
METADATA_VALUE_MAX = 80
TRACKING_KEYS = 4  # cf_workspace, cf_send, cf_execution, cf_node
MetadataKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,20}$")]
MetadataValue = Annotated[str, Field(max_length=METADATA_VALUE_MAX)]
Addresses = Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_ADDRESSES)]
StreamId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,29}$")]


class PostmarkCredentials(ConnectorModel):
    api_key: Secret = Field(
        description="The Postmark server's API token (Servers > API Tokens), sent as "
        "X-Postmark-Server-Token."
    )


class PostmarkSettings(SenderSettings):
    message_stream: StreamId | None = Field(
        None,
        alias="messageStream",
        description="Message stream for steps that name none (Postmark's default: 'outbound', "
        "the transactional stream; broadcasts go to a broadcast stream).",
    )


class MessageFields(Params):
    """What every Postmark message has besides its content."""

    to: EmailAddresses = Field(description="Recipient address, or a list of them.")
    cc: Addresses | None = Field(None, description="Cc addresses.")
    bcc: Addresses | None = Field(None, description="Bcc addresses.")
    sender: EmailAddress | None = Field(
        None,
        alias="from",
        description="Sender (a confirmed sender signature); default: the connection's defaultFrom.",
    )
    from_name: str | None = Field(None, max_length=200, description="Sender display name.")
    reply_to: EmailAddress | None = Field(None, description="Reply-To address.")
    tag: str | None = Field(
        None, min_length=1, max_length=1000, description="One tag, for Postmark's statistics."
    )
    track_opens: bool | None = Field(None, description="Track opens (server default if unset).")
    track_links: Literal["None", "HtmlAndText", "HtmlOnly", "TextOnly"] | None = Field(
        None, description="Link tracking (server default if unset)."
    )
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        None,
        description=f"Up to {MAX_METADATA - TRACKING_KEYS} custom fields (key ≤ 20, value ≤ 80 "
        "characters), returned in the message's webhook events.",
    )
    message_stream: StreamId | None = Field(
        None, description="Message stream (default: the connection's, else 'outbound')."
    )

    @field_validator("metadata")
    @classmethod
    def _room_for_tracking(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if not value:
            return value
        if len(value) > MAX_METADATA - TRACKING_KEYS:
            raise ValueError(
                f"at most {MAX_METADATA - TRACKING_KEYS} fields: Postmark allows "
                f"{MAX_METADATA}, and {TRACKING_KEYS} are campaignflow's"
            )
        if any(key.lower().startswith("cf_") for key in value):
            raise ValueError("keys starting with 'cf_' are reserved")
        if len({key.lower() for key in value}) != len(value):
            raise ValueError("keys must differ in more than case")
        return value

    @model_validator(mode="after")
    def _at_most_50_addresses(self) -> Self:
        if len(self.recipients) > MAX_ADDRESSES:
            raise ValueError(f"at most {MAX_ADDRESSES} addresses in to, cc and bcc together")
        return self

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *(self.cc or ()), *(self.bcc or ())]


class EmailParams(MessageFields):
    """A message with inline content."""

    subject: str = Field(min_length=1, max_length=2000, description="Subject.")
    html: str | None = Field(None, min_length=1, description="HTML content (HtmlBody).")
    text: str | None = Field(None, min_length=1, description="Plain-text content (TextBody).")

    @model_validator(mode="after")
    def _content(self) -> Self:
        if self.html is None and self.text is None:
            raise ValueError("give html or text content")
        return self


class BatchParams(Params):
    """Up to 500 messages in one call, each with its own recipients and content."""

    messages: list[EmailParams] = Field(
        min_length=1, max_length=MAX_BATCH, description="The messages, as for send_email."
    )

    @property
    def recipients(self) -> list[str]:
        return [address for message in self.messages for address in message.recipients]


class TemplateParams(MessageFields):
    """A message from a stored Postmark template."""

    template_id: int | None = Field(None, ge=1, description="The template's id.")
    template_alias: str | None = Field(
        None,
        pattern=r"^[A-Za-z][A-Za-z0-9._-]{0,99}$",
        description="The template's alias (instead of templateId).",
    )
    template_model: JsonObject = Field(
        default_factory=dict, description="Values for the template's {{variables}}."
    )
    inline_css: bool | None = Field(
        None, description="Inline the template's CSS (Postmark's default: true)."
    )

    @model_validator(mode="after")
    def _one_template(self) -> Self:
        if (self.template_id is None) == (self.template_alias is None):
            raise ValueError("give templateId or templateAlias")
        return self


def _addresses(addresses: list[str] | None) -> str | None:
    return ", ".join(addresses) if addresses else None


def _metadata(params: MessageFields, tracking: Mapping[str, str]) -> dict[str, str] | None:
    fitting = {k: v for k, v in tracking.items() if len(v) <= METADATA_VALUE_MAX}
    metadata = {**(params.metadata or {}), **fitting}
    return metadata or None


def _message(params: MessageFields, ctx: RequestContext) -> dict[str, Any]:
    address, name = sender(params.sender, params.from_name, ctx.settings, PROVIDER)
    stream = params.message_stream or _default_stream(ctx.settings)
    optional: dict[str, Any] = {
        "From": formataddr((name, address)) if name else address,
        "To": _addresses(params.to),
        "Cc": _addresses(params.cc),
        "Bcc": _addresses(params.bcc),
        "ReplyTo": params.reply_to,
        "Tag": params.tag,
        "TrackOpens": params.track_opens,
        "TrackLinks": params.track_links,
        "Metadata": _metadata(params, ctx.tracking),
        "MessageStream": stream,
    }
    return {key: value for key, value in optional.items() if value is not None}


def _default_stream(settings: ConnectionSettings) -> str | None:
    return settings.message_stream if isinstance(settings, PostmarkSettings) else None


def _email(params: EmailParams, ctx: RequestContext) -> dict[str, Any]:
    message = _message(params, ctx)
    message["Subject"] = params.subject
    message.update({k: v for k, v in (("HtmlBody", params.html), ("TextBody", params.text)) if v})
    return message


def send_email_request(params: EmailParams, ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", "/email", json=_email(params, ctx))


def send_batch_request(params: BatchParams, ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", "/email/batch", json=[_email(m, ctx) for m in params.messages])


def send_template_request(params: TemplateParams, ctx: RequestContext) -> OutboundRequest:
    body = _message(params, ctx)
    body["TemplateModel"] = params.template_model
    optional = {
        "TemplateId": params.template_id,
        "TemplateAlias": params.template_alias,
        "InlineCss": params.inline_css,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return OutboundRequest("POST", "/email/withTemplate", json=body)


def message_id(response: ProviderResponse) -> str | None:
    """The message's id, which Postmark's webhooks carry as ``MessageID`` (for a batch: the
    first accepted message's; all are in the output)."""
    results = response.body if isinstance(response.body, list) else [response.body]
    for result in results:
        if isinstance(result, Mapping) and result.get("ErrorCode") == 0:
            value = result.get("MessageID")
            if isinstance(value, str):
                return value
    return None


def _result(result: Any) -> dict[str, Any]:
    result = result if isinstance(result, Mapping) else {}
    return {
        "to": result.get("To"),
        "messageId": result.get("MessageID"),
        "errorCode": result.get("ErrorCode"),
        "message": result.get("Message"),
    }


def send_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, **_result(response.body)}


def batch_output(response: ProviderResponse) -> dict[str, Any]:
    """Per-message results, and the messages Postmark refused despite its 200."""
    results = [_result(r) for r in response.body] if isinstance(response.body, list) else []
    refused = [index for index, r in enumerate(results) if r["errorCode"] != 0]
    return {"status": response.status, "results": results, "refused": refused}


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """The server the token belongs to: read-only."""
    return OutboundRequest("GET", "/server")


POSTMARK = Connector(
    provider=PROVIDER,
    title="Postmark",
    category="email",
    description="Transactional and broadcast e-mail through Postmark: inline content, batches "
    "of up to 500 messages, stored templates; message streams and metadata.",
    base_url="https://api.postmarkapp.com",
    auth=ApiKeyAuth(location="header", name="X-Postmark-Server-Token"),
    credentials=PostmarkCredentials,
    settings=PostmarkSettings,
    operations=operations(
        Operation(
            name="send_email",
            summary="Send an e-mail.",
            params=EmailParams,
            request=send_email_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
        Operation(
            name="send_email_batch",
            summary="Send up to 500 e-mails in one call.",
            params=BatchParams,
            request=send_batch_request,
            output=batch_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
        Operation(
            name="send_with_template",
            summary="Send an e-mail from a stored template.",
            params=TemplateParams,
            request=send_template_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
    ),
    # Postmark publishes no numeric request limit; it answers 429 when a sender goes too fast
    # (postmarkapp.com/developer/api/overview, "API error codes"). 10/s with bursts of 50 is
    # a cautious pace; a batch call carries up to 500 messages.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=50),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://postmarkapp.com/developer/api/email-api",
)
