"""Consent rules: purpose names, how statements meet the state, what an event carries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.cel import CelContext, environment
from campaignflow.domain.consent import (
    ConsentChange,
    ConsentProof,
    PurposeConsent,
    apply_changes,
    apply_in_order,
    event_changes,
    granted_purposes,
    is_purpose,
    merge_documents,
    purpose_from_category,
    read_state,
    to_document,
)
from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.events import Event

T0 = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
PURPOSES = ("email_marketing", "sms_marketing", "tracking")


def change(
    purpose: str = "email_marketing",
    granted: bool = True,
    minutes: int = 0,
    *,
    explicit: bool = False,
    source: str = "event",
) -> ConsentChange:
    return ConsentChange(
        purpose, granted, source, T0 + timedelta(minutes=minutes), explicit=explicit
    )


changes_strategy = st.lists(
    st.builds(
        change,
        purpose=st.sampled_from(PURPOSES),
        granted=st.booleans(),
        minutes=st.integers(-1000, 1000),
        explicit=st.booleans(),
    ),
    max_size=12,
)


def event(context: dict[str, Any], *, message_id: str = "m-1", at: datetime = T0) -> Event:
    return Event(
        workspace_id="acme",
        message_id=message_id,
        type="page",
        user_id="u1",
        context=context,
        timestamp=at,
        received_at=at,
    )


# --------------------------------------------------------------------------- purposes


def test_consent_managers_category_names_become_purposes() -> None:
    assert purpose_from_category("Email Marketing") == "email_marketing"
    assert purpose_from_category("email-marketing") == "email_marketing"
    assert purpose_from_category("  SMS / Marketing ") == "sms_marketing"
    assert purpose_from_category("C0004") == "c0004"  # OneTrust's category ids
    assert purpose_from_category("1st party") is None  # a purpose starts with a letter
    assert purpose_from_category("---") is None
    assert purpose_from_category("x" * 65) is None


def test_only_snake_case_identifiers_are_purposes() -> None:
    assert is_purpose("email_marketing")
    assert is_purpose("a" * 64)
    for bad in ("Email", "email-marketing", "_x", "9a", "", "a" * 65, None, 3):
        assert not is_purpose(bad)


@given(st.text(max_size=80))
def test_a_normalised_category_is_a_purpose_and_normalising_again_keeps_it(name: str) -> None:
    purpose = purpose_from_category(name)
    if purpose is not None:
        assert is_purpose(purpose)
        assert purpose_from_category(purpose) == purpose


# --------------------------------------------------------------------------- applying


def test_a_first_statement_is_the_state_and_is_recorded() -> None:
    outcome = apply_changes({}, [change(granted=True, source="form")])

    assert outcome.state == {"email_marketing": PurposeConsent(True, T0, "form")}
    assert outcome.changed
    assert len(outcome.recorded) == 1


def test_a_late_statement_goes_to_history_without_overturning_a_newer_one() -> None:
    withdrawn = {"email_marketing": PurposeConsent(False, T0, "api")}

    outcome = apply_changes(withdrawn, [change(granted=True, minutes=-5)])

    assert outcome.state == withdrawn
    assert not outcome.changed
    assert [c.granted for c in outcome.recorded] == [True]


def test_events_repeating_the_decision_are_not_recorded_but_keep_the_state_current() -> None:
    granted = {"email_marketing": PurposeConsent(True, T0, "api")}

    outcome = apply_changes(granted, [change(minutes=1), change(minutes=2), change(minutes=-1)])

    assert outcome.state == {
        "email_marketing": PurposeConsent(True, T0 + timedelta(minutes=2), "event")
    }
    assert outcome.recorded == ()


def test_a_late_statement_made_between_two_repeats_does_not_overturn_the_later() -> None:
    events = [
        change(granted=True),
        change(granted=True, minutes=10),
        change(granted=False, minutes=5),
    ]

    outcome = apply_changes({}, events)

    assert outcome.state["email_marketing"].granted is True
    assert [c.granted for c in outcome.recorded] == [True, False]  # the first, the late one


def test_an_explicit_repeat_is_a_reconfirmation_recorded_with_its_time() -> None:
    granted = {"email_marketing": PurposeConsent(True, T0, "event")}

    outcome = apply_changes(granted, [change(minutes=10, explicit=True, source="form")])

    assert outcome.state["email_marketing"] == PurposeConsent(
        True, T0 + timedelta(minutes=10), "form"
    )
    assert outcome.changed
    assert len(outcome.recorded) == 1


def test_purposes_are_independent() -> None:
    state = {"sms_marketing": PurposeConsent(True, T0, "api")}

    outcome = apply_changes(state, [change("email_marketing", False, minutes=-60)])

    assert outcome.state["sms_marketing"] == state["sms_marketing"]
    assert outcome.state["email_marketing"].granted is False


@given(changes_strategy)
def test_the_latest_statement_decides_whatever_the_order_of_arrival(
    changes: list[ConsentChange],
) -> None:
    distinct = list({c.occurred_at: c for c in changes}.values())  # ties: arrival order decides
    latest: dict[str, PurposeConsent] = {}
    for c in sorted(distinct, key=lambda c: c.occurred_at):
        latest[c.purpose] = PurposeConsent(c.granted, c.occurred_at, c.source)
    for ordering in itertools.islice(itertools.permutations(distinct), 6):
        assert apply_changes({}, ordering).state == latest


@given(changes_strategy)
def test_what_is_recorded_is_every_first_or_different_statement_and_every_explicit_one(
    changes: list[ConsentChange],
) -> None:
    outcome = apply_changes({}, changes)
    recorded = list(outcome.recorded)

    def kept(c: ConsentChange) -> bool:  # by identity: equal changes may repeat
        return any(r is c for r in recorded)

    assert all(kept(c) for c in changes if c.explicit)
    assert all(any(r is c for c in changes) for r in recorded)
    replay: dict[str, PurposeConsent] = {}
    for c in changes:  # a first statement, or one that differs, is in the history
        before = replay.get(c.purpose)
        replay = dict(apply_changes(replay, [c]).state)
        if before is None or before.granted != c.granted:
            assert kept(c)
        elif not c.explicit:
            assert not kept(c)
    assert replay == outcome.state
    assert outcome.changed == bool(outcome.state)


@given(changes_strategy)
def test_the_state_document_round_trips(changes: list[ConsentChange]) -> None:
    state = apply_changes({}, changes).state
    document = to_document(state)

    assert read_state(document) == state
    assert granted_purposes(document) == {p: s.granted for p, s in state.items()}
    assert all(entry["at"].endswith("Z") for entry in document.values())


def test_a_malformed_document_entry_is_left_out() -> None:
    document = {
        "ok": {"granted": True, "at": "2026-03-27T08:00:00Z", "source": "api"},
        "naive": {"granted": True, "at": "2026-03-27T08:00:00", "source": "api"},
        "odd": {"granted": "yes", "at": "2026-03-27T08:00:00Z", "source": "api"},
        "junk": 3,
    }
    assert list(read_state(document)) == ["ok"]


# --------------------------------------------------------------------------- batches


def test_each_entry_of_a_batch_sees_its_contact_as_of_its_own_changes() -> None:
    alice, bob = ("acme", "c-alice"), ("acme", "c-bob")
    stored = {"email_marketing": {"granted": False, "at": "2026-03-27T07:00:00Z", "source": "api"}}

    batch = apply_in_order(
        [
            (alice, stored, []),
            (alice, stored, [change(granted=True, minutes=1)]),
            (bob, None, []),
            (alice, stored, [change(granted=False, minutes=2)]),
            (alice, stored, []),
        ]
    )

    granted = [granted_purposes(d).get("email_marketing") for d in batch.after]
    assert granted == [False, True, None, False, False]
    assert batch.after[0] is stored  # untouched so far: the document as read
    assert batch.after[2] is None
    assert list(batch.changed) == [alice]
    assert batch.changed[alice]["email_marketing"]["at"] == "2026-03-27T08:02:00Z"
    assert [key for key, _ in batch.recorded] == [alice, alice]


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), changes_strategy), max_size=6))
def test_a_batch_ends_where_applying_each_contacts_changes_at_once_ends(
    entries: list[tuple[str, list[ConsentChange]]],
) -> None:
    batch = apply_in_order([(("acme", who), None, changes) for who, changes in entries])

    for who in ("a", "b"):
        mine = [c for name, changes in entries if name == who for c in changes]
        alone = apply_changes({}, mine)
        final = batch.changed.get(("acme", who))
        assert (final or {}) == to_document(alone.state)
        assert [c for key, c in batch.recorded if key == ("acme", who)] == list(alone.recorded)


# --------------------------------------------------------------------------- events


def test_segments_consent_context_gives_changes_with_the_events_proof() -> None:
    context = {
        "consent": {
            "categoryPreferences": {"Advertising": True, "Email Marketing": False, "x": "yes"}
        },
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "page": {"url": "https://shop.example/preferences"},
    }

    changes = event_changes(event(context, message_id="m-42"))

    proof = ConsentProof(
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
        form="https://shop.example/preferences",
        message_id="m-42",
    )
    assert changes == [
        ConsentChange("advertising", True, "event", T0, proof),
        ConsentChange("email_marketing", False, "event", T0, proof),
    ]
    assert proof.to_document() == {
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "form": "https://shop.example/preferences",
        "messageId": "m-42",
    }


def test_events_without_usable_consent_give_nothing() -> None:
    for context in (
        {},
        {"consent": "all"},
        {"consent": {"categoryPreferences": []}},
        {"consent": {"categoryPreferences": {"???": True, "Ads": None}}},
    ):
        assert event_changes(event(context)) == []


def test_two_categories_naming_one_purpose_the_later_counts() -> None:
    prefs = {"Email Marketing": True, "email-marketing": False}

    (only,) = event_changes(event({"consent": {"categoryPreferences": prefs}}))

    assert (only.purpose, only.granted) == ("email_marketing", False)
    assert only.proof == ConsentProof(message_id="m-1")


def test_oversized_proof_is_cut() -> None:
    context = {"consent": {"categoryPreferences": {"ads": True}}, "userAgent": "u" * 5000}

    (only,) = event_changes(event(context))

    assert only.proof.user_agent == "u" * 512


# --------------------------------------------------------------------------- CEL


def contact_with(consent: dict[str, Any] | None) -> ContactRecord:
    return ContactRecord("acme", "c1", "u1", None, None, {}, T0, T0, None, consent or {})


def test_contacts_show_consent_to_cel_as_booleans() -> None:
    granted = to_document({"email_marketing": PurposeConsent(True, T0, "api")})
    withdrawn = to_document({"email_marketing": PurposeConsent(False, T0, "api")})
    trigger = environment(CelContext.TRIGGER).compile("contact.consent.email_marketing == true")
    unknown_ok = environment(CelContext.TRIGGER).compile(
        "!has(contact.consent.sms_marketing) || contact.consent.sms_marketing"
    )

    def variables(contact: ContactRecord) -> dict[str, Any]:
        return {"contact": contact.to_variables(), "event": {}, "now": T0}

    assert trigger.evaluate_bool(variables(contact_with(granted))) is True
    assert trigger.evaluate_bool(variables(contact_with(withdrawn))) is False
    assert contact_with(None).to_variables()["consent"] == {}
    assert unknown_ok.evaluate_bool(variables(contact_with(None))) is True


def test_the_consent_column_wins_over_a_trait_of_that_name() -> None:
    record = ContactRecord("acme", "c1", None, None, None, {"consent": "yes"}, T0, T0, None)

    assert record.to_variables()["consent"] == {}


@given(changes_strategy, changes_strategy)
def test_a_merge_keeps_each_purposes_later_statement(
    survivors: list[ConsentChange], absorbed: list[ConsentChange]
) -> None:
    mine = to_document(apply_changes({}, survivors).state)
    theirs = to_document(apply_changes({}, absorbed).state)

    merged = read_state(merge_documents(mine, theirs))

    assert set(merged) == set(read_state(mine)) | set(read_state(theirs))
    for purpose, entry in merged.items():
        candidates = [
            state[purpose] for state in (read_state(mine), read_state(theirs)) if purpose in state
        ]
        assert entry.at == max(candidate.at for candidate in candidates)
        if purpose in read_state(mine) and read_state(mine)[purpose].at == entry.at:
            assert entry == read_state(mine)[purpose]  # a tie keeps the survivor's
    assert merge_documents(mine, None) == to_document(read_state(mine))
