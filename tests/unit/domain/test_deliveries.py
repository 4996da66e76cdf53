"""Delivery status precedence: webhooks arrive out of order and more than once, and the status
and history a message ends with must not depend on either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.deliveries import (
    PRECEDENCE,
    DeliveryEntry,
    DeliveryState,
    later,
    merge,
)

SENT_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

entries = st.builds(
    lambda second, event, event_id: DeliveryEntry(
        SENT_AT + timedelta(seconds=second), event, event_id
    ),
    st.integers(0, 600),
    st.sampled_from(PRECEDENCE[1:]),
    st.text("abc", min_size=1, max_size=3),
)


def _one_at_a_time(events: list[DeliveryEntry], cap: int) -> DeliveryState:
    state = DeliveryState.sent(SENT_AT)
    for entry in events:
        state = merge(state, [entry], cap)
    return state


@given(st.lists(entries, max_size=30), st.randoms(use_true_random=False), st.integers(1, 8))
def test_the_final_state_depends_only_on_which_events_arrived(
    events: list[DeliveryEntry], random: Random, cap: int
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    redelivered = shuffled + shuffled[: len(shuffled) // 2]

    in_order = _one_at_a_time(events, cap)
    assert _one_at_a_time(shuffled, cap) == in_order
    assert _one_at_a_time(redelivered, cap) == in_order
    assert merge(DeliveryState.sent(SENT_AT), events, cap) == in_order


@given(st.lists(entries, min_size=1, max_size=30))
def test_the_status_is_the_highest_reached_and_history_is_in_time_order(
    events: list[DeliveryEntry],
) -> None:
    state = merge(DeliveryState.sent(SENT_AT), events)

    assert state.status == max((e.event for e in events), key=PRECEDENCE.index)
    assert list(state.entries) == sorted(state.entries, key=DeliveryEntry.order)
    assert state.entries[0] == DeliveryEntry(SENT_AT, "sent")


def test_a_terminal_outcome_outranks_engagement_and_engagement_outranks_delivery() -> None:
    assert later("clicked", "opened") == "clicked"
    assert later("delivered", "opened") == "opened"
    assert later("clicked", "bounced") == "bounced"
    assert later("bounced", "spam_reported") == "spam_reported"
    assert later("spam_reported", "delivered") == "spam_reported"
    assert later("deferred", "delivered") == "delivered"


def test_an_open_before_its_delivery_still_ends_opened() -> None:
    opened = DeliveryEntry(SENT_AT + timedelta(seconds=9), "opened", "e2")
    delivered = DeliveryEntry(SENT_AT + timedelta(seconds=3), "delivered", "e1")

    state = merge(merge(DeliveryState.sent(SENT_AT), [opened]), [delivered])

    assert state.status == "opened"
    assert [e.event for e in state.entries] == ["sent", "delivered", "opened"]


def test_the_history_is_cut_to_the_earliest_entries() -> None:
    opens = [DeliveryEntry(SENT_AT + timedelta(seconds=n), "opened", f"o{n}") for n in range(80)]
    bounce = DeliveryEntry(SENT_AT + timedelta(hours=1), "bounced", "late")

    state = merge(DeliveryState.sent(SENT_AT), [*opens, bounce])

    assert len(state.entries) == 50
    assert state.entries[-1].id == "o48"
    assert state.status == "bounced"  # the status counts what the history no longer shows


def test_entries_survive_a_round_trip_through_json_and_garbage_is_skipped() -> None:
    entry = DeliveryEntry(SENT_AT, "clicked", "e1")

    assert DeliveryEntry.from_json(entry.to_json()) == entry
    assert DeliveryEntry.from_json(DeliveryEntry(SENT_AT, "sent").to_json()) == DeliveryEntry(
        SENT_AT, "sent"
    )
    for garbage in (
        {},
        {"event": "teleported", "at": SENT_AT.isoformat()},
        {"event": "opened", "at": "yesterday"},
        {"event": "opened", "at": "2026-03-01T09:00:00"},  # no offset
        {"event": "opened", "at": SENT_AT.isoformat(), "id": 7},
    ):
        assert DeliveryEntry.from_json(garbage) is None
