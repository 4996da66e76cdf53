"""A workspace's send-time policy and the verdict it gives one message (pure: no I/O, no clock).

.. code-block:: json

    {
      "consent": {"email": "email_marketing", "sms": "sms_marketing"},
      "frequencyCaps": [{"channel": "sms", "max": 3, "window": "P1D", "onExceed": "defer"}],
      "quietHours": {"start": "21:00", "end": "08:00", "timezone": "Europe/Berlin",
                     "channels": ["sms"], "onViolation": "defer"}
    }

The policy applies to marketing messages (a transactional one meets only the suppression list,
which the executor checks first). Rules, in order:

* ``consent``: the channel's purpose must be granted in the contact's consent *now*. Missing
  consent skips the message: no known time makes it allowed. Data protection by default (GDPR
  Art. 25): email and SMS require consent unless the policy sets them to ``null``; a channel
  left out of ``consent`` keeps its default, so turning one off is always explicit.
* ``frequency_cap``: at most ``max`` messages of the channel in any ``window``; a message over
  the cap waits until the slot of the oldest send in the window frees (``defer``, the default)
  or is dropped (``skip``).
* ``quiet_hours``: no message while the contact's wall clock (their ``timezone``, else the
  policy's) shows a time in ``[start, end)``; a window with ``start > end`` crosses midnight.

Daylight saving time: "inside quiet hours" is read on the wall clock, so the rules follow from
it. When ``end`` falls in a spring-forward gap, quiet hours end at the jump (the first instant
whose wall time is past ``end``); when ``start`` does, they begin at the jump. When the clock
falls back through the window, the repeated hour is quiet again: the contact's clock shows a
quiet time twice, and both are honoured, so ``end`` in a fold ends them at its second
occurrence if the first one was followed by a quiet repeat. The next allowed instant is always
a real instant and the earliest one (a zone changes its offset at most once in the span
searched, which holds for every IANA zone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from campaignflow.domain.durations import Duration
from campaignflow.domain.fields import (
    DurationValue,
    FormatModel,
    TimeOfDay,
    TimeZoneName,
    domain_error,
)
from campaignflow.domain.schedules import ScheduleError, check_timezone

Channel = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$", examples=["email", "sms"])]
Purpose = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["email_marketing", "sms_marketing"])
]
OnExceed = Literal["defer", "skip"]
Rule = Literal["consent", "frequency_cap", "quiet_hours"]

#: Consent required by default (GDPR Art. 25): channel → the purpose that must be granted.
DEFAULT_CONSENT: Mapping[str, str] = {"email": "email_marketing", "sms": "sms_marketing"}
MAX_CAPS = 20
#: The longest cap window: the ledger keeps a contact's sends this long at most.
MAX_WINDOW = timedelta(days=366)
_MAX_ROUNDS = 64  # quiet hours and caps pushing each other: converges in a handful


class FrequencyCap(FormatModel):
    channel: Channel
    max: int = Field(ge=1, le=10_000, description="Messages allowed in any window.")
    window: DurationValue = Field(description="ISO-8601 duration, e.g. P1D or P7D (at most P1Y).")
    on_exceed: OnExceed = Field("defer", description="`defer` to the next free slot, or `skip`.")

    @field_validator("window")
    @classmethod
    def _bounded(cls, value: Duration) -> Duration:
        if value.approximate_seconds <= 0:
            raise ValueError("the window must be longer than zero")
        if upper_bound(value) > MAX_WINDOW:
            raise ValueError("the window is at most P1Y")
        return value


class QuietHours(FormatModel):
    start: TimeOfDay = Field(description="Local time quiet hours begin (HH:MM).")
    end: TimeOfDay = Field(description="Local time they end; before `start`: across midnight.")
    timezone: TimeZoneName = Field(
        "UTC", description="Used when the contact has no (valid) time zone of their own."
    )
    channels: list[Channel] = Field(
        default_factory=lambda: ["email", "sms"], min_length=1, max_length=20
    )
    on_violation: OnExceed = Field("defer", description="`defer` to their end, or `skip`.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise domain_error("invalid_value", "start and end are the same time", at=("end",))
        return self


class SendPolicy(FormatModel):
    consent: dict[Channel, Purpose | None] = Field(
        default_factory=lambda: dict[str, str | None](DEFAULT_CONSENT),
        max_length=20,
        description="Channel → the consent purpose a marketing message needs; `null`: none. "
        "Email and SMS keep their default unless listed.",
    )
    frequency_caps: list[FrequencyCap] = Field(default_factory=list, max_length=MAX_CAPS)
    quiet_hours: QuietHours | None = None

    @field_validator("consent")
    @classmethod
    def _defaults_kept(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        return {**DEFAULT_CONSENT, **value}

    def purpose_for(self, channel: str) -> str | None:
        return self.consent.get(channel)

    def caps_for(self, channel: str) -> list[FrequencyCap]:
        return [cap for cap in self.frequency_caps if cap.channel == channel]

    def quiet_hours_for(self, channel: str) -> QuietHours | None:
        quiet = self.quiet_hours
        return quiet if quiet is not None and channel in quiet.channels else None

    def ledger_horizon(self, channel: str) -> timedelta | None:
        """How far back the channel's sends matter (its longest cap); None without caps."""
        windows = [upper_bound(cap.window) for cap in self.caps_for(channel)]
        return max(windows) if windows else None


