"""One record's sync plan: new records, one-sided changes, conflicts per field, directions,
transform errors, and the properties that matter: applying a plan makes both sides agree,
and planning again afterwards changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.field_merge import LOCAL_SOURCE, MergePolicy, Winner
from campaignflow.domain.field_transforms import Scalar
from campaignflow.domain.record_merge import (
    FieldBase,
    LocalSide,
    RecordPlan,
    RemoteSide,
    plan_local_changes,
    plan_record,
)
from campaignflow.domain.sync_config import DataMapping

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
LWW = MergePolicy("last-write-wins")
MAPPING = DataMapping.model_validate(
    {
        "contactFields": {
            "email": "email",
            "firstName": {"remote": "firstname", "transform": "trim"},
            "plan": {"remote": "plan_tier", "valueMap": {"pro": "PRO", "free": "FREE"}},
            "score": {"remote": "lead_score", "direction": "push", "transform": "number"},
            "owner": {"remote": "hubspot_owner_id", "direction": "pull"},
        }
    }
).mappings()


def digest(value: Scalar) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def plan(
    local: LocalSide | None,
    remote: RemoteSide | None,
    state: dict[str, FieldBase] | None = None,
    policy: MergePolicy = LWW,
) -> RecordPlan:
    return plan_record(
        MAPPING, local, remote, state=state or {}, policy=policy, digest=digest, now=NOW
    )


def here(values: dict[str, Scalar], at: datetime = EARLIER, **times: datetime) -> LocalSide:
    return LocalSide(values, at, field_times=times)


def there(values: dict[str, Scalar], at: datetime = EARLIER, **times: datetime) -> RemoteSide:
    return RemoteSide(values, at, "hubspot", field_times=times)


def agreed(values: Mapping[str, Scalar]) -> dict[str, FieldBase]:
    return {name: FieldBase(digest(value), EARLIER, EARLIER) for name, value in values.items()}


def test_a_contact_not_yet_in_the_crm_pushes_every_field_it_may_push() -> None:
    result = plan(here({"email": "a@x.io", "firstName": " Ann ", "score": "7", "owner": "9"}), None)
    assert result.ok
    # trimmed and converted on the way; "owner" is pull-only and stays home
    assert result.push == {"email": "a@x.io", "firstname": "Ann", "lead_score": 7}
    assert result.pull == {}
    assert set(result.bases) >= {"email", "firstName", "score"}


def test_a_crm_record_without_a_contact_pulls_every_field_it_may_pull() -> None:
    result = plan(None, there({"email": "b@x.io", "plan_tier": "PRO", "lead_score": 50}))
    assert result.pull == {"email": "b@x.io", "plan": "pro"}  # score is push-only
    assert result.push == {}


def test_only_the_changed_fields_move_and_each_in_its_own_direction() -> None:
    base = {"email": "a@x.io", "firstName": "Ann", "plan": "free"}
    result = plan(
        here({"email": "a@x.io", "firstName": "Anna", "plan": "free"}),
        there({"email": "a@x.io", "firstname": "Ann", "plan_tier": "PRO"}),
        agreed(base),
    )
    assert result.push == {"firstname": "Anna"}
    assert result.pull == {"plan": "pro"}
    assert result.conflicts == []


def test_a_conflict_is_resolved_per_field_by_each_fields_time() -> None:
    base = {"firstName": "Ann", "plan": "free"}
    result = plan(
        # campaignflow changed firstName at 11:50 and plan at 11:10
        here(
            {"firstName": "Anna", "plan": "pro"},
            firstName=NOW - timedelta(minutes=10),
            plan=NOW - timedelta(minutes=50),
        ),
        # HubSpot changed both, firstname at 11:30 and plan_tier at 11:40
        there(
            {"firstname": "Annie", "plan_tier": "FREE", "email": None},
            firstname=NOW - timedelta(minutes=30),
            plan_tier=NOW - timedelta(minutes=20),
        ),
        agreed(base) | {"plan": FieldBase(digest("trial"))},
    )
    assert result.push == {"firstname": "Anna"}  # campaignflow's later change
    assert result.pull == {"plan": "free"}  # HubSpot's later change
    assert {(c.local_field, c.winner) for c in result.conflicts} == {
        ("firstName", Winner.LOCAL),
        ("plan", Winner.REMOTE),
    }


def test_source_priority_resolves_the_same_conflict_the_other_way() -> None:
    base = agreed({"firstName": "Ann"})
    local = here({"firstName": "Anna"}, firstName=NOW - timedelta(minutes=1))
    remote = there({"firstname": "Annie"}, firstname=NOW - timedelta(minutes=30))
    lww = plan(local, remote, base)
    hubspot_first = plan(
        local, remote, base, MergePolicy("source-priority", priority=("hubspot", LOCAL_SOURCE))
    )
    assert lww.push == {"firstname": "Anna"}
    assert hubspot_first.pull == {"firstName": "Annie"}
    assert hubspot_first.push == {}


def test_a_push_only_field_is_not_overwritten_by_the_crm_nor_pushed_back_unchanged() -> None:
    base = agreed({"score": 10})
    crm_edit = plan(here({"score": 10}), there({"lead_score": 99}), base)
    assert crm_edit.pull == {}
    assert crm_edit.push == {}
    ours = plan(here({"score": 12}), there({"lead_score": 99}), base)
    assert ours.push == {"lead_score": 12}


def test_a_pull_only_field_never_writes_to_the_crm() -> None:
    result = plan(here({"owner": "me"}), there({"hubspot_owner_id": "7"}), agreed({"owner": "7"}))
    assert result.push == {}
    assert result.pull == {}
    changed_there = plan(
        here({"owner": "7"}), there({"hubspot_owner_id": "8"}), agreed({"owner": "7"})
    )
    assert changed_there.pull == {"owner": "8"}


def test_a_value_that_cannot_be_converted_fails_the_whole_record_naming_the_field() -> None:
    result = plan(
        here({"firstName": "Anna", "plan": "enterprise"}),  # "enterprise" is not in the map
        there({"firstname": "Ann", "plan_tier": "FREE"}),
        agreed({"firstName": "Ann", "plan": "free"}),
    )
    assert not result.ok
    assert [(e.local_field, e.direction) for e in result.errors] == [("plan", "push")]
    assert result.push == {}
    assert result.pull == {}
    assert result.bases == {}


def test_a_crm_value_that_cannot_be_pulled_fails_the_record_too() -> None:
    result = plan(here({}), there({"plan_tier": "GOLD"}))
    assert [(e.local_field, e.direction) for e in result.errors] == [("plan", "pull")]


# --------------------------------------------------------------------------------- properties

values = st.one_of(st.none(), st.sampled_from(["Ann", "Anna", "Bea"]))
plans = st.one_of(st.none(), st.sampled_from(["pro", "free"]))
minutes = st.integers(0, 120).map(lambda m: NOW - timedelta(minutes=m))
policies = st.sampled_from(
    [
        LWW,
        MergePolicy("source-priority", priority=(LOCAL_SOURCE, "hubspot")),
        MergePolicy("source-priority", priority=("hubspot",)),
    ]
)


@st.composite
def situations(draw: st.DrawFn) -> tuple[LocalSide, RemoteSide, dict[str, FieldBase]]:
    local = LocalSide(
        {"email": "a@x.io", "firstName": draw(values), "plan": draw(plans)},
        draw(minutes),
        field_times={"firstName": draw(minutes)},
    )
    tier = draw(plans)
    remote = RemoteSide(
        {"email": "a@x.io", "firstname": draw(values), "plan_tier": tier and tier.upper()},
        draw(minutes),
        "hubspot",
    )
    base = {
        "firstName": FieldBase(digest(draw(values))),
        "plan": FieldBase(digest(draw(plans))),
        "email": FieldBase(digest("a@x.io")),
    }
    return local, remote, base


def applied(
    plan_: RecordPlan, local: LocalSide, remote: RemoteSide
) -> tuple[LocalSide, RemoteSide]:
    return (
        LocalSide({**local.values, **plan_.pull}, NOW),
        RemoteSide({**remote.values, **plan_.push}, NOW, remote.source),
    )


@given(situations(), policies)
def test_after_a_plan_is_applied_both_sides_agree_and_planning_again_does_nothing(
    situation: tuple[LocalSide, RemoteSide, dict[str, FieldBase]], policy: MergePolicy
) -> None:
    local, remote, base = situation
    first = plan(local, remote, base, policy)
    assert first.ok
    local_after, remote_after = applied(first, local, remote)
    # every two-way field now holds one value on both sides
    assert local_after.values.get("firstName") == remote_after.values.get("firstname")
    pulled_plan = MAPPING["plan"].resolved_transform().pull(remote_after.values.get("plan_tier"))
    assert local_after.values.get("plan") == pulled_plan
    second = plan(local_after, remote_after, {**base, **first.bases}, policy)
    assert not second.changes_anything
    assert second.conflicts == []


@given(situations(), policies, st.booleans())
def test_after_a_plan_is_applied_the_next_change_on_one_side_is_no_conflict(
    situation: tuple[LocalSide, RemoteSide, dict[str, FieldBase]],
    policy: MergePolicy,
    change_here: bool,
) -> None:
    local, remote, base = situation
    first = plan(local, remote, base, policy)
    local_after, remote_after = applied(first, local, remote)
    bases = {**base, **first.bases}
    if change_here:
        local_after = LocalSide({**local_after.values, "firstName": "Zed"}, NOW)
    else:
        remote_after = RemoteSide({**remote_after.values, "firstname": "Zed"}, NOW, "hubspot")
    second = plan(local_after, remote_after, bases, policy)
    assert second.conflicts == []
    if change_here:
        assert second.push == {"firstname": "Zed"}
    else:
        assert second.pull == {"firstName": "Zed"}


# ------------------------------------------------------------------------ plan_local_changes


def local_plan(local: LocalSide, state: Mapping[str, FieldBase]) -> RecordPlan:
    return plan_local_changes(MAPPING, local, state=state, digest=digest, now=NOW)


def test_a_local_change_pushes_only_the_fields_that_moved_from_the_agreed_value() -> None:
    state = agreed({"email": "a@x.io", "firstName": "Ann", "score": 3, "owner": "7"})
    result = local_plan(
        here({"email": "a@x.io", "firstName": "Anna", "score": 3, "owner": "8"}), state
    )
    # owner is pull-only: a local change of it is not pushed
    assert result.push == {"firstname": "Anna"}
    assert set(result.bases) == {"firstName"}
    assert result.bases["firstName"].digest == digest("Anna")


def test_a_contact_never_synced_pushes_every_value_it_has() -> None:
    result = local_plan(here({"email": "a@x.io", "plan": "pro", "score": "12"}), {})
    assert result.push == {"email": "a@x.io", "plan_tier": "PRO", "lead_score": 12}


def test_a_cleared_value_is_pushed_as_empty() -> None:
    result = local_plan(here({"firstName": None}), agreed({"firstName": "Ann"}))
    assert result.push == {"firstname": None}


def test_a_local_value_that_cannot_be_pushed_fails_the_record() -> None:
    result = local_plan(here({"plan": "enterprise"}), agreed({"plan": "pro"}))
    assert not result.ok
    assert result.push == {}
    assert [(e.local_field, e.direction) for e in result.errors] == [("plan", "push")]


@given(situations(), policies)
def test_with_an_unchanged_crm_record_the_local_plan_pushes_what_the_full_plan_pushes(
    situation: tuple[LocalSide, RemoteSide, dict[str, FieldBase]], policy: MergePolicy
) -> None:
    local = situation[0]
    # the CRM holds exactly the agreed values: nothing changed there since the last sync
    values = {"firstName": "Ann", "plan": "pro", "email": "a@x.io"}
    state = agreed(values)
    remote = RemoteSide(
        {"firstname": "Ann", "plan_tier": "PRO", "email": "a@x.io"}, EARLIER, "hubspot"
    )
    full = plan(local, remote, state, policy)
    quick = local_plan(local, state)
    assert quick.push == full.push
    assert full.pull == {}
