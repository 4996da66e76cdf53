"""Sealed execution rows and event payloads, on SQLite and PostgreSQL: after identify events,
an ``$identify``-started execution and an API ``execute``, the raw rows of the event log, the
executions and the contacts hold no seeded email or phone number, while templates still see
them and the event log's payloads open back exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text

from campaignflow.api.app import create_app
from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.runtime import Engine
from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.envelope import KeyRing
from campaignflow.security.sealed_records import open_event_payload
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.events import event_payload
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.record_sealing import rewrap_records, seal_plaintext_records
from campaignflow.store.tables import contact_identities, contacts, events, executions
from campaignflow.store.workflows import WorkflowStore
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import TEST_BLIND_INDEX_KEY, TEST_KEY, contact_cipher
from tests.integration.api.conftest import make_settings, token_for
from tests.integration.triggers.conftest import START, WORKSPACE, Routing, event, journey

EMAIL = "Grace.Hopper@Example.org"
PHONE = "+1 202 555 0147"
API_EMAIL = "ada.lovelace@example.net"
API_PHONE = "+44 20 7946 0958"
SEEDED = (EMAIL, PHONE, API_EMAIL, API_PHONE)
TABLES = (events, executions, contacts, contact_identities)

GREETING = [
    {
        "id": "greet",
        "type": "action",
        # Step outputs are workflow data, stored as rendered: this one proves the template saw
        # the address without storing it verbatim, so the scan below stays meaningful.
        "config": {
            "action": "log",
            "params": {"message": "to {{ contact.email | replace: '@', ' at ' }}"},
        },
    }
]


@pytest.fixture
async def routing(database: Database) -> AsyncIterator[Routing]:
    """The router and a worker on one engine, as in the trigger tests."""
    clock = ManualClock(START)
    engine = Engine.on(
        database, clock=clock, wakeup=InProcessWakeup(), contact_cipher=contact_cipher()
    )
    await engine.workflows.ensure_workspace(WORKSPACE, "Acme")
    worker = engine.worker(ExecutorRegistry(), WorkerOptions(batch_size=50, lanes=1))
    yield Routing(engine, clock, engine.router("test"), worker, WorkflowService(engine.workflows))
    await engine.bus.close()


@pytest.fixture
async def api(database: Database, routing: Routing) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(WORKSPACE), database=database, engine=routing.engine)
    async with serving(app, bearer(token_for(WORKSPACE))) as client:
        yield client


async def raw_rows(database: Database) -> str:
    """Every row of the tables that hold personal data, as the database stores it (PostgreSQL:
    each row cast to text, as a dump shows it; SQLite: the rows' repr)."""
    async with database.read() as connection:
        if database.dialect == "postgresql":
            parts = [
                value
                for table in TABLES
                for value in (
                    await connection.execute(text(f"SELECT t::text FROM {table.name} t"))
                ).scalars()
            ]
        else:
            parts = [
                repr(row) for table in TABLES for row in await connection.execute(select(table))
            ]
    return "\n".join(parts).lower()


def assert_nothing_seeded_in(dump: str) -> None:
    for seeded in SEEDED:
        assert seeded.lower() not in dump


async def test_nothing_seeded_is_stored_in_the_clear_yet_templates_see_it(
    database: Database, routing: Routing, api: httpx.AsyncClient
) -> None:
    started = await routing.deploy(
        journey("welcome", [{"type": "behavior", "event": "$identify"}], GREETING)
    )
    await routing.deploy(journey("direct", [{"type": "api"}], GREETING))
    traits = {"email": EMAIL, "Phone": PHONE, "plan": "pro"}
    identify = event(
        "$identify", type="identify", traits=traits, message_id="m-identify", user="u-grace"
    )
    outcome = await routing.send(identify)
    assert outcome.started == 1
    body = {
        "subject": "u-ada",
        "input": {"note": "hello"},
        "contact": {"email": API_EMAIL, "phone": API_PHONE},
    }
    response = await api.post("/api/v1/workflows/direct/execute", json=body)
    assert response.status_code == 201, response.text
    await routing.drain()

    assert_nothing_seeded_in(await raw_rows(database))
    by_workflow = {record.workflow_id: record for record in await routing.executions()}
    assert set(by_workflow) == {started, "direct"}
    for workflow_id, address in ((started, EMAIL), ("direct", API_EMAIL)):
        record = by_workflow[workflow_id]
        assert record.status == "completed"
        (step,) = await routing.engine.executions.steps(WORKSPACE, record.id)
        assert step.output["message"] == "to " + address.lower().replace("@", " at ")
    welcome = by_workflow[started]
    assert welcome.contact["email"] == EMAIL.lower()  # the contact's normalised address
    assert welcome.contact["Phone"] == PHONE
    assert welcome.state["event"]["traits"] == traits
    assert by_workflow["direct"].contact == {"id": "u-ada", "email": API_EMAIL, "phone": API_PHONE}

    fetched = (await api.get(f"/api/v1/executions/{by_workflow['direct'].id}")).json()
    assert fetched["input"] == {"note": "hello"}


async def test_a_stored_event_payload_opens_back_exactly(
    database: Database, routing: Routing
) -> None:
    sent = event(
        "signed_up",
        properties={"EMAIL": EMAIL, "plan": "pro"},
        traits={"phone": PHONE, "name": "Grace"},
        message_id="m-signup",
    )
    plain = event("viewed", properties={"page": "/"}, message_id="m-plain")
    await routing.send(sent, plain)
    async with database.read() as connection:
        rows = {
            row.message_id: row
            for row in await connection.execute(
                select(events.c.message_id, events.c.payload, events.c.sealed)
            )
        }
    assert rows["m-plain"].sealed is None
    assert rows["m-plain"].payload == event_payload(plain)
    stored = rows["m-signup"]
    assert stored.payload["properties"] == {"plan": "pro"}
    assert stored.payload["traits"] == {"name": "Grace"}
    opened = open_event_payload(
        contact_cipher(), WORKSPACE, "m-signup", stored.payload, stored.sealed
    )
    assert opened == event_payload(sent)


async def test_rows_written_before_sealing_are_sealed_at_start_up(database: Database) -> None:
    """What migration 0007 leaves: plaintext rows, marked."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    payload = {
        "properties": {},
        "traits": {"email": EMAIL},
        "context": {"traits": {"phone": PHONE}},
    }
    legacy_event = {
        "workspace_id": WORKSPACE, "message_id": "m-old", "type": "identify", "name": None,
        "contact_id": None, "user_id": "u1", "anonymous_id": None, "payload": payload,
        "timestamp": now, "received_at": now, "needs_sealing": True,
    }  # fmt: skip
    async with database.transaction() as connection:
        await connection.execute(insert(events), [legacy_event])
    store = ExecutionStore(database, contact_cipher())
    legacy_id = await _legacy_execution(database, store, now)
    before = await store.get(WORKSPACE, legacy_id)

    assert await seal_plaintext_records(database, contact_cipher(), batch_size=1) == 2
    assert await seal_plaintext_records(database, contact_cipher()) == 0
    assert_nothing_seeded_in(await raw_rows(database))
    after = await store.get(WORKSPACE, legacy_id)
    assert (after.contact, after.input, after.state["event"]) == (
        before.contact,
        before.input,
        before.state["event"],
    )
    assert after.revision == before.revision + 1  # a worker holding it reloads it
    async with database.read() as connection:
        row = (await connection.execute(select(events.c.payload, events.c.sealed))).one()
    assert open_event_payload(contact_cipher(), WORKSPACE, "m-old", *row) == payload


async def test_rotation_rewraps_sealed_executions_and_events(
    database: Database, routing: Routing
) -> None:
    await routing.deploy(journey("welcome", [{"type": "behavior", "event": "$identify"}]))
    await routing.send(
        event("$identify", type="identify", traits={"email": EMAIL}, message_id="m-1")
    )
    ring = KeyRing({"test-key": TEST_KEY, "new-key": bytes(32)}, "new-key")
    assert await rewrap_records(database, ring, batch_size=1) == (1, 1)
    assert await rewrap_records(database, ring) == (0, 0)

    rotated = ContactCipher(ring, BlindIndex(TEST_BLIND_INDEX_KEY), ["email", "phone"])
    (record,) = await ExecutionStore(database, rotated).list(WORKSPACE)
    assert record.state["event"]["traits"]["email"] == EMAIL
    async with database.read() as connection:
        for table in (executions, events):
            key_ids = (await connection.execute(select(table.c.key_id))).scalars().all()
            assert key_ids == ["new-key"]


async def _legacy_execution(database: Database, store: ExecutionStore, now: datetime) -> str:
    """An execution row as written before 0007 (plaintext contact, input and event)."""
    workflows = WorkflowStore(database)
    await workflows.ensure_workspace(WORKSPACE, "Acme")
    service = WorkflowService(workflows)
    created = await service.create(WORKSPACE, journey("legacy", [{"type": "api"}]))
    row: dict[str, Any] = {
        "workspace_id": WORKSPACE, "id": "x-old", "workflow_id": created.id,
        "workflow_version": 1, "subject_id": "c1", "status": "pending", "trigger": "api",
        "input": {"email": EMAIL}, "contact": {"id": "c1", "phone": PHONE},
        "state": {"live": 1, "seq": 0, "event": {"messageId": "m-o", "traits": {"email": EMAIL}}},
        "revision": 0, "idempotency_key": None, "created_at": now, "updated_at": now,
        "needs_sealing": True,
    }  # fmt: skip
    async with database.transaction() as connection:
        await connection.execute(insert(executions), [row])
    return "x-old"
