"""Twilio SendGrid: Mail Send and Marketing Contacts/Lists (v3), as ``sendgrid.*`` actions.

Requests follow SendGrid's own OpenAPI files (twilio/sendgrid-oai, copied to
``shared/provider-specs/sendgrid``); the contract tests send every one of them to Stoplight Prism
serving those files.

Each recipient of ``send_email`` gets a personalization of their own: recipients of a journey
never see each other's addresses, and the step's tracking values ride in every
personalization's ``custom_args``, which SendGrid echoes on each event of its Event Webhook (the
spec types the top-level ``custom_args`` as a string, so the personalization is the place).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Self
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import Field, JsonValue, field_validator, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    BearerAuth,
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

Category = Annotated[str, Field(min_length=1, max_length=255)]


class SendGridCredentials(ConnectorModel):
    token: Secret = Field(
        description="A SendGrid API key (it starts with 'SG.') with the Mail Send and, for "
        "contacts and lists, the Marketing permissions. Sent as a bearer token."
    )


class SendGridSettings(SenderSettings):
    webhook_public_key: str | None = Field(
        None,
        alias="webhookPublicKey",
        max_length=1000,
        description="The verification key of SendGrid's Signed Event Webhook (base64 DER, "
        "P-256), from Settings > Mail Settings > Event Webhook. Not a secret: events whose "
        "signature does not verify with it are refused.",
    )

    @field_validator("webhook_public_key")
    @classmethod
    def _p256_public_key(cls, value: str | None) -> str | None:
        """Refused now rather than when the first event arrives and cannot be verified."""
        if value is None:
            return None
        try:
            key = load_der_public_key(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be a base64 DER public key") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("must be a P-256 (secp256r1) public key")
        return value


# ------------------------------------------------------------------------------- send_email


class SendEmailParams(Params):
    """One message to each recipient, from inline content or a dynamic template."""

    to: EmailAddresses = Field(
        description="Recipient address, or a list of them; each receives their own message."
    )
    sender: EmailAddress | None = Field(
        None,
        alias="from",
        description="Sender address (a verified sender); default: the connection's defaultFrom.",
    )
    from_name: str | None = Field(None, max_length=200, description="Sender display name.")
    subject: str | None = Field(
        None, min_length=1, max_length=998, description="Subject; required without templateId."
    )
    text: str | None = Field(None, min_length=1, description="Plain-text content.")
    html: str | None = Field(None, min_length=1, description="HTML content.")
    template_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9-]{1,100}$",
        description="A dynamic template's id (d-…); replaces text/html and may set the subject.",
    )
    dynamic_template_data: JsonObject | None = Field(
        None, description="Values for the dynamic template's Handlebars tags."
    )
    categories: Annotated[list[Category], Field(max_length=10)] | None = Field(
        None, description="Up to 10 distinct categories for SendGrid's statistics."
    )
    reply_to: EmailAddress | None = Field(None, description="Reply-To address.")
    send_at: int | None = Field(
        None,
        ge=0,
        description="Unix time to deliver at, at most 72 hours ahead (SendGrid's limit).",
    )
    unsubscribe_group_id: int | None = Field(
        None, ge=1, description="Unsubscribe group (ASM) the message belongs to."
    )

    @field_validator("categories")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else unique(value)

    @model_validator(mode="after")
    def _content_or_template(self) -> Self:
        if self.template_id is None:
            if self.text is None and self.html is None:
                raise ValueError("give text or html content, or a templateId")
            if self.subject is None:
                raise ValueError("a subject is required unless a templateId is given")
            if self.dynamic_template_data is not None:
                raise ValueError("dynamicTemplateData needs a templateId")
        return self

    @property
    def recipients(self) -> list[str]:
        return self.to


def _personalization(address: str, params: SendEmailParams, ctx: RequestContext) -> dict[str, Any]:
    personalization: dict[str, Any] = {"to": [{"email": address}]}
    if ctx.tracking:
        personalization["custom_args"] = dict(ctx.tracking)
    if params.dynamic_template_data is not None:
        personalization["dynamic_template_data"] = params.dynamic_template_data
    return personalization


def _content(params: SendEmailParams) -> list[dict[str, str]]:
    """text/plain first: SendGrid refuses content whose first part is not text/plain."""
    parts = [("text/plain", params.text), ("text/html", params.html)]
    return [{"type": kind, "value": value} for kind, value in parts if value is not None]


def send_email_request(params: SendEmailParams, ctx: RequestContext) -> OutboundRequest:
    address, name = sender(params.sender, params.from_name, ctx.settings, "sendgrid")
    body: dict[str, Any] = {
        "personalizations": [_personalization(a, params, ctx) for a in params.recipients],
        "from": {"email": address, "name": name} if name else {"email": address},
    }
    optional: dict[str, Any] = {
        "subject": params.subject,
        "template_id": params.template_id,
        "content": _content(params) or None,
        "categories": params.categories,
        "reply_to": {"email": params.reply_to} if params.reply_to else None,
        "send_at": params.send_at,
        "asm": {"group_id": params.unsubscribe_group_id} if params.unsubscribe_group_id else None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return OutboundRequest("POST", "/v3/mail/send", json=body)


def message_id(response: ProviderResponse) -> str | None:
    """SendGrid's id of the accepted request; its events carry it as ``sg_message_id``'s
    prefix."""
    return response.headers.get("x-message-id")


def send_email_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "messageId": message_id(response)}


# ------------------------------------------------------------------------ marketing contacts


class Contact(Params):
    email: EmailAddress = Field(description="The contact's address (their identity).")
    first_name: str | None = Field(None, max_length=50, description="First name.")
    last_name: str | None = Field(None, max_length=50, description="Last name.")
    custom_fields: dict[str, str | int | float] | None = Field(
        None,
        description="Custom field values by field id (e.g. e1_T); text, number or date (as text).",
    )


class UpsertContactsParams(Params):
    """Adds or updates contacts (by e-mail), optionally adding them to lists."""

    contacts: list[Contact] = Field(
        min_length=1, max_length=30_000, description="Contacts to add or update."
    )
    list_ids: list[UUID] | None = Field(
        None, max_length=100, description="Lists (ids) to add every contact to."
    )


def _contact(contact: Contact) -> dict[str, Any]:
    return contact.model_dump(exclude_none=True)  # snake_case names, as the API has them


def upsert_contacts_request(params: UpsertContactsParams, _ctx: RequestContext) -> OutboundRequest:
    body: dict[str, Any] = {"contacts": [_contact(c) for c in params.contacts]}
    if params.list_ids:
        body["list_ids"] = [str(list_id) for list_id in params.list_ids]
    return OutboundRequest("PUT", "/v3/marketing/contacts", json=body)


def upsert_contacts_output(response: ProviderResponse) -> dict[str, Any]:
    """The upsert is asynchronous at SendGrid; the job id tells how it went."""
    return {"status": response.status, "jobId": body_field(response, "job_id")}


class CreateListParams(Params):
    """Creates a marketing list; its id is in the step output (``body.id``)."""

    name: str = Field(min_length=1, max_length=100, description="The list's name.")


def create_list_request(params: CreateListParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", "/v3/marketing/lists", json={"name": params.name})


def create_list_output(response: ProviderResponse) -> dict[str, JsonValue]:
    return {"status": response.status, "id": body_field(response, "id")}


class SuppressGlobalParams(Params):
    """Adds addresses to the account's global suppressions: SendGrid sends them nothing
    again, from any workflow or tool (how an erasure is propagated)."""

    emails: list[EmailAddress] = Field(
        min_length=1, max_length=1000, description="The addresses to suppress."
    )


def suppress_global_request(params: SuppressGlobalParams, _ctx: RequestContext) -> OutboundRequest:
    body = {"recipient_emails": list(dict.fromkeys(params.emails))}
    return OutboundRequest("POST", "/v3/asm/suppressions/global", json=body)


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """Cheapest authenticated read: one list."""
    return OutboundRequest("GET", "/v3/marketing/lists", query={"page_size": "1"})


SENDGRID = Connector(
    provider="sendgrid",
    title="Twilio SendGrid",
    category="email",
    description="Transactional and marketing e-mail: send messages (inline or dynamic "
    "templates), add or update marketing contacts, create lists. EU subusers: set baseUrl "
    "to https://api.eu.sendgrid.com.",
    base_url="https://api.sendgrid.com",
    auth=BearerAuth(),
    credentials=SendGridCredentials,
    settings=SendGridSettings,
    operations=operations(
        Operation(
            name="send_email",
            summary="Send an e-mail to one or more recipients (one message each).",
            params=SendEmailParams,
            request=send_email_request,
            output=send_email_output,
            channel="email",
            recipients=lambda params: params.recipients,
            provider_message_id=message_id,
        ),
        Operation(
            name="upsert_contacts",
            summary="Add or update marketing contacts, optionally on lists.",
            params=UpsertContactsParams,
            request=upsert_contacts_request,
            output=upsert_contacts_output,
        ),
        Operation(
            name="create_list",
            summary="Create a marketing contact list.",
            params=CreateListParams,
            request=create_list_request,
            output=create_list_output,
        ),
        Operation(
            name="suppress_global",
            summary="Add addresses to the global suppressions (nothing is sent to them again).",
            params=SuppressGlobalParams,
            request=suppress_global_request,
        ),
    ),
    # SendGrid publishes no per-endpoint numbers (NOTES §5); 600/min is its only documented
    # default (v2). Connections with higher limits raise requestsPerMinute.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=50),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://www.twilio.com/docs/sendgrid/api-reference",
)
