"""Mailchimp Transactional (Mandrill): ``messages/send`` and ``messages/send-template``.

The API key travels in the JSON body as ``key`` (the auth scheme puts it there), every call is a
POST, and a 200 does not mean delivered: each recipient gets a status (``sent``, ``queued``,
``rejected`` …), which the step output lists. The step's tracking values go into
``message.metadata``, which Mandrill echoes in each event of its webhooks (``msg.metadata``).
``preserve_recipients`` is off: each recipient sees only their own address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    ApiKeyAuth,
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
    Params,
    Secret,
    SenderSettings,
    sender,
)

PROVIDER = "mailchimp_transactional"

# Mandrill reserves tags starting with an underscore and keeps 50 characters.
Tag = Annotated[str, Field(pattern=r"^[^_\s][^\r\n]{0,49}$")]
MergeVarName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")]
REFUSED_STATUSES = frozenset({"rejected", "invalid"})


class MandrillCredentials(ConnectorModel):
    api_key: Secret = Field(description="A Mailchimp Transactional (Mandrill) API key.")
    webhook_key: Secret | None = Field(
        None,
        description="The webhook's authentication key (Settings > Webhooks), used to verify "
        "X-Mandrill-Signature on incoming events.",
    )


class MessageParams(Params):
    """What both send operations share: recipients, sender and tracking options."""

    to: EmailAddresses = Field(
        description="Recipient address, or a list of them; each sees only their own address."
    )
    sender: EmailAddress | None = Field(
        None,
        alias="from",
        description="Sender address (on a verified domain); default: the connection's defaultFrom.",
    )
    from_name: str | None = Field(None, max_length=200, description="Sender display name.")
    subject: str | None = Field(None, min_length=1, max_length=998, description="Subject.")
    reply_to: EmailAddress | None = Field(None, description="Reply-To address.")
    tags: Annotated[list[Tag], Field(max_length=20)] | None = Field(
        None, description="Tags for Mandrill's statistics (≤ 50 characters, no leading '_')."
    )
    merge_vars: dict[MergeVarName, str] | None = Field(
        None,
        description="Global merge variables (name → text) for every recipient; Mandrill's API "
        "types merge values as strings.",
    )
    merge_language: Literal["mailchimp", "handlebars"] | None = Field(
        None, description="Merge tag syntax (Mandrill's default: mailchimp, *|NAME|*)."
    )
    track_opens: bool | None = Field(None, description="Track opens (account default if unset).")
    track_clicks: bool | None = Field(None, description="Track clicks (account default if unset).")
    subaccount: str | None = Field(None, min_length=1, max_length=255, description="Subaccount.")

    @property
    def recipients(self) -> list[str]:
        return self.to


class SendMessageParams(MessageParams):
    """A message with inline content."""

    html: str | None = Field(None, min_length=1, description="HTML content.")
    text: str | None = Field(None, min_length=1, description="Plain-text content.")

    @model_validator(mode="after")
    def _content(self) -> Self:
        if self.html is None and self.text is None:
            raise ValueError("give html or text content")
        return self


class SendTemplateParams(MessageParams):
    """A message from a stored Mandrill template."""

    template_name: str = Field(
        min_length=1, max_length=255, description="The template's slug or name."
    )
    template_content: dict[str, str] = Field(
        default_factory=dict,
        description="Content for the template's mc:edit regions (region name → HTML).",
    )


def _message(params: MessageParams, ctx: RequestContext) -> dict[str, Any]:
    from_email, from_name = sender(params.sender, params.from_name, ctx.settings, PROVIDER)
    message: dict[str, Any] = {
        "from_email": from_email,
        "to": [{"email": address, "type": "to"} for address in params.recipients],
        "preserve_recipients": False,
    }
    optional: dict[str, Any] = {
        "from_name": from_name,
        "subject": params.subject,
        "headers": {"Reply-To": params.reply_to} if params.reply_to else None,
        "tags": params.tags,
        "global_merge_vars": _merge_vars(params.merge_vars),
        "merge_language": params.merge_language,
        "track_opens": params.track_opens,
        "track_clicks": params.track_clicks,
        "subaccount": params.subaccount,
        "metadata": dict(ctx.tracking) or None,
    }
    message.update({key: value for key, value in optional.items() if value is not None})
    return message


def _merge_vars(merge_vars: Mapping[str, str] | None) -> list[dict[str, str]] | None:
    if not merge_vars:
        return None
    return [{"name": name, "content": value} for name, value in merge_vars.items()]


def send_message_request(params: SendMessageParams, ctx: RequestContext) -> OutboundRequest:
    message = _message(params, ctx)
    message.update({k: v for k, v in (("html", params.html), ("text", params.text)) if v})
    return OutboundRequest("POST", "/messages/send", json={"message": message})


def send_template_request(params: SendTemplateParams, ctx: RequestContext) -> OutboundRequest:
    body = {
        "template_name": params.template_name,
        "template_content": [
            {"name": name, "content": content} for name, content in params.template_content.items()
        ],
        "message": _message(params, ctx),
    }
    return OutboundRequest("POST", "/messages/send-template", json=body)


def _results(response: ProviderResponse) -> list[Mapping[str, Any]]:
    body = response.body
    return [r for r in body if isinstance(r, Mapping)] if isinstance(body, list) else []


def message_id(response: ProviderResponse) -> str | None:
    """The first recipient's message id (Mandrill has one per recipient; all are in the
    output)."""
    for result in _results(response):
        if isinstance(result.get("_id"), str):
            return str(result["_id"])
    return None


def send_output(response: ProviderResponse) -> dict[str, Any]:
    """Per-recipient results, and the recipients Mandrill refused despite its 200."""
    results = [
        {
            "email": r.get("email"),
            "status": r.get("status"),
            "id": r.get("_id"),
            "rejectReason": r.get("reject_reason"),
        }
        for r in _results(response)
    ]
    refused = [r["email"] for r in results if r["status"] in REFUSED_STATUSES]
    return {"status": response.status, "results": results, "refused": refused}


class RejectAddParams(Params):
    """Adds an address to the rejection denylist: Mandrill sends it nothing again (how an
    erasure is propagated)."""

    email: EmailAddress = Field(description="The address to block.")
    comment: str | None = Field(None, max_length=200, description="Why, for the account's records.")


def reject_add_request(params: RejectAddParams, _ctx: RequestContext) -> OutboundRequest:
    body: dict[str, Any] = {"email": params.email}
    if params.comment is not None:
        body["comment"] = params.comment
    return OutboundRequest("POST", "/rejects/add", json=body)


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """``users/ping2`` checks the key and answers JSON (``users/ping`` answers a bare string)."""
    return OutboundRequest("POST", "/users/ping2", json={})


MAILCHIMP_TRANSACTIONAL = Connector(
    provider=PROVIDER,
    title="Mailchimp Transactional (Mandrill)",
    category="email",
    description="Transactional e-mail through Mailchimp Transactional (formerly Mandrill): "
    "inline content or stored templates.",
    base_url="https://mandrillapp.com/api/1.0",
    auth=ApiKeyAuth(location="body", name="key"),
    credentials=MandrillCredentials,
    settings=SenderSettings,
    operations=operations(
        Operation(
            name="send_message",
            summary="Send a message with inline content.",
            params=SendMessageParams,
            request=send_message_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
        Operation(
            name="send_template",
            summary="Send a message from a stored template.",
            params=SendTemplateParams,
            request=send_template_request,
            output=send_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
        Operation(
            name="reject_add",
            summary="Add an address to the rejection denylist (nothing is sent to it again).",
            params=RejectAddParams,
            request=reject_add_request,
        ),
    ),
    # No published request limit (an hourly send quota tied to reputation, NOTES §5): a
    # conservative pace; quota exhaustion shows up as "queued" results, not as errors.
    rate_limits=RateLimits(requests_per_minute=300, burst_limit=20),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://mailchimp.com/developer/transactional/api/",
)
