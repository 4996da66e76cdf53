"""HubSpot's CRM sync adapter, :data:`SYNC`, declared by the ``hubspot`` connector.

The sync pulls with the CRM search endpoint, ``lastmodifieddate`` after the cursor, oldest
first. Search stops at 10,000 results per query: the pull then ends early and the engine's next
pull starts from the newest modification it saw, as it does anyway. Search returns no property
history and no archived contacts, so deletions come from webhooks, and the per-field times
last-write-wins needs come from a second request, :func:`history_request`, a batch read with
``propertiesWithHistory`` of the page's contacts (merged by :func:`with_history`). Pushes are
batch upserts by e-mail for unlinked records and batch updates by record id for linked ones:
HubSpot's upsert cannot key by ``hs_object_id`` ("non-unique property"), so one batch is one
kind (:func:`push_group`). Activities are notes associated with the contact.

The adapter is a module of its own so that :mod:`~campaignflow.integrations.providers.hubspot`
holds the workflow operations. That module imports :data:`SYNC`, so what the operations and the
adapter share (property names, the batch limit, property values as text, a note's timestamp and
its association with a contact) is defined here and imported there, never the other way round.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from campaignflow.integrations.connector import (
    CannotBuildRequest,
    OutboundRequest,
    ProviderResponse,
    RequestContext,
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
from campaignflow.integrations.providers._common import body_field

# --------------------------------------------------------------- shared with the operations

PROPERTY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"
PropertyValue = str | int | float | bool
BATCH_LIMIT = 100  # batch endpoints: at most 100 inputs
NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type: note → contact
NOTE_BODY_LIMIT = 65_536


def property_text(value: PropertyValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def note_timestamp(moment: datetime) -> str:
    """hs_timestamp in UTC with milliseconds, as HubSpot writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def note_to_contact(contact_id: str) -> dict[str, Any]:
    kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}
    return {"to": {"id": contact_id}, "types": [kind]}


# ------------------------------------------------------------------------------- sync: pull

SEARCH_CAP = 10_000  # search answers at most 10,000 results per query
PULL_LIMIT = 100  # one search page; also one batch read of the page's history
_CONTACTS = "/crm/v3/objects/contacts"
_SYSTEM = ("email", "lastmodifieddate", "hs_object_id")
_NOT_FIELDS = frozenset({"lastmodifieddate", "hs_object_id"})  # the record's id and time
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROPERTY_NAME = re.compile(PROPERTY_NAME_PATTERN)
_AFTER = re.compile(r"^[A-Za-z0-9_=-]{1,1000}$")


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
            "push_group (an upsert cannot key by record id)"
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
    return "" if value is None else property_text(value)


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
        "hs_timestamp": note_timestamp(activity.occurred_at),
        "hs_note_body": body[:NOTE_BODY_LIMIT],
    }
    json = {"properties": properties, "associations": [note_to_contact(activity.remote_id)]}
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
