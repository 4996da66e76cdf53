"""HubSpot: transactional e-mail, contacts, notes and associations as ``hubspot.*`` actions.

HubSpot's OpenAPI files may not be redistributed, so these requests are checked against JSON
Schemas the project wrote from HubSpot's public API reference (``tests/contract``).

* ``send_transactional_email`` sends a marketing-tool e-mail (``emailId``) to one address. The
  step's idempotency key is the ``sendId``, for which HubSpot sends at most one e-mail, so a
  retried step cannot send twice. HubSpot echoes nothing like custom arguments on its events.
* ``upsert_contact`` and ``upsert_contacts`` use the batch upsert endpoint with ``idProperty:
  email``: it creates the contact or updates the one with that address, so retrying it is
  harmless (a plain create answers 409 for a known address).
* ``create_note`` and ``associate`` take no idempotency key (HubSpot's CRM API has none): a
  retried ``create_note`` may log the note twice; ``associate`` is a PUT, harmless to repeat.

The connector also syncs contacts both ways; its adapter, :data:`SYNC`, is in
:mod:`~campaignflow.integrations.providers.hubspot_sync`, with the helpers both share.

Property values are strings in HubSpot's API; numbers and booleans are sent as their text, and
an empty string clears a property.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, Field, JsonValue, field_validator, model_validator

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
from campaignflow.integrations.providers.hubspot_sync import (
    BATCH_LIMIT,
    NOTE_BODY_LIMIT,
    PROPERTY_NAME_PATTERN,
    SYNC,
    PropertyValue,
    note_timestamp,
    note_to_contact,
    property_text,
)

PropertyName = Annotated[str, Field(pattern=PROPERTY_NAME_PATTERN)]
Addresses = Annotated[list[EmailAddress], Field(max_length=50)]
# Record ids are numeric strings; object types are names (contacts, line_items, p_cars) or the
# objectTypeId of a custom object (2-123456).
ObjectId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", examples=["51"])]
ObjectType = Annotated[
    str, Field(pattern=r"^(?:[a-z][a-z0-9_]{0,99}|[0-9]{1,3}-[0-9]{1,12})$", examples=["contacts"])
]


class HubSpotCredentials(ConnectorModel):
    token: Secret = Field(
        description="A private app's access token (pat-…) with the transactional-email, "
        "crm.objects.contacts.read and crm.objects.contacts.write scopes (notes and "
        "associations on contacts need the contacts scopes)."
    )
    client_secret: Secret | None = Field(
        None,
        description="The app's client secret, used to verify X-HubSpot-Signature-v3 on "
        "incoming webhooks.",
    )


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
        properties = params.contact_properties.items()
        body["contactProperties"] = {k: property_text(v) for k, v in properties}
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


def _upsert_input(params: UpsertContactParams) -> dict[str, Any]:
    properties = {name: property_text(value) for name, value in params.properties.items()}
    return {"idProperty": "email", "id": params.email, "properties": properties}


def upsert_contact_request(params: UpsertContactParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest(
        "POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": [_upsert_input(params)]}
    )


def upsert_contact_output(response: ProviderResponse) -> dict[str, Any]:
    results = body_field(response, "results")
    first = results[0] if isinstance(results, list) and results else {}
    first = first if isinstance(first, dict) else {}
    return {"status": response.status, "id": first.get("id"), "created": first.get("new")}


# --------------------------------------------------------------------------- upsert_contacts


class UpsertContactsParams(Params):
    """Creates or updates up to 100 contacts by e-mail address in one request."""

    contacts: Annotated[list[UpsertContactParams], Field(min_length=1, max_length=BATCH_LIMIT)] = (
        Field(description="The contacts: each an 'email' and its 'properties'.")
    )

    @field_validator("contacts")
    @classmethod
    def _one_input_per_contact(cls, value: list[UpsertContactParams]) -> list[UpsertContactParams]:
        """HubSpot stores addresses in lower case, so two spellings are one contact, and a
        batch naming one id twice is refused as a whole."""
        seen: set[str] = set()
        for index, contact in enumerate(value):
            if contact.email.lower() in seen:
                raise ValueError(f"contact {index} repeats the address {contact.email!r}")
            seen.add(contact.email.lower())
        return value


def upsert_contacts_request(params: UpsertContactsParams, _ctx: RequestContext) -> OutboundRequest:
    inputs = [_upsert_input(contact) for contact in params.contacts]
    return OutboundRequest("POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs})


def upsert_contacts_output(response: ProviderResponse) -> dict[str, Any]:
    """A 200 when every input was written, a 207 with ``errors`` when some were not."""
    results = [r for r in body_field(response, "results") or [] if isinstance(r, Mapping)]
    errors = [e for e in body_field(response, "errors") or [] if isinstance(e, Mapping)]
    return {
        "status": response.status,
        "ids": [result.get("id") for result in results],
        "created": sum(1 for result in results if result.get("new") is True),
        "errors": [{"category": e.get("category"), "message": e.get("message")} for e in errors],
    }


# ------------------------------------------------------------------------------- create_note


class CreateNoteParams(Params):
    """Logs a note on a contact's timeline."""

    contact_id: ObjectId = Field(description="The contact's record id (hs_object_id).")
    body: str = Field(
        min_length=1,
        max_length=NOTE_BODY_LIMIT,
        description="The note's text; HubSpot renders it as rich text (HTML).",
    )
    timestamp: AwareDatetime | None = Field(
        None, description="When it happened, placing it on the timeline (default: now)."
    )
    owner_id: ObjectId | None = Field(None, description="The HubSpot user who owns the note.")


