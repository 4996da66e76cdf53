"""Contacts as pure rules: values, merges, and resolving a batch of events in memory."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.contacts import (
    KEEP,
    ContactChange,
    ContactRecord,
    IdentityKey,
    apply_change,
    changed_identities,
    choose_survivor,
    merge_contacts,
    merge_patch,
    merge_traits,
    normalize_email,
    timezone_from,
)
from campaignflow.domain.events import Event, EventType
from campaignflow.domain.identity_resolution import (
    SIGHTING_GRANULARITY,
    BatchResolver,
    ResolutionPlan,
    identity_keys,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
WS = "acme"

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)
trait_maps = st.dictionaries(st.sampled_from("abcdef"), json_values, max_size=5)


def contact(
    contact_id: str,
    *,
    user_id: str | None = None,
    email: str | None = None,
    traits: dict[str, Any] | None = None,
    created: int = 0,
    seen: int | None = None,
    workspace_id: str = WS,
) -> ContactRecord:
    created_at = T0 + timedelta(days=created)
    last_seen = None if seen is None else T0 + timedelta(seconds=seen)
    return ContactRecord(
        workspace_id, contact_id, user_id, email, None, traits or {}, created_at, created_at,
        last_seen,
    )  # fmt: skip


def event(kind: EventType, second: int = 0, **fields: Any) -> Event:
    fields.setdefault("workspace_id", WS)
    return Event(
        message_id=f"m-{kind}-{second}-{id(fields)}",
        type=kind,
        timestamp=T0 + timedelta(seconds=second),
        received_at=T0,
        **fields,
    )


def resolve(
    events: Sequence[Event],
    contacts: Iterable[ContactRecord] = (),
    owners: Mapping[IdentityKey, str] | None = None,
) -> ResolutionPlan:
    counter = itertools.count(1)
    resolver = BatchResolver(
        contacts,
        owners or {},
        looked_up=identity_keys(events),
        now=NOW,
        new_id=lambda: f"new-{next(counter)}",
    )
    for item in events:
        resolver.apply(item)
    return resolver.plan()


# --------------------------------------------------------------------------- values


def test_to_variables_puts_the_columns_over_the_traits_and_leaves_out_none() -> None:
    traits = {"plan": "pro", "email": "Ada@X.io", "id": "x"}
    record = replace(contact("c1", user_id="u1", traits=traits), email="ada@x.io")

    assert record.to_variables() == {
        "plan": "pro", "email": "ada@x.io", "id": "c1", "userId": "u1", "consent": {},
    }  # fmt: skip
    anonymous = contact("c2", traits={"timezone": "nowhere"})
    assert anonymous.to_variables() == {"timezone": "nowhere", "id": "c2", "consent": {}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada@Example.COM ", "ada@example.com"),
        ("a.b+tag@mail.example.co.uk", "a.b+tag@mail.example.co.uk"),
        ("no-at-sign.example.com", None),
        ("two@@example.com", None),
        ("ada@localhost", None),
        ("ada @example.com", None),
        ("@example.com", None),
        ("x" * 65 + "@example.com", None),
        (42, None),
        (None, None),
    ],
)
def test_normalize_email(raw: object, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@given(st.text(max_size=40) | st.emails())
def test_a_normalised_email_is_its_own_normal_form(raw: str) -> None:
    email = normalize_email(raw)
    if email is not None:
        assert normalize_email(email) == email
        assert email == email.strip().lower()


@pytest.mark.parametrize(
    ("traits", "context", "expected"),
    [
        ({"timezone": "Europe/Berlin"}, {"timezone": "Asia/Tokyo"}, "Europe/Berlin"),
        ({"timezone": "Mars/Olympus"}, {"timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
        ({}, {"timezone": "UTC"}, "UTC"),
        ({"timezone": 3}, {"timezone": "../etc/passwd"}, None),
        ({}, {}, None),
    ],
)
def test_timezone_from_traits_then_context(
    traits: dict[str, Any], context: dict[str, Any], expected: str | None
) -> None:
    assert timezone_from(traits, context) == expected


@given(trait_maps, trait_maps)
def test_merge_traits_later_wins_and_null_removes(
    current: dict[str, Any], changes: dict[str, Any]
) -> None:
    merged = merge_traits(current, changes)

    for name in current.keys() | changes.keys():
        if name not in changes:
            assert merged[name] == current[name]
        elif changes[name] is None:
            assert name not in merged
        else:
            assert merged[name] == changes[name]
    assert merge_traits(merged, changes) == merged


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7396, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


@given(json_values, json_values)
def test_merge_patch_applied_twice_is_applied_once(target: Any, patch: Any) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


# --------------------------------------------------------------------------- two contacts

user_ids = st.none() | st.sampled_from(["u1", "u2"])


@given(user_ids, user_ids, st.integers(0, 3), st.integers(0, 3))
def test_the_survivor_has_a_user_id_else_is_the_older(
    first_user: str | None, second_user: str | None, first_day: int, second_day: int
) -> None:
    first = contact("c1", user_id=first_user, created=first_day)
    second = contact("c2", user_id=second_user, created=second_day)

    survivor, absorbed = choose_survivor(first, second)

    assert choose_survivor(second, first) == (survivor, absorbed)
    assert {survivor.id, absorbed.id} == {"c1", "c2"}
    if (first_user is None) != (second_user is None):
        assert survivor.user_id is not None
    else:
        assert (survivor.created_at, survivor.id) <= (absorbed.created_at, absorbed.id)


def test_merging_keeps_the_survivors_values_over_the_absorbed() -> None:
    survivor = contact("c2", user_id="u1", traits={"plan": "pro"}, created=2, seen=5)
    absorbed = contact(
        "c1", email="ada@x.io", traits={"plan": "free", "city": "Oslo"}, created=1, seen=9
    )

    merged = merge_contacts(survivor, absorbed, NOW)

    assert merged.id == "c2"
    assert merged.user_id == "u1"
    assert merged.email == "ada@x.io"
    assert merged.traits == {"plan": "pro", "city": "Oslo"}
    assert merged.created_at == absorbed.created_at
    assert merged.last_seen_at == absorbed.last_seen_at
    assert merged.updated_at == NOW


def test_a_change_sets_clears_or_keeps_each_field() -> None:
    record = contact("c1", user_id="u1", email="a@x.io", traits={"a": {"x": 1, "y": 2}, "b": 1})
    change = ContactChange(user_id=None, email="b@x.io", traits={"a": {"x": None}, "c": 3})

    after = apply_change(record, change, NOW)

    assert (after.user_id, after.email, after.timezone) == (None, "b@x.io", None)
    assert after.traits == {"a": {"y": 2}, "b": 1, "c": 3}
    assert changed_identities(record, after) == (
        [(WS, "user_id", "u1"), (WS, "email", "a@x.io")],
        [(WS, "email", "b@x.io")],
    )
    assert apply_change(record, ContactChange(traits=None), NOW).traits == {}
    assert apply_change(record, ContactChange(), NOW).traits == record.traits
    assert ContactChange().email is KEEP


# --------------------------------------------------------------------------- a batch


def test_unknown_identities_make_contacts_and_known_ones_find_theirs() -> None:
    known = contact("c1", user_id="u1", seen=100)
    plan = resolve(
        [event("track", 1, user_id="u1"), event("track", 2, user_id="u2", anonymous_id="a2")],
        [known],
        {(WS, "user_id", "u1"): "c1"},
    )

    assert [r.id for r in plan.records] == ["c1", "new-1"]
    assert plan.records[0].last_seen_at == known.last_seen_at  # an older event leaves it
    assert [c.id for c in plan.inserts] == ["new-1"]
    assert plan.inserts[0].user_id == "u2"
    assert sorted(plan.new_identities) == [
        (WS, "anonymous_id", "a2", "new-1"),
        (WS, "user_id", "u2", "new-1"),
    ]
    assert plan.updates == []


def test_identify_then_track_in_one_batch_gives_the_track_the_identified_contact() -> None:
    plan = resolve(
        [
            event("identify", 1, anonymous_id="a1", user_id="u1", traits={"plan": "pro"}),
            event("track", 2, user_id="u1", name="Order Completed"),
        ]
    )

    identified, tracked = plan.records
    assert tracked.id == identified.id
    assert tracked.traits == {"plan": "pro"}
    assert tracked.last_seen_at == T0 + timedelta(seconds=2)
    assert len(plan.inserts) == 1


def test_track_attaches_a_new_anonymous_id_and_a_new_user_id() -> None:
    known = contact("c1")
    plan = resolve(
        [event("track", 1, user_id="u1", anonymous_id="a1")],
        [known],
        {(WS, "anonymous_id", "a1"): "c1"},
    )

    assert plan.records[0].id == "c1"
    assert plan.records[0].user_id == "u1"
    assert plan.new_identities == [(WS, "user_id", "u1", "c1")]


def test_another_users_anonymous_id_is_neither_taken_nor_merged() -> None:
    theirs = contact("c1", user_id="u9")
    owners = {(WS, "anonymous_id", "shared"): "c1"}
    for kind in ("track", "identify"):
        plan = resolve([event(kind, 1, user_id="u1", anonymous_id="shared")], [theirs], owners)

        assert plan.records[0].id == "new-1"
        assert plan.new_identities == [(WS, "user_id", "u1", "new-1")]
        assert plan.absorbed == []


def test_group_changes_nothing_but_the_sighting() -> None:
    known = contact("c1", user_id="u1", traits={"plan": "pro"})
    plan = resolve(
        [event("group", 5, user_id="u1", anonymous_id="a1", group_id="g", traits={"x": 1})],
        [known],
        {(WS, "user_id", "u1"): "c1"},
    )

    assert plan.records[0].traits == {"plan": "pro"}
    assert plan.new_identities == []
    assert [u.last_seen_at for u in plan.updates] == [T0 + timedelta(seconds=5)]


def test_identify_merges_the_anonymous_contact_into_the_identified_one() -> None:
    anonymous = contact("c1", traits={"plan": "free", "city": "Oslo"}, created=1)
    identified = contact("c2", user_id="u1", traits={"plan": "pro"}, created=2)
    owners = {(WS, "anonymous_id", "a1"): "c1", (WS, "user_id", "u1"): "c2"}
    plan = resolve(
        [
            event("track", 1, anonymous_id="a1"),
            event("identify", 2, user_id="u1", anonymous_id="a1", traits={"age": 40}),
        ],
        [anonymous, identified],
        owners,
    )

    early, merged = plan.records
    assert early == merged, "an event of the absorbed contact gets the survivor"
    assert merged.id == "c2"
    assert merged.traits == {"plan": "pro", "city": "Oslo", "age": 40}
    assert merged.created_at == anonymous.created_at
    assert plan.absorbed == [(WS, "c1", "c2")]
    assert plan.new_identities == []  # a1 moves with its contact
    assert [u.id for u in plan.updates] == ["c2"]


def test_alias_merges_the_previous_id_into_the_user_ids_contact() -> None:
    old = contact("c1", user_id="old", traits={"a": 1}, created=1)
    new = contact("c2", user_id="new", created=2)
    owners = {(WS, "user_id", "old"): "c1", (WS, "user_id", "new"): "c2"}

    plan = resolve([event("alias", 1, user_id="new", previous_id="old")], [old, new], owners)

    assert plan.records[0].id == "c2", "the alias target survives even though it is younger"
    assert plan.records[0].user_id == "new"
    assert plan.records[0].traits == {"a": 1}
    assert plan.absorbed == [(WS, "c1", "c2")]


def test_alias_to_an_unknown_user_id_gives_it_to_the_previous_contact() -> None:
    anonymous = contact("c1")
    plan = resolve(
        [event("alias", 1, user_id="u1", previous_id="a1")],
        [anonymous],
        {(WS, "anonymous_id", "a1"): "c1"},
    )

    assert (plan.records[0].id, plan.records[0].user_id) == ("c1", "u1")
    assert plan.new_identities == [(WS, "user_id", "u1", "c1")]


def test_alias_of_an_unknown_previous_id_attaches_it_as_an_anonymous_id() -> None:
    plan = resolve([event("alias", 1, user_id="u1", previous_id="p1")])

    assert sorted(plan.new_identities) == [
        (WS, "anonymous_id", "p1", "new-1"),
        (WS, "user_id", "u1", "new-1"),
    ]


def test_identify_sets_email_and_time_zone_and_replaces_the_email_identity() -> None:
    known = contact("c1", user_id="u1", email="old@x.io")
    plan = resolve(
        [
            event(
                "identify",
                1,
                user_id="u1",
                traits={"email": " New@X.io "},
                context={"timezone": "Europe/Oslo"},
            )
        ],
        [known],
        {(WS, "user_id", "u1"): "c1"},
    )

    (record,) = plan.records
    assert (record.email, record.timezone) == ("new@x.io", "Europe/Oslo")
    assert plan.removed_identities == [(WS, "email", "old@x.io")]
    assert plan.new_identities == [(WS, "email", "new@x.io", "c1")]


def test_an_email_of_another_users_contact_is_not_taken() -> None:
    theirs = contact("c1", user_id="u9", email="ada@x.io")
    mine = contact("c2", user_id="u1")
    owners = {(WS, "email", "ada@x.io"): "c1", (WS, "user_id", "u1"): "c2"}

    plan = resolve(
        [event("identify", 1, user_id="u1", traits={"email": "ada@x.io"})], [theirs, mine], owners
    )

    assert plan.records[0].id == "c2"
    assert plan.records[0].email is None
    assert plan.records[0].traits == {"email": "ada@x.io"}
    assert plan.new_identities == plan.removed_identities == []


def test_identify_finds_a_contact_by_email_and_a_null_email_clears_it() -> None:
    imported = contact("c1", email="ada@x.io")
    owners = {(WS, "email", "ada@x.io"): "c1"}
    plan = resolve(
        [
            event("identify", 1, user_id="u1", traits={"email": "ADA@x.io"}),
            event("identify", 2, user_id="u1", traits={"email": None}),
        ],
        [imported],
        owners,
    )

    found, cleared = plan.records
    assert (found.id, found.user_id, found.email) == ("c1", "u1", "ada@x.io")
    assert (cleared.id, cleared.email) == ("c1", None)
    assert plan.removed_identities == [(WS, "email", "ada@x.io")]


def test_workspaces_never_share_a_contact() -> None:
    plan = resolve(
        [event("track", 1, user_id="u1"), event("track", 2, user_id="u1", workspace_id="globex")]
    )

    assert [(r.workspace_id, r.id) for r in plan.records] == [(WS, "new-1"), ("globex", "new-2")]


# --------------------------------------------------------------------------- any batch

identifiers = st.sampled_from(["x1", "x2", "x3", "x4"])
batches = st.lists(
    st.builds(
        lambda kind, second, user, anonymous, previous, email: event(
            kind,
            second,
            user_id=user,
            anonymous_id=anonymous if user is None or kind != "alias" else None,
            previous_id=previous if kind == "alias" else None,
            traits={"email": email} if kind == "identify" and email else {},
        ),
        st.sampled_from(["track", "identify", "alias", "group", "page"]),
        st.integers(0, 50),
        st.none() | identifiers,
        identifiers,
        identifiers,
        st.none() | st.sampled_from(["a@x.io", "b@x.io"]),
    ),
    min_size=1,
    max_size=12,
)


class MemoryStore:
    """Applies plans as the store does, refusing any write that contradicts its state."""

    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], ContactRecord] = {}
        self.identities: dict[IdentityKey, str] = {}
        self.ids = (f"new-{n}" for n in itertools.count(1))

    def resolve(self, events: Sequence[Event]) -> list[ContactRecord]:
        keys = identity_keys(events)
        owners = {key: self.identities[key] for key in keys if key in self.identities}
        loaded = {(key[0], owner): self.contacts[(key[0], owner)] for key, owner in owners.items()}
        resolver = BatchResolver(
            loaded.values(), owners, looked_up=keys, now=NOW, new_id=lambda: next(self.ids)
        )
        for item in events:
            resolver.apply(item)
        self.apply(plan := resolver.plan())
        return plan.records

    def apply(self, plan: ResolutionPlan) -> None:
        for workspace, absorbed, survivor in plan.absorbed:
            for key, owner in self.identities.items():
                if key[0] == workspace and owner == absorbed:
                    self.identities[key] = survivor
        for key in plan.removed_identities:
            del self.identities[key]
        for workspace, kind, value, owner in plan.new_identities:
            assert (workspace, kind, value) not in self.identities
            self.identities[(workspace, kind, value)] = owner
        for record in plan.inserts:
            assert record.key not in self.contacts
            self.contacts[record.key] = record
        for record in plan.updates:
            assert record.key in self.contacts
            self.contacts[record.key] = record
        for workspace, absorbed, _ in plan.absorbed:
            del self.contacts[(workspace, absorbed)]


@given(batches, st.integers(0, 12))
def test_a_batch_resolves_as_if_its_events_came_one_call_at_a_time(
    events: list[Event], split: int
) -> None:
    whole, parts = MemoryStore(), MemoryStore()

    records = whole.resolve(events)
    parts.resolve(events[:split])
    parts.resolve(events[split:])

    assert whole.identities == parts.identities
    assert whole.contacts.keys() == parts.contacts.keys()
    for key, contact in whole.contacts.items():
        other = parts.contacts[key]
        # Sightings alone move last_seen_at in steps (SIGHTING_GRANULARITY), so a split batch
        # may keep an earlier one; everything else is the same.
        assert replace(contact, last_seen_at=None) == replace(other, last_seen_at=None)
        assert (contact.last_seen_at is None) == (other.last_seen_at is None)
        if contact.last_seen_at is not None and other.last_seen_at is not None:
            assert abs(contact.last_seen_at - other.last_seen_at) < SIGHTING_GRANULARITY
    assert {record.key for record in records} <= whole.contacts.keys()
    assert set(whole.identities.values()) <= {contact_id for _, contact_id in whole.contacts}
    for item, record in zip(events, records, strict=True):
        if item.user_id and item.type != "group":
            assert whole.identities[(WS, "user_id", item.user_id)] == record.id
    for record in whole.contacts.values():
        for kind, value in (("user_id", record.user_id), ("email", record.email)):
            assert value is None or whole.identities[(WS, kind, value)] == record.id
    latest = max(r.last_seen_at for r in whole.contacts.values() if r.last_seen_at)
    assert latest == max(e.timestamp for e in events)


def test_a_known_contact_is_not_rewritten_for_a_sighting_within_the_granularity() -> None:
    known = contact("c1", user_id="u1", seen=0)
    owners = {(WS, "user_id", "u1"): "c1"}
    soon = resolve([event("track", 60, user_id="u1")], [known], owners)
    assert soon.updates == []
    assert soon.records[0].last_seen_at == known.last_seen_at
    later = resolve([event("track", 300, user_id="u1")], [known], owners)
    assert [u.last_seen_at for u in later.updates] == [T0 + timedelta(seconds=300)]
