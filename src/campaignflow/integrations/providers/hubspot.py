"""HubSpot: transactional e-mail, contacts, notes and associations as ``hubspot.*`` actions, and
the CRM sync.

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

The sync (:data:`SYNC`) pulls with the CRM search endpoint, ``lastmodifieddate`` after the
cursor, oldest first. Search stops at 10,000 results per query: the pull then ends early and
the engine's next pull starts from the newest modification it saw, as it does anyway. Search
returns no property history and no archived contacts, so deletions come from webhooks, and the
per-field times last-write-wins needs come from a second request, :func:`history_request`, a
batch read with ``propertiesWithHistory`` of the page's contacts (merged by
:func:`with_history`). Pushes are batch upserts by e-mail for unlinked records and batch
updates by record id for linked ones: HubSpot's upsert cannot key by ``hs_object_id`` ("non-
unique property"), so one batch is one kind (:func:`push_group`).

Property values are strings in HubSpot's API; numbers and booleans are sent as their text, and
an empty string clears a property.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, Field, JsonValue, field_validator, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    BearerAuth,
    CannotBuildRequest,
    Connector,
    ConnectorModel,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.crm import (
    Activity,
    CrmSync,
    JsonScalar,
    PullPage,
    PushRecord,
    PushResult,
    RemoteRecord,
    any_json,
    results_in_order,
)
from campaignflow.integrations.providers._common import (
    EmailAddress,
    Params,
    Secret,
    body_field,
)

PROPERTY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"
PropertyName = Annotated[str, Field(pattern=PROPERTY_NAME_PATTERN)]
PropertyValue = str | int | float | bool
Addresses = Annotated[list[EmailAddress], Field(max_length=50)]
# Record ids are numeric strings; object types are names (contacts, line_items, p_cars) or the
# objectTypeId of a custom object (2-123456).
ObjectId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", examples=["51"])]
ObjectType = Annotated[
    str, Field(pattern=r"^(?:[a-z][a-z0-9_]{0,99}|[0-9]{1,3}-[0-9]{1,12})$", examples=["contacts"])
]
BATCH_LIMIT = 100  # batch endpoints: at most 100 inputs
_PROPERTY_NAME = re.compile(PROPERTY_NAME_PATTERN)
_AFTER = re.compile(r"^[A-Za-z0-9_=-]{1,1000}$")
NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type: note → contact
NOTE_BODY_LIMIT = 65_536


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


def _upsert_input(params: UpsertContactParams) -> dict[str, Any]:
    properties = {name: _text(value) for name, value in params.properties.items()}
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


def _timestamp(moment: datetime) -> str:
    """hs_timestamp in UTC with milliseconds, as HubSpot writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _note_to_contact(contact_id: str) -> dict[str, Any]:
    kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}
    return {"to": {"id": contact_id}, "types": [kind]}


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
    properties = {"hs_timestamp": _timestamp(moment), "hs_note_body": params.body}
    if params.owner_id is not None:
        properties["hubspot_owner_id"] = params.owner_id
    body = {"properties": properties, "associations": [_note_to_contact(params.contact_id)]}
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


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """One contact, without properties: the cheapest call that needs the contacts scope."""
    return OutboundRequest(
        "GET", "/crm/v3/objects/contacts", query={"limit": "1", "archived": "false"}
    )


# ------------------------------------------------------------------------------- sync: pull

SEARCH_CAP = 10_000  # search answers at most 10,000 results per query
PULL_LIMIT = 100  # one search page; also one batch read of the page's history
_CONTACTS = "/crm/v3/objects/contacts"
_SYSTEM = ("email", "lastmodifieddate", "hs_object_id")
_NOT_FIELDS = frozenset({"lastmodifieddate", "hs_object_id"})  # the record's id and time
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def property_names(names: Sequence[str]) -> list[str]:
    """Validated, deduplicated property names (internal names: lower case, digits, _)."""
    chosen: list[str] = []
    for name in names:
        if not (len(name) <= 100 and _PROPERTY_NAME.fullmatch(name)):
            raise CannotBuildRequest(f"hubspot: {name!r} is not a HubSpot property name")
        if name not in chosen:
            chosen.append(name)
    return chosen


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CannotBuildRequest("hubspot: a naive datetime has no place in time")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def pull_request(
    since: datetime | None, page: str | None, fields: Sequence[str], _ctx: RequestContext
) -> OutboundRequest:
    """One search page of contacts modified after ``since`` (milliseconds), oldest first."""
    if page is not None and not _AFTER.fullmatch(page):
        raise CannotBuildRequest("hubspot: the page token is not a search cursor")
    filters = [] if since is None else [_modified_after(since)]
    body = {
        "filterGroups": [{"filters": filters}] if filters else [],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": property_names([*_SYSTEM, *fields]),
        "limit": PULL_LIMIT,
        "after": page or "0",
    }
    return OutboundRequest("POST", f"{_CONTACTS}/search", json=body)


