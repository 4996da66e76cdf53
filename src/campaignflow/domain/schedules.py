"""When things happen: cron expressions, IANA time zones, times of day, weekdays and timestamps.

Each parser raises a :class:`ScheduleError` subclass whose ``code`` is the stable problem code the
validator reports, so a bad time zone reads the same in the CLI, the API and the docs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from campaignflow.errors import ClientError

CRON_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_FIELDS = 5
_CRON_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_TIME_OF_DAY = re.compile(r"(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)
#: A fixed reference instant for "does this cron ever fire": validation must not read the clock.
_CRON_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ClientError):
    """The schedule is invalid."""

    code: ClassVar[str] = "invalid_value"


class InvalidCron(ScheduleError):
    """The value is not a five-field cron expression."""

    code = "invalid_cron"


class InvalidTimeZone(ScheduleError):
    """The value is not an IANA time zone name such as Europe/Berlin."""

    code = "invalid_timezone"


class InvalidTimeOfDay(ScheduleError):
    """The value is not a 24-hour time of day such as 09:00."""

    code = "invalid_time"


class InvalidTimestamp(ScheduleError):
    """The value is not an RFC 3339 timestamp with an offset, such as 2026-12-01T09:00:00Z."""

    code = "invalid_timestamp"


def check_cron(expression: str) -> str:
    """Return ``expression`` if it is a valid five-field cron (or a macro such as ``@daily``).

    Six- and seven-field forms (seconds, years) are refused: the scheduler ticks once a minute, so
    a seconds field would silently be wrong. An expression that can never fire (``0 9 31 2 *``)
    is refused too; it is a typo, not a schedule.
    """
    stripped = expression.strip()
    if stripped.lower() in CRON_MACROS:
        return expression
    fields = stripped.split()
    if len(fields) != _CRON_FIELDS:
        raise InvalidCron(_field_count_message(expression, len(fields)))
    try:
        croniter(stripped, _CRON_REFERENCE).get_next(datetime)
    except CroniterBadDateError as exc:
        raise InvalidCron(f"cron {expression!r} never fires (no such date)") from exc
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidCron(f"cron {expression!r} is not valid: {_bad_field(fields)}") from exc
    return expression


def _field_count_message(expression: str, count: int) -> str:
    hint = ""
    if count in (6, 7):
        hint = "; seconds and year fields are not supported"
    return (
        f"cron {expression!r} has {count} field(s); expected 5 "
        f"(minute hour day-of-month month day-of-week){hint}"
    )


def _bad_field(fields: list[str]) -> str:
    """Name the first field croniter refuses on its own, so the user knows where to look."""
    for position, (value, name) in enumerate(zip(fields, _CRON_FIELD_NAMES, strict=True)):
        probe = ["*"] * _CRON_FIELDS
        probe[position] = value
        if not croniter.is_valid(" ".join(probe)):
            return f"the {name} field {value!r} is malformed or out of range"
    return "the fields do not combine into a schedule"


def check_timezone(name: str) -> ZoneInfo:
    """Return the zone for an IANA name (``Europe/Berlin``, ``UTC``); case and spelling matter.

    :class:`ZoneInfo` caches zones itself, so calling this per validation is cheap.
    """
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise InvalidTimeZone(f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: 'America', long
        raise InvalidTimeZone(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
        ) from exc


def parse_time_of_day(text: str) -> time:
    """Parse ``HH:MM`` (24-hour, leading zeros) into a naive :class:`datetime.time`."""
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise InvalidTimeOfDay(f"{text!r} is not a time of day; use 24-hour HH:MM, e.g. 09:00")
    return time(int(match["hour"]), int(match["minute"]))


def format_time_of_day(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries its offset (``Z`` or ``+01:00``).

    A timestamp without an offset is ambiguous (whose 9 o'clock?), so it is refused rather than
    guessed as UTC.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise InvalidTimestamp(
            f"{text!r} is not an RFC 3339 timestamp; use e.g. 2026-12-01T09:00:00Z"
        )
    if match["offset"] is None:
        raise InvalidTimestamp(f"{text!r} has no UTC offset; add Z or an offset such as +01:00")
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidTimestamp(f"{text!r} is not a real date and time: {exc}") from exc


def format_timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
