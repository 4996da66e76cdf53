"""The contact store on SQLite and PostgreSQL: the API's writes and the router's resolution."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, text

from campaignflow.domain.contacts import ContactChange, ContactRecord, NewContact
from campaignflow.domain.events import Event, EventType
from campaignflow.errors import AlreadyExists, NotFound
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.tables import contact_identities
from tests._support.ciphers import contact_cipher

WS = "acme"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def store(database: Database) -> ContactStore:
    return ContactStore(database, contact_cipher())


def event(kind: EventType, second: int = 0, **fields: Any) -> Event:
    fields.setdefault("workspace_id", WS)
    return Event(
        message_id=f"m-{kind}-{second}",
        type=kind,
        timestamp=T0 + timedelta(seconds=second),
        received_at=T0,
        **fields,
    )


async def resolve(database: Database, store: ContactStore, *events: Event) -> list[ContactRecord]:
    async with database.transaction() as connection:
        return await store.resolve_events(connection, events, NOW)


def digest(email: str) -> str:
    """What an email identity stores: the address's blind index, never the address."""
    return contact_cipher().email_digest(email)


async def identities(database: Database) -> dict[tuple[str, str, str], str]:
    async with database.read() as connection:
        rows = (await connection.execute(select(contact_identities))).all()
    return {(row.workspace_id, row.kind, row.value): row.contact_id for row in rows}


# --------------------------------------------------------------------------- the API's writes


async def test_create_then_get_and_a_taken_identity_is_refused(
    database: Database, store: ContactStore
) -> None:
    new = NewContact(WS, user_id="u1", anonymous_id="a1", email="ada@x.io", traits={"plan": "pro"})
    created = await store.create(new, NOW)

    assert await store.get(WS, created.id) == created
    assert await identities(database) == {
        (WS, "user_id", "u1"): created.id,
        (WS, "anonymous_id", "a1"): created.id,
        (WS, "email", digest("ada@x.io")): created.id,
    }
    with pytest.raises(AlreadyExists, match=r"email 'ada@x\.io'"):
        await store.create(NewContact(WS, user_id="u2", email="ada@x.io"), NOW)
    assert [c.id for c in await store.list(WS)] == [created.id], "nothing of it was written"
    assert (WS, "user_id", "u2") not in await identities(database)


async def test_update_replaces_the_identities_it_changes(
    database: Database, store: ContactStore
) -> None:
    first = await store.create(NewContact(WS, user_id="u1", email="old@x.io"), NOW)
    other = await store.create(NewContact(WS, user_id="u2"), NOW)

    change = ContactChange(email="new@x.io", timezone="Europe/Oslo", traits={"a": 1})
    updated = await store.update(WS, first.id, change, NOW + timedelta(hours=1))

    assert await store.get(WS, first.id) == updated
    assert (updated.email, updated.timezone, updated.traits) == (
        "new@x.io",
        "Europe/Oslo",
        {"a": 1},
    )
    owned = await identities(database)
    assert owned[(WS, "email", digest("new@x.io"))] == first.id
    assert (WS, "email", digest("old@x.io")) not in owned
    with pytest.raises(AlreadyExists):
        await store.update(WS, other.id, ContactChange(user_id="u1"), NOW)
    with pytest.raises(NotFound):
        await store.update("globex", first.id, ContactChange(traits={"x": 1}), NOW)


async def test_delete_frees_the_identities_for_a_new_contact(
    database: Database, store: ContactStore
) -> None:
    created = await store.create(NewContact(WS, user_id="u1", anonymous_id="a1"), NOW)

    with pytest.raises(NotFound):
        await store.delete("globex", created.id)
    await store.delete(WS, created.id)

    with pytest.raises(NotFound):
        await store.get(WS, created.id)
    assert await identities(database) == {}
    (again,) = await resolve(database, store, event("track", 1, user_id="u1"))
    assert again.id != created.id


