"""Pipedrive CRM: persons, deals and activities (API v2) and notes (API v1), as ``pipedrive.*``
actions.

Requests follow Pipedrive's own OpenAPI files (``developers.pipedrive.com/docs/api/v1/openapi.yaml``
and ``…/openapi-v2.yaml``, copied to ``shared/provider-specs/pipedrive``); the contract tests send
every one of them, at its production path (``/api/v2/…``, ``/v1/…``), to Stoplight Prism serving
those files. Where Pipedrive's documentation says more than the spec, the parameter models follow
the documentation: dates ``YYYY-MM-DD``, times ``HH:MM`` (UTC), a deal's status ``open``, ``won``
or ``lost``, and v2's strictness (numbers are never sent as text, booleans are ``true``/``false``).

* **Auth**: the API token in the ``x-api-token`` header, the ``api_key`` scheme of both specs
  (never the ``api_token`` query parameter, which would put the secret into access logs). OAuth 2.0
  (authorization code with refresh tokens, each company on its own ``api_domain``) is a possible
  later addition: a second scheme through ``auth_for`` and a base URL from the token response.
* **Custom fields** are keyed by 40-hex hashes and sent under v2's ``custom_fields``; a value is
  cleared with ``null`` (Pipedrive refuses ``[]`` for multi-option fields, so the models do too).
* **Activities link persons through participants**: v2 documents ``person_id`` in the request,
  but answers 400 "'person_id' is a read-only field. Add a primary participant …", so a person is
  always sent as the primary participant.
* **No idempotency key**: Pipedrive accepts none. Updates (``update_person``, ``update_deal``)
  are idempotent; a create retried after a timeout may create a second record, so workflows
  that must not duplicate a person look it up first (``find_person``).

The connector also syncs persons with contacts; its adapter, :data:`PERSONS_SYNC`, is in
:mod:`~campaignflow.integrations.providers.pipedrive_sync`, with the helpers both share.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal, Self, TypeVar
from uuid import UUID

from pydantic import Field, JsonValue, field_validator, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.domain.fields import domain_error
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
    Params,
    Secret,
    body_field,
)
from campaignflow.integrations.providers.pipedrive_sync import (
    CUSTOM_FIELD_KEY,
    PERSONS_SYNC,
    V2,
    record_id,
)

V1 = "/v1"

EntityId = Annotated[int, Field(ge=1, examples=[42])]
CustomFieldKey = Annotated[
    str, Field(pattern=CUSTOM_FIELD_KEY, examples=["d4de1c1518b4531717c676029a45911c340390a6"])
]
# Pipedrive's visibility levels: 1 owner & followers, 3 entire company, 5 owner's visibility
# group, 7 owner's visibility group and sub-groups (the last two on plans with groups).
VisibleTo = Literal[1, 3, 5, 7]
MarketingStatus = Literal["no_consent", "unsubscribed", "subscribed", "archived"]
DealStatus = Literal["open", "won", "lost"]
HoursMinutes = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["14:30"])]
Duration = Annotated[str, Field(pattern=r"^[0-9]{2}:[0-5][0-9]$", examples=["00:30"])]
Html = Annotated[str, Field(min_length=1)]


class PipedriveCredentials(ConnectorModel):
    api_key: Secret = Field(
        description="A Pipedrive API token (Personal preferences > API). Sent in the "
        "x-api-token header; each user has one token per company."
    )
    webhook_user: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The HTTP Basic user name set on the Pipedrive webhook (its http_auth_user), "
        "checked on every webhook received.",
    )
    webhook_password: Secret | None = Field(
        None,
        description="The HTTP Basic password set on the Pipedrive webhook (its "
        "http_auth_password).",
    )


def _custom_fields(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    """Pipedrive refuses ``[]`` for a multi-option field ("use null to clear")."""
    if value is not None:
        for key, item in value.items():
            if item == []:
                raise domain_error("invalid_value", "use null to clear a field, not []", at=(key,))
    return value


CUSTOM_FIELDS_DESCRIPTION = (
    "Custom field values by the field's 40-hex key (from Settings > Data fields, or the "
    "*Fields API); null clears a value. Option fields take option ids, monetary fields "
    '{"value": 100, "currency": "EUR"}.'
)


def _changes(model: ConnectorModel, excluded: set[str]) -> dict[str, Any]:
    """The fields given, by Pipedrive's (snake_case) names; dates and UUIDs as text."""
    return model.model_dump(mode="json", exclude_none=True, exclude=excluded)


