"""When time triggers fire: pure functions of a trigger, a window and a ``now`` handed in.

Every instant returned is an aware UTC datetime. Wall-clock times are read the way delay nodes
read them (:mod:`campaignflow.domain.delays`), the ``fold=0`` reading of :pep:`495`:

* a local time that does not exist (02:30 on a spring-forward night in Europe/Berlin) happens at
  the instant it would have been without the change, shifted forward by the gap (03:30 CEST);
* a local time that occurs twice (02:30 on a fall-back night) happens once, the first time.

A cron expression is matched against the wall clock of its zone, so ``0 9 * * *`` is 09:00
local all year, and two wall times that land on one instant (``*/30`` across a gap) are one tick.

``relativeTo`` moments are computed on the contact's local calendar: the attribute's date (and
time), plus the offset on the wall clock (``-P7D`` at 09:00 is 09:00 a week before, whatever
daylight saving time does in between), then ``timeOfDay`` on that date.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from croniter import croniter

from campaignflow.domain.contacts import valid_timezone
from campaignflow.domain.durations import Duration
from campaignflow.domain.schedules import (
    CRON_MACROS,
    InvalidTimestamp,
    check_timezone,
    parse_timestamp,
)
from campaignflow.domain.triggers import RelativeTime, TimeTrigger

TimeKind = Literal["cron", "at", "relative"]

DAY = timedelta(days=1)
#: How far around a window's edges offset changes are looked for: wider than any daylight-saving
#: change (two hours at most), so no tick near an edge is missed.
_SLACK = timedelta(hours=3)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FIRST_LOOK = timedelta(days=1)
_LAST_LOOK = timedelta(days=366 * 30)


def kind_of(trigger: TimeTrigger) -> TimeKind:
    if trigger.cron is not None:
        return "cron"
    if trigger.at is not None:
        return "at"
    return "relative"


# --------------------------------------------------------------------------- cron and at


def cron_ticks(
    expression: str, zone: tzinfo, after: datetime, until: datetime, *, limit: int | None = None
) -> list[datetime]:
    """The ticks of ``expression`` in its ``zone`` within (``after``, ``until``], increasing.

    With ``limit``, at most that many: the first ones (to find the next tick, or to count missed
    ticks without walking a year of every-minute ticks).
    """
    if until <= after:
        return []
    start = _wall_clock(after, zone, min)
    stop = _wall_clock(until, zone, max)
    iterator = croniter(_normalized(expression), start)
    found: set[datetime] = set()
    while (naive := iterator.get_next(datetime)) <= stop:
        tick = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0
        if after < tick <= until:
            found.add(tick)
            if len(found) == limit:
                # Wall times map to instants out of order only across a gap, by its length:
                # past that no tick can come before the ones found.
                stop = min(stop, naive + _swing(tick, zone))
    ticks = sorted(found)
    return ticks if limit is None else ticks[:limit]


def _offsets(moment: datetime, zone: tzinfo) -> list[timedelta]:
    """The zone's UTC offsets from ``_SLACK`` before ``moment`` to ``_SLACK`` after it (one
    change at most in between)."""
    return [
        (moment + shift).astimezone(zone).utcoffset() or timedelta(0) for shift in (-_SLACK, _SLACK)
    ]


def _wall_clock(
    moment: datetime, zone: tzinfo, pick: Callable[[list[timedelta]], timedelta]
) -> datetime:
    """``moment`` on the zone's wall clock read with the smaller (``min``) or the larger
    (``max``) offset around it: the earliest or latest wall time that can land on it."""
    return moment.astimezone(UTC).replace(tzinfo=None) + pick(_offsets(moment, zone))


def _swing(moment: datetime, zone: tzinfo) -> timedelta:
    earlier, later = _offsets(moment, zone)
    return abs(later - earlier)


def next_cron_tick(expression: str, zone: tzinfo, after: datetime) -> datetime | None:
    """The first tick after ``after`` (``None`` if there is none within thirty years)."""
    span = _FIRST_LOOK
    while span <= _LAST_LOOK:
        ticks = cron_ticks(expression, zone, after, after + span, limit=1)
        if ticks:
            return ticks[0]
        span *= 4
    return None


def _normalized(expression: str) -> str:
    stripped = expression.strip()
    return stripped.lower() if stripped.lower() in CRON_MACROS else stripped


# --------------------------------------------------------------------------- what is due


@dataclass(frozen=True, slots=True)
class Window:
    """How far back missed ticks are still fired, and how early a day of ``relativeTo``
    moments is planned."""

    catch_up: timedelta
    plan_ahead: timedelta


@dataclass(frozen=True, slots=True)
class Due:
    """What to do with a trigger at ``now``, given that its ticks up to ``after`` are handled."""

    fire: list[datetime]  # ticks to claim now, oldest first
    skipped: list[datetime]  # ticks older than the catch-up window (capped), oldest first
    through: datetime  # every tick up to here is fired or skipped once ``fire`` is claimed
    next_at: datetime | None  # when something may be due next; None: never again


#: Missed ticks reported per look (a year of every-minute ticks is not listed one by one).
SKIPPED_CAP = 1000


def due(trigger: TimeTrigger, after: datetime, now: datetime, window: Window) -> Due:
    """The ticks of ``trigger`` in (``after``, ``now``]; a ``relativeTo`` trigger's ticks are the
    UTC midnights of the days it plans, each due ``plan_ahead`` before the day begins."""
    floor = now - window.catch_up
    kind = kind_of(trigger)
    if kind == "relative":
        return _due_days(after, now, floor, window.plan_ahead)
    if kind == "at":
        assert trigger.at is not None
        return _due_at(trigger.at.astimezone(UTC), after, now, floor)
    assert trigger.cron is not None
    zone = check_timezone(trigger.timezone)
    skipped = cron_ticks(trigger.cron, zone, after, floor, limit=SKIPPED_CAP)
    fire = cron_ticks(trigger.cron, zone, max(after, floor), now)
    return Due(fire, skipped, max(after, now), next_cron_tick(trigger.cron, zone, now))


def _due_at(at: datetime, after: datetime, now: datetime, floor: datetime) -> Due:
    through = max(after, now)
    if at <= after:
        return Due([], [], through, None)
    if at > now:
        return Due([], [], through, at)
    if at <= floor:
        return Due([], [at], through, None)
    return Due([at], [], through, None)


def _due_days(after: datetime, now: datetime, floor: datetime, ahead: timedelta) -> Due:
    """Day D covers [D, D + 1 day); it is skipped when it ended before the floor."""
    last = day_start(now + ahead)
    fire: list[datetime] = []
    skipped: list[datetime] = []
    day = day_start(after) + DAY
    while day <= last:
        if day + DAY > floor:
            fire.append(day)
        elif len(skipped) < SKIPPED_CAP:
            skipped.append(day)
        day += DAY
    return Due(fire, skipped, max(after, last), last + DAY - ahead)


def first_after(trigger: TimeTrigger, since: datetime, last_tick: datetime | None) -> datetime:
    """Where a trigger's ticks start: after its last recorded tick and after ``since`` (the
    moment its workflow or trigger last changed: activating a workflow fires no tick of the
    past). A ``relativeTo`` trigger plans the whole day ``since`` falls on."""
    start = day_start(since) - DAY if kind_of(trigger) == "relative" else since
    return start if last_tick is None else max(start, last_tick)


def day_start(moment: datetime) -> datetime:
    """Midnight UTC of the UTC day ``moment`` falls on."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


