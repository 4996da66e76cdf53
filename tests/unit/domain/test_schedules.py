from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from campaignflow.domain.schedules import (
    InvalidCron,
    InvalidTimeOfDay,
    InvalidTimestamp,
    InvalidTimeZone,
    check_cron,
    check_timezone,
    format_timestamp,
    parse_time_of_day,
    parse_timestamp,
)


@pytest.mark.parametrize(
    "expression", ["0 9 * * MON", "*/15 * * * *", "0 9 * * MON-FRI", "0 0 29 2 *", "@daily"]
)
def test_valid_cron(expression: str) -> None:
    assert check_cron(expression) == expression


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 0 9 * * MON", "seconds and year fields are not supported"),
        ("0 0 9 * * MON 2026", "7 field(s)"),
        ("0 9 * *", "4 field(s)"),
        ("61 * * * *", "minute field '61'"),
        ("0 9 * * 8", "day-of-week field '8'"),
        ("0 9 31 2 *", "never fires"),
        ("", "0 field(s)"),
    ],
)
def test_invalid_cron(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidCron) as caught:
        check_cron(expression)
    assert fragment in str(caught.value)
    assert caught.value.code == "invalid_cron"


def test_timezones() -> None:
    assert str(check_timezone("Europe/Berlin")) == "Europe/Berlin"
    # "America" is a directory of the zone database and a 300-character name is too long for
    # the file system: both raise OSError inside zoneinfo, which must not escape.
    for bad in (
        "Europe/Berlinn",
        "europe/berlin",
        "",
        "../../etc/passwd",
        " UTC",
        "America",
        "A" * 300,
    ):
        with pytest.raises(InvalidTimeZone):
            check_timezone(bad)


def test_time_of_day() -> None:
    assert parse_time_of_day("09:00") == time(9, 0)
    assert parse_time_of_day("23:59") == time(23, 59)
    for bad in ("9:00", "24:00", "09:60", "9am", "09:00:00"):
        with pytest.raises(InvalidTimeOfDay):
            parse_time_of_day(bad)


def test_timestamps_need_an_offset() -> None:
    assert parse_timestamp("2026-12-01T09:00:00Z") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    plus_one = parse_timestamp("2026-12-01T09:00:00+01:00")
    assert plus_one.utcoffset() == timedelta(hours=1)
    assert plus_one == datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(InvalidTimestamp, match="no UTC offset"):
        parse_timestamp("2026-12-01T09:00:00")
    with pytest.raises(InvalidTimestamp, match="not a real date"):
        parse_timestamp("2026-02-30T09:00:00Z")
    with pytest.raises(InvalidTimestamp):
        parse_timestamp("tomorrow")


def test_timestamp_format_round_trips() -> None:
    for text in ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00.250000+05:30"):
        assert format_timestamp(parse_timestamp(text)) == text
