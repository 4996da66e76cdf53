"""The audit log's hash chain: a canonical form of an entry and the check of a chain.

Each workspace's log is a chain: entry ``n`` stores the hash of entry ``n - 1`` (``prev_hash``)
and its own ``hash = sha256(prev_hash + canonical(entry))``. Editing, deleting, inserting or
reordering a stored entry therefore breaks the chain at that entry, which :func:`verify` names.
What a chain alone cannot show is the loss of its newest entries (the tail): anchoring the head
hash elsewhere is what would.

The canonical form is the JSON of every column but ``hash``, keys sorted, the instant in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``: the same bytes on any machine and after a round trip through
either database (``details`` holds strings only, so JSONB keeps it as written). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
_INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, before it takes its place in the chain (the middleware builds these)."""

    workspace_id: str
    id: str
    occurred_at: datetime
    actor_id: str | None
    credential: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    method: str
    path: str
    status: int
    outcome: str  # success | denied | failure
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A stored link of a workspace's chain: an event with its place and hashes."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str

    def columns(self) -> dict[str, Any]:
        """The row to insert: every column of ``audit_log``."""
        return {
            **_fields(self.event),
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(seq: int, event: AuditEvent, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: every column but ``hash``."""
    content = _fields(event)
    content["occurred_at"] = event.occurred_at.astimezone(UTC).strftime(_INSTANT_FORMAT)
    content["seq"] = seq
    content["prev_hash"] = prev_hash
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def _fields(event: AuditEvent) -> dict[str, Any]:
    content = {field.name: getattr(event, field.name) for field in fields(event)}
    content["details"] = dict(event.details) if event.details is not None else None
    return content


def entry_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii") + canonical(seq, event, prev_hash))
    return digest.hexdigest()


def link(event: AuditEvent, seq: int, prev_hash: str) -> AuditEntry:
    """``event`` as entry ``seq`` of a chain whose previous entry's hash is ``prev_hash``."""
    return AuditEntry(seq, event, prev_hash, entry_hash(seq, event, prev_hash))


def extend(head: tuple[int, str] | None, events: Iterable[AuditEvent]) -> list[AuditEntry]:
    """Chain ``events`` after ``head`` (the last entry's seq and hash; ``None``: empty log)."""
    seq, prev_hash = head if head is not None else (0, GENESIS_HASH)
    entries = []
    for event in events:
        seq += 1
        entry = link(event, seq, prev_hash)
        entries.append(entry)
        prev_hash = entry.hash
    return entries


class ChainVerifier:
    """Checks a chain fed in order, page by page, so a long log never sits in memory at once.

    An entry is sound when its seq is the next number (from 1, or after the anchor), its
    ``prev_hash`` is the hash of the entry before (64 zeros for the first; the anchor's hash once
    retention purged the oldest entries) and its ``hash`` is what its content gives.
    """

    def __init__(self, anchor: tuple[int, str] | None = None) -> None:
        """``anchor``: (seq, hash) of the last entry retention purged; the chain then starts
        right after it, its first entry carrying that hash."""
        self.checked, self._prev_hash = anchor if anchor is not None else (0, GENESIS_HASH)

    @property
    def last_hash(self) -> str:
        return self._prev_hash

    def feed(self, entries: Iterable[AuditEntry]) -> int | None:
        """The seq (the position, from 1) of the first unsound entry, or ``None`` so far."""
        for entry in entries:
            position = self.checked + 1
            sound = (
                entry.seq == position
                and entry.prev_hash == self._prev_hash
                and entry.hash == entry_hash(entry.seq, entry.event, entry.prev_hash)
            )
            if not sound:
                return position
            self.checked = position
            self._prev_hash = entry.hash
        return None


def verify(entries: Iterable[AuditEntry]) -> int | None:
    """The seq of the first entry where the chain ``entries`` (in stored order) is broken."""
    return ChainVerifier().feed(entries)
