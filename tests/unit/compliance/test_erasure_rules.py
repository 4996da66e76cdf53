"""The pure parts of erasure: which stream events name a person, what each provider is asked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaignflow.compliance.erasure import erasure_plan, names_person
from campaignflow.domain.events import Event
from campaignflow.store.erasure import Identities
from campaignflow.store.personal_data import Person

AT = datetime(2026, 3, 27, tzinfo=UTC)
ANN = Person(
    "acme",
    contact_ids=("c1",),
    user_ids=("ann-1",),
    anonymous_ids=("device-9",),
    emails=("ann@example.com",),
    phones=("+442079460000",),
)


def event(**fields: object) -> Event:
    return Event(
        workspace_id="acme", message_id="m", type="track", timestamp=AT, received_at=AT, **fields
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"user_id": "ann-1"},
        {"anonymous_id": "device-9"},
        {"previous_id": "device-9", "user_id": "new"},
        {"anonymous_id": "x", "traits": {"email": " Ann@Example.com"}},
        {"anonymous_id": "x", "context": {"traits": {"email": "ann@example.com"}}},
        {"anonymous_id": "x", "properties": {"contact": {"phone": "+442079460000"}}},
    ],
    ids=["userId", "anonymousId", "alias", "traits", "context", "nested-value"],
)
def test_an_event_naming_the_person_anywhere_is_theirs(fields: dict[str, object]) -> None:
    assert names_person(event(**fields), ANN)


def test_another_persons_event_is_not() -> None:
    other = event(user_id="bob", traits={"email": "bob@example.com", "note": "ann"})
    assert not names_person(other, ANN)


IDS = Identities(emails=("ann@example.com",), links=(("hub", "501"), ("pd", "42"), ("x", "9")))


@pytest.mark.parametrize(
    ("provider", "connection", "plan"),
    [
        ("sendgrid", "sg", [("suppress_global", {"emails": ["ann@example.com"]})]),
        (
            "mailchimp_transactional",
            "md",
            [("reject_add", {"email": "ann@example.com", "comment": "erasure"})],
        ),
        (
            "mailchimp_marketing",
            "mc",
            [("delete_member_permanently", {"email": "ann@example.com"})],
        ),
        ("pipedrive", "pd", [("delete_person", {"id": 42})]),
        ("hubspot", "hub", [("gdpr_delete", {"objectId": "501"})]),
        ("hubspot", "other-hub", [("gdpr_delete", {"email": "ann@example.com"})]),
        ("pipedrive", "other-pd", []),
        ("slack", "s", None),
    ],
)
def test_each_provider_is_asked_for_what_it_holds(
    provider: str, connection: str, plan: list[tuple[str, dict[str, object]]] | None
) -> None:
    assert erasure_plan(provider, connection, IDS) == plan


def test_without_an_address_the_email_providers_have_nothing_to_do() -> None:
    assert erasure_plan("sendgrid", "sg", Identities(user_ids=("u",))) == []
