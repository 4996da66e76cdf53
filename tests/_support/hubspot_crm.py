"""A local HubSpot CRM for sync tests: contacts kept in memory, every request schema-checked.

Test double, said plainly: HubSpot's API is not reachable here and its OpenAPI files may not be
redistributed, so no Prism mock can serve it. This server stands in for the part of it a contact
sync uses — search, batch read with property history, batch upsert by e-mail, batch update by
id, notes — with the state a sync needs to be tested against (records change between runs,
field histories have times, a bad record is refused on its own). Before answering, each request
is validated against the JSON Schema of its endpoint in ``tests/contract/hubspot_schemas/``
(written from HubSpot's public reference); a request that does not fit is answered 400 and
recorded in :attr:`HubSpotCrm.violations`, which tests assert is empty.

Answers follow HubSpot's documented shapes: ISO 8601 times with milliseconds, property values
as strings, ``paging.next.after`` for search, 207 with ``errors[].context`` for partial batch
failures. ``clock`` is the CRM's own clock (tests move it, and can set it apart from ours).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web

from tests.contract.endpoint_schemas import EndpointSchemas

SCHEMAS = Path(__file__).parents[1] / "contract" / "hubspot_schemas"
TOKEN = "pat-eu1-sync-test"
# POST /crm/v3/objects/contacts/gdpr-delete (PublicGdprDeleteInput), written from HubSpot's
# reference (https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/gdpr/
# post-crm-v3-objects-contacts-gdpr-delete): objectId required; idProperty names a unique
# property (email) when objectId is not the record id. Stricter: no other members.
GDPR_DELETE: dict[str, Any] = {
    "type": "object",
    "required": ["objectId"],
    "additionalProperties": False,
    "properties": {
        "objectId": {"type": "string", "minLength": 1},
        "idProperty": {"type": "string", "enum": ["email", "hs_object_id"]},
    },
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    history: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    archived: bool = False

    @property
    def modified(self) -> datetime:
        return max(entry[0] for entries in self.history.values() for entry in entries)


class HubSpotCrm:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.contacts: dict[str, Contact] = {}
        self.notes: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.refuse_emails: set[str] = set()  # upserts of these fail, on their own (207)
        self.fail_next: list[int] = []  # statuses to answer the next requests with
        self.stuck_paging = False  # a broken search that hands out the same page token again
        self._ids = itertools.count(501)
        self._schemas = EndpointSchemas(SCHEMAS)
        self.gdpr_deleted: list[str] = []  # ids removed by a GDPR delete

    # ------------------------------------------------------------------ test-side changes

    def add(self, email: str, at: datetime | None = None, **properties: str) -> Contact:
        """A contact as if someone created it in HubSpot at ``at`` (default: now)."""
        contact = Contact(str(next(self._ids)), {})
        self.contacts[contact.id] = contact
        self._write(contact, {"email": email, **properties}, at or self.clock())
        return contact

    def edit(self, contact_id: str, at: datetime | None = None, **properties: str) -> None:
        """A change made in HubSpot at ``at`` (default: now) by a sales rep."""
        self._write(self.contacts[contact_id], properties, at or self.clock())

    def by_email(self, email: str) -> Contact | None:
        return next((c for c in self.contacts.values() if c.properties.get("email") == email), None)

    def _write(self, contact: Contact, properties: dict[str, str], at: datetime) -> None:
        for name, value in properties.items():
            if contact.properties.get(name) == value:
                continue
            contact.properties[name] = value
            contact.history.setdefault(name, []).append((at, value))
        stamp = max(at, contact.modified if contact.history else at)
        contact.properties["lastmodifieddate"] = iso(stamp)
        contact.properties["hs_object_id"] = contact.id

    # ------------------------------------------------------------------ the HTTP side

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/crm/v3/objects/contacts/search", self._search)
        app.router.add_post("/crm/v3/objects/contacts/batch/read", self._read)
        app.router.add_post("/crm/v3/objects/contacts/batch/upsert", self._upsert)
        app.router.add_post("/crm/v3/objects/contacts/batch/update", self._update)
        app.router.add_post("/crm/v3/objects/notes", self._note)
        app.router.add_get("/crm/v3/objects/contacts", self._ping)
        app.router.add_post("/crm/v3/objects/contacts/gdpr-delete", self._gdpr_delete)
        return app

    async def _checked(self, request: web.Request) -> Any:
        """The request's JSON, once it passed its endpoint's schema and the token check."""
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized(text='{"category":"INVALID_AUTHENTICATION"}')
        if self.fail_next:
            status = self.fail_next.pop(0)
            raise _FAILURES[status](
                text='{"status":"error","category":"FAILED"}', content_type="application/json"
            )
        document = await request.json() if request.method != "GET" else dict(request.query)
        problems = self._schemas.violations(request.method, request.path, document)
        if problems:
            self.violations += [f"{request.method} {request.path}: {p}" for p in problems]
            raise web.HTTPBadRequest(
                text='{"status":"error","category":"VALIDATION_ERROR"}',
                content_type="application/json",
            )
        return document

    def _answer(self, body: Any, status: int = 200) -> web.Response:
        return web.json_response(
            body, status=status, headers={"Date": format_datetime(self.clock(), usegmt=True)}
        )

    async def _gdpr_delete(self, request: web.Request) -> web.Response:
        """GDPR delete: by record id, or by address with ``idProperty: email``; 204 either
        way once the record is gone, 404 when there is no such record. The body is checked
        against :data:`GDPR_DELETE` (no schema file of the sync's set covers this endpoint)."""
        body = await self._checked_gdpr(request)
        key = str(body["objectId"])
        found = (
            self.by_email(key.lower())
            if body.get("idProperty") == "email"
            else self.contacts.get(key)
        )
        if found is None:
            return self._answer({"status": "error", "category": "OBJECT_NOT_FOUND"}, 404)
        del self.contacts[found.id]
        self.gdpr_deleted.append(found.id)
        return web.Response(status=204)

    async def _checked_gdpr(self, request: web.Request) -> Any:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized(text='{"category":"INVALID_AUTHENTICATION"}')
        if self.fail_next:
            status = self.fail_next.pop(0)
            raise _FAILURES[status](
                text='{"status":"error","category":"FAILED"}', content_type="application/json"
            )
        document = await request.json()
        problems = [
            e.message for e in jsonschema.Draft202012Validator(GDPR_DELETE).iter_errors(document)
        ]
        if problems:
            self.violations += [f"{request.method} {request.path}: {p}" for p in problems]
            raise web.HTTPBadRequest(
                text='{"status":"error","category":"VALIDATION_ERROR"}',
                content_type="application/json",
            )
        return document

    async def _ping(self, request: web.Request) -> web.Response:
        await self._checked(request)
        return self._answer({"results": []})

    async def _search(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        after_ms = None
        for group in body.get("filterGroups", []):
            for rule in group["filters"]:
                if rule["propertyName"] == "lastmodifieddate" and rule["operator"] == "GT":
                    after_ms = int(rule["value"])
        rows = [
            c
            for c in self.contacts.values()
            if not c.archived
            and (after_ms is None or c.modified > datetime.fromtimestamp(after_ms / 1000, UTC))
        ]
        rows.sort(key=lambda c: (c.modified, int(c.id)))
        start, limit = int(body.get("after", "0")), int(body["limit"])
        page = rows[start : start + limit]
        answer: dict[str, Any] = {
            "total": len(rows),
            "results": [self._result(c, body["properties"]) for c in page],
        }
        if start + limit < len(rows):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        if self.stuck_paging:
            answer["paging"] = {"next": {"after": "100"}}
        return self._answer(answer)

    async def _read(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        wanted = body.get("propertiesWithHistory", [])
        results = []
        for item in body["inputs"]:
            contact = self.contacts.get(item["id"])
            if contact is None:
                continue
            result = self._result(contact, body.get("properties", []))
            result["propertiesWithHistory"] = {
                name: [
                    {"value": value, "timestamp": iso(at), "sourceType": "CRM_UI"}
                    for at, value in reversed(contact.history.get(name, []))
                ]
                for name in wanted
            }
            results.append(result)
        return self._answer({"status": "COMPLETE", "results": results})

    async def _upsert(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        results, errors = [], []
        for item in body["inputs"]:
            email = item["id"]
            if email in self.refuse_emails:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"Property values were not valid: {email}",
                        "context": {"ids": [email]},
                    }
                )
                continue
            contact = self.by_email(email)
            created = contact is None
            if contact is None:
                contact = Contact(str(next(self._ids)), {})
                self.contacts[contact.id] = contact
            self._write(contact, {**item["properties"], "email": email}, self.clock())
            result = self._result(contact, list(item["properties"]))
            result["new"] = created
            if "objectWriteTraceId" in item:
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        return self._batch_answer(results, errors)

    async def _update(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        results, errors = [], []
        for item in body["inputs"]:
            contact = self.contacts.get(item["id"])
            if contact is None:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Object not found",
                        "context": {"ids": [item["id"]]},
                    }
                )
                continue
            self._write(contact, item["properties"], self.clock())
            result = self._result(contact, list(item["properties"]))
            if "objectWriteTraceId" in item:
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        return self._batch_answer(results, errors)

    async def _note(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        note = {"id": str(next(self._ids)), **body}
        self.notes.append(note)
        return self._answer({"id": note["id"], "properties": body["properties"]}, 201)

    def _batch_answer(self, results: list[Any], errors: list[Any]) -> web.Response:
        now = iso(self.clock())
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if errors:
            body["errors"] = errors
            body["numErrors"] = len(errors)
        return self._answer(body, 207 if errors else 200)

    def _result(self, contact: Contact, names: list[str]) -> dict[str, Any]:
        wanted = {*names, "email", "lastmodifieddate", "hs_object_id"}
        created = min(at for entries in contact.history.values() for at, _ in entries)
        return {
            "id": contact.id,
            "properties": {k: v for k, v in contact.properties.items() if k in wanted},
            "createdAt": iso(created),
            "updatedAt": contact.properties["lastmodifieddate"],
            "archived": contact.archived,
        }


_FAILURES: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    429: web.HTTPTooManyRequests,
    500: web.HTTPInternalServerError,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


@contextlib.asynccontextmanager
async def serving(crm: HubSpotCrm) -> AsyncIterator[str]:
    """Serve ``crm`` on a free local port for the block; yields its base URL."""
    runner = web.AppRunner(crm.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def ago(now: datetime, **delta: float) -> datetime:
    return now - timedelta(**delta)
