"""A normalised webhook event → the bus event the router acts on, and what else follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaignflow.domain.identity_resolution import email_identity
from campaignflow.integrations.webhooks.events import (
    Tracking,
    WebhookEvent,
    bus_event,
    delivery_entry,
)

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TRACKING = Tracking("acme", "send-1", "exec-1", "mail")


def _opened(**changes: object) -> WebhookEvent:
    fields: dict[str, object] = {
        "provider": "sendgrid",
        "event_id": "ev-1",
        "name": "email.opened",
        "kind": "opened",
        "occurred_at": AT,
        "raw_type": "open",
        "email": "ada@example.com",
        "message_id": "msg-1",
        "tracking": TRACKING,
        **changes,
    }
    return WebhookEvent(**fields)  # type: ignore[arg-type]


def test_the_bus_event_is_a_track_known_by_the_address_and_named_for_the_kind() -> None:
    event = bus_event(_opened(), workspace_id="acme", connection_id="c1", received_at=AT)

    assert (event.type, event.name, event.message_id) == ("track", "email.opened", "sendgrid:ev-1")
    assert event.user_id is None
    assert event.anonymous_id is None
    assert event.context == {"traits": {"email": "ada@example.com"}}
    assert email_identity(event) == "ada@example.com"
    assert event.partition_key == "email:ada@example.com"  # one address, one shard
    assert event.properties == {
        "provider": "sendgrid",
        "connectionId": "c1",
        "providerEventId": "ev-1",
        "providerEventType": "open",
        "providerMessageId": "msg-1",
        "sendId": "send-1",
        "executionId": "exec-1",
        "nodeId": "mail",
    }


def test_tracking_that_names_another_workspace_is_left_out() -> None:
    event = bus_event(_opened(), workspace_id="globex", connection_id="c1", received_at=AT)

    assert "executionId" not in event.properties
    assert "sendId" not in event.properties


def test_a_timestamp_ahead_of_our_clock_is_taken_as_the_arrival() -> None:
    ahead = _opened(occurred_at=AT + timedelta(minutes=3))

    event = bus_event(ahead, workspace_id="acme", connection_id="c1", received_at=AT)

    assert event.timestamp == AT


def test_a_crm_record_is_the_events_anonymous_id() -> None:
    record = _opened(
        provider="hubspot",
        name="hubspot.contact.creation",
        kind=None,
        email=None,
        record_id="hubspot:1:2",
        message_id=None,
        tracking=None,
    )

    event = bus_event(record, workspace_id="acme", connection_id="c1", received_at=AT)

    assert (event.anonymous_id, event.context) == ("hubspot:1:2", {})
    assert delivery_entry(record) is None


def test_tracking_keeps_short_strings_only() -> None:
    assert Tracking.from_mapping({"cf_send": "s" * 65, "cf_node": 7}) is None
    found = Tracking.from_mapping({"cf_send": "s1", "cf_node": "a\x00b", "other": "x"})
    assert found == Tracking(None, "s1", None, None)


def test_an_event_about_no_known_message_has_no_delivery_entry() -> None:
    assert delivery_entry(_opened(message_id=None, tracking=None)) is None
    entry = delivery_entry(_opened())
    assert entry is not None
    assert (entry.event, entry.id, entry.at) == ("opened", "ev-1", AT)
