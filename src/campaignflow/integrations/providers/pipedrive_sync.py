"""Pipedrive's CRM sync adapter for persons, :data:`PERSONS_SYNC`, declared by the
``pipedrive`` connector.

It pulls persons modified since a time, oldest first, with v2's cursor; it pushes one person per
request (Pipedrive has no batch write): PATCH when the person is linked, POST otherwise; and logs
activities as done activities on the person. Flattened field names, for pulls and pushes alike:
``name``, ``first_name``, ``last_name``, ``email`` and ``phone`` (the primary value), ``org_id``,
``owner_id``, and each custom field by its hash.

The adapter is a module of its own so that :mod:`~campaignflow.integrations.providers.pipedrive`
holds the workflow operations. That module imports :data:`PERSONS_SYNC`, so what the operations
and the adapter share (API v2's path, the custom-field key pattern, reading a record's id from an
answer) is defined here and imported there, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
)
from campaignflow.integrations.providers._common import body_field

# --------------------------------------------------------------- shared with the operations

V2 = "/api/v2"
CUSTOM_FIELD_KEY = r"^[0-9a-f]{40}$"


def record_id(response: ProviderResponse) -> int | None:
    """``data.id`` of a v1 or v2 answer about one record."""
    data = body_field(response, "data")
    value = data.get("id") if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------- sync

_CUSTOM_FIELD_KEY = re.compile(CUSTOM_FIELD_KEY)
# GET /api/v2/persons: "a maximum value of 500 is allowed" (limit); at most 15 custom_fields keys.
MAX_PAGE = 500
MAX_CUSTOM_FIELD_KEYS = 15
PERSON_FIELDS = ("name", "first_name", "last_name", "email", "phone", "org_id", "owner_id")


def rfc3339(moment: datetime) -> str:
    """``2025-01-01T10:20:00Z``. Seconds are floored: ``updated_since`` is inclusive, so a
    pull may see a record twice but never misses one. A naive time is a caller's bug."""
    if moment.tzinfo is None:
        raise ValueError("pipedrive: a pull's 'since' must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_request(
    since: datetime | None, page: str | None, fields: Sequence[str], _ctx: RequestContext
) -> OutboundRequest:
    """Persons by ``update_time``, oldest first. Custom fields are asked for by key when the
    mapping names at most 15 (Pipedrive's cap); otherwise all come back."""
    query = {"sort_by": "update_time", "sort_direction": "asc", "limit": str(MAX_PAGE)}
    if since is not None:
        query["updated_since"] = rfc3339(since)
    if page is not None:
        query["cursor"] = page
    custom = sorted({name for name in fields if _CUSTOM_FIELD_KEY.fullmatch(name)})
    if 0 < len(custom) <= MAX_CUSTOM_FIELD_KEYS:
        query["custom_fields"] = ",".join(custom)
    return OutboundRequest("GET", f"{V2}/persons", query=query)


def _primary(entries: Any) -> str | None:
    """The primary entry's value of a person's ``emails``/``phones``, else the first one's."""
    if not isinstance(entries, list):
        return None
    values = [e for e in entries if isinstance(e, Mapping) and isinstance(e.get("value"), str)]
    chosen = next((e for e in values if e.get("primary") is True), values[0] if values else None)
    return chosen["value"] if chosen else None


