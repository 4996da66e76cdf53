"""``GET /api/v1/contacts/{id}/export``: everything held about a person, streamed as one JSON
document, through the real app, router and worker on both dialects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, select, update

from campaignflow.api.app import create_app
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.integrations.webhooks.events import WebhookEvent, bus_event
from campaignflow.security.rbac import Role
from campaignflow.services.contact_export import ContactExportService, ExportStores
from campaignflow.store import tables as t
from campaignflow.store.contact_export import RENDERINGS, ContactExportStore, Place, sections
from campaignflow.store.database import Database
from campaignflow.store.processing_log import ProcessingLogStore
from campaignflow.store.suppressions import SuppressionStore
from campaignflow.store.tables import consent_records, contacts, events
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, ClientFactory, make_settings, workflow
from tests.integration.api.test_authorization import make_key

ADA_PHONE = "+44 20 7946 0001"
ORDER_FLOW = workflow(
    "orders",
    triggers=[{"type": "behavior", "event": "order_placed"}],
    entry={"reentry": "always", "allowConcurrent": True},
)


@dataclass
class Site:
    http: httpx.AsyncClient
    worker: Worker
    database: Database
    engine: Engine

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201, 202), (path, response.text)
        return response.json()

    async def person(self, name: str, **traits: Any) -> str:
        body = {"email": f"{name}@example.com", "userId": f"u-{name}", "traits": traits}
        created: dict[str, Any] = await self.ok("POST", "/api/v1/contacts", json=body)
        return str(created["id"])

    async def event(self, name: str, **properties: Any) -> None:
        body = {"type": "track", "event": "order_placed", "userId": f"u-{name}"}
        await self.ok("POST", "/api/v1/events", json={**body, "properties": properties})

    async def settle(self, executions: int) -> None:
        """Wait for the router to start ``executions``, then run them to their end."""
        for _ in range(200):
            page = await self.ok("GET", "/api/v1/executions", params={"workflow": "orders"})
            if len(page["items"]) >= executions:
                break
            await asyncio.sleep(0.02)
        while await self.worker.run_once():
            pass

    async def export(self, contact_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/contacts/{contact_id}/export")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = orjson.loads(response.content)
        return document


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    engine = Engine.on(database, clock=SystemClock(), contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    try:
        async with serving(app, bearer(TOKEN)) as http:
            site = Site(http, engine.worker(ExecutorRegistry()), database, engine)
            await site.ok("POST", "/api/v1/workflows", json=ORDER_FLOW)
            await site.ok("POST", "/api/v1/workflows/orders/activate")
            yield site
    finally:
        await engine.wakeup.aclose()


async def give_consent(database: Database, contact_id: str) -> None:
    """Consent as the consent store writes it (its current state and its history)."""
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    current = {"email_marketing": {"granted": True, "at": at.isoformat(), "source": "api"}}
    async with database.transaction() as connection:
        await connection.execute(
            update(contacts)
            .where(contacts.c.workspace_id == "default", contacts.c.id == contact_id)
            .values(consent=current)
        )
        await connection.execute(
            insert(consent_records),
            [
                {
                    "workspace_id": "default",
                    "id": f"01JCONSENT{n}",
                    "contact_id": contact_id,
                    "purpose": "email_marketing",
                    "granted": granted,
                    "source": "api",
                    "proof": {"ip": "203.0.113.7", "userAgent": "Firefox", "form": "signup"},
                    "occurred_at": at,
                    "recorded_at": at,
                }
                for n, granted in enumerate((False, True))
            ],
        )


async def test_the_export_holds_everything_about_the_person_and_nothing_of_another(
    site: Site,
) -> None:
    ada = await site.person("ada", phone=ADA_PHONE, plan="pro")
    bob = await site.person("bob", phone="+1 555 0100", plan="free")
    await site.event("ada", total=42, phone=ADA_PHONE)
    await site.event("bob", total=7, secretWord="bob-only")
    await site.settle(2)
    await give_consent(site.database, ada)
    await site.ok("POST", "/api/v1/suppressions", json={"email": "ada@example.com"})

    response = await site.http.get(f"/api/v1/contacts/{ada}/export")
    document = orjson.loads(response.content)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert ada in response.headers["content-disposition"]
    # the contact, its sealed fields opened, and the ways it is known
    assert document["contact"]["email"] == "ada@example.com"
    assert document["contact"]["traits"] == {"phone": ADA_PHONE, "plan": "pro"}
    assert document["identities"] == {
        "email": "ada@example.com",
        "userId": "u-ada",
        "anonymousIds": [],
    }
    # consent now and every change, with its proof
    assert document["consent"]["current"]["email_marketing"]["granted"] is True
    history = document["consent"]["history"]
    assert [record["granted"] for record in history] == [False, True]
    assert history[0]["proof"]["ip"] == "203.0.113.7"
    # the event, its sealed property opened
    (event,) = document["events"]
    assert event["properties"] == {"total": 42, "phone": ADA_PHONE}
    # the execution the event started, its state and steps
    (execution,) = document["executions"]
    assert execution["status"] == "completed"
    assert execution["state"]["event"]["properties"]["phone"] == ADA_PHONE
    assert execution["contact"]["email"] == "ada@example.com"
    assert [step["nodeId"] for step in execution["steps"]] == ["greet", "done"]
    assert execution["deadLetters"] == []
    assert document["suppression"]["suppressed"] is True
    assert document["suppression"]["reason"] == "manual"
    assert document["crmLinks"] == []
    # the export lists itself as processing
    (logged,) = document["processingLog"]
    assert (logged["activity"], logged["legalBasis"], logged["recipient"]) == (
        "export",
        "legal_obligation",
        "data subject",
    )
    # nothing of Bob
    text = response.text
    assert bob not in text
    assert "bob@example.com" not in text
    assert "bob-only" not in text
    assert "+1 555 0100" not in text


async def test_executions_started_by_api_for_one_of_the_persons_identities_are_included(
    site: Site,
) -> None:
    ada = await site.person("ada")
    await site.person("bob")
    for subject in (ada, "u-ada", "ada@example.com", "u-bob"):
        await site.ok("POST", "/api/v1/workflows/orders/execute", json={"subject": subject})

    document = await site.export(ada)

    assert len(document["executions"]) == 3
    assert "u-bob" not in orjson.dumps(document).decode()


async def test_the_sealed_values_are_not_in_the_clear_at_rest(site: Site) -> None:
    """The export opens them; the event log itself holds only the sealed form."""
    await site.person("ada")
    await site.event("ada", phone=ADA_PHONE)
    await site.settle(1)

    async with site.database.read() as connection:
        payloads = (await connection.execute(select(events.c.payload))).scalars().all()

    assert ADA_PHONE not in str(payloads)


async def test_the_export_is_recorded_in_the_processing_log(site: Site) -> None:
    ada = await site.person("ada")
    await site.export(ada)
    await site.export(ada)

    page = await site.ok("GET", f"/api/v1/contacts/{ada}/processing-log")

    assert [item["activity"] for item in page["items"]] == ["export", "export"]
    assert page["items"][0]["details"] == {
        "requestedBy": page["items"][0]["details"]["requestedBy"]
    }


async def test_a_long_history_is_streamed_in_pages_into_one_valid_document(
    site: Site,
) -> None:
    ada = await site.person("ada")
    for total in range(7):
        await site.event("ada", total=total, phone=ADA_PHONE)
    await site.settle(7)
    cipher = site.engine.contacts.cipher
    stores = ExportStores(
        contacts=site.engine.contacts,
        reads=ContactExportStore(site.database, cipher),
        suppressions=SuppressionStore(site.database, cipher),
        processing=ProcessingLogStore(site.database),
    )
    service = ContactExportService(stores, lambda: datetime.now(UTC), page_size=2)

    export = await service.export("default", ada)
    chunks = [chunk async for chunk in export.chunks()]
    document = orjson.loads(b"".join(chunks))

    assert len(chunks) > 10  # written piece by piece, not built whole
    assert [e["properties"]["total"] for e in document["events"]] == list(range(7))
    assert len(document["executions"]) == 7
    assert all(len(x["steps"]) == 2 for x in document["executions"])


async def test_an_unknown_contact_and_another_workspaces_contact_are_404(
    app_client: ClientFactory,
) -> None:
    async with app_client(make_settings("acme")) as acme:
        created = await acme.post("/api/v1/contacts", json={"email": "ada@example.com"})
        ada = created.json()["id"]
        async with app_client(make_settings("globex")) as globex:
            theirs = await globex.get(f"/api/v1/contacts/{ada}/export")
        unknown = await acme.get("/api/v1/contacts/no-such-contact/export")
        own = await acme.get(f"/api/v1/contacts/{ada}/export")

    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert "ada@example.com" not in theirs.text
    assert unknown.status_code == 404
    assert own.status_code == 200


async def test_only_admins_and_up_may_export(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    url = f"/api/v1/contacts/{created.json()['id']}/export"
    statuses = {}
    for role in (Role.VIEWER, Role.EDITOR, Role.OPERATOR, Role.ADMIN):
        key = await make_key(client, role)
        response = await client.get(url, headers={"Authorization": f"Bearer {key}"})
        statuses[role.value] = response.status_code

    assert statuses == {"viewer": 403, "editor": 403, "operator": 403, "admin": 200}


# ------------------------------------------------------------------ every personal table


async def crm_and_cap_rows(database: Database, ada: str, bob: str) -> None:
    """What the CRM sync and the frequency caps write about Ada and Bob; an event of Ada's
    userId left under a contact a merge absorbed; and rows of another workspace that carry
    Ada's contact id and userId (only the workspace tells them apart)."""
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    connection = {
        "id": "k-crm",
        "workspace_id": "default",
        "name": "crm",
        "provider": "hubspot",
        "settings": {},
        "created_at": at,
        "updated_at": at,
    }
    link = {
        "workspace_id": "default",
        "connection_id": "k-crm",
        "contact_id": ada,
        "remote_id": "501",
        "fields": {},
        "synced_at": at,
        "pending_push": False,
        "push_attempts": 0,
    }

    def error(workspace: str, record: str, direction: str, message: str) -> dict[str, Any]:
        return {
            "workspace_id": workspace,
            "run_id": f"run-{workspace}",
            "record": record,
            "direction": direction,
            "message": message,
            "retryable": False,
            "at": at,
        }

    def sent(workspace: str, send_id: str, contact_id: str) -> dict[str, Any]:
        return {
            "workspace_id": workspace,
            "send_id": send_id,
            "contact_id": contact_id,
            "channel": "email",
            "sent_at": at,
        }

    stray = {
        "workspace_id": "globex",
        "message_id": "globex-1",
        "type": "track",
        "name": "globex_only",
        "contact_id": ada,
        "user_id": "u-ada",
        "anonymous_id": None,
        "payload": {"properties": {}},
        "timestamp": at,
        "received_at": at,
    }
    async with database.transaction() as tx:
        await tx.execute(insert(t.connections), [connection])
        await tx.execute(insert(t.sync_links), [link])
        await tx.execute(
            insert(t.sync_run_errors),
            [
                error("default", ada, "push", "HubSpot refused ada@example.com"),
                error("default", "remote:501", "pull", "record 501 has no email"),
                error("default", bob, "push", "bob-only error"),
                error("globex", ada, "push", "globex-only error"),
            ],
        )
        await tx.execute(
            insert(t.frequency_ledger),
            [
                sent("default", "send-ada", ada),
                sent("default", "send-bob", bob),
                sent("globex", "send-globex", ada),
            ],
        )
        merged = {**stray, "workspace_id": "default", "message_id": "absorbed-1"}
        merged.update(name="merged_visit", contact_id="c-absorbed-by-ada")
        await tx.execute(insert(t.events), [stray, merged])


