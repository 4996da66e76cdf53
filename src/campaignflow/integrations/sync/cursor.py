"""Where a sync run is, as a small JSON document kept on the run (pure).

A run goes through three phases, each resumable from what it last saved:

1. ``retry``: the contacts whose last push failed, each pushed on its own;
2. ``pull``: the CRM's records modified since ``remote_since``, oldest first. ``high_water`` is
   the latest modification time fully processed; the next pull (a resumed run's, or the next
   run's) starts from it less :data:`PULL_OVERLAP`: records modified in the same second may
   straddle a page (Salesforce and Pipedrive stamp whole seconds), and a CRM's search index
   may list a change late (HubSpot's lags by seconds). Re-reading a record is harmless: the
   merge compares digests, so a record already applied plans nothing. Page tokens are not
   kept across a crash (some CRMs' expire);
3. ``push``: the contacts changed after ``local_after`` (their updated_at and id), in that
   order, up to ``local_until``, fixed when the phase starts so a busy workspace cannot keep
   one run going forever;
4. ``activities``: the events the configuration's ``activityTypes`` name, of linked contacts,
   that arrived after ``activities_after``, each logged on the CRM record as an activity (a
   full run's phase: a push-only real-time run skips it).

A new run starts where the previous one got to: its pull from the previous ``high_water`` (or
``remote_since`` if it saw nothing), its push after the previous ``local_after``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Phase = Literal["retry", "pull", "push", "activities", "done"]
PULL_OVERLAP = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Cursor:
    phase: Phase = "retry"
    remote_since: datetime | None = None
    high_water: datetime | None = None
    local_after: tuple[datetime, str] | None = None
    local_until: tuple[datetime, str] | None = None
    push_only: bool = False  # a real-time run: local changes only, no pull
    last_pull_at: datetime | None = None  # when a run last pulled (carried from run to run)
    # The last event logged on the CRM as an activity (received_at, message id); None until
    # the first run, which starts with the events arriving from then on (no backfill).
    activities_after: tuple[datetime, str] | None = None

    def pull_from(self) -> datetime | None:
        """Where the pull (re)starts."""
        if self.high_water is not None:
            return self.high_water - PULL_OVERLAP
        return self.remote_since

    def pulled_up_to(self, modified_at: datetime) -> Cursor:
        if self.high_water is not None and modified_at <= self.high_water:
            return self
        return replace(self, high_water=modified_at)

    def next_run(self, *, push_only: bool = False) -> Cursor:
        """The cursor a run following this one starts with."""
        return Cursor(
            phase="retry",
            remote_since=self.high_water or self.remote_since,
            local_after=self.local_after,
            push_only=push_only,
            last_pull_at=self.last_pull_at,
            activities_after=self.activities_after,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "remoteSince": _instant(self.remote_since),
            "highWater": _instant(self.high_water),
            "localAfter": _position(self.local_after),
            "localUntil": _position(self.local_until),
            "pushOnly": self.push_only,
            "lastPullAt": _instant(self.last_pull_at),
            "activitiesAfter": _position(self.activities_after),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> Cursor:
        if not document:
            return cls()
        return cls(
            phase=document.get("phase", "retry"),
            remote_since=_parse_instant(document.get("remoteSince")),
            high_water=_parse_instant(document.get("highWater")),
            local_after=_parse_position(document.get("localAfter")),
            local_until=_parse_position(document.get("localUntil")),
            push_only=bool(document.get("pushOnly", False)),
            last_pull_at=_parse_instant(document.get("lastPullAt")),
            activities_after=_parse_position(document.get("activitiesAfter")),
        )


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_instant(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _position(value: tuple[datetime, str] | None) -> list[str] | None:
    return None if value is None else [value[0].isoformat(), value[1]]


def _parse_position(value: Any) -> tuple[datetime, str] | None:
    if not value:
        return None
    at, contact_id = value
    return (datetime.fromisoformat(str(at)), str(contact_id))
