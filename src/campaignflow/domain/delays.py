"""When a delay node is due: after a duration, at a timestamp, or at the next local time of day.

Everything is computed from the ``now`` the caller passes, and every result is an aware UTC
datetime, ready to be stored as the wake-up time.

A local time of day is read on the wall clock of a time zone, which daylight saving time bends:

* a time that does not exist (02:30 on a spring-forward night in Europe/Berlin) is taken at the
  instant it would have been without the change, i.e. shifted forward by the gap (03:30 CEST);
* a time that occurs twice (02:30 on a fall-back night) fires once, at its first occurrence.

This is the ``fold=0`` reading of :pep:`495`. Weekdays are those of the local calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from campaignflow.domain.nodes import DelayConfig, DelayUntilTimeOfDay
from campaignflow.domain.schedules import WEEKDAYS, ScheduleError, check_timezone

CONTACT_ZONE = "contact"
#: Today and the next seven local dates: enough for any non-empty set of weekdays.
_DAYS_SCANNED = 8


def delay_due(config: DelayConfig, *, now: datetime, contact_timezone: str | None) -> datetime:
    """The instant (aware, UTC) at which a delay that starts at ``now`` ends.

    ``duration`` counts from ``now`` (see :meth:`Duration.add_to`); ``until`` is returned as is,
    even when it has passed (the caller then continues at once); ``timeOfDay`` gives the next
    matching instant at or after ``now``. ``contact_timezone`` is only read for
    ``timezone: "contact"``; when it is missing or not a valid IANA name, UTC is used.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if config.duration is not None:
        return config.duration.add_to(now).astimezone(UTC)
    if config.until is not None:
        return config.until.astimezone(UTC)
    if config.time_of_day is None:  # pragma: no cover - DelayConfig requires exactly one kind
        raise ValueError("the delay has neither duration, until nor timeOfDay")
    return _next_time_of_day(config.time_of_day, now, contact_timezone)


def _next_time_of_day(
    setting: DelayUntilTimeOfDay, now: datetime, contact_timezone: str | None
) -> datetime:
    zone = _zone(setting.timezone, contact_timezone)
    # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    start = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for offset in range(_DAYS_SCANNED):
        day = today + timedelta(days=offset)
        if setting.days is not None and WEEKDAYS[day.weekday()] not in setting.days:
            continue
        candidate = datetime.combine(day, setting.time, tzinfo=zone).astimezone(UTC)  # fold=0
        if candidate >= start:
            return candidate
    raise AssertionError("unreachable: an allowed weekday recurs within seven days")


def _zone(setting: str, contact_timezone: str | None) -> tzinfo:
    """The configured zone, or the contact's own; contact data is untrusted, so UTC on failure."""
    if setting != CONTACT_ZONE:
        return check_timezone(setting)
    if contact_timezone is None:
        return UTC
    try:
        return check_timezone(contact_timezone)
    except (ScheduleError, OSError):  # OSError: a directory ("America"), a name too long
        return UTC
