from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.delays import delay_due
from campaignflow.domain.nodes import DelayConfig
from campaignflow.domain.schedules import WEEKDAYS

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
)
BERLIN = ZoneInfo("Europe/Berlin")

instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2037, 12, 31),
    timezones=st.sampled_from([UTC, *(ZoneInfo(name) for name in ZONES)]),
)
times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
weekday_sets = st.one_of(
    st.none(), st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)
)


def _at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def _time_of_day(
    at: time | str, timezone: str = "contact", days: list[str] | None = None
) -> DelayConfig:
    text = at if isinstance(at, str) else f"{at.hour:02d}:{at.minute:02d}"
    setting: dict[str, object] = {"time": text, "timezone": timezone}
    if days is not None:
        setting["days"] = days
    return DelayConfig.model_validate({"timeOfDay": setting})


def _exists(day: date, at: time, zone: ZoneInfo) -> bool:
    """Whether the wall time ``at`` happens on ``day`` (it does not inside a DST gap)."""
    local = datetime.combine(day, at, tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None)


def _occurs_once(day: date, at: time, zone: ZoneInfo) -> bool:
    first, second = (datetime.combine(day, at, tzinfo=zone).replace(fold=f) for f in (0, 1))
    return _exists(day, at, zone) and first.utcoffset() == second.utcoffset()


@given(now=instants, at=times, zone_name=st.sampled_from(ZONES), days=weekday_sets)
def test_time_of_day_is_the_next_matching_local_time(
    now: datetime, at: time, zone_name: str, days: list[str] | None
) -> None:
    zone = ZoneInfo(zone_name)
    due = delay_due(_time_of_day(at, zone_name, days), now=now, contact_timezone=None)
    local = due.astimezone(zone)
    assert due.utcoffset() == timedelta(0)
    assert now <= due < now + timedelta(days=8)
    assert days is None or WEEKDAYS[local.weekday()] in days
    if _exists(local.date(), at, zone):
        assert local.time() == at
    else:  # shifted forward by the gap, which is at most an hour in these zones
        shift = local.replace(tzinfo=None) - datetime.combine(local.date(), at)
        assert timedelta(0) < shift <= timedelta(hours=1)
    # No earlier allowed day had an occurrence still ahead of now.
    day = now.astimezone(zone).date()
    while day < local.date():
        if days is None or WEEKDAYS[day.weekday()] in days:
            assert datetime.combine(day, at, tzinfo=zone).astimezone(UTC) < now.astimezone(UTC)
        day += timedelta(days=1)


