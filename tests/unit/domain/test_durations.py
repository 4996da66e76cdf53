from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.durations import (
    Duration,
    InvalidDuration,
    format_duration,
    parse_duration,
)

small = st.integers(min_value=0, max_value=9)


@st.composite
def duration_texts(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    """A valid duration text and the components it was built from."""
    parts = {
        unit: draw(st.one_of(st.none(), small)) for unit in ("Y", "M", "W", "D", "H", "m", "S")
    }
    if all(value is None for value in parts.values()):
        parts["S"] = 0
    date = "".join(f"{parts[u]}{u}" for u in ("Y", "M", "W", "D") if parts[u] is not None)
    time = "".join(f"{parts[u]}{u.upper()}" for u in ("H", "m", "S") if parts[u] is not None)
    text = "P" + date + (f"T{time}" if time else "")
    return text, {unit: value or 0 for unit, value in parts.items()}


@given(duration_texts())
def test_parse_reads_every_component(sample: tuple[str, dict[str, int]]) -> None:
    text, parts = sample
    duration = parse_duration(text)
    assert duration.years == parts["Y"]
    assert duration.months == parts["M"]
    assert duration.exact == timedelta(
        weeks=parts["W"], days=parts["D"], hours=parts["H"], minutes=parts["m"], seconds=parts["S"]
    )
    assert str(duration) == text  # the text the user wrote is kept


@given(
    years=st.integers(0, 8),  # with 11 months and 200 days: under the 10-year maximum
    months=st.integers(0, 11),
    seconds=st.integers(0, 200 * 86_400),
    micros=st.integers(0, 999_999),
    negative=st.booleans(),
)
def test_format_then_parse_round_trips(
    years: int, months: int, seconds: int, micros: int, negative: bool
) -> None:
    sign = -1 if negative else 1
    exact = timedelta(seconds=seconds, microseconds=micros)
    duration = Duration(sign * years, sign * months, sign * exact)
    text = format_duration(duration)
    assert parse_duration(text, allow_negative=True) == duration
    assert text.startswith("-P") == (duration.is_negative)


def test_zero_is_a_valid_delay() -> None:
    assert parse_duration("PT0S") == Duration()
    assert format_duration(Duration()) == "PT0S"


def test_fractional_seconds_and_comma() -> None:
    assert parse_duration("PT1.5S").exact == timedelta(seconds=1, microseconds=500_000)
    assert parse_duration("PT0,25S").exact == timedelta(microseconds=250_000)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("P", "no components"),
        ("PT", "ends with 'T'"),
        ("P1DT", "ends with 'T'"),
        ("p1d", "upper case"),
        ("P1H", "after it"),
        ("1D", "not an ISO-8601 duration"),
        ("P1D2Y", "order"),
        ("PT1.1234567S", "at most 6"),
        ("P11Y", "maximum of 10 years"),
        ("P3653D", "maximum of 10 years"),
        ("P99999999999999999999D", "maximum of 10 years"),
        ("-P1D", "negative"),
        ("", "not an ISO-8601 duration"),
    ],
)
def test_invalid_durations_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidDuration) as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


def test_negative_only_where_allowed() -> None:
    assert parse_duration("-P7D", allow_negative=True).exact == timedelta(days=-7)
    assert parse_duration("-P1M", allow_negative=True).months == -1


def test_ten_years_is_the_cap() -> None:
    assert parse_duration("P10Y").years == 10
    assert parse_duration("P120M").months == 120


@pytest.mark.parametrize(
    ("start", "text", "expected"),
    [
        (datetime(2024, 1, 31), "P1M", datetime(2024, 2, 29)),
        (datetime(2023, 1, 31), "P1M", datetime(2023, 2, 28)),
        (datetime(2024, 3, 31), "-P1M", datetime(2024, 2, 29)),
        (datetime(2024, 2, 29), "P1Y", datetime(2025, 2, 28)),
        (datetime(2024, 11, 30), "P2M", datetime(2025, 1, 30)),
        (datetime(2024, 1, 31), "P1MT1H", datetime(2024, 2, 29, 1)),
        (datetime(2024, 1, 1), "-P7D", datetime(2023, 12, 25)),
    ],
)
def test_add_to_is_calendar_aware(start: datetime, text: str, expected: datetime) -> None:
    assert parse_duration(text, allow_negative=True).add_to(start) == expected


def test_exact_part_is_elapsed_time_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before = datetime(2024, 3, 30, 12, 0, tzinfo=berlin)  # DST starts on 31 March
    after = parse_duration("PT24H").add_to(before)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=24)
    assert after.hour == 13  # a 24-hour delay crosses the lost hour


def test_equality_ignores_spelling() -> None:
    assert parse_duration("P1W") == parse_duration("P7D")
    assert str(parse_duration("P1W")) == "P1W"
    assert parse_duration("P1W").isoformat() == "P7D"
