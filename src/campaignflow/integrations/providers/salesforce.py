"""Salesforce: contacts, leads, tasks and batches as ``salesforce.*`` actions.

Salesforce publishes no machine-readable API description we may redistribute, so the requests
are checked against JSON Schemas written from the REST API Developer Guide
(``tests/contract/salesforce_schemas``).

* Requests go to the org's own host: ``instanceUrl`` is a required setting (the token endpoint
  returns it as ``instance_url``; users see it in their browser). Authentication is a connected
  app's refresh token against login.salesforce.com, or test.salesforce.com for a sandbox
  (:func:`token_url_for`).
* ``upsert_contact`` and ``upsert_lead`` use sObject Rows by External ID (``PATCH
  …/sobjects/Contact/{field}/{value}``): creating or updating by a key makes a retried step
  harmless. Salesforce takes no idempotency key on REST writes, so ``create_task`` is the one
  operation a retry after a lost answer can repeat (a second Task, never a second e-mail).
* ``upsert_records`` is an sObject Collections upsert: up to 200 records of one object, one
  request, ``allOrNone`` false so one bad record fails alone.

The connector also syncs contacts both ways; its adapter, :data:`SYNC`, is in
:mod:`~campaignflow.integrations.providers.salesforce_sync`, with the connection's settings,
the API-name validation and the other helpers both share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    ConnectionSettings,
    Connector,
    ConnectorModel,
    OAuth2RefreshToken,
    OAuthAuthorization,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import Params, Secret, body_field
from campaignflow.integrations.providers.salesforce_sync import (
    COLLECTION_LIMIT,
    ID_PATTERN,
    SYNC,
    SYNC_OBJECT,
    ApiName,
    SalesforceSettings,
    TaskSubtype,
    data_path,
    record_errors,
    settings_of,
)

LOGIN_TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"  # noqa: S105 (a URL)
SANDBOX_TOKEN_URL = "https://test.salesforce.com/services/oauth2/token"  # noqa: S105 (a URL)
LOGIN_AUTHORIZE_URL = "https://login.salesforce.com/services/oauth2/authorize"
SANDBOX_AUTHORIZE_URL = "https://test.salesforce.com/services/oauth2/authorize"

SalesforceId = Annotated[str, Field(pattern=ID_PATTERN, examples=["0035e00000AbCdEAAZ"])]
FieldValue = (
    Annotated[str, Field(max_length=131_072)]
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)
Fields = dict[ApiName, FieldValue]


class SalesforceCredentials(ConnectorModel):
    client_id: str = Field(
        min_length=1, max_length=4096, description="The connected app's consumer key."
    )
    client_secret: Secret = Field(description="The connected app's consumer secret.")
    refresh_token: Secret | None = Field(
        None,
        description="A refresh token from the connected app's OAuth 2.0 web-server flow, with "
        "the 'api' and 'refresh_token' scopes. Leave it out and authorize the connection on "
        "Salesforce's consent page instead (POST /api/v1/connections/{id}/authorize).",
    )


def base_url_for(settings: ConnectionSettings, _credentials: Mapping[str, str]) -> str:
    """Every request goes to the org's instance."""
    return settings_of(settings).instance_url


def authorize_url_for(settings: ConnectionSettings) -> str:
    """Where a person grants access: production or sandbox login."""
    return SANDBOX_AUTHORIZE_URL if settings_of(settings).sandbox else LOGIN_AUTHORIZE_URL


def token_url_for(settings: ConnectionSettings) -> str:
    """Where the connection's refresh token is exchanged: production or sandbox login."""
    return SANDBOX_TOKEN_URL if settings_of(settings).sandbox else LOGIN_TOKEN_URL


# ------------------------------------------------------------ upsert_contact, upsert_lead


def _refuse_dot_segments(value: str) -> str:
    """A path segment of "." or ".." would be resolved away by the HTTP client, sending the
    PATCH to another resource."""
    if value in {".", ".."}:
        raise ValueError("must not be '.' or '..'")
    return value


