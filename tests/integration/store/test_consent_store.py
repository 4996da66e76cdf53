"""The consent store on SQLite and PostgreSQL: the API's changes under the row's lock, the
router's batch in its transaction, the history, and the identity writers leaving it alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select

from campaignflow.domain.consent import ConsentChange, ConsentProof, granted_purposes
from campaignflow.domain.contacts import ContactChange, ContactRecord, NewContact
from campaignflow.domain.events import Event
from campaignflow.errors import NotFound
from campaignflow.store.consents import ConsentStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.tables import consent_records
from tests._support.ciphers import contact_cipher

WS = "acme"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def contacts(database: Database) -> ContactStore:
    return ContactStore(database, contact_cipher())


@pytest.fixture
def consents(database: Database) -> ConsentStore:
    return ConsentStore(database)


def said(
    purpose: str,
    granted: bool,
    minutes: int = 0,
    *,
    source: str = "api",
    explicit: bool = True,
    proof: ConsentProof | None = None,
) -> ConsentChange:
    return ConsentChange(
        purpose,
        granted,
        source,
        T0 + timedelta(minutes=minutes),
        proof or ConsentProof(api_client="api_key:k1"),
        explicit=explicit,
    )


async def new_contact(contacts: ContactStore, user_id: str = "u1", ws: str = WS) -> ContactRecord:
    return await contacts.create(NewContact(ws, user_id=user_id, email=f"{user_id}@x.io"), T0)


async def stored_records(database: Database) -> int:
    async with database.read() as connection:
        return int(
            (
                await connection.execute(select(func.count()).select_from(consent_records))
            ).scalar_one()
        )


@contextmanager
def statement_counter(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sqlalchemy_event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sqlalchemy_event.remove(database.engine.sync_engine, "before_cursor_execute", count)


# --------------------------------------------------------------------------- the API's path


async def test_a_change_sets_the_state_and_keeps_its_proof(
    contacts: ContactStore, consents: ConsentStore
) -> None:
    contact = await new_contact(contacts)
    proof = ConsentProof(ip="203.0.113.9", user_agent="UA", form="signup", api_client="api_key:k1")

    state = await consents.record(
        WS,
        contact.id,
        [said("email_marketing", True, proof=proof), said("sms_marketing", False)],
        NOW,
    )

    assert state == {
        "email_marketing": {"granted": True, "at": "2026-03-01T09:00:00Z", "source": "api"},
        "sms_marketing": {"granted": False, "at": "2026-03-01T09:00:00Z", "source": "api"},
    }
    assert await consents.current(WS, contact.id) == state
    history = await consents.history(WS, contact.id)
    assert [(r.purpose, r.granted) for r in history] == [
        ("sms_marketing", False),
        ("email_marketing", True),
    ]  # newest recorded first
    assert history[1].proof == {
        "ip": "203.0.113.9",
        "userAgent": "UA",
        "form": "signup",
        "apiClient": "api_key:k1",
    }
    assert (history[1].occurred_at, history[1].recorded_at) == (T0, NOW)
    reread = await contacts.get(WS, contact.id)
    assert granted_purposes(reread.consent) == {"email_marketing": True, "sms_marketing": False}


async def test_an_unknown_contact_is_not_found_and_nothing_is_recorded(
    database: Database, contacts: ContactStore, consents: ConsentStore
) -> None:
    elsewhere = await new_contact(contacts, ws="other")

    with pytest.raises(NotFound):
        await consents.record(WS, "nobody", [said("email_marketing", True)], NOW)
    with pytest.raises(NotFound):  # a contact of another workspace is unknown here
        await consents.record(WS, elsewhere.id, [said("email_marketing", True)], NOW)
    with pytest.raises(NotFound):
        await consents.current(WS, elsewhere.id)
    with pytest.raises(NotFound):
        await consents.history(WS, elsewhere.id)
    assert await stored_records(database) == 0


async def test_a_late_statement_is_history_only(
    contacts: ContactStore, consents: ConsentStore
) -> None:
    contact = await new_contact(contacts)
    await consents.record(WS, contact.id, [said("email_marketing", False, minutes=10)], NOW)

    state = await consents.record(WS, contact.id, [said("email_marketing", True, minutes=5)], NOW)

    assert state["email_marketing"]["granted"] is False
    assert [r.granted for r in await consents.history(WS, contact.id)] == [True, False]


async def test_two_concurrent_changes_both_count_and_the_later_statement_wins(
    contacts: ContactStore, consents: ConsentStore
) -> None:
    contact = await new_contact(contacts)

    for _ in range(3):
        await asyncio.gather(
            consents.record(WS, contact.id, [said("email_marketing", True, minutes=2)], NOW),
            consents.record(WS, contact.id, [said("email_marketing", False, minutes=1)], NOW),
        )

    history = await consents.history(WS, contact.id)
    assert sorted(r.granted for r in history) == [False] * 3 + [True] * 3
    state = await consents.current(WS, contact.id)
    assert state["email_marketing"] == {
        "granted": True,
        "at": "2026-03-01T09:02:00Z",
        "source": "api",
    }


async def test_the_history_pages_newest_first_and_filters(
    contacts: ContactStore, consents: ConsentStore
) -> None:
    contact = await new_contact(contacts)
    for minute in range(5):
        changes = [said("email_marketing", minute % 2 == 0, minute), said("tracking", True, minute)]
        await consents.record(WS, contact.id, changes, NOW)

    first = await consents.history(WS, contact.id, purpose="email_marketing", limit=3)
    rest = await consents.history(WS, contact.id, purpose="email_marketing", before=first[-1].id)
    early = await consents.history(
        WS, contact.id, occurred_before=T0 + timedelta(minutes=1), limit=50
    )

    minutes = [int((r.occurred_at - T0).total_seconds() // 60) for r in first + rest]
    assert minutes == [4, 3, 2, 1, 0]
    assert {r.purpose for r in first + rest} == {"email_marketing"}
    assert len(await consents.history(WS, contact.id)) == 10
    assert [(r.purpose, r.occurred_at) for r in early] == [
        ("tracking", T0),
        ("email_marketing", T0),
    ]


# --------------------------------------------------------------------------- the identity writers


async def test_the_contact_writers_never_overwrite_consent(
    database: Database, contacts: ContactStore, consents: ConsentStore
) -> None:
    contact = await new_contact(contacts)
    await consents.record(WS, contact.id, [said("email_marketing", True)], NOW)
    stale = await contacts.get(WS, contact.id)
    await consents.record(WS, contact.id, [said("email_marketing", False, minutes=1)], NOW)

    # Writers holding a record read before the withdrawal write their own columns only.
    await contacts.update(WS, contact.id, ContactChange(traits={"plan": "pro"}), NOW)
    identify = Event(
        workspace_id=WS,
        message_id="m-1",
        type="identify",
        user_id="u1",
        traits={"name": "Ada"},
        timestamp=NOW,
        received_at=NOW,
    )
    async with database.transaction() as connection:
        (resolved,) = await contacts.resolve_events(connection, [identify], NOW)

    assert granted_purposes(stale.consent) == {"email_marketing": True}
    assert granted_purposes(resolved.consent) == {"email_marketing": False}
    after = await contacts.get(WS, contact.id)
    assert after.traits == {"plan": "pro", "name": "Ada"}
    assert granted_purposes(after.consent) == {"email_marketing": False}
    assert (await contacts.list(WS))[0].consent == after.consent


# --------------------------------------------------------------------------- the router's batch


async def test_a_batch_applies_in_order_and_answers_each_entrys_consent(
    database: Database, contacts: ContactStore, consents: ConsentStore
) -> None:
    ada, bob, cy = [await new_contact(contacts, user) for user in ("ada", "bob", "cy")]
    await consents.record(WS, bob.id, [said("email_marketing", True)], NOW)
    bob = await contacts.get(WS, bob.id)
    event = {"source": "event", "explicit": False}

    async with database.transaction() as connection:
        records = await ConsentStore.record_in(
            connection,
            [
                (ada, [said("email_marketing", True, 1, **event)]),
                (bob, [said("email_marketing", True, 1, **event)]),  # a repeat: not recorded
                (cy, []),
                (ada, [said("email_marketing", False, 2, **event)]),
                (ada, []),
            ],
            NOW,
        )

    assert [granted_purposes(r.consent) for r in records] == [
        {"email_marketing": True},
        {"email_marketing": True},
        {},
        {"email_marketing": False},
        {"email_marketing": False},
    ]
    assert records[2] is cy
    assert [r.granted for r in await consents.history(WS, ada.id)] == [False, True]
    assert len(await consents.history(WS, bob.id)) == 1  # the API's grant only
    assert (await consents.current(WS, bob.id))["email_marketing"]["at"] == "2026-03-01T09:01:00Z"
    assert (await consents.current(WS, ada.id))["email_marketing"]["granted"] is False
    assert await consents.current(WS, cy.id) == {}


async def test_a_batch_takes_one_update_and_one_insert_whatever_its_size(
    database: Database, contacts: ContactStore
) -> None:
    people = [await new_contact(contacts, f"u{n}") for n in range(40)]

    async def run(batch: list[ContactRecord]) -> int:
        entries = [(p, [said("tracking", True, n, source="event")]) for n, p in enumerate(batch)]
        with statement_counter(database) as statements:
            async with database.transaction() as connection:
                await ConsentStore.record_in(connection, entries, NOW)
        return len([s for s in statements if "consent" in s.lower()])

    assert await run(people[:3]) == await run(people[3:]) == 2
    assert await stored_records(database) == 40


async def test_a_batch_without_consent_costs_no_statement(
    database: Database, contacts: ContactStore
) -> None:
    ada = await new_contact(contacts)

    with statement_counter(database) as statements:
        async with database.transaction() as connection:
            records = await ConsentStore.record_in(connection, [(ada, []), (ada, [])], NOW)

    assert records == [ada, ada]
    assert not [s for s in statements if "consent" in s.lower()]


async def test_a_merge_keeps_the_later_consent_per_purpose_and_moves_the_history(
    database: Database,
) -> None:
    """A banner accepted while anonymous survives the identify that merges the visitor into
    the known contact; the history (with its proof) moves too, so erasure and export find it."""
    contacts = ContactStore(database, contact_cipher())
    consents = ConsentStore(database)
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    async def resolve(*events: Event) -> list[ContactRecord]:
        async with database.transaction() as connection:
            return await contacts.resolve_events(connection, events, at)

    def seen(message: str, **fields: Any) -> Event:
        return Event(
            workspace_id="ws", message_id=message, type="identify", timestamp=at,
            received_at=at, **fields,
        )  # fmt: skip

    (visitor,) = await resolve(seen("m1", anonymous_id="a1"))
    (known,) = await resolve(seen("m2", user_id="u1"))
    banner = ConsentChange("tracking", True, "api", at + timedelta(minutes=1), explicit=True)
    older = ConsentChange("email_marketing", True, "api", at, explicit=True)
    newer = ConsentChange("email_marketing", False, "api", at + timedelta(minutes=2))
    await consents.record("ws", visitor.id, [banner, older], at)
    await consents.record("ws", known.id, [newer], at)

    (merged,) = await resolve(seen("m3", user_id="u1", anonymous_id="a1"))

    assert merged.id == known.id
    assert merged.to_variables()["consent"] == {"tracking": True, "email_marketing": False}
    stored = await consents.current("ws", known.id)
    assert {purpose: entry["granted"] for purpose, entry in stored.items()} == {
        "tracking": True,
        "email_marketing": False,
    }
    async with database.read() as connection:
        owners = {row[0] for row in await connection.execute(select(consent_records.c.contact_id))}
    assert owners == {known.id}
