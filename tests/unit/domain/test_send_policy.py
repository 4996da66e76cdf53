from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.domain.durations import parse_duration
from campaignflow.domain.pydantic_problems import validated
from campaignflow.domain.send_policy import (
    ALLOW,
    Defer,
    FrequencyCap,
    QuietHours,
    Recipient,
    SendPolicy,
    Skip,
    cap_frees_at,
    decide,
    in_quiet_hours,
    quiet_hours_end,
)
from campaignflow.errors import InvalidBody
from campaignflow.integrations.connector import message_channel
from campaignflow.integrations.providers import builtin_connectors

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata"), UTC]
# Instants (UTC) of daylight-saving changes, to search around: Berlin and New York, both ways.
TRANSITIONS = [
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Berlin 02:00 CET -> 03:00 CEST
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Berlin 03:00 CEST -> 02:00 CET
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York 02:00 EST -> 03:00 EDT
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York 02:00 EDT -> 01:00 EST
    datetime(2026, 4, 5, 15, 0, tzinfo=UTC),  # Lord Howe: a 30-minute change
]
CONSENTED = Recipient(
    known=True,
    consent={
        "email_marketing": {"granted": True, "at": "2026-01-01T00:00:00Z", "source": "api"},
        "sms_marketing": {"granted": True, "at": "2026-01-01T00:00:00Z", "source": "api"},
    },
)

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 1, 15, 30, 45, 59]))
near_transitions = st.builds(
    lambda base, minutes, seconds: base + timedelta(minutes=minutes, seconds=seconds),
    st.sampled_from(TRANSITIONS),
    st.integers(-36 * 60, 36 * 60),
    st.integers(0, 59),
)
anywhere = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2036, 12, 31), timezones=st.just(UTC)
)


def _utc(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def quiet(start: str, end: str, timezone: str = "UTC", **extra: object) -> QuietHours:
    return QuietHours.model_validate({"start": start, "end": end, "timezone": timezone, **extra})


def cap(max_: int, window: str, on_exceed: str = "defer", channel: str = "sms") -> FrequencyCap:
    return FrequencyCap.model_validate(
        {"channel": channel, "max": max_, "window": window, "onExceed": on_exceed}
    )


# ---------------------------------------------------------------------------------- quiet hours


@settings(max_examples=300, deadline=None)
@given(
    start=times,
    end=times,
    zone=st.sampled_from(ZONES),
    instant=st.one_of(near_transitions, anywhere),
)
def test_quiet_hours_end_is_outside_the_window_and_the_earliest_such_minute(
    start: time, end: time, zone: ZoneInfo, instant: datetime
) -> None:
    if start == end:
        return
    rule = QuietHours(start=start, end=end)
    allowed = quiet_hours_end(rule, zone, instant)
    assert allowed >= instant
    assert allowed.tzinfo is UTC
    assert not in_quiet_hours(rule, zone, allowed)
    probe = instant
    while probe < allowed:  # every minute before it is quiet: nothing earlier was allowed
        assert in_quiet_hours(rule, zone, probe), (probe, allowed)
        probe += timedelta(minutes=1)
    assert allowed - instant <= timedelta(hours=25)


def test_a_window_across_midnight_ends_the_next_local_morning() -> None:
    rule = quiet("21:00", "08:00", "Europe/Berlin")
    at = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)  # 22:30 CEST
    assert quiet_hours_end(rule, BERLIN, at) == datetime(2026, 6, 11, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(rule, BERLIN, datetime(2026, 6, 10, 12, 0, tzinfo=UTC)) == datetime(
        2026, 6, 10, 12, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        # The night Berlin springs forward: 08:00 CEST is 06:00 UTC (07:00 UTC the night before).
        (BERLIN, _utc(2026, 3, 28, 22), _utc(2026, 3, 29, 6)),
        # ... and falls back: 08:00 CET is 07:00 UTC.
        (BERLIN, _utc(2026, 10, 24, 22), _utc(2026, 10, 25, 7)),
        # New York springs forward: 08:00 EDT is 12:00 UTC.
        (NEW_YORK, _utc(2026, 3, 8, 3), _utc(2026, 3, 8, 12)),
        # ... and falls back: 08:00 EST is 13:00 UTC.
        (NEW_YORK, _utc(2026, 11, 1, 3), _utc(2026, 11, 1, 13)),
    ],
)
def test_quiet_hours_end_at_local_time_across_both_daylight_saving_changes(
    zone: ZoneInfo, at: datetime, expected: datetime
) -> None:
    rule = quiet("21:00", "08:00")
    assert quiet_hours_end(rule, zone, at) == expected


def test_an_end_in_a_spring_forward_gap_ends_quiet_hours_at_the_jump() -> None:
    rule = quiet("22:00", "02:30")  # 02:30 never happens in Berlin on 2026-03-29
    allowed = quiet_hours_end(rule, BERLIN, datetime(2026, 3, 28, 23, 0, tzinfo=UTC))
    assert allowed == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the jump
    assert allowed.astimezone(BERLIN).hour == 3


