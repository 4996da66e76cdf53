"""ISO-8601 durations (``P1D``, ``PT4H``, ``-P7D``) as a value with calendar and exact parts.

A month is not a fixed number of seconds, so a duration keeps years and months apart from the
exact part (weeks, days, hours, minutes, seconds). :meth:`Duration.add_to` applies the calendar
part on the wall clock, clamping the day to the end of a shorter month (Jan 31 + P1M = Feb 28/29),
and then adds the exact part as elapsed time.

Fractions are allowed on seconds only, to microsecond precision; the comma decimal sign that
ISO-8601 permits is accepted. A duration may be at most ten years long, which catches typos such
as ``P3000D`` and keeps every result inside :class:`datetime.datetime`'s range.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from campaignflow.errors import ClientError

_PATTERN = re.compile(
    r"(?P<sign>-)?P"
    r"(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?P<time>T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?"
)
_TIME_WITHOUT_T = re.compile(r"-?P(\d+[YMWD])*\d+[HS].*")
#: The same grammar in ECMA-262 syntax, for the JSON Schema (editors validate with it).
JSON_SCHEMA_PATTERN = (
    r"^-?P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+([.,]\d{1,6})?S)?)?$"
)
EXAMPLES = ("PT0S", "PT30M", "PT4H", "P2D", "P1W", "P1M", "P1Y2M3DT4H5M6.5S")

_MAX_FRACTION_DIGITS = 6
_MAX_DIGITS = 12  # more digits than this is always over the maximum
_DAYS_PER_YEAR = Decimal("365.2425")  # the mean Gregorian year
MAX_YEARS = 10
_MAX_SECONDS = MAX_YEARS * _DAYS_PER_YEAR * 86_400
_SECONDS_PER_MONTH = _DAYS_PER_YEAR / 12 * 86_400


class InvalidDuration(ClientError):
    """The value is not an ISO-8601 duration such as P1D or PT4H."""


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration; ``years``/``months`` are calendar units, ``exact`` is elapsed time.

    All parts carry the sign of the whole. ``source`` is the text the user wrote; it is kept so a
    stored definition reads back exactly as written (``P1W`` stays ``P1W``), and is ignored by
    equality so ``P1W == P7D``.
    """

    years: int = 0
    months: int = 0
    exact: timedelta = timedelta(0)
    source: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_negative(self) -> bool:
        return self.years < 0 or self.months < 0 or self.exact < timedelta(0)

    @property
    def approximate_seconds(self) -> float:
        """Length with a mean-length month; for ordering and limits, never for scheduling."""
        months = self.years * 12 + self.months
        return float(months * _SECONDS_PER_MONTH) + self.exact.total_seconds()

    def add_to(self, moment: datetime) -> datetime:
        """Return ``moment`` moved by this duration (calendar part first, then exact part).

        For an aware ``moment`` the exact part is elapsed time (computed in UTC), so ``PT1H``
        across a daylight-saving change is still one hour; the calendar part keeps wall-clock time.
        """
        shifted = _add_months(moment, self.years * 12 + self.months)
        if shifted.tzinfo is None:
            return shifted + self.exact
        return (shifted.astimezone(UTC) + self.exact).astimezone(shifted.tzinfo)

    def isoformat(self) -> str:
        """The canonical text: largest units first, weeks folded into days (``P1W`` → ``P7D``)."""
        return format_duration(self)

    def __str__(self) -> str:
        return self.source if self.source is not None else self.isoformat()


def parse_duration(text: str, *, allow_negative: bool = False) -> Duration:
    """Parse ``text``; raise :class:`InvalidDuration` with a message that says what is wrong."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise InvalidDuration(_shape_message(text))
    _check_components(match)
    negative = match["sign"] is not None
    if negative and not allow_negative:
        raise InvalidDuration(f"{text!r} is negative; a negative duration is not allowed here")
    return _build(match, -1 if negative else 1, text)


def format_duration(duration: Duration) -> str:
    """Render a duration canonically; ``parse_duration(format_duration(d)) == d``."""
    sign = -1 if duration.is_negative else 1
    years, months = sign * duration.years, sign * duration.months
    exact = duration.exact if sign > 0 else -duration.exact
    minutes, seconds = divmod(exact.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    date_part = _units((years, "Y"), (months, "M"), (exact.days, "D"))
    time_part = _units((hours, "H"), (minutes, "M"), (_seconds_text(seconds, exact), "S"))
    if not date_part and not time_part:
        time_part = "0S"
    prefix = "-P" if sign < 0 else "P"
    return prefix + date_part + (f"T{time_part}" if time_part else "")


def _units(*parts: tuple[int | str, str]) -> str:
    return "".join(f"{value}{unit}" for value, unit in parts if value not in (0, ""))


def _seconds_text(seconds: int, exact: timedelta) -> int | str:
    if not exact.microseconds:
        return seconds
    return f"{seconds}.{exact.microseconds:06d}".rstrip("0")


def _shape_message(text: str) -> str:
    examples = ", ".join(EXAMPLES[1:5])
    if text in ("P", "-P"):
        return f"{text!r} has no components; write at least one, e.g. PT0S or P1D"
    if text.startswith(("P", "-P")) and text.endswith("T"):
        return f"{text!r} ends with 'T'; add hours, minutes or seconds after it, e.g. PT4H"
    if _TIME_WITHOUT_T.fullmatch(text):
        return f"{text!r} puts a time unit before 'T'; hours and seconds go after it, e.g. PT4H"
    if text.upper() != text:
        return f"{text!r} is not an ISO-8601 duration; designators are upper case (e.g. {examples})"
    return (
        f"{text!r} is not an ISO-8601 duration; expected units in the order Y M W D T H M S, "
        f"e.g. {examples}"
    )


def _check_components(match: re.Match[str]) -> None:
    text = match.string
    units = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
    values = [match[unit] for unit in units if match[unit] is not None]
    if not values or match["time"] == "T":
        raise InvalidDuration(_shape_message(text))
    if any(len(value.split(".")[0].split(",")[0]) > _MAX_DIGITS for value in values):
        raise InvalidDuration(f"{text!r} is longer than the maximum of {MAX_YEARS} years")
    fraction = (match["seconds"] or "").replace(",", ".").partition(".")[2]
    if len(fraction) > _MAX_FRACTION_DIGITS:
        raise InvalidDuration(
            f"{text!r} has {len(fraction)} fractional digits; at most 6 (microseconds) are allowed"
        )


def _build(match: re.Match[str], sign: int, text: str) -> Duration:
    def number(unit: str) -> int:
        return int(match[unit] or 0)

    days = number("weeks") * 7 + number("days")
    seconds = Decimal((match["seconds"] or "0").replace(",", "."))
    total = days * 86_400 + number("hours") * 3600 + number("minutes") * 60 + seconds
    months = number("years") * 12 + number("months")
    if months * _SECONDS_PER_MONTH + total > _MAX_SECONDS:
        raise InvalidDuration(f"{text!r} is longer than the maximum of {MAX_YEARS} years")
    whole = int(total)
    micros = int((total - whole) * 1_000_000)
    exact = timedelta(seconds=whole, microseconds=micros)
    return Duration(sign * number("years"), sign * number("months"), sign * exact, text)


def _add_months(moment: datetime, months: int) -> datetime:
    if not months:
        return moment
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))