# --------------------------------------------------------------------------- relativeTo


@dataclass(frozen=True, slots=True)
class Anchor:
    """An attribute's value on the contact's wall clock: a date, and a time for a timestamp."""

    day: date
    time: time | None


def attribute_value(contact: Mapping[str, object], attribute: str) -> object:
    """The attribute from the contact's variables: a key, or a dotted path into objects."""
    if attribute in contact:
        return contact[attribute]
    value: object = contact
    for part in attribute.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def parse_anchor(value: object, zone: tzinfo) -> Anchor | None:
    """A date (``YYYY-MM-DD``) or an RFC 3339 timestamp with an offset (read in ``zone``);
    anything else — a number, a timestamp without offset, an impossible date — is ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _DATE.fullmatch(text):
            return Anchor(date.fromisoformat(text), None)
        local = parse_timestamp(text).astimezone(zone)
    except (ValueError, InvalidTimestamp):
        return None
    return Anchor(local.date(), local.time().replace(tzinfo=None))


def contact_zone(contact_timezone: object, fallback: str) -> tzinfo:
    """The contact's zone if it is a valid IANA name, else the trigger's."""
    name = valid_timezone(contact_timezone)
    return check_timezone(name if name is not None else fallback)


def occurrences(
    relative: RelativeTime, anchor: Anchor, zone: tzinfo, start: datetime, end: datetime
) -> list[datetime]:
    """The moments of ``relative`` for ``anchor`` within [``start``, ``end``), increasing."""
    if relative.recurrence == "once":
        moment = _moment(relative, anchor.day, anchor.time, zone)
        return [moment] if moment is not None and start <= moment < end else []
    back = _negated(relative.offset)
    first = back.add_to(start.astimezone(zone).replace(tzinfo=None)).year - 1
    last = back.add_to(end.astimezone(zone).replace(tzinfo=None)).year + 1
    found = []
    for year in range(max(first, anchor.day.year), last + 1):
        moment = _moment(relative, anniversary(anchor.day, year), anchor.time, zone)
        if moment is not None and start <= moment < end:
            found.append(moment)
    return sorted(found)


def anniversary(day: date, year: int) -> date:
    """``day`` in ``year``; February 29 is February 28 in a year without one."""
    return date(year, day.month, min(day.day, calendar.monthrange(year, day.month)[1]))


def _moment(relative: RelativeTime, day: date, at: time | None, zone: tzinfo) -> datetime | None:
    """``None`` when the moment falls outside the calendar (year 1 minus a week)."""
    try:
        local = relative.offset.add_to(datetime.combine(day, at or time(0)))  # naive: wall clock
        if relative.time_of_day is not None:
            local = datetime.combine(local.date(), relative.time_of_day)
        return local.replace(tzinfo=zone).astimezone(UTC)  # fold=0
    except (OverflowError, ValueError):
        return None


def _negated(duration: Duration) -> Duration:
    return Duration(-duration.years, -duration.months, -duration.exact)