def test_a_start_in_a_gap_begins_quiet_hours_at_the_jump() -> None:
    rule = quiet("02:30", "06:00")
    assert not in_quiet_hours(rule, BERLIN, datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    assert in_quiet_hours(rule, BERLIN, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))


def test_an_end_in_a_fold_ends_quiet_hours_at_its_second_reading_if_the_repeat_is_quiet() -> None:
    # New York, 2026-11-01: 01:00-02:00 happens twice (EDT, then EST). 00:00-01:30 is quiet.
    rule = quiet("00:00", "01:30")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert quiet_hours_end(rule, NEW_YORK, datetime(2026, 11, 1, 5, 0, tzinfo=UTC)) == first
    repeat = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST: the clock shows quiet again
    assert in_quiet_hours(rule, NEW_YORK, repeat)
    assert quiet_hours_end(rule, NEW_YORK, repeat) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------- frequency caps


def test_a_cap_frees_its_slot_when_the_oldest_send_leaves_the_window() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sends = [now - timedelta(hours=h) for h in (1, 5, 20)]
    assert cap_frees_at(cap(3, "P1D"), sends, now) == now + timedelta(hours=4)
    assert cap_frees_at(cap(4, "P1D"), sends, now) is None
    older = [now - timedelta(hours=25), *sends[:2]]  # one outside the window
    assert cap_frees_at(cap(3, "P1D"), older, now) is None


def test_a_send_exactly_one_window_ago_no_longer_counts() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert cap_frees_at(cap(1, "PT1H"), [now - timedelta(hours=1)], now) is None


def test_over_a_lowered_cap_the_slot_frees_when_enough_sends_have_left() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sends = [now - timedelta(hours=h) for h in (1, 2, 3, 4)]  # 4 sent, cap now 2
    # 08:00, 09:00 and 10:00 must leave (a message may go when one send is left in the window)
    assert cap_frees_at(cap(2, "P1D"), sends, now) == sends[1] + timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 48 * 60), max_size=12),
    max_=st.integers(1, 5),
    hours=st.integers(1, 48),
)
def test_at_the_freed_instant_the_cap_allows_and_a_second_before_it_does_not(
    offsets: list[int], max_: int, hours: int
) -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sends = [now - timedelta(minutes=m) for m in offsets]
    rule = cap(max_, f"PT{hours}H")
    frees = cap_frees_at(rule, sends, now)
    if frees is None:
        assert sum(1 for s in sends if s > now - timedelta(hours=hours)) < max_
        return
    assert frees > now
    assert cap_frees_at(rule, sends, frees) is None
    assert cap_frees_at(rule, sends, frees - timedelta(seconds=1)) is not None


# --------------------------------------------------------------------------------- the verdict


def test_without_consent_a_marketing_message_is_skipped_by_default() -> None:
    policy = SendPolicy()
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    verdict = decide(policy, "email", Recipient(known=True, consent={}), [], now)
    assert isinstance(verdict, Skip)
    assert verdict.rule == "consent"
    assert "email_marketing" in verdict.reason
    stranger = decide(policy, "sms", Recipient(known=False), [], now)
    assert isinstance(stranger, Skip)
    assert "not a known contact" in stranger.reason
    withdrawn = Recipient(known=True, consent={"email_marketing": {"granted": False}})
    assert isinstance(decide(policy, "email", withdrawn, [], now), Skip)
    assert decide(policy, "email", CONSENTED, [], now) == ALLOW
    assert decide(policy, "push", Recipient(known=False), [], now) == ALLOW  # not required


def test_consent_switched_off_for_one_channel_keeps_the_other_default() -> None:
    policy = SendPolicy.model_validate({"consent": {"email": None}})
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert decide(policy, "email", Recipient(known=False), [], now) == ALLOW
    assert isinstance(decide(policy, "sms", Recipient(known=False), [], now), Skip)
    assert policy.consent == {"email": None, "sms": "sms_marketing"}


def test_a_cap_that_skips_skips_and_one_that_defers_defers() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sends = [now - timedelta(hours=2)]
    skipping = SendPolicy(frequency_caps=[cap(1, "P1D", "skip")])
    verdict = decide(skipping, "sms", CONSENTED, sends, now)
    assert isinstance(verdict, Skip)
    assert verdict.rule == "frequency_cap"
    deferring = SendPolicy(frequency_caps=[cap(1, "P1D")])
    deferred = decide(deferring, "sms", CONSENTED, sends, now)
    assert deferred == Defer(now + timedelta(hours=22), "frequency_cap", deferred.reason)  # type: ignore[union-attr]
    assert decide(deferring, "email", CONSENTED, sends, now) == ALLOW  # another channel


