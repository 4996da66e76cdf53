"""What a CRM connector declares for the sync engine, as plain values: no I/O.

A CRM connector (Salesforce, HubSpot, Pipedrive) has ordinary operations for workflow actions
(``pipedrive.upsert_person``, …) and, besides them, a :class:`CrmSync`: pure functions that build
the requests of a sync run and read their answers. The sync engine (``integrations/sync/``)
sends them through the same executor path as every action (auth, rate limit, breaker, retries),
so a sync and the workflows calling the same account share its rate limit.

The shapes are the smallest the three CRMs have in common:

* a **pull** pages through the records modified since a time (Salesforce SOQL on
  ``SystemModstamp``, HubSpot's search on ``lastmodifieddate``, Pipedrive's ``updated_since``),
  oldest first, each page continuing from an opaque token the CRM gave;
* a **push** upserts a batch of records and answers per record, so one bad record fails alone
  (Salesforce sObject collections with ``allOrNone=false``, HubSpot batch upsert; Pipedrive has
  no batch, its batch size is 1);
* an **activity** logs something that happened to a contact (a Salesforce Task, a HubSpot note
  associated with the contact, a Pipedrive activity).

Field names here are the CRM's (``FirstName``, ``firstname``, ``first_name``); the mapping to the
contact's fields is the sync configuration's (``dataMapping.contactFields``), not the adapter's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from campaignflow.integrations.connector import OutboundRequest, ProviderResponse, RequestContext

JsonScalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """One CRM record as a pull saw it.

    ``field_times`` holds a per-field modification time where the CRM reports one (HubSpot's
    ``propertiesWithHistory``); a field without one is taken as modified at ``modified_at``.
    """

    remote_id: str
    modified_at: datetime
    fields: Mapping[str, JsonScalar]
    email: str | None = None
    field_times: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class PullPage:
    """One page of a pull. ``next_page`` continues this pull (None: it is done)."""

    records: Sequence[RemoteRecord]
    next_page: str | None


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One contact's fields to write. ``key`` is the caller's (the local contact id), echoed in
    its :class:`PushResult`; ``remote_id`` is None when the record is not linked yet and the
    CRM should match or create it by ``email``."""

    key: str
    fields: Mapping[str, JsonScalar]
    remote_id: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class PushResult:
    """What the CRM did with one :class:`PushRecord`: written (with its id), or failed with
    the CRM's reason, retryable or not (a validation error is not; a lock or limit is)."""

    key: str
    remote_id: str | None
    error: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Activity:
    """Something that happened to a contact, logged on its CRM record: ``type`` is the CRM's
    activity type (from ``dataMapping.activityTypes``), ``subject`` a one-line summary."""

    remote_id: str
    type: str
    subject: str
    occurred_at: datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CrmSync:
    """A CRM connector's sync declaration; see the module docstring.

    ``pull_request(since, page, fields, ctx)`` builds the request of one pull page: records
    modified after ``since`` (None: all), continuing from ``page`` (None: the first), asking for
    ``fields``. ``push_request(records, ctx)`` upserts at most ``max_push_batch`` records, and
    ``parse_push(records, response)`` answers one :class:`PushResult` per record, in order.
    """

    object_type: str  # the CRM's name for a person: "Contact", "contacts", "persons"
    max_pull_page: int
    max_push_batch: int
    pull_request: Callable[
        [datetime | None, str | None, Sequence[str], RequestContext], OutboundRequest
    ]
    parse_pull: Callable[[ProviderResponse], PullPage]
    push_request: Callable[[Sequence[PushRecord], RequestContext], OutboundRequest]
    parse_push: Callable[[Sequence[PushRecord], ProviderResponse], list[PushResult]]
    activity_request: Callable[[Activity, RequestContext], OutboundRequest]
    # Field names every pull asks for besides the mapped ones (id, e-mail, modification time).
    system_fields: tuple[str, ...] = ()
    # A CRM whose pull cannot return per-field change times (HubSpot's search) may ask for them
    # in a second request per page: ``history_request(page, fields, ctx)`` (None: not needed
    # for this page), whose answer ``parse_history`` adds to the page's records.
    history_request: (
        Callable[[PullPage, Sequence[str], RequestContext], OutboundRequest | None] | None
    ) = None
    parse_history: Callable[[PullPage, ProviderResponse], PullPage] | None = None
    # A CRM with different endpoints for new and linked records (HubSpot upserts by e-mail but
    # updates by id) names each record's group; one push request carries one group.
    push_group: Callable[[PushRecord], str] | None = None

    def __post_init__(self) -> None:
        if self.max_pull_page < 1 or self.max_push_batch < 1:
            raise ValueError("page and batch sizes must be at least 1")


def results_in_order(
    records: Sequence[PushRecord], by_key: Mapping[str, PushResult], missing: str
) -> list[PushResult]:
    """One result per record, in the records' order; a record the CRM's answer does not mention
    fails with ``missing`` (retryable: the answer was incomplete, not the record wrong)."""
    return [
        by_key.get(record.key)
        or PushResult(record.key, record.remote_id, error=missing, retryable=True)
        for record in records
    ]


def any_json(value: Any) -> JsonScalar:
    """A CRM's field value as a JSON scalar: nested values (addresses, lists) become their
    JSON text, so they compare and map like any other value."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