# ---------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime  # aware, UTC
    rule: Rule
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    rule: Rule
    reason: str


Verdict = Allow | Defer | Skip
ALLOW = Allow()


def has_consent(consent: Mapping[str, Any] | None, purpose: str) -> bool:
    """Granted, in the ``contacts.consent`` format (``{purpose: {"granted": bool, …}}``)."""
    entry = (consent or {}).get(purpose)
    return isinstance(entry, Mapping) and entry.get("granted") is True


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the policy needs to know of the contact a message goes to."""

    known: bool  # False: the subject is not a contact (and so has no consent)
    consent: Mapping[str, Any] | None = None
    timezone: str | None = None


def consent_verdict(policy: SendPolicy, channel: str, recipient: Recipient) -> Skip | None:
    purpose = policy.purpose_for(channel)
    if purpose is None or has_consent(recipient.consent, purpose):
        return None
    if not recipient.known:
        reason = f"the subject is not a known contact, so it has not consented to {purpose}"
    else:
        reason = f"the contact has not consented to {purpose} (needed for {channel})"
    return Skip("consent", reason)


def decide(
    policy: SendPolicy,
    channel: str,
    recipient: Recipient,
    sends: Sequence[datetime],
    now: datetime,
) -> Verdict:
    """The verdict on one marketing message of ``channel`` at ``now``, given the contact's
    earlier sends of the channel (``sends``, any order). A ``skip`` rule skips only when it is
    broken now; a message deferred by one rule is moved past the others rather than dropped
    (each deferring rule may push the others further, so they are applied until none moves)."""
    refused = consent_verdict(policy, channel, recipient)
    if refused is not None:
        return refused
    caps = policy.caps_for(channel)
    quiet = policy.quiet_hours_for(channel)
    zone = zone_for(quiet, recipient.timezone) if quiet is not None else UTC
    for cap in caps:
        if cap.on_exceed == "skip" and cap_frees_at(cap, sends, now) is not None:
            return Skip("frequency_cap", _cap_reason(cap, None))
    if quiet is not None and quiet.on_violation == "skip" and in_quiet_hours(quiet, zone, now):
        return Skip("quiet_hours", _quiet_reason(quiet, zone, None))
    return _earliest(caps, quiet, zone, sends, now)


def _earliest(
    caps: Sequence[FrequencyCap],
    quiet: QuietHours | None,
    zone: tzinfo,
    sends: Sequence[datetime],
    now: datetime,
) -> Verdict:
    at = now
    verdict: Verdict = ALLOW
    for _ in range(_MAX_ROUNDS):
        moved = False
        for cap in caps:
            frees = cap_frees_at(cap, sends, at)
            if frees is not None:
                at, moved = frees, True
                verdict = Defer(at, "frequency_cap", _cap_reason(cap, at))
        if quiet is not None and in_quiet_hours(quiet, zone, at):
            at, moved = quiet_hours_end(quiet, zone, at), True
            verdict = Defer(at, "quiet_hours", _quiet_reason(quiet, zone, at))
        if not moved:
            return verdict
    raise AssertionError("quiet hours and frequency caps did not settle")  # pragma: no cover


def _cap_reason(cap: FrequencyCap, until: datetime | None) -> str:
    head = f"frequency cap of {cap.max} {cap.channel} message(s) per {cap.window} reached"
    return head if until is None else f"{head}; a slot frees at {until.isoformat()}"


def _quiet_reason(quiet: QuietHours, zone: tzinfo, until: datetime | None) -> str:
    head = f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} in {zone}"
    if until is None:
        return head
    return f"{head}; allowed again at {until.astimezone(zone).isoformat()} local time"


# -------------------------------------------------------------------------- frequency caps


def upper_bound(window: Duration) -> timedelta:
    """A span at least as long as ``window`` wherever it starts (a month as 31 days), for
    choosing which sends to read."""
    return timedelta(days=31 * (window.years * 12 + window.months)) + window.exact


def cap_frees_at(cap: FrequencyCap, sends: Sequence[datetime], now: datetime) -> datetime | None:
    """None when a message may go at ``now``; else the instant a slot frees: the send that
    must leave the window (the oldest one when the cap is exactly full) plus the window. A send
    at ``s`` is in the window until ``s + window`` (exclusive)."""
    inside = sorted(s for s in sends if _window_end(cap.window, s) > now)
    if len(inside) < cap.max:
        return None
    return _window_end(cap.window, inside[len(inside) - cap.max])


def _window_end(window: Duration, sent_at: datetime) -> datetime:
    return window.add_to(sent_at.astimezone(UTC))


# ----------------------------------------------------------------------------- quiet hours


def zone_for(quiet: QuietHours, contact_timezone: str | None) -> tzinfo:
    """The contact's zone when it is a valid IANA name (contact data is untrusted), else the
    policy's."""
    if contact_timezone:
        try:
            return check_timezone(contact_timezone)
        except (ScheduleError, OSError):
            pass
    return check_timezone(quiet.timezone)