class UpsertByExternalIdParams(Params):
    """Creates the record with this external id value, or updates the one that has it."""

    external_id_field: ApiName = Field(
        "Email",
        description="The field that identifies the record: an External ID field, or an "
        "idLookup field such as Email.",
    )
    external_id_value: Annotated[str, AfterValidator(_refuse_dot_segments)] = Field(
        min_length=1, max_length=255, description="The record's value of that field."
    )
    fields: Fields = Field(
        default_factory=dict,
        description='Field values by API name, e.g. {"LastName": "Lovelace"}; null clears a field.',
    )

    @field_validator("fields")
    @classmethod
    def _key_is_not_a_field(cls, value: Fields, info: ValidationInfo) -> Fields:
        """Salesforce refuses a body naming Id or the external id field of the URL."""
        key = str(info.data.get("external_id_field", "")).lower()
        for name in value:
            if name.lower() in {"id", key}:
                raise ValueError(f"{name!r} is the record's key, not a field to set")
        return value


def _upsert_request(
    sobject: str,
) -> Callable[[UpsertByExternalIdParams, RequestContext], OutboundRequest]:
    def build(params: UpsertByExternalIdParams, ctx: RequestContext) -> OutboundRequest:
        value = quote(params.external_id_value, safe="@")  # as the guide writes addresses
        path = f"{data_path(ctx)}/sobjects/{sobject}/{params.external_id_field}/{value}"
        return OutboundRequest("PATCH", path, json=dict(params.fields))

    return build


def upsert_output(response: ProviderResponse) -> dict[str, Any]:
    """201 created; 200 (with a body) or 204 (older versions) updated."""
    created = body_field(response, "created")
    return {
        "status": response.status,
        "id": body_field(response, "id"),
        "created": created if isinstance(created, bool) else response.status == 201,
    }


# ------------------------------------------------------------------------------ create_task


def _who(value: str | None) -> str | None:
    """WhoId names a person: a Contact (key prefix 003) or a Lead (00Q)."""
    if value is not None and value[:3] not in {"003", "00Q"}:
        raise ValueError("must be a Contact (003…) or Lead (00Q…) id")
    return value


class CreateTaskParams(Params):
    """Logs a Task (an activity) on a contact or lead, optionally related to another record."""

    subject: str = Field(min_length=1, max_length=255, description="The task's subject.")
    who_id: Annotated[SalesforceId | None, AfterValidator(_who)] = Field(
        None, description="The Contact or Lead the task is about."
    )
    what_id: SalesforceId | None = Field(
        None, description="A related record: an Account, Opportunity, Campaign, Case, …"
    )
    activity_date: str | None = Field(
        None,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="Due date, YYYY-MM-DD.",
    )
    status: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="A Status picklist value, e.g. Completed (unset: the org's default).",
    )
    description: str | None = Field(None, max_length=32_000, description="Comments.")
    task_subtype: TaskSubtype | None = Field(
        None, description="How the UI shows the task: Task, Email, ListEmail, Cadence, Call…"
    )
    type: str | None = Field(
        None, min_length=1, max_length=40, description="A Type picklist value, e.g. Email."
    )

    @field_validator("activity_date")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.strptime(value, "%Y-%m-%d")  # a real calendar date
        return value


_TASK_FIELDS = {
    "subject": "Subject",
    "who_id": "WhoId",
    "what_id": "WhatId",
    "activity_date": "ActivityDate",
    "status": "Status",
    "description": "Description",
    "task_subtype": "TaskSubtype",
    "type": "Type",
}


def create_task_request(params: CreateTaskParams, ctx: RequestContext) -> OutboundRequest:
    body = {
        api: getattr(params, name)
        for name, api in _TASK_FIELDS.items()
        if getattr(params, name) is not None
    }
    return OutboundRequest("POST", f"{data_path(ctx)}/sobjects/Task", json=body)


def created_output(response: ProviderResponse) -> dict[str, Any]:
    return {"status": response.status, "id": body_field(response, "id")}


# --------------------------------------------------------------------------- upsert_records


