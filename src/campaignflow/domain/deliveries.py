"""How far a sent message got, from the provider's webhooks: a precedence, and its merge.

Providers deliver webhooks at least once and in no particular order (SendGrid batches them per
server; an open can arrive before the delivery it implies). The status of a message is therefore
the *highest* status any of its events reached, by :data:`PRECEDENCE`, never the latest to
arrive: the maximum is commutative, associative and idempotent, so whatever order and however
often the events come, the status ends the same. The terminal outcomes (dropped, bounced,
unsubscribed, spam report) outrank engagement: a bounce after an open (a late asynchronous
bounce) or a spam report after a click is what the sender must act on.

The event list kept beside the status is merged the same way: the union of entries, in time
order, cut to the first :data:`MAX_ENTRIES`. Cutting a sorted union is also order-independent,
since an entry cut from a subset's first ``n`` can never be among the first ``n`` of a superset.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

DeliveryStatus = Literal[
    "sent",
    "deferred",
    "delivered",
    "opened",
    "clicked",
    "dropped",
    "bounced",
    "unsubscribed",
    "spam_reported",
]
PRECEDENCE: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)
"""Lowest first: a status replaces the current one only if it comes later in this tuple."""
_RANK: dict[str, int] = {status: rank for rank, status in enumerate(PRECEDENCE)}
MAX_ENTRIES = 50


def is_status(value: object) -> bool:
    return isinstance(value, str) and value in _RANK


def later(current: DeliveryStatus, other: DeliveryStatus) -> DeliveryStatus:
    """The status that wins of the two (the later one in :data:`PRECEDENCE`)."""
    return other if _RANK[other] > _RANK[current] else current


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    """One event of a message: when, what, and the provider's event id (``""`` for our own
    ``sent``). Histories are ordered by :meth:`order`: time, then precedence, then id."""

    at: datetime
    event: DeliveryStatus
    id: str = ""

    def order(self) -> tuple[datetime, int, str]:
        return (self.at, _RANK[self.event], self.id)

    def to_json(self) -> dict[str, str]:
        document = {"event": self.event, "at": self.at.isoformat()}
        if self.id:
            document["id"] = self.id
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> DeliveryEntry | None:
        """An entry as stored; ``None`` for anything unreadable (never fails a merge)."""
        event, at, entry_id = document.get("event"), document.get("at"), document.get("id", "")
        if not is_status(event) or not isinstance(at, str) or not isinstance(entry_id, str):
            return None
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return cls(moment, event, entry_id)  # type: ignore[arg-type]  # checked by is_status


@dataclass(frozen=True, slots=True)
class DeliveryState:
    status: DeliveryStatus
    entries: tuple[DeliveryEntry, ...]

    @classmethod
    def sent(cls, at: datetime) -> DeliveryState:
        """A message the provider just accepted."""
        return cls("sent", (DeliveryEntry(at, "sent"),))

    def entries_json(self) -> list[dict[str, str]]:
        return [entry.to_json() for entry in self.entries]


def merge(
    state: DeliveryState, entries: Iterable[DeliveryEntry], cap: int = MAX_ENTRIES
) -> DeliveryState:
    """``state`` after ``entries``: the highest status, and the first ``cap`` entries of the
    union in time order. The result depends only on the set of entries ever merged."""
    status = state.status
    union = set(state.entries)
    for entry in entries:
        status = later(status, entry.event)
        union.add(entry)
    return DeliveryState(status, tuple(sorted(union, key=DeliveryEntry.order)[:cap]))