def parse_time(value: Any) -> datetime | None:
    """v2's RFC 3339 (``…Z``) or v1's ``YYYY-MM-DD HH:MM:SS`` (UTC), as an aware time."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def person_record(person: Any) -> RemoteRecord | None:
    """A person of ``GET /api/v2/persons`` as a :class:`RemoteRecord`; None for an entry
    without an id or a modification time (it cannot be placed in the sync's order)."""
    if not isinstance(person, Mapping):
        return None
    person_id, modified = person.get("id"), parse_time(person.get("update_time"))
    if not isinstance(person_id, int) or isinstance(person_id, bool) or modified is None:
        return None
    email = _primary(person.get("emails"))
    fields: dict[str, JsonScalar] = {
        "name": any_json(person.get("name")),
        "first_name": any_json(person.get("first_name")),
        "last_name": any_json(person.get("last_name")),
        "email": email,
        "phone": _primary(person.get("phones")),
        "org_id": any_json(person.get("org_id")),
        "owner_id": any_json(person.get("owner_id")),
    }
    custom = person.get("custom_fields")
    if isinstance(custom, Mapping):
        fields.update({key: any_json(value) for key, value in custom.items()})
    return RemoteRecord(
        remote_id=str(person_id),
        modified_at=modified,
        fields=fields,
        email=email,
        deleted=person.get("is_deleted") is True,
    )


def parse_pull(response: ProviderResponse) -> PullPage:
    data = body_field(response, "data")
    records = [r for r in map(person_record, data if isinstance(data, list) else []) if r]
    additional = body_field(response, "additional_data")
    cursor = additional.get("next_cursor") if isinstance(additional, Mapping) else None
    return PullPage(records, cursor if isinstance(cursor, str) and cursor else None)


def _entity_id(name: str, value: JsonScalar) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CannotBuildRequest(f"pipedrive: {name} must be a Pipedrive id, got {value!r}")
    return value


def _text(value: JsonScalar) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def person_body(record: PushRecord, *, create: bool) -> dict[str, Any]:
    """The v2 person body for a pushed record. Standard fields left empty are not sent (v2
    types none of them nullable, and a name cannot be cleared); custom fields are sent as they
    are, None clearing the value. ``first_name``/``last_name`` are read-only in v2: without a
    ``name`` they make one. ``email``/``phone`` become the one primary entry of the list, which
    replaces the person's list on an update."""
    fields = dict(record.fields)
    for key in fields:
        if key not in PERSON_FIELDS and not _CUSTOM_FIELD_KEY.fullmatch(key):
            raise CannotBuildRequest(
                f"pipedrive: unknown person field {key!r} (known: {', '.join(PERSON_FIELDS)}, "
                "or a custom field's 40-hex key)"
            )
    body: dict[str, Any] = {}
    parts = (_text(fields.get("first_name")), _text(fields.get("last_name")))
    name = _text(fields.get("name")) or " ".join(part for part in parts if part) or None
    if name is not None:
        body["name"] = name
    elif create:
        raise CannotBuildRequest("pipedrive: a new person needs a name (or first/last name)")
    email = _text(fields.get("email")) or (record.email if create else None)
    if email is not None:
        body["emails"] = [{"value": email, "primary": True}]
    if (phone := _text(fields.get("phone"))) is not None:
        body["phones"] = [{"value": phone, "primary": True}]
    for key in ("org_id", "owner_id"):
        if fields.get(key) is not None:
            body[key] = _entity_id(key, fields[key])
    custom = {key: value for key, value in fields.items() if _CUSTOM_FIELD_KEY.fullmatch(key)}
    if custom:
        body["custom_fields"] = custom
    return body


def push_request(records: Sequence[PushRecord], _ctx: RequestContext) -> OutboundRequest:
    """One person per request: PATCH when linked, POST otherwise. Pipedrive has no upsert, so
    an unlinked record creates a person; the sync links it by the id in the answer."""
    if len(records) != 1:
        raise ValueError(f"pipedrive pushes one person per request, not {len(records)}")
    record = records[0]
    if record.remote_id is None:
        return OutboundRequest("POST", f"{V2}/persons", json=person_body(record, create=True))
    person_id = _entity_id("remote_id", record.remote_id)
    body = person_body(record, create=False)
    return OutboundRequest("PATCH", f"{V2}/persons/{person_id}", json=body)


def error_text(body: Any) -> str:
    """Pipedrive's reason from an error body (``{"success": false, "error": "…"}``)."""
    if isinstance(body, Mapping):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    if isinstance(body, str) and body:
        return body[:500]
    return "no reason given"


def parse_push(records: Sequence[PushRecord], response: ProviderResponse) -> list[PushResult]:
    """The one record's result. A 4xx is the record's own fault (validation, a person deleted
    in Pipedrive): not retried. 429 and 5xx are the executor's and never arrive here."""
    record = records[0]
    if not 200 <= response.status < 300 or body_field(response, "success") is False:
        reason = f"pipedrive {response.status}: {error_text(response.body)}"
        return [PushResult(record.key, record.remote_id, error=reason)]
    person_id = record_id(response)
    if person_id is None:
        # Not retryable either: retrying a create that may have succeeded adds a duplicate.
        return [PushResult(record.key, record.remote_id, error="pipedrive: no person id in 2xx")]
    return [PushResult(record.key, str(person_id))]


def activity_request(activity: Activity, _ctx: RequestContext) -> OutboundRequest:
    """A done activity at the time it happened, the person its primary participant."""
    if activity.occurred_at.tzinfo is None:
        raise ValueError("pipedrive: an activity's occurred_at must be timezone-aware")
    at = activity.occurred_at.astimezone(UTC)
    person_id = _entity_id("remote_id", activity.remote_id)
    body: dict[str, Any] = {
        "subject": activity.subject,
        "type": activity.type,
        "due_date": at.date().isoformat(),
        "due_time": at.strftime("%H:%M"),
        "done": True,
        "participants": [{"person_id": person_id, "primary": True}],
    }
    if activity.note:
        body["note"] = activity.note
    return OutboundRequest("POST", f"{V2}/activities", json=body)


PERSONS_SYNC = CrmSync(
    object_type="persons",
    max_pull_page=MAX_PAGE,
    max_push_batch=1,
    pull_request=pull_request,
    parse_pull=parse_pull,
    push_request=push_request,
    parse_push=parse_push,
    activity_request=activity_request,
    system_fields=("id", "update_time", "emails", "is_deleted"),
)