def in_quiet_hours(quiet: QuietHours, zone: tzinfo, instant: datetime) -> bool:
    """Whether the wall clock in ``zone`` shows a quiet time at ``instant``."""
    clock = instant.astimezone(zone).time()
    return _inside(quiet.start, quiet.end, clock)


def _inside(start: time, end: time, clock: time) -> bool:
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_hours_end(quiet: QuietHours, zone: tzinfo, instant: datetime) -> datetime:
    """The earliest instant at or after ``instant`` (aware) outside quiet hours, in UTC."""
    at = instant.astimezone(UTC)
    for _ in range(4):  # a fold may bring the window back once
        if not in_quiet_hours(quiet, zone, at):
            return at
        at = _next_end(quiet, zone, at)
    raise AssertionError("quiet hours did not end")  # pragma: no cover


def _next_end(quiet: QuietHours, zone: tzinfo, at: datetime) -> datetime:
    """From a quiet instant: the first instant after it whose wall time is outside the window,
    looking at the readings of ``end`` (both, in a fold) and at an offset change before them
    (a gap that jumps over ``end``, or a fold that steps back out of a window)."""
    local = at.astimezone(zone)
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)
    wall = datetime.combine(day, quiet.end)
    readings = sorted({wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)})
    later = [r for r in readings if r > at]
    target = next((r for r in later if not in_quiet_hours(quiet, zone, r)), later[-1])
    change = _offset_change(zone, at, target)
    if change is not None and not in_quiet_hours(quiet, zone, change):
        return change
    return target


def _offset_change(zone: tzinfo, after: datetime, before: datetime) -> datetime | None:
    """The instant in ``(after, before]`` where ``zone`` changes its UTC offset, if it does
    (bisection on whole seconds: IANA transitions fall on whole seconds)."""
    offset = after.astimezone(zone).utcoffset()
    if before.astimezone(zone).utcoffset() == offset:
        return None
    low = int(after.timestamp())  # still the old offset: the change is after ``after``
    high = int(before.timestamp()) + (before.microsecond > 0)
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
