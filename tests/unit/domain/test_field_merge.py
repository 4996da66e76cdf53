"""Per-field conflict resolution: one-sided changes always propagate; conflicts go by the mode,
with clock skew corrected, future times capped, and ties to the CRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.field_merge import (
    LOCAL_SOURCE,
    FieldSide,
    MergePolicy,
    Winner,
    resolve_field,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LWW = MergePolicy("last-write-wins")
PRIORITY = MergePolicy("source-priority", priority=("salesforce", LOCAL_SOURCE, "hubspot"))


def local(digest: str | None, minutes_ago: float, source: str = LOCAL_SOURCE) -> FieldSide:
    return FieldSide(digest, NOW - timedelta(minutes=minutes_ago), source)


def remote(digest: str | None, minutes_ago: float, source: str = "hubspot") -> FieldSide:
    return FieldSide(digest, NOW - timedelta(minutes=minutes_ago), source)


# ------------------------------------------------------------------------ no conflict at all


@pytest.mark.parametrize("policy", [LWW, PRIORITY])
def test_a_change_on_one_side_only_wins_whatever_its_time_or_rank(policy: MergePolicy) -> None:
    # campaignflow changed the field long ago; the CRM did not change it since the last sync
    pushed = resolve_field("base", local("new", 600), remote("base", 1), policy, NOW)
    assert (pushed.winner, pushed.conflict) == (Winner.LOCAL, False)
    # the CRM changed it (hubspot ranks last in PRIORITY); campaignflow did not
    pulled = resolve_field("base", local("base", 1), remote("new", 600), policy, NOW)
    assert (pulled.winner, pulled.conflict) == (Winner.REMOTE, False)


def test_both_sides_changed_to_the_same_value_is_no_conflict() -> None:
    agreed = resolve_field("base", local("same", 1), remote("same", 2), LWW, NOW)
    assert (agreed.winner, agreed.conflict) == (Winner.NONE, False)


def test_a_value_cleared_on_one_side_is_a_change_like_any_other() -> None:
    cleared = resolve_field("base", local(None, 1), remote("base", 5), LWW, NOW)
    assert cleared.winner is Winner.LOCAL


def test_before_the_first_sync_two_different_values_are_a_conflict() -> None:
    first = resolve_field(None, local("a", 10), remote("b", 5), LWW, NOW)
    assert (first.winner, first.conflict) == (Winner.REMOTE, True)


# --------------------------------------------------------------------------- last-write-wins


def test_last_write_wins_by_each_fields_own_time() -> None:
    assert resolve_field("b", local("l", 1), remote("r", 2), LWW, NOW).winner is Winner.LOCAL
    assert resolve_field("b", local("l", 2), remote("r", 1), LWW, NOW).winner is Winner.REMOTE


def test_equal_timestamps_are_a_tie_and_the_crm_wins_it() -> None:
    tie = resolve_field("b", local("l", 3), remote("r", 3), LWW, NOW)
    assert (tie.winner, tie.conflict) == (Winner.REMOTE, True)
    assert "same time" in tie.reason


def test_changes_within_the_tie_window_are_a_tie() -> None:
    window = MergePolicy("last-write-wins", tie_window=timedelta(seconds=5))
    # campaignflow's change is 4 s later: inside the window, a tie, the CRM wins
    close = resolve_field("b", FieldSide("l", NOW, "x"), remote("r", 4 / 60), window, NOW)
    assert close.winner is Winner.REMOTE
    # 6 s later: outside it, the later change wins
    apart = resolve_field("b", FieldSide("l", NOW, "x"), remote("r", 6 / 60), window, NOW)
    assert apart.winner is Winner.LOCAL


def test_a_crm_clock_running_ahead_is_corrected_by_the_measured_skew() -> None:
    # The CRM's clock is 10 minutes ahead. Its change stamped 5 minutes in *our* future
    # happened 5 minutes ago in our time, before campaignflow's change 2 minutes ago.
    skewed = MergePolicy("last-write-wins", remote_skew=timedelta(minutes=10))
    ahead = FieldSide("r", NOW + timedelta(minutes=5), "hubspot")
    assert resolve_field("b", local("l", 2), ahead, skewed, NOW).winner is Winner.LOCAL
    # Uncorrected, the CRM's future stamp would be capped at now and win.
    assert resolve_field("b", local("l", 2), ahead, LWW, NOW).winner is Winner.REMOTE


def test_a_crm_clock_running_behind_is_corrected_too() -> None:
    behind = MergePolicy("last-write-wins", remote_skew=-timedelta(minutes=10))
    # Stamped 8 minutes ago by a clock 10 minutes slow: 2 minutes in our future → capped at now
    late = remote("r", 8)
    assert resolve_field("b", local("l", 1), late, behind, NOW).winner is Winner.REMOTE
    assert resolve_field("b", local("l", 1), late, LWW, NOW).winner is Winner.LOCAL


def test_a_time_in_the_future_is_capped_at_now_so_it_cannot_win_forever() -> None:
    # Both stamps in the future: both capped at now, equal, a tie the CRM wins regardless of
    # how far ahead campaignflow's broken stamp is.
    future_local = FieldSide("l", NOW + timedelta(days=365), LOCAL_SOURCE)
    future_remote = FieldSide("r", NOW + timedelta(seconds=1), "hubspot")
    assert resolve_field("b", future_local, future_remote, LWW, NOW).winner is Winner.REMOTE


# --------------------------------------------------------------------------- source-priority


def test_the_higher_priority_source_wins_a_conflict_regardless_of_time() -> None:
    # campaignflow (rank 1) beats hubspot (rank 2) even though hubspot's change is later
    result = resolve_field("b", local("l", 60), remote("r", 1, "hubspot"), PRIORITY, NOW)
    assert (result.winner, result.conflict) == (Winner.LOCAL, True)
    # salesforce (rank 0) beats campaignflow even though campaignflow's change is later
    result = resolve_field("b", local("l", 1), remote("r", 60, "salesforce"), PRIORITY, NOW)
    assert result.winner is Winner.REMOTE
    assert "salesforce" in result.reason


def test_a_local_value_pulled_from_another_crm_carries_that_crms_rank() -> None:
    # The contact's value came from Salesforce (rank 0); HubSpot (rank 2) changed its copy.
    pulled_earlier = local("l", 60, source="salesforce")
    result = resolve_field("b", pulled_earlier, remote("r", 1, "hubspot"), PRIORITY, NOW)
    assert result.winner is Winner.LOCAL


def test_an_unlisted_source_ranks_after_every_listed_one() -> None:
    result = resolve_field("b", local("l", 60), remote("r", 1, "pipedrive"), PRIORITY, NOW)
    assert result.winner is Winner.LOCAL


def test_equal_ranks_fall_back_to_last_write_wins() -> None:
    unlisted = MergePolicy("source-priority", priority=("salesforce",))
    later_local = resolve_field("b", local("l", 1), remote("r", 5, "pipedrive"), unlisted, NOW)
    later_remote = resolve_field("b", local("l", 5), remote("r", 1, "pipedrive"), unlisted, NOW)
    assert (later_local.winner, later_remote.winner) == (Winner.LOCAL, Winner.REMOTE)


def test_source_priority_needs_sources_and_the_tie_window_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="at least one source"):
        MergePolicy("source-priority")
    with pytest.raises(ValueError, match="negative"):
        MergePolicy("last-write-wins", tie_window=timedelta(seconds=-1))


# --------------------------------------------------------------------------------- properties

digests = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
offsets = st.integers(min_value=-3600, max_value=3600)
sources = st.sampled_from([LOCAL_SOURCE, "salesforce", "hubspot", "pipedrive"])
policies = st.builds(
    MergePolicy,
    mode=st.sampled_from(["last-write-wins", "source-priority"]),
    priority=st.permutations([LOCAL_SOURCE, "salesforce", "hubspot"]).map(tuple),
    tie_window=st.integers(0, 600).map(lambda s: timedelta(seconds=s)),
    remote_skew=st.integers(-600, 600).map(lambda s: timedelta(seconds=s)),
)


def side(digest: str | None, offset: int, source: str) -> FieldSide:
    return FieldSide(digest, NOW + timedelta(seconds=offset), source)


@given(
    base=digests,
    mine=digests,
    theirs=digests,
    my_offset=offsets,
    their_offset=offsets,
    my_source=sources,
    their_source=sources,
    policy=policies,
)
def test_the_winner_is_always_a_side_that_changed_and_never_one_that_did_not(
    *,
    base: str | None,
    mine: str | None,
    theirs: str | None,
    my_offset: int,
    their_offset: int,
    my_source: str,
    their_source: str,
    policy: MergePolicy,
) -> None:
    result = resolve_field(
        base,
        side(mine, my_offset, my_source),
        side(theirs, their_offset, their_source),
        policy,
        NOW,
    )
    if mine == theirs:
        assert result.winner is Winner.NONE
        return
    assert result.winner is not Winner.NONE
    if result.winner is Winner.LOCAL:
        assert mine != base  # an unchanged local value never overwrites the CRM's change
    else:
        assert theirs != base
    assert result.conflict == (base not in (mine, theirs))


@given(digests, offsets, offsets, policies)
def test_swapping_which_value_is_where_never_changes_which_time_wins_under_lww(
    base: str | None, my_offset: int, their_offset: int, policy: MergePolicy
) -> None:
    lww = MergePolicy("last-write-wins", tie_window=policy.tie_window)
    one = resolve_field(base, side("x", my_offset, "a"), side("y", their_offset, "b"), lww, NOW)
    two = resolve_field(base, side("y", my_offset, "a"), side("x", their_offset, "b"), lww, NOW)
    if base not in {"x", "y"}:
        assert one.winner is two.winner  # the decision is by time, not by value