def create_note_request(params: CreateNoteParams, ctx: RequestContext) -> OutboundRequest:
    moment = params.timestamp or datetime.fromtimestamp(ctx.now_unix, UTC)
    properties = {"hs_timestamp": note_timestamp(moment), "hs_note_body": params.body}
    if params.owner_id is not None:
        properties["hubspot_owner_id"] = params.owner_id
    body = {"properties": properties, "associations": [note_to_contact(params.contact_id)]}
    return OutboundRequest("POST", "/crm/v3/objects/notes", json=body)


def created_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "id": body_field(response, "id")}


# --------------------------------------------------------------------------------- associate

AssociationCategory = Literal["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"]


class AssociateParams(Params):
    """Associates two records: with the default (unlabelled) association type, or with the
    association type (label) given by its id and category."""

    from_object_type: ObjectType = Field(description="e.g. contacts, companies, deals, 2-123456.")
    from_object_id: ObjectId = Field(description="The record id to associate from.")
    to_object_type: ObjectType = Field(description="The other record's object type.")
    to_object_id: ObjectId = Field(description="The other record's id.")
    association_type_id: int | None = Field(
        None, ge=1, description="An association type (label) id; unset: the default type."
    )
    association_category: AssociationCategory | None = Field(
        None, description="That type's category (HUBSPOT_DEFINED, USER_DEFINED, …)."
    )

    @model_validator(mode="after")
    def _type_and_category_together(self) -> Self:
        if (self.association_type_id is None) != (self.association_category is None):
            raise ValueError("give associationTypeId and associationCategory together")
        return self


def associate_request(params: AssociateParams, _ctx: RequestContext) -> OutboundRequest:
    origin = f"/crm/v4/objects/{params.from_object_type}/{params.from_object_id}/associations"
    target = f"{params.to_object_type}/{params.to_object_id}"
    if params.association_type_id is None:
        return OutboundRequest("PUT", f"{origin}/default/{target}")
    label = {
        "associationCategory": params.association_category,
        "associationTypeId": params.association_type_id,
    }
    return OutboundRequest("PUT", f"{origin}/{target}", json=[label])


class GdprDeleteParams(Params):
    """Permanently deletes a contact under GDPR (HubSpot also blocks the address from being
    re-created by forms or imports): by its record id, or by its e-mail address."""

    object_id: str | None = Field(
        None, min_length=1, max_length=100, description="The contact's record id."
    )
    email: EmailAddress | None = Field(None, description="The contact's address.")

    @model_validator(mode="after")
    def _one_of_them(self) -> Self:
        if (self.object_id is None) == (self.email is None):
            raise ValueError("give objectId or email, not both")
        return self


def gdpr_delete_request(params: GdprDeleteParams, _ctx: RequestContext) -> OutboundRequest:
    body = (
        {"objectId": params.object_id}
        if params.object_id is not None
        else {"objectId": params.email, "idProperty": "email"}
    )
    return OutboundRequest("POST", "/crm/v3/objects/contacts/gdpr-delete", json=body)


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """One contact, without properties: the cheapest call that needs the contacts scope."""
    return OutboundRequest(
        "GET", "/crm/v3/objects/contacts", query={"limit": "1", "archived": "false"}
    )


HUBSPOT = Connector(
    provider="hubspot",
    title="HubSpot",
    category="crm",
    description="HubSpot CRM and marketing: upsert contacts by e-mail, log notes, associate "
    "records, send transactional e-mails (Marketing Hub transactional add-on), and sync "
    "contacts both ways.",
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
            channel="email",
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
        Operation(
            name="upsert_contacts",
            summary="Create or update up to 100 contacts by e-mail address.",
            params=UpsertContactsParams,
            request=upsert_contacts_request,
            output=upsert_contacts_output,
        ),
        Operation(
            name="create_note",
            summary="Log a note on a contact.",
            params=CreateNoteParams,
            request=create_note_request,
            output=created_output,
        ),
        Operation(
            name="associate",
            summary="Associate two records, with the default or a labelled association type.",
            params=AssociateParams,
            request=associate_request,
        ),
        Operation(
            name="gdpr_delete",
            summary="Permanently delete a contact under GDPR, by record id or e-mail address.",
            params=GdprDeleteParams,
            request=gdpr_delete_request,
        ),
    ),
    # Private apps on Free/Starter: 100 requests per 10 s, shared by the whole account
    # (NOTES §5). 9/s with a burst of 10 never exceeds 100 in any 10 s window. The search
    # endpoint (sync pulls) has its own, lower limit, 4 requests per second per token (HubSpot
    # changelog, "CRM Search API Rate Limit Increase"): a sync pages one request at a time, and
    # a 429 there is retried after its Retry-After.
    rate_limits=RateLimits(requests_per_minute=540, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.hubspot.com/docs/api/overview",
    sync=SYNC,
)