def _modified_after(since: datetime) -> dict[str, str]:
    return {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(_ms(since))}


def parse_pull(response: ProviderResponse) -> PullPage:
    """The page's contacts, and the search's ``after`` unless the next page would pass the
    10,000-result cap (the engine's next pull then starts from the newest modification)."""
    results = body_field(response, "results") or []
    records = [_remote(result) for result in results if isinstance(result, Mapping)]
    paging = body_field(response, "paging")
    following = paging.get("next") if isinstance(paging, Mapping) else None
    after = following.get("after") if isinstance(following, Mapping) else None
    if not isinstance(after, str) or (after.isdigit() and int(after) + PULL_LIMIT > SEARCH_CAP):
        return PullPage(records, None)
    return PullPage(records, after)


def _remote(result: Mapping[str, Any]) -> RemoteRecord:
    properties = result.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    remote_id = result.get("id")
    stamp = properties.get("lastmodifieddate") or result.get("updatedAt")
    if not isinstance(remote_id, str) or not isinstance(stamp, str):
        raise ValueError("hubspot: a search result lacks its id or modification time")
    email = properties.get("email")
    return RemoteRecord(
        remote_id=remote_id,
        modified_at=datetime.fromisoformat(stamp),
        fields={k: any_json(v) for k, v in properties.items() if k not in _NOT_FIELDS},
        email=email if isinstance(email, str) and email else None,
        deleted=result.get("archived") is True,
    )


def history_request(
    page: PullPage, fields: Sequence[str], _ctx: RequestContext
) -> OutboundRequest | None:
    """A batch read of the page's contacts with the history of ``fields`` (None: no records).

    Search cannot return ``propertiesWithHistory``; this second request gives each mapped field
    its own modification time, which last-write-wins resolution compares."""
    if not page.records:
        return None
    names = property_names(list(fields))
    body = {
        "inputs": [{"id": record.remote_id} for record in page.records],
        "properties": property_names([*_SYSTEM, *names]),
        "propertiesWithHistory": names,
    }
    return OutboundRequest("POST", f"{_CONTACTS}/batch/read", json=body)


def with_history(page: PullPage, response: ProviderResponse) -> PullPage:
    """The page with each record's field values and times taken from its newest history
    entries (read after the search, so possibly newer than the search's values)."""
    results = body_field(response, "results") or []
    by_id = {r.get("id"): r for r in results if isinstance(r, Mapping)}
    records = [_with_times(record, by_id.get(record.remote_id)) for record in page.records]
    return PullPage(records, page.next_page)


def _with_times(record: RemoteRecord, result: Mapping[str, Any] | None) -> RemoteRecord:
    history = result.get("propertiesWithHistory") if result is not None else None
    if not isinstance(history, Mapping):
        return record
    fields, times = dict(record.fields), dict(record.field_times)
    for name, entries in history.items():
        newest = _newest(entries)
        if newest is not None:
            times[name], fields[name] = newest
    latest = max([record.modified_at, *times.values()])
    return replace(record, fields=fields, field_times=times, modified_at=latest)


def _newest(entries: object) -> tuple[datetime, JsonScalar] | None:
    """(time, value) of the newest entry of a property's history."""
    dated = [
        (datetime.fromisoformat(entry["timestamp"]), any_json(entry.get("value")))
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, Mapping) and isinstance(entry.get("timestamp"), str)
    ]
    return max(dated, key=lambda pair: pair[0]) if dated else None


# ------------------------------------------------------------------------------- sync: push

RETRYABLE_CATEGORIES = frozenset({"RATE_LIMITS"})


def push_group(record: PushRecord) -> str:
    """The batch a record may share: linked records are updated by id, unlinked ones upserted
    by e-mail, and one HubSpot request does one or the other."""
    return "update" if record.remote_id is not None else "upsert"


def _email(record: PushRecord) -> str | None:
    value = record.email or record.fields.get("email")
    return value if isinstance(value, str) and value else None


def _batch(
    records: Sequence[PushRecord],
) -> tuple[str, list[tuple[PushRecord, str]], dict[str, str]]:
    """What a push sends: the endpoint, each record sent with its HubSpot id (record id or
    e-mail address), and why each other record is not sent."""
    if any(record.remote_id is not None for record in records):
        linked = [(r, r.remote_id) for r in records if r.remote_id is not None]
        strays = {r.key: "hubspot: an unlinked record in a batch of linked ones" for r in records}
        for record, _ in linked:
            del strays[record.key]
        return "update", linked, strays
    sent: list[tuple[PushRecord, str]] = []
    refused: dict[str, str] = {}
    seen: set[str] = set()
    for record in records:
        email = _email(record)
        if email is None:
            refused[record.key] = "hubspot: no e-mail address to upsert the contact by"
        elif email.lower() in seen:
            refused[record.key] = "hubspot: the same e-mail address as another record of the batch"
        else:
            seen.add(email.lower())
            sent.append((record, email))
    return "upsert", sent, refused


