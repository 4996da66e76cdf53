"""Consent carried by events (Segment's ``context.consent``), through the real router on both
dialects: stored in the batch's transaction, seen by triggers on the very event that grants it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from campaignflow.domain.events import Event
from campaignflow.store.consents import ConsentStore
from tests.integration.triggers.conftest import START, WORKSPACE, Routing, journey

_ids = itertools.count(1)
OPTED_IN = {
    "type": "behavior",
    "event": "newsletter_viewed",
    "condition": "contact.consent.email_marketing == true",
}
ALWAYS = {"reentry": "always", "allowConcurrent": True}


def consenting(
    preferences: dict[str, Any] | None,
    *,
    name: str = "newsletter_viewed",
    user: str = "ada",
    at: datetime = START,
) -> Event:
    context: dict[str, Any] = {
        "ip": "198.51.100.7",
        "userAgent": "Mozilla/5.0",
        "page": {"url": "https://shop.example/newsletter"},
    }
    if preferences is not None:
        context["consent"] = {"categoryPreferences": preferences}
    return Event(
        workspace_id=WORKSPACE,
        message_id=f"consent-{next(_ids)}",
        type="track",
        name=name,
        user_id=user,
        context=context,
        timestamp=at,
        received_at=at,
    )


async def contact_id_of(routing: Routing, user: str = "ada") -> str:
    contact = await routing.engine.contacts.list(WORKSPACE, user_id=user)
    return contact[0].id


async def test_the_event_that_grants_consent_meets_a_trigger_on_it(routing: Routing) -> None:
    await routing.deploy(journey("newsletter", [OPTED_IN], entry=ALWAYS))

    without = await routing.send(consenting(None))
    granting = await routing.send(consenting({"Email Marketing": True}))
    withdrawing = await routing.send(consenting({"email-marketing": False}))

    assert (without.started, granting.started, withdrawing.started) == (0, 1, 0)
    (execution,) = await routing.executions("newsletter")
    assert execution.contact["consent"] == {"email_marketing": True}


async def test_consent_from_events_is_stored_with_its_proof(routing: Routing) -> None:
    grant = consenting({"Email Marketing": True, "Advertising": False})

    await routing.send(grant)

    contact_id = await contact_id_of(routing)
    consents = ConsentStore(routing.engine.database)
    state = await consents.current(WORKSPACE, contact_id)
    assert state == {
        "advertising": {"granted": False, "at": "2026-03-27T08:00:00Z", "source": "event"},
        "email_marketing": {"granted": True, "at": "2026-03-27T08:00:00Z", "source": "event"},
    }
    history = await consents.history(WORKSPACE, contact_id, purpose="email_marketing")
    assert [(r.source, r.granted, r.occurred_at) for r in history] == [("event", True, START)]
    assert history[0].proof == {
        "ip": "198.51.100.7",
        "userAgent": "Mozilla/5.0",
        "form": "https://shop.example/newsletter",
        "messageId": grant.message_id,
    }
    contact = await routing.engine.contacts.get(WORKSPACE, contact_id)
    assert contact.consent == state


async def test_within_a_batch_each_event_sees_the_consent_as_of_itself(routing: Routing) -> None:
    await routing.deploy(journey("newsletter", [OPTED_IN], entry=ALWAYS))

    outcome = await routing.send(
        consenting(None),  # the contact has no consent yet
        consenting({"Email Marketing": True}, at=START + timedelta(seconds=1)),
        consenting(None, at=START + timedelta(seconds=2)),  # still granted
        consenting({"Email Marketing": False}, at=START + timedelta(seconds=3)),
        consenting(None, at=START + timedelta(seconds=4)),
    )

    assert (outcome.events, outcome.started) == (5, 2)
    history = await ConsentStore(routing.engine.database).history(
        WORKSPACE, await contact_id_of(routing)
    )
    assert [r.granted for r in history] == [False, True]


async def test_a_late_event_does_not_overturn_a_newer_decision_and_repeats_add_no_history(
    routing: Routing,
) -> None:
    await routing.send(consenting({"Email Marketing": False}, at=START + timedelta(hours=1)))
    for minute in range(3):  # page views carrying the same consent on every event
        at = START + timedelta(hours=1, minutes=minute + 1)
        await routing.send(consenting({"Email Marketing": False}, at=at))
    await routing.send(consenting({"Email Marketing": True}, at=START))  # sent before, late

    contact_id = await contact_id_of(routing)
    consents = ConsentStore(routing.engine.database)
    state = await consents.current(WORKSPACE, contact_id)
    history = await consents.history(WORKSPACE, contact_id)
    assert state["email_marketing"]["granted"] is False
    assert state["email_marketing"]["at"] == "2026-03-27T09:03:00Z"
    assert [(r.granted, r.occurred_at) for r in history] == [
        (True, START),
        (False, START + timedelta(hours=1)),
    ]


async def test_a_redelivered_event_records_its_consent_once(routing: Routing) -> None:
    grant = consenting({"Email Marketing": True})

    await routing.send(grant)
    again = await routing.send(grant)

    assert again.duplicates == 1
    history = await ConsentStore(routing.engine.database).history(
        WORKSPACE, await contact_id_of(routing)
    )
    assert len(history) == 1


async def test_consent_of_another_contact_stays_its_own(routing: Routing) -> None:
    await routing.send(
        consenting({"Email Marketing": True}, user="ada"),
        consenting({"Email Marketing": False}, user="bob"),
    )

    ada = await routing.engine.contacts.get(WORKSPACE, await contact_id_of(routing, "ada"))
    bob = await routing.engine.contacts.get(WORKSPACE, await contact_id_of(routing, "bob"))
    assert ada.to_variables()["consent"] == {"email_marketing": True}
    assert bob.to_variables()["consent"] == {"email_marketing": False}
