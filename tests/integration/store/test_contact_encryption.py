"""Sensitive contact fields at rest, on SQLite and PostgreSQL: the raw tables hold no email or
phone number, and contacts are still found by email (API filter, identify, alias, merge)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from campaignflow.api.app import create_app
from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.events import Event, EventType
from campaignflow.engine.runtime import Engine
from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.envelope import KeyRing
from campaignflow.store.contact_sealing import rewrap_contacts, seal_plaintext_contacts
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.tables import contact_identities, contacts, executions
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import TEST_BLIND_INDEX_KEY, TEST_KEY, contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings

WS = "acme"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
EMAIL = "Grace.Hopper@Example.org"
PHONE = "+1 202 555 0147"
SEEDED = (EMAIL.lower(), "grace.hopper", PHONE, "555 0147")


@pytest.fixture
def store(database: Database) -> ContactStore:
    return ContactStore(database, contact_cipher())


@pytest.fixture
async def api(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    engine = Engine.on(database, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    async with serving(app, bearer(TOKEN)) as client:
        yield client
    await engine.wakeup.aclose()


def event(kind: EventType, second: int, **fields: Any) -> Event:
    return Event(
        message_id=f"m-{kind}-{second}",
        type=kind,
        timestamp=T0 + timedelta(seconds=second),
        received_at=T0,
        workspace_id=fields.pop("workspace_id", WS),
        **fields,
    )


async def resolve(database: Database, store: ContactStore, *events: Event) -> list[ContactRecord]:
    async with database.transaction() as connection:
        return await store.resolve_events(connection, events, NOW)


async def raw_text(database: Database) -> str:
    """Every row of the tables that hold contacts, as text (what a stolen dump shows)."""
    async with database.read() as connection:
        rows = [
            row
            for table in (contacts, contact_identities, executions)
            for row in (await connection.execute(select(table))).all()
        ]
    return repr(rows).lower()


def assert_nothing_seeded_in(text: str) -> None:
    for seeded in SEEDED:
        assert seeded.lower() not in text


async def test_contacts_made_through_the_api_store_no_email_or_phone(
    database: Database, api: httpx.AsyncClient
) -> None:
    body = {"userId": "u1", "email": EMAIL, "traits": {"Phone": PHONE, "plan": "pro"}}
    created = (await api.post("/api/v1/contacts", json=body)).json()
    assert_nothing_seeded_in(await raw_text(database))

    fetched = (await api.get(f"/api/v1/contacts/{created['id']}")).json()
    assert fetched["email"] == EMAIL.lower()
    assert fetched["traits"] == {"Phone": PHONE, "plan": "pro"}
    found = (await api.get("/api/v1/contacts", params={"email": EMAIL.upper()})).json()
    assert [item["id"] for item in found["items"]] == [created["id"]]
    taken = await api.post("/api/v1/contacts", json={"email": EMAIL})
    assert taken.status_code == 409

    changed = await api.patch(f"/api/v1/contacts/{created['id']}", json={"email": "g@example.org"})
    assert changed.json()["email"] == "g@example.org"
    assert changed.json()["traits"]["Phone"] == PHONE
    old = (await api.get("/api/v1/contacts", params={"email": EMAIL})).json()
    assert old["items"] == []


async def test_contacts_made_by_the_router_store_no_email_or_phone(
    database: Database, store: ContactStore
) -> None:
    traits = {"email": EMAIL, "phone": PHONE, "name": "Grace"}
    (first,) = await resolve(
        database, store, event("identify", 1, anonymous_id="a1", traits=traits)
    )
    assert_nothing_seeded_in(await raw_text(database))
    assert first.email == EMAIL.lower()
    assert first.traits == traits

    # The same address, spelled otherwise, from another device: the same person.
    (again,) = await resolve(
        database, store, event("identify", 2, anonymous_id="a2", traits={"email": EMAIL.upper()})
    )
    assert again.id == first.id
    assert (await store.get(WS, first.id)).traits["phone"] == PHONE
    assert [c.id for c in await store.list(WS, email=EMAIL.lower())] == [first.id]


async def test_alias_and_merge_keep_the_sealed_fields(
    database: Database, store: ContactStore
) -> None:
    (known,) = await resolve(
        database, store, event("identify", 1, user_id="u1", traits={"email": EMAIL})
    )
    (anonymous,) = await resolve(
        database, store, event("identify", 2, anonymous_id="a1", traits={"phone": PHONE})
    )
    (merged,) = await resolve(database, store, event("alias", 3, user_id="u1", previous_id="a1"))
    assert merged.id == known.id
    survivor = await store.get(WS, known.id)
    assert (survivor.email, survivor.traits["phone"]) == (EMAIL.lower(), PHONE)
    assert [c.id for c in await store.list(WS, email=EMAIL.lower())] == [known.id]
    assert [c.id for c in await store.list(WS, anonymous_id="a1")] == [known.id]
    assert anonymous.id != known.id
    assert_nothing_seeded_in(await raw_text(database))


async def test_contacts_written_before_sealing_are_sealed_at_start_up(
    database: Database, store: ContactStore
) -> None:
    """What migration 0006 leaves: plaintext columns and an address identity, marked."""
    legacy = {
        "workspace_id": WS, "id": "c-old", "user_id": None, "email": EMAIL.lower(),
        "timezone": None, "traits": {"phone": PHONE, "plan": "pro"}, "created_at": T0,
        "updated_at": T0, "last_seen_at": None, "needs_sealing": True,
    }  # fmt: skip
    identity = {
        "workspace_id": WS, "kind": "email", "value": EMAIL.lower(), "contact_id": "c-old",
        "created_at": T0,
    }  # fmt: skip
    async with database.transaction() as connection:
        await connection.execute(insert(contacts), [legacy])
        await connection.execute(insert(contact_identities), [identity])
    before = await store.get(WS, "c-old")  # readable before sealing, as it was

    assert await seal_plaintext_contacts(database, contact_cipher(), batch_size=1) == 1
    assert await seal_plaintext_contacts(database, contact_cipher()) == 0
    assert_nothing_seeded_in(await raw_text(database))
    assert await store.get(WS, "c-old") == before
    assert [c.id for c in await store.list(WS, email=EMAIL.lower())] == ["c-old"]


async def test_rotation_rewraps_sealed_contacts(database: Database, store: ContactStore) -> None:
    (contact,) = await resolve(
        database, store, event("identify", 1, user_id="u1", traits={"email": EMAIL})
    )
    ring = KeyRing({"test-key": TEST_KEY, "new-key": bytes(32)}, "new-key")
    assert await rewrap_contacts(database, ring, batch_size=1) == 1
    assert await rewrap_contacts(database, ring) == 0

    rotated = ContactStore(database, ContactCipher(ring, BlindIndex(TEST_BLIND_INDEX_KEY), []))
    assert (await rotated.get(WS, contact.id)).email == EMAIL.lower()
    async with database.read() as connection:
        key_ids = (await connection.execute(select(contacts.c.key_id))).scalars().all()
    assert key_ids == ["new-key"]