async def webhook_events(site: Site, *names: str) -> None:
    """A delivery report for each address, as SendGrid's webhook turns one into an event: the
    router finds the contact by the address."""
    at = datetime.now(UTC)
    reports = [
        bus_event(
            WebhookEvent(
                provider="sendgrid",
                event_id=f"ev-{name}",
                name="email.delivered",
                kind="delivered",
                occurred_at=at,
                raw_type="delivered",
                email=f"{name}@example.com",
                message_id=f"pm-{name}",
            ),
            workspace_id="default",
            connection_id="k-mail",
            received_at=at,
        )
        for name in names
    ]
    await site.engine.ingest().accept(reports)
    query = select(events.c.contact_id).where(events.c.message_id.like("sendgrid:%"))
    for _ in range(200):
        async with site.database.read() as connection:
            routed = (await connection.execute(query)).scalars().all()
        if len(routed) == len(names) and all(routed):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the webhook events were not routed")


async def test_crm_errors_cap_ledger_and_webhook_events_are_the_persons_alone(
    site: Site,
) -> None:
    ada = await site.person("ada")
    bob = await site.person("bob")
    await site.event("ada", total=42)
    await site.settle(1)
    await crm_and_cap_rows(site.database, ada, bob)
    await webhook_events(site, "ada", "bob")

    response = await site.http.get(f"/api/v1/contacts/{ada}/export")
    document = orjson.loads(response.content)

    errors = {(e["record"], e["direction"], e["message"]) for e in document["crmSyncErrors"]}
    assert errors == {
        (ada, "push", "HubSpot refused ada@example.com"),
        ("remote:501", "pull", "record 501 has no email"),  # their CRM record, by its link
    }
    assert document["frequencyLedger"] == [
        {"sendId": "send-ada", "channel": "email", "sentAt": "2026-03-02T10:00:00Z"}
    ]
    by_name = {event["name"]: event for event in document["events"]}
    assert set(by_name) == {"order_placed", "email.delivered", "merged_visit"}  # by her userId
    delivered = by_name["email.delivered"]
    assert delivered["messageId"] == "sendgrid:ev-ada"
    assert delivered["properties"]["providerMessageId"] == "pm-ada"
    assert document["crmLinks"] == [
        {
            "connectionId": "k-crm",
            "connection": "crm",
            "provider": "hubspot",
            "remoteId": "501",
            "syncedAt": "2026-03-02T10:00:00Z",
        }
    ]
    # every personal table has its section; every execution its child tables
    for entry in sections(Place.DOCUMENT):
        assert isinstance(document[RENDERINGS[entry.table.name].member], list)
    (execution,) = document["executions"]
    for entry in sections(Place.EXECUTION):
        assert isinstance(execution[RENDERINGS[entry.table.name].member], list)
    # nothing of Bob's, nothing of the other workspace's, no internal column
    text = response.text
    for foreign in (bob, "bob@example.com", "bob-only", "pm-bob", "send-bob", "globex"):
        assert foreign not in text
    for internal in ('"keyId"', '"sealed"', '"leaseOwner"', '"digest"', '"workspaceId":"globex'):
        assert internal not in text