def _at_least_one_change(model: ConnectorModel, fields: set[str]) -> None:
    """A PATCH without a field is a paid request that changes nothing: refused early."""
    if all(getattr(model, name) is None for name in fields):
        raise domain_error("required", "give at least one field to change")


def record_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "id": record_id(response)}


# ---------------------------------------------------------------------------------- persons


class PersonEmail(Params):
    """One e-mail address of a person."""

    value: EmailAddress = Field(description="The address.")
    label: Literal["work", "home", "other"] | None = Field(
        None, description="Pipedrive's label for it (default: work)."
    )
    primary: bool | None = Field(None, description="Whether it is the primary address.")


class PersonPhone(Params):
    """One phone number of a person."""

    value: str = Field(min_length=1, description="The number, as written.")
    label: Literal["work", "home", "mobile", "other"] | None = Field(
        None, description="Pipedrive's label for it (default: work)."
    )
    primary: bool | None = Field(None, description="Whether it is the primary number.")


Entry = TypeVar("Entry", PersonEmail, PersonPhone)


def _one_primary(entries: list[Entry] | None) -> list[Entry] | None:
    """At most one primary entry; none marked: the first is (so the sync's ``email`` and
    ``phone``, the primary values, are the ones the workflow put first)."""
    if entries is None:
        return None
    primaries = [index for index, entry in enumerate(entries) if entry.primary]
    if len(primaries) > 1:
        raise domain_error("invalid_value", "only one entry may be primary", at=(primaries[1],))
    if primaries or not entries:
        return entries
    first, *rest = entries
    return [first.model_copy(update={"primary": True}), *rest]


def _distinct_ids(value: list[int] | None) -> list[int] | None:
    """Label ids are a set in Pipedrive; a repeated id is a slip in the workflow."""
    if value is not None and len(set(value)) != len(value):
        raise ValueError("must not contain the same id twice")
    return value