async def test_list_filters_by_identity_and_pages_newest_first(store: ContactStore) -> None:
    made = [
        await store.create(NewContact(WS, user_id=f"u{n}", email=f"c{n}@x.io"), NOW)
        for n in range(5)
    ]
    await store.update(WS, made[1].id, ContactChange(email="moved@x.io"), NOW)

    assert [c.id for c in await store.list(WS, limit=2)] == [made[4].id, made[3].id]
    assert [c.id for c in await store.list(WS, before=made[3].id)] == [
        made[2].id, made[1].id, made[0].id,
    ]  # fmt: skip
    assert [c.id for c in await store.list(WS, email="moved@x.io")] == [made[1].id]
    assert await store.list(WS, email="c1@x.io") == []
    assert [c.id for c in await store.list(WS, user_id="u2")] == [made[2].id]
    assert await store.list(WS, user_id="u2", email="c3@x.io") == []
    assert await store.list("globex") == []


# --------------------------------------------------------------------------- resolving events


async def test_identify_then_track_in_one_batch_gives_the_track_the_identified_contact(
    database: Database, store: ContactStore
) -> None:
    identify = event(
        "identify", 1, user_id="u1", anonymous_id="a1",
        traits={"plan": "pro", "email": "Ada@X.io"}, context={"timezone": "Europe/Berlin"},
    )  # fmt: skip
    identified, tracked = await resolve(
        database, store, identify, event("track", 2, user_id="u1", name="Order Completed")
    )

    assert tracked.id == identified.id
    assert tracked.to_variables() == {
        "id": tracked.id, "userId": "u1", "email": "ada@x.io", "timezone": "Europe/Berlin",
        "plan": "pro", "consent": {},
    }  # fmt: skip
    assert await store.get(WS, tracked.id) == tracked
    assert tracked.last_seen_at == T0 + timedelta(seconds=2)
    assert set((await identities(database)).values()) == {tracked.id}
    assert len(await identities(database)) == 3


async def test_anonymous_then_identified_merges_traits_and_moves_identities(
    database: Database, store: ContactStore
) -> None:
    (anonymous,) = await resolve(
        database, store, event("identify", 1, anonymous_id="a1", traits={"plan": "free", "n": 1})
    )
    (known,) = await resolve(
        database, store, event("identify", 2, user_id="u1", traits={"plan": "pro"})
    )
    await resolve(database, store, event("page", 3, anonymous_id="a2", user_id="u1"))

    (merged,) = await resolve(
        database, store, event("identify", 4, user_id="u1", anonymous_id="a1")
    )

    assert merged.id == known.id, "the contact with a userId survives"
    assert merged.traits == {"plan": "pro", "n": 1}
    assert merged.created_at == anonymous.created_at
    with pytest.raises(NotFound):
        await store.get(WS, anonymous.id)
    assert await identities(database) == {
        (WS, "anonymous_id", "a1"): known.id,
        (WS, "anonymous_id", "a2"): known.id,
        (WS, "user_id", "u1"): known.id,
    }
    (later,) = await resolve(database, store, event("track", 5, anonymous_id="a1"))
    assert later == await store.get(WS, known.id)


async def test_alias_merges_the_previous_id_into_the_user_ids_contact(
    database: Database, store: ContactStore
) -> None:
    _, new = await resolve(
        database,
        store,
        event("identify", 1, user_id="old", anonymous_id="a1", traits={"a": 1, "b": 1}),
        event("identify", 2, user_id="new", traits={"b": 2}),
    )
    (aliased,) = await resolve(database, store, event("alias", 3, user_id="new", previous_id="old"))

    assert aliased.id == new.id
    assert aliased.traits == {"a": 1, "b": 2}
    assert len(await store.list(WS)) == 1
    assert set((await identities(database)).values()) == {new.id}
    (via_old_id,) = await resolve(database, store, event("track", 4, user_id="old"))
    assert via_old_id.id == new.id