@given(now=instants, zone_name=st.sampled_from(ZONES))
def test_a_time_equal_to_now_is_due_now(now: datetime, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    local = now.astimezone(zone).replace(second=0, microsecond=0)
    if not _occurs_once(local.date(), local.time(), zone):
        return  # DST cases are covered by the properties above and the cases below
    config = _time_of_day(local.time(), zone_name)
    assert delay_due(config, now=local, contact_timezone=None) == local.astimezone(UTC)


def test_passed_time_today_waits_until_tomorrow() -> None:
    config = _time_of_day("09:00", "Europe/Berlin")
    due = delay_due(config, now=_at("2026-06-10T08:00:00+00:00"), contact_timezone=None)
    assert due == _at("2026-06-11T07:00:00+00:00")


def test_only_allowed_weekdays() -> None:
    config = _time_of_day("09:00", "UTC", days=["mon", "wed"])
    friday = _at("2026-06-12T10:00:00+00:00")
    assert delay_due(config, now=friday, contact_timezone=None) == _at("2026-06-15T09:00:00Z")
    monday_early = _at("2026-06-15T08:59:00+00:00")
    assert delay_due(config, now=monday_early, contact_timezone=None) == _at("2026-06-15T09:00:00Z")
    monday_late = _at("2026-06-15T09:00:01+00:00")
    assert delay_due(config, now=monday_late, contact_timezone=None) == _at("2026-06-17T09:00:00Z")


def test_single_weekday_that_just_passed_is_a_week_away() -> None:
    config = _time_of_day("09:00", "UTC", days=["mon"])
    now = _at("2026-06-15T09:30:00+00:00")  # a Monday
    assert delay_due(config, now=now, contact_timezone=None) == _at("2026-06-22T09:00:00Z")


def test_weekday_is_the_local_one() -> None:
    # 23:00 UTC on Sunday is already Monday 08:00 in Tokyo.
    config = _time_of_day("09:00", "Asia/Tokyo", days=["mon"])
    now = _at("2026-06-14T23:00:00+00:00")
    assert delay_due(config, now=now, contact_timezone=None) == _at("2026-06-15T00:00:00Z")


# --------------------------------------------------------------------------- daylight saving


@pytest.mark.parametrize(
    ("zone", "at", "now", "due"),
    [
        # Berlin springs forward at 02:00 on 2026-03-29: 02:30 does not exist, 03:30 CEST.
        ("Europe/Berlin", "02:30", "2026-03-29T00:00:00Z", "2026-03-29T01:30:00Z"),
        ("Europe/Berlin", "02:00", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
        ("Europe/Berlin", "03:00", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
        ("Europe/Berlin", "09:00", "2026-03-28T09:00:00Z", "2026-03-29T07:00:00Z"),
        # Berlin falls back at 03:00 on 2026-10-25: 02:30 happens twice; the first one counts.
        ("Europe/Berlin", "02:30", "2026-10-24T22:00:00Z", "2026-10-25T00:30:00Z"),
        ("Europe/Berlin", "02:30", "2026-10-25T00:45:00Z", "2026-10-26T01:30:00Z"),
        ("Europe/Berlin", "09:00", "2026-10-24T09:00:00Z", "2026-10-25T08:00:00Z"),
        # New York springs forward at 02:00 on 2026-03-08 and falls back on 2026-11-01.
        ("America/New_York", "02:30", "2026-03-08T05:00:00Z", "2026-03-08T07:30:00Z"),
        ("America/New_York", "01:30", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"),
        ("America/New_York", "01:30", "2026-11-01T05:45:00Z", "2026-11-02T06:30:00Z"),
        # Lord Howe moves by half an hour: 02:15 does not exist on 2026-10-04.
        ("Australia/Lord_Howe", "02:15", "2026-10-03T14:00:00Z", "2026-10-03T15:45:00Z"),
    ],
)
def test_daylight_saving_changes(zone: str, at: str, now: str, due: str) -> None:
    config = _time_of_day(at, zone)
    assert delay_due(config, now=_at(now), contact_timezone=None) == _at(due)


def test_now_in_the_second_pass_of_a_repeated_hour() -> None:
    # 02:15 CET (fold=1) is after the first 02:30 of the night, so 02:30 is due the next day.
    now = datetime(2026, 10, 25, 2, 15, tzinfo=BERLIN, fold=1)
    due = delay_due(_time_of_day("02:30", "Europe/Berlin"), now=now, contact_timezone=None)
    assert due == _at("2026-10-26T01:30:00Z")


# --------------------------------------------------------------------------- the contact's zone


def test_contact_zone_is_used() -> None:
    config = _time_of_day("09:00")
    now = _at("2026-06-10T00:00:00Z")
    assert delay_due(config, now=now, contact_timezone="America/New_York") == _at(
        "2026-06-10T13:00:00Z"
    )
    assert delay_due(config, now=now, contact_timezone=None) == _at("2026-06-10T09:00:00Z")


def test_configured_zone_wins_over_the_contact() -> None:
    config = _time_of_day("09:00", "Asia/Kolkata")
    now = _at("2026-06-10T00:00:00Z")
    assert delay_due(config, now=now, contact_timezone="America/New_York") == _at(
        "2026-06-10T03:30:00Z"
    )


@pytest.mark.parametrize(
    "contact_zone",
    ["", "Not/AZone", "europe/berlin", "America", "x" * 300, "../etc/passwd", "a\x00b", "+02:00"],
)
def test_unusable_contact_zone_falls_back_to_utc(contact_zone: str) -> None:
    config = _time_of_day("09:00")
    now = _at("2026-06-10T00:00:00Z")
    assert delay_due(config, now=now, contact_timezone=contact_zone) == _at("2026-06-10T09:00:00Z")


@given(contact_zone=st.text(max_size=80), now=instants)
def test_any_contact_zone_text_never_raises(contact_zone: str, now: datetime) -> None:
    due = delay_due(_time_of_day("09:00"), now=now, contact_timezone=contact_zone)
    elapsed = now.astimezone(UTC)  # + 1 day on a zoned datetime is wall-clock, not 24 h
    assert elapsed <= due < elapsed + timedelta(days=1)


# --------------------------------------------------------------------------- duration and until


def test_duration_counts_from_now() -> None:
    config = DelayConfig.model_validate({"duration": "PT4H"})
    now = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)  # four hours across the spring forward
    due = delay_due(config, now=now, contact_timezone="Asia/Kolkata")
    assert due == _at("2026-03-29T03:30:00Z")
    assert due.utcoffset() == timedelta(0)


def test_calendar_duration_clamps_to_the_end_of_month() -> None:
    config = DelayConfig.model_validate({"duration": "P1M"})
    due = delay_due(config, now=_at("2026-01-31T10:00:00Z"), contact_timezone=None)
    assert due == _at("2026-02-28T10:00:00Z")


def test_zero_duration_is_due_now() -> None:
    config = DelayConfig.model_validate({"duration": "PT0S"})
    now = _at("2026-06-10T12:00:00Z")
    assert delay_due(config, now=now, contact_timezone=None) == now


def test_until_is_returned_in_utc_even_when_past() -> None:
    config = DelayConfig.model_validate({"until": "2026-01-01T09:00:00+01:00"})
    due = delay_due(config, now=_at("2026-06-10T12:00:00Z"), contact_timezone=None)
    assert due == _at("2026-01-01T08:00:00Z")
    assert due.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "config",
    [
        DelayConfig.model_validate({"duration": "PT1H"}),
        DelayConfig.model_validate({"until": "2026-01-01T09:00:00Z"}),
        _time_of_day("09:00"),
    ],
)
def test_naive_now_is_refused(config: DelayConfig) -> None:
    with pytest.raises(ValueError, match="aware"):
        delay_due(config, now=datetime(2026, 6, 10, 12), contact_timezone=None)