class PersonFields(Params):
    """The writable person fields of API v2 that every account has (the contact-sync-only
    fields such as job_title exist only where contact sync is set up, so they are left out)."""

    emails: list[PersonEmail] | None = Field(
        None, min_length=1, description="E-mail addresses; replaces the list."
    )
    phones: list[PersonPhone] | None = Field(
        None, min_length=1, description="Phone numbers; replaces the list."
    )
    owner_id: EntityId | None = Field(None, description="The owning user's id.")
    org_id: EntityId | None = Field(None, description="The linked organization's id.")
    visible_to: VisibleTo | None = Field(
        None,
        description="Visibility: 1 owner & followers, 3 entire company, 5 owner's visibility "
        "group, 7 owner's group and sub-groups.",
    )
    label_ids: list[EntityId] | None = Field(
        None, description="Ids of the person labels to assign (replaces them)."
    )
    marketing_status: MarketingStatus | None = Field(
        None,
        description="Campaigns consent (accounts with Campaigns only; Pipedrive allows one "
        "change from a status to another).",
    )
    custom_fields: dict[CustomFieldKey, JsonValue] | None = Field(
        None, description=CUSTOM_FIELDS_DESCRIPTION
    )

    @field_validator("emails")
    @classmethod
    def _primary_email(cls, value: list[PersonEmail] | None) -> list[PersonEmail] | None:
        return _one_primary(value)

    @field_validator("phones")
    @classmethod
    def _primary_phone(cls, value: list[PersonPhone] | None) -> list[PersonPhone] | None:
        return _one_primary(value)

    @field_validator("label_ids")
    @classmethod
    def _distinct_labels(cls, value: list[int] | None) -> list[int] | None:
        return _distinct_ids(value)

    @field_validator("custom_fields")
    @classmethod
    def _clearable(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        return _custom_fields(value)


_PERSON_FIELDS = set(PersonFields.model_fields)


class CreatePersonParams(PersonFields):
    """Adds a person (Pipedrive does not deduplicate: look the address up first)."""

    name: str = Field(min_length=1, description="The person's full name.")


def create_person_request(params: CreatePersonParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", f"{V2}/persons", json=_changes(params, set()))


class UpdatePersonParams(PersonFields):
    """Changes the given fields of a person; fields not given are left as they are."""

    id: EntityId = Field(description="The person's id (e.g. from find_person).")
    name: str | None = Field(None, min_length=1, description="The person's full name.")

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        _at_least_one_change(self, _PERSON_FIELDS | {"name"})
        return self


def update_person_request(params: UpdatePersonParams, _ctx: RequestContext) -> OutboundRequest:
    body = _changes(params, {"id"})
    return OutboundRequest("PATCH", f"{V2}/persons/{params.id}", json=body)


class DeletePersonParams(Params):
    """Deletes a person (Pipedrive keeps deleted persons 30 days, then removes them for
    good): how an erasure is propagated to a linked CRM record."""

    id: EntityId = Field(description="The person's id.")


def delete_person_request(params: DeletePersonParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("DELETE", f"{V2}/persons/{params.id}")


class FindPersonParams(Params):
    """Looks a person up by e-mail address (exact, case-insensitive match)."""

    email: EmailAddress = Field(description="The address to look for.")


def find_person_request(params: FindPersonParams, _ctx: RequestContext) -> OutboundRequest:
    query = {"term": params.email, "fields": "email", "exact_match": "true", "limit": "1"}
    return OutboundRequest("GET", f"{V2}/persons/search", query=query)


def found_person_id(response: ProviderResponse) -> int | None:
    """The first match's id, or None when nothing matched."""
    data = body_field(response, "data")
    items = data.get("items") if isinstance(data, Mapping) else None
    first = items[0] if isinstance(items, list) and items else None
    item = first.get("item") if isinstance(first, Mapping) else None
    value = item.get("id") if isinstance(item, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def find_person_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "id": found_person_id(response)}


# ------------------------------------------------------------------------------------ deals


class DealFields(Params):
    """The writable deal fields of API v2 a workflow has use for."""

    owner_id: EntityId | None = Field(None, description="The owning user's id.")
    person_id: EntityId | None = Field(None, description="The linked person's id.")
    org_id: EntityId | None = Field(None, description="The linked organization's id.")
    pipeline_id: EntityId | None = Field(None, description="The pipeline's id.")
    stage_id: EntityId | None = Field(
        None, description="The stage's id (moves the deal; the stage names its pipeline)."
    )
    value: float | None = Field(None, ge=0, description="The deal's value.")
    currency: str | None = Field(
        None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the value, e.g. EUR."
    )
    status: DealStatus | None = Field(None, description="open, won or lost.")
    lost_reason: str | None = Field(
        None, min_length=1, description="Why it was lost (status lost only)."
    )
    probability: float | None = Field(
        None, ge=0, le=100, description="Success probability in percent."
    )
    expected_close_date: date | None = Field(None, description="Expected close date.")
    visible_to: VisibleTo | None = Field(
        None, description="Visibility: 1 owner & followers, 3 entire company, 5 or 7 groups."
    )
    label_ids: list[EntityId] | None = Field(
        None, description="Ids of the deal labels to assign (replaces them)."
    )
    custom_fields: dict[CustomFieldKey, JsonValue] | None = Field(
        None, description=CUSTOM_FIELDS_DESCRIPTION
    )

    @field_validator("label_ids")
    @classmethod
    def _distinct_labels(cls, value: list[int] | None) -> list[int] | None:
        return _distinct_ids(value)

    @field_validator("custom_fields")
    @classmethod
    def _clearable(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        return _custom_fields(value)

    @model_validator(mode="after")
    def _lost_reason_needs_lost(self) -> Self:
        # "Can only be set if deal status is lost" (an update may lose a deal lost before,
        # so only a contradicting status is refused).
        if self.lost_reason is not None and self.status not in (None, "lost"):
            raise domain_error("invalid_value", "only for status lost", at=("lostReason",))
        return self


_DEAL_FIELDS = set(DealFields.model_fields)


class CreateDealParams(DealFields):
    """Adds a deal, open in the pipeline's first stage unless told otherwise."""

    title: str = Field(min_length=1, description="The deal's title.")


def create_deal_request(params: CreateDealParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", f"{V2}/deals", json=_changes(params, set()))


class UpdateDealParams(DealFields):
    """Changes the given fields of a deal, e.g. moves it to another stage."""

    id: EntityId = Field(description="The deal's id.")
    title: str | None = Field(None, min_length=1, description="The deal's title.")

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        _at_least_one_change(self, _DEAL_FIELDS | {"title"})
        return self


def update_deal_request(params: UpdateDealParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("PATCH", f"{V2}/deals/{params.id}", json=_changes(params, {"id"}))


# ------------------------------------------------------------------------------- activities


class Participant(Params):
    """A person taking part in an activity."""

    person_id: EntityId = Field(description="The person's id.")
    primary: bool = Field(False, description="Whether the activity is the person's own.")


class AddActivityParams(Params):
    """Adds an activity (a call, meeting, task, … or a custom type) linked to a person, a deal
    or an organization; ``done`` logs one that already happened."""

    subject: str = Field(min_length=1, description="One-line summary.")
    type: str = Field(
        min_length=1,
        pattern=r"^\S+$",
        description="The activity type's key (call, meeting, task, deadline, email, lunch, or "
        "a custom type's key_string).",
    )
    due_date: date | None = Field(None, description="Due date (YYYY-MM-DD).")
    due_time: HoursMinutes | None = Field(None, description="Due time in UTC (HH:MM).")
    duration: Duration | None = Field(None, description="Duration (HH:MM).")
    done: bool | None = Field(None, description="Whether it is done.")
    busy: bool | None = Field(None, description="Whether it marks the owner busy.")
    person_id: EntityId | None = Field(
        None, description="The person it is about (sent as the primary participant)."
    )
    participants: list[Participant] | None = Field(
        None, min_length=1, description="Further persons taking part."
    )
    deal_id: EntityId | None = Field(None, description="The linked deal's id.")
    org_id: EntityId | None = Field(None, description="The linked organization's id.")
    lead_id: UUID | None = Field(None, description="The linked lead's id.")
    owner_id: EntityId | None = Field(None, description="The assigned user's id.")
    note: Html | None = Field(None, description="Note (HTML), shown in Pipedrive only.")
    public_description: str | None = Field(
        None, min_length=1, description="Description synced to calendars."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.due_time is not None and self.due_date is None:
            raise domain_error("required", "a due time needs a due date", at=("dueDate",))
        others = self.participants or []
        ids = [p.person_id for p in others]
        if len(set(ids)) != len(ids):
            raise domain_error("invalid_value", "a person may take part once", at=("participants",))
        primaries = sum(p.primary for p in others) + (self.person_id is not None)
        if primaries > 1:
            raise domain_error(
                "invalid_value",
                "only one primary participant (personId is one)",
                at=("participants",),
            )
        if self.person_id is not None and self.person_id in ids:
            raise domain_error(
                "invalid_value", "personId is already a participant", at=("personId",)
            )
        return self

    def participant_list(self) -> list[dict[str, Any]]:
        """v2 sets ``person_id`` from the primary participant; it refuses ``person_id``."""
        listed = [{"person_id": self.person_id, "primary": True}] if self.person_id else []
        listed += [p.model_dump() for p in self.participants or ()]
        return listed


def add_activity_request(params: AddActivityParams, _ctx: RequestContext) -> OutboundRequest:
    body = _changes(params, {"person_id", "participants"})
    if participants := params.participant_list():
        body["participants"] = participants
    return OutboundRequest("POST", f"{V2}/activities", json=body)


# ------------------------------------------------------------------------------------ notes


class AddNoteParams(Params):
    """Adds a note (HTML) to a person, deal, organization or lead (API v1: notes have no v2)."""

    content: Html = Field(description="The note, in HTML (Pipedrive sanitizes it).")
    person_id: EntityId | None = Field(None, description="The person's id.")
    deal_id: EntityId | None = Field(None, description="The deal's id.")
    org_id: EntityId | None = Field(None, description="The organization's id.")
    lead_id: UUID | None = Field(None, description="The lead's id.")

    @model_validator(mode="after")
    def _attached(self) -> Self:
        if all(v is None for v in (self.person_id, self.deal_id, self.org_id, self.lead_id)):
            raise domain_error("required", "attach it to one of: personId, dealId, orgId, leadId")
        return self


def add_note_request(params: AddNoteParams, _ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", f"{V1}/notes", json=_changes(params, set()))


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    """The token's own user: the cheapest authenticated call (2 tokens, scope ``base``)."""
    return OutboundRequest("GET", f"{V1}/users/me")


PIPEDRIVE = Connector(
    provider="pipedrive",
    title="Pipedrive",
    category="crm",
    description="Pipedrive CRM: find, add and update persons, add and update deals (move them "
    "between stages), log activities and add notes; custom fields by their keys. Syncs persons "
    "with contacts.",
    base_url="https://api.pipedrive.com",
    auth=ApiKeyAuth(location="header", name="x-api-token"),
    credentials=PipedriveCredentials,
    operations=operations(
        Operation(
            name="find_person",
            summary="Find a person by e-mail address; the id is null when there is none.",
            params=FindPersonParams,
            request=find_person_request,
            output=find_person_output,
        ),
        Operation(
            name="create_person",
            summary="Add a person.",
            params=CreatePersonParams,
            request=create_person_request,
            output=record_output,
        ),
        Operation(
            name="update_person",
            summary="Change fields of a person (custom fields included).",
            params=UpdatePersonParams,
            request=update_person_request,
            output=record_output,
        ),
        Operation(
            name="delete_person",
            summary="Delete a person (removed for good after 30 days).",
            params=DeletePersonParams,
            request=delete_person_request,
        ),
        Operation(
            name="create_deal",
            summary="Add a deal.",
            params=CreateDealParams,
            request=create_deal_request,
            output=record_output,
        ),
        Operation(
            name="update_deal",
            summary="Change fields of a deal, e.g. its stage.",
            params=UpdateDealParams,
            request=update_deal_request,
            output=record_output,
        ),
        Operation(
            name="add_activity",
            summary="Add an activity (call, meeting, task, …) to a person, deal or organization.",
            params=AddActivityParams,
            request=add_activity_request,
            output=record_output,
        ),
        Operation(
            name="add_note",
            summary="Add a note to a person, deal, organization or lead.",
            params=AddNoteParams,
            request=add_note_request,
            output=record_output,
        ),
    ),
    # https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting (and NOTES §5): per
    # token and 2-second window, 20 requests with an api_token on Essential, the lowest plan,
    # and 10 for search on every plan. 4/s with a burst of 2 is at most 2 + 2 * 4 = 10 in any
    # 2 s, within both even if every call were a search; higher plans raise it per connection
    # (requestsPerMinute, burstLimit). The daily token budget (30,000 x plan multiplier x
    # seats; x-token-cost: search 20, list 10, writes 5, notes 10) is not a rate: once spent,
    # Pipedrive answers 429 until it resets at midnight, which the executor backs off from.
    rate_limits=RateLimits(requests_per_minute=240, burst_limit=2),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developers.pipedrive.com/docs/api/v1",
    sync=PERSONS_SYNC,
)
