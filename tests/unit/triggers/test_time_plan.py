"""When time triggers fire: cron ticks on the wall clock (daylight saving included), what is due
at a given ``now``, and the moments of ``relativeTo`` triggers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.triggers import RelativeTime, TimeTrigger
from campaignflow.triggers.time_plan import (
    DAY,
    Anchor,
    Window,
    anniversary,
    attribute_value,
    contact_zone,
    cron_ticks,
    due,
    first_after,
    next_cron_tick,
    occurrences,
    parse_anchor,
)

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
EXPRESSIONS = (
    "* * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 9 * * MON-FRI",
    "15 3 1 * *",
    "@daily",
    "@hourly",
)
WINDOW = Window(catch_up=timedelta(hours=1), plan_ahead=timedelta(hours=6))

#: Daylight-saving changes of 2026 in the zones above (UTC instants), where edges go wrong.
_CHANGES = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Europe/Berlin, spring
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Europe/Berlin, autumn
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # America/New_York
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Australia/Lord_Howe (half an hour)
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
]
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, shift: change + shift,
        st.sampled_from(_CHANGES),
        st.timedeltas(min_value=-timedelta(hours=6), max_value=timedelta(hours=6)),
    ),
)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=12))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def hhmm(ticks: list[datetime]) -> list[str]:
    return [tick.strftime("%H:%M") for tick in ticks]


def relative(**fields: object) -> RelativeTime:
    return RelativeTime.model_validate({"attribute": "birthday", **fields})


def trigger(**fields: object) -> TimeTrigger:
    return TimeTrigger.model_validate({"type": "time", **fields})


# --------------------------------------------------------------------------- cron


@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    after=instants,
    span=spans,
)
def test_cron_ticks_lie_in_the_window_and_strictly_increase(
    expression: str, zone: str, after: datetime, span: timedelta
) -> None:
    ticks = cron_ticks(expression, ZoneInfo(zone), after, after + span)
    assert all(after < tick <= after + span for tick in ticks)
    assert all(earlier < later for earlier, later in itertools.pairwise(ticks))
    assert all(tick.tzinfo == UTC for tick in ticks)


@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    after=instants,
    first=spans,
    second=spans,
)
def test_cron_ticks_of_a_window_are_those_of_its_two_halves(
    expression: str, zone: str, after: datetime, first: timedelta, second: timedelta
) -> None:
    """Scheduling looks at consecutive windows: none may lose or repeat a tick at its edge."""
    tz = ZoneInfo(zone)
    middle, end = after + first, after + first + second
    whole = cron_ticks(expression, tz, after, end)
    assert whole == cron_ticks(expression, tz, after, middle) + cron_ticks(
        expression, tz, middle, end
    )


@given(expression=st.sampled_from(EXPRESSIONS), zone=st.sampled_from(ZONES), after=instants)
def test_the_next_tick_is_the_first_of_the_following_window(
    expression: str, zone: str, after: datetime
) -> None:
    tz = ZoneInfo(zone)
    following = cron_ticks(expression, tz, after, after + timedelta(days=40), limit=1)
    assert next_cron_tick(expression, tz, after) == following[0]


def test_a_daily_time_in_the_spring_gap_fires_once_shifted_by_the_gap() -> None:
    ticks = cron_ticks("30 2 * * *", BERLIN, utc(2026, 3, 28), utc(2026, 3, 30))
    assert ticks == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30)]  # 02:30 CET, 03:30 CEST


def test_a_daily_time_in_the_autumn_overlap_fires_once_the_first_time() -> None:
    ticks = cron_ticks("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert ticks == [utc(2026, 10, 25, 0, 30)]  # 02:30 CEST, not again at 02:30 CET


def test_every_half_hour_across_daylight_saving_changes() -> None:
    spring = cron_ticks("*/30 * * * *", BERLIN, utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 2))
    assert hhmm(spring) == ["00:30", "01:00", "01:30", "02:00"]  # 01:30 CET, then 03:00 CEST…
    autumn = cron_ticks("*/30 * * * *", BERLIN, utc(2026, 10, 25, 0), utc(2026, 10, 25, 2, 30))
    assert hhmm(autumn) == ["00:30", "02:00", "02:30"]  # the repeated 02:xx CET hour is skipped


def test_a_leap_day_cron_waits_for_the_next_leap_year() -> None:
    assert next_cron_tick("0 9 29 2 *", BERLIN, utc(2026, 3, 1)) == utc(2028, 2, 29, 8)


def test_a_cron_macro_is_read_in_any_case() -> None:
    assert cron_ticks("@Daily", BERLIN, utc(2026, 1, 1), utc(2026, 1, 2)) == [utc(2026, 1, 1, 23)]


# --------------------------------------------------------------------------- due


@given(
    expression=st.sampled_from(EXPRESSIONS),
    after=instants,
    behind=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=5)),
)
def test_due_cron_ticks_fire_within_the_catch_up_window_and_skip_the_older_ones(
    expression: str, after: datetime, behind: timedelta
) -> None:
    cron = trigger(cron=expression, timezone="Europe/Berlin")
    now = after + behind
    plan = due(cron, after, now, WINDOW)
    assert plan.skipped + plan.fire == cron_ticks(expression, BERLIN, after, now)
    assert all(tick > now - WINDOW.catch_up for tick in plan.fire)
    assert all(tick <= now - WINDOW.catch_up for tick in plan.skipped)
    assert plan.through == now
    assert plan.next_at is not None
    assert plan.next_at > now


def test_an_at_trigger_is_due_once_and_never_again() -> None:
    at = trigger(at="2026-12-01T09:00:00Z")
    moment = utc(2026, 12, 1, 9)
    waiting = due(at, utc(2026, 11, 30), utc(2026, 11, 30, 12), WINDOW)
    assert (waiting.fire, waiting.next_at) == ([], moment)
    firing = due(at, waiting.through, moment, WINDOW)
    assert (firing.fire, firing.next_at) == ([moment], None)
    assert due(at, firing.through, moment + timedelta(hours=1), WINDOW).fire == []
    late = due(at, utc(2026, 11, 30), moment + timedelta(hours=2), WINDOW)
    assert (late.fire, late.skipped) == ([], [moment])


def test_a_relative_trigger_plans_each_utc_day_ahead_of_time() -> None:
    birthday = trigger(relativeTo={"attribute": "birthday"})
    since = utc(2026, 3, 27, 10)
    after = first_after(birthday, since, None)
    plan = due(birthday, after, since, WINDOW)
    assert plan.fire == [utc(2026, 3, 27)]  # the day the workflow was activated on
    assert plan.next_at == utc(2026, 3, 27, 18)  # six hours before the 28th
    ahead = due(birthday, plan.through, utc(2026, 3, 27, 18), WINDOW)
    assert ahead.fire == [utc(2026, 3, 28)]
    back = due(birthday, ahead.through, utc(2026, 3, 31, 0, 30), WINDOW)
    assert (back.skipped, back.fire) == ([utc(2026, 3, 29)], [utc(2026, 3, 30), utc(2026, 3, 31)])


def test_ticks_start_after_the_last_recorded_one_and_the_last_change() -> None:
    cron = trigger(cron="* * * * *")
    since = utc(2026, 1, 1, 9)
    assert first_after(cron, since, None) == since
    assert first_after(cron, since, utc(2026, 1, 1, 10)) == utc(2026, 1, 1, 10)
    assert first_after(cron, since, utc(2025, 1, 1)) == since


# --------------------------------------------------------------------------- relativeTo


def test_a_week_before_at_nine_is_read_on_the_local_calendar_across_a_dst_change() -> None:
    week_before = relative(offset="-P7D", timeOfDay="09:00", recurrence="yearly")
    anchor = Anchor(date(1990, 4, 3), None)  # the birthday is in summer time, the 27th is not
    found = occurrences(week_before, anchor, BERLIN, utc(2026, 1, 1), utc(2027, 1, 1))
    assert found == [utc(2026, 3, 27, 8)]  # 09:00 CET


def test_a_february_29_birthday_is_february_28_in_other_years() -> None:
    yearly = relative(recurrence="yearly", timeOfDay="09:00")
    anchor = Anchor(date(2000, 2, 29), None)
    found = occurrences(yearly, anchor, ZoneInfo("UTC"), utc(2026, 1, 1), utc(2029, 1, 1))
    assert found == [utc(2026, 2, 28, 9), utc(2027, 2, 28, 9), utc(2028, 2, 29, 9)]
    assert anniversary(date(2000, 2, 29), 2027) == date(2027, 2, 28)


def test_once_is_the_moment_itself_and_nothing_in_later_years() -> None:
    once = relative(offset="P1M")
    anchor = Anchor(date(2026, 1, 31), time(14, 30))
    assert occurrences(once, anchor, BERLIN, utc(2026, 1, 1), utc(2027, 12, 31)) == [
        utc(2026, 2, 28, 13, 30)  # a month after Jan 31 is Feb 28, at the attribute's time
    ]
    assert occurrences(once, anchor, BERLIN, utc(2027, 1, 1), utc(2027, 12, 31)) == []


def test_yearly_starts_with_the_attribute_s_own_year() -> None:
    yearly = relative(recurrence="yearly")
    anchor = Anchor(date(2027, 6, 1), None)
    assert occurrences(yearly, anchor, BERLIN, utc(2026, 1, 1), utc(2028, 1, 1)) == [
        utc(2027, 5, 31, 22)
    ]


@given(
    anchor_day=st.dates(min_value=date(1920, 1, 1), max_value=date(2019, 12, 31)),
    offset_days=st.integers(-60, 60),
    at=st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])),
    zone=st.sampled_from(ZONES),
    year=st.integers(2021, 2034),
)
def test_yearly_moments_fall_on_the_shifted_anniversary_at_the_time_of_day(
    anchor_day: date, offset_days: int, at: time, zone: str, year: int
) -> None:
    offset = f"-P{-offset_days}D" if offset_days < 0 else f"P{offset_days}D"
    yearly = relative(recurrence="yearly", offset=offset, timeOfDay=f"{at:%H:%M}")
    tz = ZoneInfo(zone)
    start = utc(year, 1, 1)
    days = [start + n * DAY for n in range(366)]
    found = [
        moment
        for day in days
        for moment in occurrences(yearly, Anchor(anchor_day, None), tz, day, day + DAY)
    ]
    assert found == occurrences(yearly, Anchor(anchor_day, None), tz, start, days[-1] + DAY)
    for moment in found:
        local = moment.astimezone(tz)
        shifted = local.date() - timedelta(days=offset_days)
        assert shifted == anniversary(anchor_day, shifted.year)
        if local.replace(tzinfo=None).time() != at:  # only inside a spring-forward gap
            assert local.utcoffset() != (local - timedelta(hours=3)).utcoffset()


@pytest.mark.parametrize(
    "value",
    [None, 19900403, "soon", "1990-02-30", "1990-4-3", "2026-03-27T09:00:00", "", ["1990-04-03"]],
)
def test_an_attribute_that_is_no_date_has_no_moment(value: object) -> None:
    assert parse_anchor(value, BERLIN) is None


def test_dates_and_timestamps_are_read_on_the_contact_s_wall_clock() -> None:
    assert parse_anchor("1990-04-03", BERLIN) == Anchor(date(1990, 4, 3), None)
    assert parse_anchor("2026-03-26T23:30:00Z", BERLIN) == Anchor(date(2026, 3, 27), time(0, 30))


def test_attributes_are_traits_or_dotted_paths_into_them() -> None:
    contact = {"birthday": "1990-04-03", "profile": {"renewal": "2026-05-01"}, "a.b": 1}
    assert attribute_value(contact, "birthday") == "1990-04-03"
    assert attribute_value(contact, "profile.renewal") == "2026-05-01"
    assert attribute_value(contact, "a.b") == 1
    assert attribute_value(contact, "profile.missing") is None
    assert attribute_value(contact, "birthday.year") is None


def test_a_contact_without_a_valid_zone_uses_the_trigger_s() -> None:
    assert contact_zone("Europe/Berlin", "UTC") == BERLIN
    assert contact_zone("Mars/Olympus", "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert contact_zone(None, "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