def push_request(records: Sequence[PushRecord], _ctx: RequestContext) -> OutboundRequest:
    if len({push_group(record) for record in records}) > 1:
        raise CannotBuildRequest(
            "hubspot: a push batch mixes linked and unlinked records; group them by "
            "hubspot.push_group (an upsert cannot key by record id)"
        )
    endpoint, sent, _ = _batch(records)
    if not sent:
        raise CannotBuildRequest("hubspot: no record of the batch can be pushed")
    inputs = [_push_input(endpoint, record, key) for record, key in sent]
    return OutboundRequest("POST", f"{_CONTACTS}/batch/{endpoint}", json={"inputs": inputs})


def _push_input(endpoint: str, record: PushRecord, key: str) -> dict[str, Any]:
    properties = {name: _scalar_text(value) for name, value in record.fields.items()}
    property_names(list(properties))
    if endpoint == "update":
        return {"id": key, "objectWriteTraceId": record.key, "properties": properties}
    properties["email"] = key  # echoed in the result, which is how it is matched to the record
    return {
        "idProperty": "email",
        "id": key,
        "objectWriteTraceId": record.key,
        "properties": properties,
    }


def _scalar_text(value: JsonScalar) -> str:
    """A property value as HubSpot takes it: text, and "" to clear."""
    return "" if value is None else _text(value)


def parse_push(records: Sequence[PushRecord], response: ProviderResponse) -> list[PushResult]:
    """One result per record from a 200 (all written) or a 207 (``errors`` name the inputs not
    written in their ``context``); HubSpot does not promise to answer in the inputs' order."""
    _, sent, refused = _batch(records)
    found = {key: PushResult(key, None, error=reason) for key, reason in refused.items()}
    found.update(_written(sent, body_field(response, "results") or []))
    pending = [(record, key) for record, key in sent if record.key not in found]
    found.update(_failed(pending, body_field(response, "errors") or []))
    return results_in_order(records, found, "hubspot: the answer does not mention the record")


def _written(sent: list[tuple[PushRecord, str]], results: list[Any]) -> dict[str, PushResult]:
    """Results matched by the echoed objectWriteTraceId, else by id or e-mail address."""
    by_trace = {record.key: record for record, _ in sent}
    by_id = {key.lower(): record for record, key in sent}
    found: dict[str, PushResult] = {}
    for result in results:
        if not isinstance(result, Mapping) or not isinstance(result.get("id"), str):
            continue
        properties = result.get("properties")
        email = properties.get("email") if isinstance(properties, Mapping) else None
        record = (
            by_trace.get(str(result.get("objectWriteTraceId")))
            or (by_id.get(email.lower()) if isinstance(email, str) else None)
            or by_id.get(result["id"])
        )
        if record is not None:
            found[record.key] = PushResult(record.key, result["id"])
    return found


def _failed(pending: list[tuple[PushRecord, str]], errors: list[Any]) -> dict[str, PushResult]:
    """Each pending record an error's context names (by id, address or trace id) failed."""
    found: dict[str, PushResult] = {}
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        named = _named(error.get("context"))
        text = f"{error.get('category', 'ERROR')}: {error.get('message', '')}"
        retryable = error.get("category") in RETRYABLE_CATEGORIES
        for record, key in pending:
            if {key.lower(), record.key.lower()} & named and record.key not in found:
                found[record.key] = PushResult(record.key, record.remote_id, text, retryable)
    return found


def _named(context: object) -> set[str]:
    """The values an error's context lists ({"ids": ["a@example.com"]}), lower-cased."""
    if not isinstance(context, Mapping):
        return set()
    lists = [values for values in context.values() if isinstance(values, list)]
    return {str(value).lower() for values in lists for value in values}


# --------------------------------------------------------------------------- sync: activity


def activity_request(activity: Activity, _ctx: RequestContext) -> OutboundRequest:
    """A note on the contact's timeline at the time it happened: the subject in bold, then the
    note. Both are escaped, since HubSpot renders note bodies as HTML. Notes have no type."""
    body = f"<p><strong>{html.escape(activity.subject)}</strong></p>"
    if activity.note:
        body += "<p>" + html.escape(activity.note).replace("\n", "<br>") + "</p>"
    properties = {
        "hs_timestamp": _timestamp(activity.occurred_at),
        "hs_note_body": body[:NOTE_BODY_LIMIT],
    }
    json = {"properties": properties, "associations": [_note_to_contact(activity.remote_id)]}
    return OutboundRequest("POST", "/crm/v3/objects/notes", json=json)


SYNC = CrmSync(
    object_type="contacts",
    max_pull_page=PULL_LIMIT,
    max_push_batch=BATCH_LIMIT,
    pull_request=pull_request,
    parse_pull=parse_pull,
    push_request=push_request,
    parse_push=parse_push,
    activity_request=activity_request,
    system_fields=_SYSTEM,
    history_request=history_request,
    parse_history=with_history,
    push_group=push_group,
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