class UpsertRecordsParams(Params):
    """Upserts up to 200 records of one object by an external id field; each succeeds or
    fails on its own."""

    sobject: ApiName = Field(description="The object's API name, e.g. Contact or Invoice__c.")
    external_id_field: ApiName = Field(
        description="The External ID (or idLookup) field every record is matched by."
    )
    records: Annotated[list[Fields], Field(min_length=1, max_length=COLLECTION_LIMIT)] = Field(
        description="The records' field values by API name, each with the external id field."
    )

    @field_validator("records")
    @classmethod
    def _keyed_records(cls, value: list[Fields], info: ValidationInfo) -> list[Fields]:
        """Collections upsert matches by the URL's field only: each record needs its value
        and must not carry an Id ("Don't use record ids")."""
        key = str(info.data.get("external_id_field", ""))
        for index, record in enumerate(value):
            names = {name.lower(): name for name in record}
            if "id" in names:
                raise ValueError(f"record {index} has an Id; upserts match by {key} only")
            if record.get(names.get(key.lower(), key)) in (None, ""):
                raise ValueError(f"record {index} has no {key} value to be matched by")
        return value


def upsert_records_request(params: UpsertRecordsParams, ctx: RequestContext) -> OutboundRequest:
    records = [{"attributes": {"type": params.sobject}, **record} for record in params.records]
    path = f"{data_path(ctx)}/composite/sobjects/{params.sobject}/{params.external_id_field}"
    return OutboundRequest("PATCH", path, json={"allOrNone": False, "records": records})


def upsert_records_output(response: ProviderResponse) -> dict[str, Any]:
    results = [
        {
            "id": item.get("id"),
            "success": item.get("success") is True,
            "created": item.get("created"),
            "errors": [code for code, _ in record_errors(item)],
        }
        for item in response.body or []
        if isinstance(item, dict)
    ]
    failed = sum(1 for result in results if not result["success"])
    return {"status": response.status, "results": results, "failed": failed}


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """One contact id: cheap, and proves the user can read the contacts the sync needs."""
    return OutboundRequest(
        "GET",
        f"{data_path(ctx)}/query",
        query={"q": f"SELECT Id FROM {SYNC_OBJECT} LIMIT 1"},  # noqa: S608
    )


SALESFORCE = Connector(
    provider="salesforce",
    title="Salesforce",
    category="crm",
    description="Salesforce CRM: upsert contacts and leads by an external id, log tasks, "
    "upsert batches of any object, and sync contacts both ways.",
    base_url="",  # the org's instanceUrl
    base_url_for=base_url_for,
    auth=OAuth2RefreshToken(token_url=LOGIN_TOKEN_URL),
    credentials=SalesforceCredentials,
    settings=SalesforceSettings,
    operations=operations(
        Operation(
            name="upsert_contact",
            summary="Create or update a contact by an external id (e.g. Email).",
            params=UpsertByExternalIdParams,
            request=_upsert_request("Contact"),
            output=upsert_output,
        ),
        Operation(
            name="upsert_lead",
            summary="Create or update a lead by an external id (e.g. Email).",
            params=UpsertByExternalIdParams,
            request=_upsert_request("Lead"),
            output=upsert_output,
        ),
        Operation(
            name="create_task",
            summary="Log a task on a contact or lead.",
            params=CreateTaskParams,
            request=create_task_request,
            output=created_output,
        ),
        Operation(
            name="upsert_records",
            summary="Create or update up to 200 records of one object by an external id.",
            params=UpsertRecordsParams,
            request=upsert_records_request,
            output=upsert_records_output,
        ),
    ),
    # Salesforce meters API calls per org and 24 hours, not per minute (Developer Limits and
    # Allocations Quick Reference, "API Request Limits and Allocations": Enterprise Edition
    # 100,000 a day plus 1,000 per licence; 25 concurrent long-running requests). 69 a minute
    # spreads the smallest Enterprise allocation over the day; the burst is the concurrency
    # limit. Orgs with more allocation raise requestsPerMinute on the connection.
    rate_limits=RateLimits(requests_per_minute=69, burst_limit=25),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/",
    token_url_for=token_url_for,
    # The web-server flow with PKCE; "refresh_token" is the scope that yields one.
    authorization=OAuthAuthorization(
        authorize_url=LOGIN_AUTHORIZE_URL,
        scopes=("api", "refresh_token"),
        authorize_url_for=authorize_url_for,
    ),
    sync=SYNC,
)
