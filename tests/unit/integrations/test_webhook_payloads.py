"""Provider webhook bodies → normalised events, per provider; and no body, however malformed,
raises anything but the client error that points at what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaignflow.domain.events import encode_events
from campaignflow.integrations.webhooks import hubspot, mailchimp, mandrill, sendgrid
from campaignflow.integrations.webhooks.events import bus_event, suppression_reason
from campaignflow.integrations.webhooks.payloads import MalformedWebhook, ParsedWebhook
from tests.unit.integrations.test_webhook_signatures import SENDGRID_BODY

AT = 1_700_000_000
RECEIVED = datetime(2026, 3, 1, tzinfo=UTC)


def _sendgrid(*events: dict[str, Any]) -> ParsedWebhook:
    return sendgrid.parse(json.dumps(list(events)).encode())


def _sg(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": "Ada@Example.com",
        "timestamp": AT,
        "event": event,
        "sg_event_id": f"id-{event}",
        "sg_message_id": "msg1.filterdrecv-1-2",
        **extra,
    }


# --------------------------------------------------------------------------- SendGrid


def test_sendgrids_published_vector_is_a_drop_for_a_bounced_address() -> None:
    parsed = sendgrid.parse(SENDGRID_BODY)

    (event,) = parsed.events
    assert (event.name, event.email, event.raw_type) == (
        "email.dropped",
        "hello@world.com",
        "dropped",
    )
    assert event.event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.message_id == "LRzXl_NHStOGhQ4kofSm_A"  # the send's X-Message-Id
    assert event.occurred_at == datetime.fromtimestamp(1600112492, UTC)
    assert event.reason == "Bounced Address"
    assert suppression_reason(event) == "bounce"


@pytest.mark.parametrize(
    ("raw", "name", "suppressed"),
    [
        ("delivered", "email.delivered", None),
        ("deferred", "email.deferred", None),
        ("open", "email.opened", None),
        ("click", "email.clicked", None),
        ("bounce", "email.bounced", "bounce"),
        ("spamreport", "email.spam_reported", "spam_report"),
        ("unsubscribe", "email.unsubscribed", "unsubscribe"),
        ("group_unsubscribe", "email.unsubscribed", None),  # one group only
        ("group_resubscribe", "email.subscribed", None),
        ("dropped", "email.dropped", None),  # no reason given: nothing to suppress for
    ],
)
def test_each_sendgrid_type_has_its_event(raw: str, name: str, suppressed: str | None) -> None:
    (event,) = _sendgrid(_sg(raw)).events
    assert event.name == name
    assert event.email == "ada@example.com"
    assert suppression_reason(event) == suppressed


def test_sendgrid_details_tracking_and_bounce_types() -> None:
    tracking = {"cf_workspace": "acme", "cf_send": "s1", "cf_execution": "x1", "cf_node": "mail"}
    parsed = _sendgrid(
        _sg("click", url="https://example.com/a", **tracking),
        _sg("bounce", type="blocked", reason="try later", sg_event_id="b1"),
        _sg("group_unsubscribe", asm_group_id=42),
        _sg("open", sg_machine_open=True),
    )

    click, blocked, group, machine = parsed.events
    assert click.url == "https://example.com/a"
    assert click.tracking is not None
    assert (click.tracking.send_id, click.tracking.execution_id) == ("s1", "x1")
    assert (blocked.bounce_type, suppression_reason(blocked)) == ("soft", None)
    assert group.details == {"asmGroupId": 42}
    assert machine.details == {"machineOpen": True}


def test_processed_and_unknown_types_are_ignored_and_a_repeat_counts_once() -> None:
    parsed = _sendgrid(_sg("processed"), _sg("teleported"), _sg("open"), _sg("open"))

    assert [e.name for e in parsed.events] == ["email.opened"]
    assert parsed.ignored == 2
    assert parsed.rejected == []


def test_a_bad_sendgrid_event_is_refused_with_pointers_and_the_others_are_kept() -> None:
    parsed = _sendgrid(
        _sg("open"),
        {**_sg("click"), "email": "not an address", "timestamp": "soon"},
        {**_sg("delivered"), "sg_event_id": None, "reason": "a\u0000b"},
        "not an object",
    )

    assert [e.name for e in parsed.events] == ["email.opened"]
    assert parsed.rejected == [1, 2, 3]
    assert {(p.pointer, p.code) for p in parsed.problems} == {
        ("/1/email", "invalid_email"),
        ("/1/timestamp", "not_a_number"),
        ("/2/sg_event_id", "missing"),
        ("/2/reason", "invalid_character"),
        ("/3", "not_an_object"),
    }


@pytest.mark.parametrize(
    ("body", "pointer"),
    [(b"{not json", ""), (b'{"event": "open"}', ""), (b"", "")],
)
def test_a_body_that_is_no_sendgrid_array_is_malformed(body: bytes, pointer: str) -> None:
    with pytest.raises(MalformedWebhook) as caught:
        sendgrid.parse(body)
    assert caught.value.problems[0].pointer == pointer


# --------------------------------------------------------------------------- Mandrill


def _mandrill(*events: dict[str, Any]) -> ParsedWebhook:
    return mandrill.parse(urlencode({"mandrill_events": json.dumps(list(events))}).encode())


def _md(event: str, **msg: Any) -> dict[str, Any]:
    return {"event": event, "ts": AT, "_id": "m1", "msg": {"email": "ada@example.com", **msg}}


@pytest.mark.parametrize(
    ("raw", "name", "suppressed"),
    [
        ("send", "email.delivered", None),
        ("deferral", "email.deferred", None),
        ("hard_bounce", "email.bounced", "bounce"),
        ("soft_bounce", "email.bounced", None),
        ("open", "email.opened", None),
        ("click", "email.clicked", None),
        ("spam", "email.spam_reported", "spam_report"),
        ("unsub", "email.unsubscribed", "unsubscribe"),
        ("reject", "email.dropped", None),
    ],
)
def test_each_mandrill_type_has_its_event(raw: str, name: str, suppressed: str | None) -> None:
    (event,) = _mandrill(_md(raw)).events
    assert (event.name, event.message_id, event.email) == (name, "m1", "ada@example.com")
    assert suppression_reason(event) == suppressed


def test_mandrill_metadata_rejections_sync_events_and_stable_ids() -> None:
    tracked = _md("open", metadata={"cf_send": "s1", "cf_workspace": "acme"})
    rejected = _md("reject", reject={"reason": "hard-bounce"})
    sync = {"type": "blacklist", "action": "add", "reject": {"email": "x@example.com"}}

    first = _mandrill(tracked, rejected, sync)
    again = _mandrill(tracked, rejected, sync)

    opened, dropped = first.events
    assert opened.tracking is not None
    assert opened.tracking.send_id == "s1"
    assert suppression_reason(dropped) == "bounce"
    assert first.ignored == 1
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert opened.event_id != dropped.event_id


def test_mandrill_problems_point_into_the_form_field() -> None:
    parsed = _mandrill(_md("open"), {"event": "open", "ts": AT, "msg": {}})

    assert parsed.rejected == [1]
    assert [p.pointer for p in parsed.problems] == ["/mandrill_events/1/msg/email"]
    with pytest.raises(MalformedWebhook):
        mandrill.parse(b"other=1")
    with pytest.raises(MalformedWebhook) as caught:
        mandrill.parse(urlencode({"mandrill_events": "[oops"}).encode())
    assert caught.value.problems[0].pointer == "/mandrill_events"


# --------------------------------------------------------------------------- Mailchimp


def _mailchimp(**fields: str) -> ParsedWebhook:
    form = {"fired_at": "2026-03-01 10:00:00", "data[email]": "Ada@Example.com", **fields}
    return mailchimp.parse(urlencode(form).encode())


@pytest.mark.parametrize(
    ("fields", "name", "suppressed"),
    [
        ({"type": "unsubscribe", "data[reason]": "manual"}, "email.unsubscribed", "unsubscribe"),
        ({"type": "unsubscribe", "data[reason]": "abuse"}, "email.spam_reported", "spam_report"),
        ({"type": "cleaned", "data[reason]": "hard"}, "email.bounced", "bounce"),
        ({"type": "cleaned", "data[reason]": "abuse"}, "email.spam_reported", "spam_report"),
        ({"type": "subscribe"}, "email.subscribed", None),
    ],
)
def test_mailchimp_audience_events(fields: dict[str, str], name: str, suppressed: str) -> None:
    (event,) = _mailchimp(**fields, **{"data[list_id]": "l1"}).events
    assert (event.name, event.email) == (name, "ada@example.com")
    assert event.occurred_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert event.details == {"listId": "l1"}
    assert suppression_reason(event) == suppressed


def test_mailchimp_profile_changes_are_ignored_and_bad_forms_point_at_the_field() -> None:
    assert _mailchimp(type="profile").ignored == 1
    missing = mailchimp.parse(urlencode({"type": "unsubscribe", "fired_at": "x"}).encode())
    assert missing.rejected == [0]
    assert {p.pointer for p in missing.problems} == {"/data[email]", "/fired_at"}


# --------------------------------------------------------------------------- HubSpot


def _hubspot(*items: dict[str, Any]) -> ParsedWebhook:
    return hubspot.parse(json.dumps(list(items)).encode())


def _hs(**extra: Any) -> dict[str, Any]:
    return {
        "eventId": 100,
        "subscriptionId": 7,
        "portalId": 62515,
        "occurredAt": AT * 1000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 123,
        "propertyName": "lifecyclestage",
        "propertyValue": "lead",
        **extra,
    }


def test_hubspot_contact_notifications_name_the_record_and_opt_outs_unsubscribe() -> None:
    changed, opted_out, one_type, company = [
        *_hubspot(
            _hs(),
            _hs(eventId=101, propertyName="hs_email_optout", propertyValue="true"),
            _hs(eventId=102, propertyName="hs_email_optout_555", propertyValue="true"),
            _hs(eventId=103, subscriptionType="company.creation"),
        ).events,
        None,
    ]

    assert company is None  # a company is no contact: ignored
    assert changed.name == "hubspot.contact.propertyChange"
    assert changed.record_id == "hubspot:62515:123"
    assert changed.details["propertyValue"] == "lead"
    assert (opted_out.name, opted_out.group_only) == ("email.unsubscribed", False)
    assert (one_type.name, one_type.group_only) == ("email.unsubscribed", True)
    assert suppression_reason(opted_out) is None  # no address to suppress


def test_a_hubspot_retry_has_the_same_id_and_another_event_does_not() -> None:
    (first,) = _hubspot(_hs()).events
    (retry,) = _hubspot(_hs(attemptNumber=3)).events
    (other,) = _hubspot(_hs(eventId=999)).events

    assert first.event_id == retry.event_id
    assert other.event_id != first.event_id
    assert first.event_id.startswith("100.")


# --------------------------------------------------------------------------- any body

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


def _mutations(base: dict[str, Any], extra: dict[str, st.SearchStrategy[Any]]) -> Any:
    """``base`` (a valid event) with a few members dropped or replaced by anything, so most
    examples get past the first check and many are still valid."""
    members = sorted({*base, *extra})
    values = {name: extra.get(name, st.nothing()) | json_values for name in members}
    replaced = st.lists(st.sampled_from(members), max_size=3).flatmap(
        lambda names: st.fixed_dictionaries({name: values[name] for name in names})
    )
    dropped = st.sets(st.sampled_from(sorted(base)), max_size=2)
    return st.builds(
        lambda over, gone: {k: v for k, v in {**base, **over}.items() if k not in gone},
        replaced,
        dropped,
    )


_TEXT = st.text(max_size=8) | st.sampled_from(["a\x00b", "x" * 300, "Ada@X.io", "nope"])
sendgrid_events = _mutations(
    _sg("open", cf_send="s1", cf_workspace="acme", url="https://x.io", reason="r"),
    {
        "event": st.sampled_from([*list(sendgrid._KINDS), "processed", "?"]),
        "email": _TEXT,
        "timestamp": st.integers(-(2**70), 2**70) | st.floats() | _TEXT,
        "sg_event_id": _TEXT,
        "cf_send": _TEXT,
        "asm_group_id": st.integers(-(2**64), 2**64),
        "type": st.just("blocked"),
    },
)
hubspot_events = _mutations(
    _hs(),
    {
        "subscriptionType": st.sampled_from(["contact.creation", "deal.creation", "contact.x?"]),
        "eventId": st.integers(-(2**64), 2**64) | _TEXT,
        "objectId": st.integers(-(2**64), 2**64) | _TEXT,
        "occurredAt": st.integers(-(2**70), 2**70) | st.floats(),
        "propertyName": st.just("hs_email_optout"),
        "propertyValue": st.sampled_from(["true", "TRUE", "false"]) | _TEXT,
    },
)
mandrill_events = _mutations(
    _md("click", metadata={"cf_send": "s1"}, reject={"reason": "spam"}),
    {
        "event": st.sampled_from([*list(mandrill._KINDS), "inbound"]),
        "ts": st.integers(-(2**70), 2**70) | _TEXT,
        "_id": _TEXT,
        "msg": st.fixed_dictionaries(
            {}, optional={"email": _TEXT, "metadata": json_values, "diag": json_values}
        ),
        "url": _TEXT,
    },
)


def _check(parse: Any, body: bytes) -> None:
    """``parse`` either reads the body or raises MalformedWebhook; every event it reads makes
    a bus event that the bus can carry and PostgreSQL can store."""
    try:
        parsed = parse(body)
    except MalformedWebhook:
        return
    assert bool(parsed.problems) == bool(parsed.rejected)
    for event in parsed.events:
        bus = bus_event(event, workspace_id="acme", connection_id="c1", received_at=RECEIVED)
        encoded = encode_events([bus])
        assert len(bus.message_id) <= 200
        assert b"\\u0000" not in msgspec.json.encode(bus)
        assert encoded


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.lists(sendgrid_events, max_size=4), st.lists(hubspot_events, max_size=4))
def test_any_json_events_are_read_or_refused_as_a_client_error(
    sendgrid_body: list[Any], hubspot_body: list[Any]
) -> None:
    _check(sendgrid.parse, json.dumps(sendgrid_body).encode())
    _check(hubspot.parse, json.dumps(hubspot_body).encode())


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.lists(mandrill_events, max_size=4) | json_values)
def test_any_mandrill_events_are_read_or_refused_as_a_client_error(document: Any) -> None:
    _check(mandrill.parse, urlencode({"mandrill_events": json.dumps(document)}).encode())


@given(json_values)
def test_any_json_document_is_read_or_refused_as_a_client_error(document: Any) -> None:
    for parse in (sendgrid.parse, hubspot.parse):
        _check(parse, json.dumps(document).encode())


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["type", "fired_at", "data[email]", "data[reason]", "x"]),
        st.text(max_size=30),
    )
)
def test_any_mailchimp_form_is_read_or_refused_as_a_client_error(form: dict[str, str]) -> None:
    _check(mailchimp.parse, urlencode(form).encode())


@given(st.binary(max_size=200))
def test_any_bytes_are_read_or_refused_as_a_client_error(body: bytes) -> None:
    for parse in (sendgrid.parse, hubspot.parse, mandrill.parse, mailchimp.parse):
        _check(parse, body)


def test_personal_data_in_free_text_is_masked_before_it_reaches_the_event_log() -> None:
    bounce = _sg("bounce", reason="550 5.1.1 <ada@example.com>: Recipient address rejected")
    click = _sg("click", url="https://x.io/a?email=ada%40example.com&token=s3cr3t&p=1")
    (bounced, clicked) = _sendgrid(bounce, click).events
    (email_change, stage) = _hubspot(
        _hs(propertyName="email", propertyValue="ada@example.com"),
        _hs(eventId=2, propertyName="lifecyclestage", propertyValue="customer"),
    ).events

    assert bounced.reason == "550 5.1.1 <***@example.com>: Recipient address rejected"
    assert clicked.url is not None
    assert "ada" not in clicked.url
    assert "s3cr3t" not in clicked.url
    assert clicked.url.endswith("&p=1")
    assert "propertyValue" not in email_change.details
    assert stage.details["propertyValue"] == "customer"