async def test_an_identify_moves_the_email_identity_even_when_the_old_one_was_not_mentioned(
    database: Database, store: ContactStore
) -> None:
    created = await store.create(NewContact(WS, user_id="u1", email="old@x.io"), NOW)

    await resolve(database, store, event("identify", 1, user_id="u1", traits={"email": "n@x.io"}))

    assert await identities(database) == {
        (WS, "user_id", "u1"): created.id,
        (WS, "email", digest("n@x.io")): created.id,
    }


async def test_one_batch_serves_several_workspaces(database: Database, store: ContactStore) -> None:
    ours = await store.create(NewContact(WS, user_id="u1"), NOW)

    mine, theirs = await resolve(
        database,
        store,
        event("track", 1, user_id="u1"),
        event("track", 2, user_id="u1", workspace_id="globex"),
    )

    assert mine.id == ours.id
    assert (theirs.workspace_id, theirs.user_id) == ("globex", "u1")
    assert [c.id for c in await store.list("globex")] == [theirs.id]


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


async def test_the_number_of_statements_does_not_grow_with_the_batch(
    database: Database, store: ContactStore
) -> None:
    """Half of the users are known; each is tracked twice and identified once."""

    def batch(users: int, offset: int) -> list[Event]:
        ids = [f"u{offset + n}" for n in range(users)]
        return [
            event(kind, n, user_id=user_id, anonymous_id=f"a-{user_id}", traits={"n": n})
            for n, user_id in enumerate(ids)
            for kind in ("track", "identify", "track")
        ]

    await resolve(database, store, *batch(5, 0), *batch(200, 1000))
    counts = []
    for users, offset in ((4, 3), (200, 1100)):
        with statement_counter(database) as statements:
            records = await resolve(database, store, *batch(users, offset))
        assert len(records) == 3 * users
        counts.append(len(statements))

    assert counts[0] == counts[1]
    assert counts[0] <= 10


# --------------------------------------------------------------------------- concurrency


async def _until_a_backend_waits_for_a_lock(database: Database) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with database.read() as connection:
        for _ in range(500):
            if (await connection.execute(query)).scalar_one():
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")


@pytest.mark.postgres_only
async def test_two_routers_creating_the_same_identity_agree_on_one_contact(
    database: Database, store: ContactStore
) -> None:
    """The second reads before the first commits, so both plan a new contact; the second's
    identity insert waits for the first, finds the identity taken and resolves again."""
    events = [event("track", 1, user_id="u1", anonymous_id="a1")]
    first_resolved = asyncio.Event()

    async def first() -> list[ContactRecord]:
        async with database.transaction() as connection:
            records = await store.resolve_events(connection, events, NOW)
            first_resolved.set()
            await _until_a_backend_waits_for_a_lock(database)
        return records

    async def second() -> list[ContactRecord]:
        await first_resolved.wait()
        async with database.transaction() as connection:
            return await store.resolve_events(connection, events, NOW)

    (one,), (other,) = await asyncio.gather(first(), second())

    assert one.id == other.id
    assert [c.id for c in await store.list(WS)] == [one.id]
    assert set((await identities(database)).values()) == {one.id}


@pytest.mark.postgres_only
async def test_concurrent_batches_over_the_same_new_users_neither_fail_nor_deadlock(
    database: Database, store: ContactStore
) -> None:
    users = [f"u{n}" for n in range(50)]
    forward = [event("track", n, user_id=u) for n, u in enumerate(users)]
    backward = [event("identify", n, user_id=u, traits={"n": n}) for n, u in enumerate(users)]

    results = await asyncio.gather(
        *(resolve(database, store, *batch) for batch in (forward, backward[::-1], forward))
    )

    by_user = [{r.user_id: r.id for r in records} for records in results]
    assert by_user[0] == by_user[1] == by_user[2]
    assert len(await store.list(WS, limit=100)) == len(users)
