"""HubSpot: transactional single-send e-mail and contact upsert, as ``hubspot.*`` actions.

HubSpot's OpenAPI files may not be redistributed, so these requests are checked against JSON
Schemas the project wrote from HubSpot's public API reference (``tests/contract``).

* ``send_transactional_email`` sends a marketing-tool e-mail (``emailId``) to one address. The
  step's idempotency key is the ``sendId``, for which HubSpot sends at most one e-mail, so a
  retried step cannot send twice. HubSpot echoes nothing like custom arguments on its events.
* ``upsert_contact`` uses the batch upsert endpoint with ``idProperty: email``: it creates the
  contact or updates the one with that address, so retrying it is harmless (a plain create
  answers 409 for a known address, and the create schema demands ``associations``).

Property values are strings in HubSpot's API; numbers and booleans are sent as their text.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, JsonValue, field_validator

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
    Params,
    Secret,
    body_field,
)

PropertyName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
PropertyValue = str | int | float | bool
Addresses = Annotated[list[EmailAddress], Field(max_length=50)]


class HubSpotCredentials(ConnectorModel):
    token: Secret = Field(
        description="A private app's access token (pat-…) with the transactional-email and "
        "crm.objects.contacts.write scopes."
    )
    client_secret: Secret | None = Field(
        None,
        description="The app's client secret, used to verify X-HubSpot-Signature-v3 on "
        "incoming webhooks.",
    )


def _text(value: PropertyValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------ send_transactional_email


class SendTransactionalEmailParams(Params):
    """Sends a transactional e-mail built in HubSpot's editor to one recipient."""

    email_id: int = Field(ge=1, description="The transactional e-mail's id in HubSpot.")
    to: EmailAddress = Field(description="Recipient address.")
    sender: str | None = Field(
        None,
        alias="from",
        min_length=3,
        max_length=300,
        pattern=r"^[^\r\n]+$",
        description="From header, e.g. 'Shop <shop@example.com>' (default: the e-mail's).",
    )
    reply_to: Addresses | None = Field(None, description="Reply-To addresses.")
    cc: Addresses | None = Field(None, description="Cc addresses.")
    bcc: Addresses | None = Field(None, description="Bcc addresses.")
    contact_properties: dict[PropertyName, PropertyValue] | None = Field(
        None, description="Contact property values to set on the recipient's contact."
    )
    custom_properties: dict[str, JsonValue] | None = Field(
        None, description="Values for the template's {{ custom.NAME }} tokens."
    )

    @property
    def recipients(self) -> list[str]:
        return [self.to, *(self.cc or ()), *(self.bcc or ())]


def send_transactional_email_request(
    params: SendTransactionalEmailParams, ctx: RequestContext
) -> OutboundRequest:
    message: dict[str, Any] = {"to": params.to, "sendId": ctx.idempotency_key}
    optional: dict[str, Any] = {
        "from": params.sender,
        "replyTo": params.reply_to,
        "cc": params.cc,
        "bcc": params.bcc,
    }
    message.update({key: value for key, value in optional.items() if value is not None})
    body: dict[str, Any] = {"emailId": params.email_id, "message": message}
    if params.contact_properties:
        body["contactProperties"] = {k: _text(v) for k, v in params.contact_properties.items()}
    if params.custom_properties:
        body["customProperties"] = params.custom_properties
    return OutboundRequest("POST", "/marketing/v3/transactional/single-email/send", json=body)


def status_id(response: ProviderResponse) -> str | None:
    value = body_field(response, "statusId")
    return value if isinstance(value, str) else None


def send_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "statusId": status_id(response),
        "sendStatus": body_field(response, "status"),
    }


# ---------------------------------------------------------------------------- upsert_contact


class UpsertContactParams(Params):
    """Creates the contact with this address, or updates it if it exists."""

    email: EmailAddress = Field(description="The contact's address (the key of the upsert).")
    properties: dict[PropertyName, PropertyValue] = Field(
        default_factory=dict,
        description="Contact properties by internal name, e.g. firstname, lastname, phone.",
    )

    @field_validator("properties")
    @classmethod
    def _email_is_the_key(cls, value: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
        if "email" in value:
            raise ValueError("the address is the 'email' parameter, not a property")
        return value


def upsert_contact_request(params: UpsertContactParams, _ctx: RequestContext) -> OutboundRequest:
    upsert = {
        "idProperty": "email",
        "id": params.email,
        "properties": {name: _text(value) for name, value in params.properties.items()},
    }
    return OutboundRequest(
        "POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": [upsert]}
    )


def upsert_contact_output(response: ProviderResponse) -> dict[str, Any]:
    results = body_field(response, "results")
    first = results[0] if isinstance(results, list) and results else {}
    first = first if isinstance(first, dict) else {}
    return {"status": response.status, "id": first.get("id"), "created": first.get("new")}


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """One contact, without properties: the cheapest call that needs the contacts scope."""
    return OutboundRequest(
        "GET", "/crm/v3/objects/contacts", query={"limit": "1", "archived": "false"}
    )


HUBSPOT = Connector(
    provider="hubspot",
    title="HubSpot",
    category="crm",
    description="HubSpot CRM and marketing: upsert contacts by e-mail, send transactional "
    "e-mails (Marketing Hub transactional add-on).",
    base_url="https://api.hubapi.com",
    auth=BearerAuth(),
    credentials=HubSpotCredentials,
    operations=operations(
        Operation(
            name="send_transactional_email",
            summary="Send a transactional e-mail to one recipient.",
            params=SendTransactionalEmailParams,
            request=send_transactional_email_request,
            output=send_output,
            recipients=lambda params: params.recipients,
            provider_message_id=status_id,
        ),
        Operation(
            name="upsert_contact",
            summary="Create or update a contact by e-mail address.",
            params=UpsertContactParams,
            request=upsert_contact_request,
            output=upsert_contact_output,
        ),
    ),
    # Private apps on Free/Starter: 100 requests per 10 s, shared by the whole account
    # (NOTES §5). 9/s with a burst of 10 never exceeds 100 in any 10 s window.
    rate_limits=RateLimits(requests_per_minute=540, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.hubspot.com/docs/api/overview",
)