def test_quiet_hours_push_a_freed_slot_to_the_morning() -> None:
    # The slot frees at 23:00 Berlin time, inside quiet hours: the message waits for 08:00.
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # 14:00 CEST
    sends = [datetime(2026, 4, 30, 21, 0, tzinfo=UTC)]  # frees 2026-05-01 21:00 UTC = 23:00
    policy = SendPolicy(
        frequency_caps=[cap(1, "P1D")],
        quiet_hours=quiet("21:00", "08:00", "Europe/Berlin"),
    )
    verdict = decide(policy, "sms", CONSENTED, sends, now)
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 5, 2, 6, 0, tzinfo=UTC)
    assert verdict.rule == "quiet_hours"


def test_the_contact_time_zone_wins_over_the_policy_one_and_a_bad_one_falls_back() -> None:
    policy = SendPolicy(quiet_hours=quiet("21:00", "08:00", "Europe/Berlin"))
    now = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # 04:00 Berlin, 22:00 New York (Apr 30)
    in_new_york = Recipient(known=True, consent=CONSENTED.consent, timezone="America/New_York")
    verdict = decide(policy, "email", in_new_york, [], now)
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    bogus = Recipient(known=True, consent=CONSENTED.consent, timezone="Mars/Olympus")
    verdict = decide(policy, "email", bogus, [], now)
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 5, 1, 6, 0, tzinfo=UTC)


def test_quiet_hours_that_skip_and_channels_not_listed() -> None:
    policy = SendPolicy(quiet_hours=quiet("21:00", "08:00", channels=["sms"], onViolation="skip"))
    night = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)
    verdict = decide(policy, "sms", CONSENTED, [], night)
    assert isinstance(verdict, Skip)
    assert verdict.rule == "quiet_hours"
    assert decide(policy, "email", CONSENTED, [], night) == ALLOW


@settings(max_examples=200, deadline=None)
@given(
    start=times,
    end=times,
    zone=st.sampled_from(["Europe/Berlin", "America/New_York"]),
    now=near_transitions,
    offsets=st.lists(st.integers(0, 30 * 60), max_size=6),
    max_=st.integers(1, 3),
)
def test_a_deferral_lands_where_every_rule_allows_the_message(
    *, start: time, end: time, zone: str, now: datetime, offsets: list[int], max_: int
) -> None:
    if start == end:
        return
    policy = SendPolicy(
        frequency_caps=[cap(max_, "PT12H")],
        quiet_hours=QuietHours(start=start, end=end, timezone=zone),
    )
    sends = [now - timedelta(minutes=m) for m in offsets]
    verdict = decide(policy, "sms", CONSENTED, sends, now)
    if verdict == ALLOW:
        return
    assert isinstance(verdict, Defer)
    assert verdict.until > now
    assert decide(policy, "sms", CONSENTED, sends, verdict.until) == ALLOW


# --------------------------------------------------------------------------------- the format


def test_policy_problems_carry_pointers() -> None:
    document = {
        "consent": {"Email": "email_marketing"},
        "frequencyCaps": [{"channel": "sms", "max": 0, "window": "P2Y"}],
        "quietHours": {"start": "21:00", "end": "21:00", "timezone": "Mars/Base"},
    }
    with pytest.raises(InvalidBody) as caught:
        validated(SendPolicy, document)
    pointers = {problem.pointer for problem in caught.value.problems}
    assert {
        "/consent/Email",
        "/frequencyCaps/0/max",
        "/frequencyCaps/0/window",
        "/quietHours/timezone",
    } <= pointers


def test_the_policy_reads_back_as_written() -> None:
    document = {
        "consent": {"email": "email_marketing", "sms": None, "push": "push_marketing"},
        "frequencyCaps": [{"channel": "sms", "max": 3, "window": "P1D", "onExceed": "skip"}],
        "quietHours": {
            "start": "21:00",
            "end": "08:00",
            "timezone": "Europe/Berlin",
            "channels": ["sms"],
            "onViolation": "defer",
        },
    }
    policy = SendPolicy.model_validate(document)
    assert policy.model_dump(by_alias=True, mode="json") == document
    assert policy.ledger_horizon("sms") == timedelta(days=1)
    assert policy.ledger_horizon("email") is None
    assert parse_duration("P1D") == policy.frequency_caps[0].window


def test_every_builtin_message_operation_declares_its_channel() -> None:
    channels = {
        f"{connector.provider}.{operation.name}": message_channel(connector, operation)
        for connector in builtin_connectors().values()
        for operation in connector.operations.values()
        if operation.sends_message
    }
    assert channels["twilio.send_sms"] == "sms"
    assert channels["sendgrid.send_email"] == "email"
    others = {name: channel for name, channel in channels.items() if name != "twilio.send_sms"}
    assert set(others.values()) == {"email"}, others
    for connector in builtin_connectors().values():
        for operation in connector.operations.values():
            assert (operation.channel is not None) == operation.sends_message, operation.name
