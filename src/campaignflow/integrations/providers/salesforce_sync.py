"""Salesforce's CRM sync adapter, :data:`SYNC`, declared by the ``salesforce`` connector.

The sync pulls with SOQL through ``queryAll`` (so deleted and merged contacts arrive with
``IsDeleted``), oldest ``SystemModstamp`` first, a page being one ``LIMIT``-ed query. A query
whose result Salesforce splits into batches continues at its ``nextRecordsUrl``; once a page is
exhausted, the next one is a fresh query after the last (``SystemModstamp``, ``Id``) seen, so
no server-side cursor has to outlive a sync run. It pushes with one Composite request: an
upsert collection by the connection's external-id field for unlinked records, an update
collection by ``Id`` for linked ones (collections upsert takes external ids only). Activities
are completed Tasks on the contact.

SOQL is built from validated parts only: field names must be API names and not SOQL keywords,
string literals go through :func:`soql_string`, datetimes through :func:`soql_datetime`.

The adapter is a module of its own so that :mod:`~campaignflow.integrations.providers.salesforce`
holds the workflow operations. That module imports :data:`SYNC`, so what the operations and the
adapter share (the connection's settings and API path, API-name and id validation, the
collection limit, the Task subtypes, how a record's errors are read) is defined here and
imported there, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

from campaignflow.engine.http_action import retryable_status
from campaignflow.integrations.connector import (
    CannotBuildRequest,
    ConnectionSettings,
    OutboundRequest,
    ProviderResponse,
    RequestContext,
)
from campaignflow.integrations.crm import (
    Activity,
    CrmSync,
    PullPage,
    PushRecord,
    PushResult,
    RemoteRecord,
    any_json,
    results_in_order,
)
from campaignflow.integrations.providers._common import body_field

DEFAULT_API_VERSION = "v62.0"
COLLECTION_LIMIT = 200  # sObject Collections: "The list can contain up to 200 objects."
PULL_PAGE = 2000  # a query's default batch size, so a page is usually one answer
SYNC_OBJECT = "Contact"

# SOQL keywords that cannot name anything (SOQL and SOSL Reference, "Alias Notation").
SOQL_KEYWORDS = frozenset(
    {
        *("AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN"),
        *("INCLUDES", "LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT"),
        *("USING", "WHERE", "WITH"),
    }
)
# An API name: letters, digits and single underscores, starting with a letter, with up to two
# double-underscore parts for a namespace prefix and a suffix (ns__Field__c, Loc__Latitude__s).
_SEGMENT = r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*"
API_NAME_PATTERN = rf"^{_SEGMENT}(?:__{_SEGMENT}){{0,2}}$"
ID_PATTERN = r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$"
_API_NAME = re.compile(API_NAME_PATTERN)
_ID = re.compile(ID_PATTERN)
# Where a query's next batch is: "/services/data/v62.0/query/01gRO0000016PIAYA2-2000".
_NEXT_RECORDS = re.compile(
    r"^/services/data/v[0-9]{2,3}\.0/query(?:All)?/[A-Za-z0-9]{15,18}-[0-9]+$"
)
_KEYSET = re.compile(r"^after:([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z),(.+)$")
# Error codes of one record that say "try again later", not "this record is wrong".
RETRYABLE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "REQUEST_RUNNING_TOO_LONG",
        "SERVER_UNAVAILABLE",
        "QUERY_TIMEOUT",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "PROCESSING_HALTED",
    }
)
# Task.TaskSubtype, a restricted picklist (Object Reference, "Task").
TaskSubtype = Literal["Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"]
TASK_SUBTYPES: tuple[str, ...] = get_args(TaskSubtype)


def _not_keyword(name: str) -> str:
    if name.upper() in SOQL_KEYWORDS:
        raise ValueError(f"{name!r} is a SOQL keyword, not a field name")
    if name.lower() == "attributes":
        raise ValueError("'attributes' is Salesforce's record metadata, not a field")
    return name


ApiName = Annotated[
    str,
    Field(pattern=API_NAME_PATTERN, max_length=80, examples=["Email", "Customer_Tier__c"]),
    AfterValidator(_not_keyword),
]


class SalesforceSettings(ConnectionSettings):
    instance_url: str = Field(
        alias="instanceUrl",
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$",
        description="The org's instance URL, e.g. https://acme.my.salesforce.com (the "
        "instance_url of the token answer).",
    )
    api_version: str = Field(
        DEFAULT_API_VERSION,
        alias="apiVersion",
        pattern=r"^v(4[6-9]|[5-9][0-9]|[1-9][0-9]{2})\.0$",
        description="REST API version, e.g. v62.0; at least v46.0 (sObject Collections upsert).",
    )
    sandbox: bool = Field(
        False, description="A sandbox org: authenticate against test.salesforce.com."
    )
    sync_external_id_field: ApiName = Field(
        "Email",
        alias="syncExternalIdField",
        description="The Contact field the sync upserts unlinked records by: Email, or an "
        "External ID field such as Campaignflow_Id__c.",
    )


def settings_of(settings: ConnectionSettings) -> SalesforceSettings:
    if not isinstance(settings, SalesforceSettings):
        raise CannotBuildRequest("salesforce: the connection has no Salesforce settings")
    return settings


def data_path(ctx: RequestContext) -> str:
    return f"/services/data/{settings_of(ctx.settings).api_version}"


# ----------------------------------------------------------------------------------- SOQL


def soql_string(value: str) -> str:
    """``value`` as a quoted SOQL string literal (SOQL and SOSL Reference, "Quoted String
    Escape Sequences"): backslash, both quotes and the named control characters get their
    escape, any other control character its ``\\uXXXX``, so no value can end the literal."""
    out = ["'"]
    for char in value:
        escaped = _SOQL_ESCAPES.get(char)
        if escaped is None and (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0):
            escaped = f"\\u{ord(char):04x}"
        out.append(escaped or char)
    out.append("'")
    return "".join(out)


_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal (unquoted ``YYYY-MM-DDThh:mm:ssZ``) for an aware datetime.

    Seconds are the literal's precision, and ``SystemModstamp`` has no finer one, so the
    fraction is dropped: ``SystemModstamp > <literal>`` then selects exactly the stamps after
    ``moment``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CannotBuildRequest("salesforce: a naive datetime has no place in time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def field_names(names: Sequence[str]) -> list[str]:
    """Field names for a SELECT list, refused unless each is an API name and no keyword, and
    deduplicated ignoring case (Salesforce refuses a field selected twice, as ``email`` and
    ``Email`` are)."""
    chosen: dict[str, str] = {}
    for name in names:
        if not (isinstance(name, str) and len(name) <= 80 and _API_NAME.fullmatch(name)):
            raise CannotBuildRequest(f"salesforce: {name!r} is not a Salesforce field name")
        try:
            _not_keyword(name)
        except ValueError as exc:
            raise CannotBuildRequest(f"salesforce: {exc}") from None
        chosen.setdefault(name.lower(), name)
    return list(chosen.values())


# ------------------------------------------------------------------------------- sync: pull


def pull_request(
    since: datetime | None, page: str | None, fields: Sequence[str], ctx: RequestContext
) -> OutboundRequest:
    """One page of contacts modified after ``since``, oldest first; see the module docstring.

    ``page`` is a ``nextRecordsUrl`` (validated: a stored token must not become a request for
    anything else) or this adapter's own ``after:<stamp>,<id>`` continuation."""
    if page is not None and page.startswith("/"):
        if not _NEXT_RECORDS.fullmatch(page):
            raise CannotBuildRequest("salesforce: the page token is not a query locator")
        return OutboundRequest("GET", page)
    columns = field_names(["Id", "Email", "SystemModstamp", "IsDeleted", *fields])
    # S608: every part is a validated field name, a constant or an escaped literal.
    soql = f"SELECT {', '.join(columns)} FROM {SYNC_OBJECT}{_after(since, page)}"  # noqa: S608
    soql += f" ORDER BY SystemModstamp, Id LIMIT {PULL_PAGE}"
    return OutboundRequest("GET", f"{data_path(ctx)}/queryAll", query={"q": soql})


def _after(since: datetime | None, page: str | None) -> str:
    if page is not None:
        match = _KEYSET.fullmatch(page)
        if match is None or not _ID.fullmatch(match.group(2)):
            raise CannotBuildRequest("salesforce: the page token is not a continuation")
        stamp, last_id = match.group(1), soql_string(match.group(2))
        return f" WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > {last_id}))"
    return "" if since is None else f" WHERE SystemModstamp > {soql_datetime(since)}"


def parse_pull(response: ProviderResponse) -> PullPage:
    body = response.body if isinstance(response.body, Mapping) else {}
    records = [_remote(item) for item in body.get("records") or [] if isinstance(item, Mapping)]
    next_url = body.get("nextRecordsUrl")
    if isinstance(next_url, str) and body.get("done") is False:
        return PullPage(records, next_url)
    size = body.get("totalSize")
    if records and isinstance(size, int) and size >= PULL_PAGE:  # the LIMIT cut the query
        last = records[-1]
        return PullPage(records, f"after:{soql_datetime(last.modified_at)},{last.remote_id}")
    return PullPage(records, None)


_SYSTEM = {"attributes", "id", "systemmodstamp", "isdeleted"}


def _remote(item: Mapping[str, Any]) -> RemoteRecord:
    remote_id, stamp = item.get("Id"), item.get("SystemModstamp")
    if not isinstance(remote_id, str) or not isinstance(stamp, str):
        raise ValueError("salesforce: a query record lacks its Id or SystemModstamp")
    email = item.get("Email")
    return RemoteRecord(
        remote_id=remote_id,
        modified_at=datetime.fromisoformat(stamp),
        fields={k: any_json(v) for k, v in item.items() if k.lower() not in _SYSTEM},
        email=email if isinstance(email, str) else None,
        deleted=item.get("IsDeleted") is True,
    )


# ------------------------------------------------------------------------------- sync: push


def _partition(records: Sequence[PushRecord]) -> tuple[list[PushRecord], list[PushRecord]]:
    """(unlinked records to upsert by the external id field, linked ones to update by Id)."""
    return (
        [record for record in records if record.remote_id is None],
        [record for record in records if record.remote_id is not None],
    )


def push_request(records: Sequence[PushRecord], ctx: RequestContext) -> OutboundRequest:
    key = settings_of(ctx.settings).sync_external_id_field
    upserts, updates = _partition(records)
    subrequests = []
    if upserts:
        body = [_upsert_body(record, key) for record in upserts]
        url = f"{data_path(ctx)}/composite/sobjects/{SYNC_OBJECT}/{key}"
        subrequests.append(_subrequest(url, "upserts", body))
    if updates:
        body = [{**_record_body(record), "Id": record.remote_id} for record in updates]
        subrequests.append(_subrequest(f"{data_path(ctx)}/composite/sobjects", "updates", body))
    if not subrequests:
        raise CannotBuildRequest("salesforce: no records to push")
    return OutboundRequest(
        "POST",
        f"{data_path(ctx)}/composite",
        json={"allOrNone": False, "compositeRequest": subrequests},
    )


def _subrequest(url: str, reference: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"allOrNone": False, "records": records}
    return {"method": "PATCH", "url": url, "referenceId": reference, "body": body}


def _record_body(record: PushRecord) -> dict[str, Any]:
    names = field_names(list(record.fields))
    if len(names) != len(record.fields) or "id" in {name.lower() for name in names}:
        raise CannotBuildRequest("salesforce: the pushed fields name Id, or a field twice")
    return {"attributes": {"type": SYNC_OBJECT}, **record.fields}


def _upsert_body(record: PushRecord, key: str) -> dict[str, Any]:
    body = _record_body(record)
    has_key = any(name.lower() == key.lower() for name in record.fields)
    if not has_key and key == "Email" and record.email is not None:
        body["Email"] = record.email
    return body


def parse_push(records: Sequence[PushRecord], response: ProviderResponse) -> list[PushResult]:
    answers = body_field(response, "compositeResponse")
    by_reference = {
        answer.get("referenceId"): answer for answer in answers or [] if isinstance(answer, Mapping)
    }
    found: dict[str, PushResult] = {}
    for reference, group in zip(("upserts", "updates"), _partition(records), strict=True):
        answer = by_reference.get(reference)
        if answer is not None:
            found.update(_group_results(group, answer))
    return results_in_order(records, found, "salesforce: the answer does not mention the record")


def _group_results(group: list[PushRecord], answer: Mapping[str, Any]) -> dict[str, PushResult]:
    status, body = answer.get("httpStatusCode"), answer.get("body")
    items = [body] if isinstance(body, Mapping) else body if isinstance(body, list) else []
    items = [item for item in items if isinstance(item, Mapping)]
    if status == 200:  # one result per record, in the records' order
        return {r.key: _record_result(r, item) for r, item in zip(group, items, strict=False)}
    # The whole subrequest failed (a field that does not exist, a limit): each record fails so.
    code, message = (record_errors(items[0]) or [("UNKNOWN", "")])[0] if items else ("UNKNOWN", "")
    retryable = code in RETRYABLE_CODES or (isinstance(status, int) and retryable_status(status))
    error = f"{code}: {message or f'HTTP {status}'}"
    return {r.key: PushResult(r.key, r.remote_id, error, retryable) for r in group}


def _record_result(record: PushRecord, item: Mapping[str, Any]) -> PushResult:
    remote_id = item.get("id") if isinstance(item.get("id"), str) else record.remote_id
    if item.get("success") is True:
        return PushResult(record.key, remote_id)
    errors = record_errors(item) or [("UNKNOWN", "Salesforce reported no error")]
    text = "; ".join(f"{code}: {message}" for code, message in errors)
    retryable = all(code in RETRYABLE_CODES for code, _ in errors)
    return PushResult(record.key, remote_id, error=text, retryable=retryable)


def record_errors(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(statusCode, message) of a SaveResult or UpsertResult; a request-level error (with an
    errorCode) is its own one error."""
    found = item.get("errors") if "errors" in item else [item]
    return [_error(error) for error in found or [] if isinstance(error, Mapping)]


def _error(error: Mapping[str, Any]) -> tuple[str, str]:
    code = error.get("statusCode") or error.get("errorCode") or "UNKNOWN"
    return str(code), str(error.get("message") or "")


# --------------------------------------------------------------------------- sync: activity


def activity_request(activity: Activity, ctx: RequestContext) -> OutboundRequest:
    """A completed Task on the contact. ``activity.type`` is the Task's Type picklist value
    (and its TaskSubtype where it is one, so the UI shows an e-mail as an e-mail); the subject
    and note are cut to Subject's 255 and Description's 32,000 characters."""
    task: dict[str, Any] = {
        "WhoId": activity.remote_id,
        "Subject": activity.subject[:255],
        "ActivityDate": activity.occurred_at.astimezone(UTC).date().isoformat(),
        "Status": "Completed",
        "Type": activity.type[:40],
        "TaskSubtype": activity.type if activity.type in TASK_SUBTYPES else "Task",
    }
    if activity.note:
        task["Description"] = activity.note[:32_000]
    return OutboundRequest("POST", f"{data_path(ctx)}/sobjects/Task", json=task)


SYNC = CrmSync(
    object_type=SYNC_OBJECT,
    max_pull_page=PULL_PAGE,
    max_push_batch=COLLECTION_LIMIT,
    pull_request=pull_request,
    parse_pull=parse_pull,
    push_request=push_request,
    parse_push=parse_push,
    activity_request=activity_request,
    system_fields=("Id", "Email", "SystemModstamp", "IsDeleted"),
)
