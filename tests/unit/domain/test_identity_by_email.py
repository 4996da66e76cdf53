"""A track event known only by an address (a provider webhook's recipient) resolves to the
contact with that email, or makes one that later events and identifies find: no duplicates."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.events import Event
from campaignflow.domain.identity_resolution import email_identity, identity_keys
from tests.unit.domain.test_contacts import (
    WS,
    MemoryStore,
    batches,
    contact,
    event,
    resolve,
)


def opened(second: int = 0, email: Any = "Ada@Example.com ", **fields: Any) -> Event:
    return event(
        "track", second, name="email.opened", context={"traits": {"email": email}}, **fields
    )


def test_only_a_track_without_ids_is_known_by_its_address() -> None:
    assert email_identity(opened()) == "ada@example.com"
    assert email_identity(opened(user_id="u1")) is None
    assert email_identity(opened(anonymous_id="a1")) is None
    assert email_identity(opened(email="not an address")) is None
    assert email_identity(event("page", 0, context={"traits": {"email": "a@x.io"}})) is None
    assert identity_keys([opened()]) == {(WS, "email", "ada@example.com")}


def test_an_address_event_finds_the_contact_with_that_email() -> None:
    known = contact("c1", user_id="u1", email="ada@example.com")

    plan = resolve([opened(1)], [known], {(WS, "email", "ada@example.com"): "c1"})

    assert [r.id for r in plan.records] == ["c1"]
    assert plan.inserts == plan.new_identities == []


def test_an_unknown_address_makes_one_contact_that_the_next_events_find() -> None:
    plan = resolve([opened(1), opened(2, email="ADA@example.com")])

    first, second = plan.records
    assert first.id == second.id == "new-1"
    assert first.email == "ada@example.com"
    assert [c.id for c in plan.inserts] == ["new-1"]
    assert plan.new_identities == [(WS, "email", "ada@example.com", "new-1")]


def test_an_identify_declaring_the_address_later_takes_that_contact() -> None:
    store = MemoryStore()
    (bounced,) = store.resolve([opened(1)])
    (identified,) = store.resolve(
        [event("identify", 2, user_id="u1", traits={"email": "ada@example.com"})]
    )

    assert identified.id == bounced.id
    assert identified.user_id == "u1"
    assert len(store.contacts) == 1


address_events = st.builds(
    lambda second, email: opened(second, email=email),
    st.integers(0, 50),
    st.sampled_from(["a@x.io", "B@x.io", "b@x.io "]),
)
mixed_batches = st.tuples(batches, st.lists(address_events, max_size=5)).flatmap(
    lambda pair: st.permutations(pair[0] + pair[1])
)


def _without_sightings(store: MemoryStore) -> dict[tuple[str, str], ContactRecord]:
    return {key: replace(c, last_seen_at=None) for key, c in store.contacts.items()}


@given(mixed_batches, st.integers(0, 17))
def test_address_events_resolve_the_same_in_one_batch_or_two(
    events: list[Event], split: int
) -> None:
    whole, parts = MemoryStore(), MemoryStore()

    whole.resolve(events)
    parts.resolve(events[:split])
    parts.resolve(events[split:])

    assert whole.identities == parts.identities
    assert _without_sightings(whole) == _without_sightings(parts)
    for record in whole.contacts.values():
        if record.email is not None:
            assert whole.identities[(WS, "email", record.email)] == record.id
