"""The event log, written by the router inside the transaction that acts on the events.

The key is (workspace, messageId): an event delivered twice — a sender's retry, a stream entry
redelivered after a crash — is inserted once, and only the router that inserted it acts on it.
That is what makes at-least-once delivery on the bus exactly-once in effect.

On PostgreSQL the log is partitioned by month of ``received_at`` (migration 0011,
``store.partitions``), and a unique index of a partitioned table must hold the partition key:
the table's key is (workspace, messageId, received_at). Deduplication still goes by
(workspace, messageId), in two steps:

- :meth:`EventStore.known` looks for an earlier copy received within :data:`DEDUP_WINDOW` of
  the batch, so the probe touches one or two partitions however long the log is kept;
- the insert's ``ON CONFLICT (workspace_id, message_id, received_at) DO NOTHING`` catches a
  stream entry redelivered after a crash, or routed twice at once when its shard changed owner
  while the previous owner was still working: both copies carry the same ``received_at`` (set
  once, at ingestion), so one conflicts with the row the other transaction wrote or is writing.

A sender's retry is a new entry with a later ``received_at``, which the key does not catch;
the probe does. That is exactly-once in effect because the bus shards events by the contact's
identity and each shard is consumed by one router at a time (``bus.events``): two copies of a
message from one sender are routed one after the other, and the second probe sees the first
row committed (copies within one batch are reduced to the first by the router). What is left
over: the same messageId sent under two different identities (two shards, possibly two routers
at once), or a copy received more than :data:`DEDUP_WINDOW` after the first, is stored and
acted on again. SQLite keeps the plain key (workspace, messageId) for ever.

The sensitive keys of a payload's ``properties``, ``traits`` and ``context.traits`` are not in
``payload``: they are sealed per event into ``sealed`` (``security.sealed_records``; open them
with ``open_event_payload``). Nothing reads them back on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.events import Event
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import seal_event_payload
from campaignflow.store import pg_batch
from campaignflow.store.tables import events as events_table

EventKey = tuple[str, str]  # (workspace_id, message_id)

_SQLITE_CHUNK = 400  # pairs per IN list, well under SQLite's bound on host parameters

DEDUP_WINDOW: Final = timedelta(days=7)
"""How far before a batch :meth:`EventStore.known` looks for earlier copies (PostgreSQL).
Amplitude deduplicates ``insert_id`` over 7 days, Segment's guarantee is 24 hours; senders'
retries come within hours. Longer would make every probe read more monthly partitions."""

_PG_EXISTING = """
SELECT e.workspace_id, e.message_id
FROM unnest($1::text[], $2::text[]) AS k(workspace_id, message_id)
CROSS JOIN LATERAL (
  SELECT workspace_id, message_id FROM events
  WHERE workspace_id = k.workspace_id AND message_id = k.message_id AND received_at >= $3
  LIMIT 1
) e
"""
"""One primary-key probe per key, pruned to the partitions since ``$3``. A plain join lets the
planner hash the whole event log when its statistics are stale (a table that grows by thousands
of rows a second usually has stale ones); ``LIMIT 1`` (one copy is enough) keeps it from
flattening the probe back into that join."""

_PG_INSERT = """
INSERT INTO events (workspace_id, message_id, type, name, contact_id, user_id, anonymous_id,
                    payload, timestamp, received_at, sealed, key_id)
SELECT workspace_id, message_id, type, name, contact_id, user_id, anonymous_id, payload::jsonb,
       timestamp, received_at, sealed, key_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[])
     AS v(workspace_id, message_id, type, name, contact_id, user_id, anonymous_id, payload,
          timestamp, received_at, sealed, key_id)
ON CONFLICT (workspace_id, message_id, received_at) DO NOTHING
RETURNING workspace_id, message_id
"""

_SQLITE_INSERT = sqlite_insert(events_table).on_conflict_do_nothing(
    index_elements=["workspace_id", "message_id"]
)


def event_key(event: Event) -> EventKey:
    return (event.workspace_id, event.message_id)


def event_payload(event: Event) -> dict[str, Any]:
    """What the row keeps beyond its columns."""
    payload: dict[str, Any] = {
        "properties": event.properties,
        "traits": event.traits,
        "context": event.context,
    }
    for key, value in (
        ("previousId", event.previous_id),
        ("groupId", event.group_id),
        ("sentAt", event.sent_at and event.sent_at.isoformat()),
        ("originalTimestamp", event.original_timestamp and event.original_timestamp.isoformat()),
    ):
        if value is not None:
            payload[key] = value
    return payload


class EventStore:
    """Reads and writes of the ``events`` table inside a caller's transaction; ``cipher``
    seals each payload's sensitive keys into ``sealed`` (required: no plaintext mode)."""

    def __init__(self, dialect: str, cipher: ContactCipher) -> None:
        self.postgres = dialect == "postgresql"
        self._cipher = cipher

    async def known(self, connection: AsyncConnection, events: Sequence[Event]) -> set[EventKey]:
        """The keys among ``events`` that are already stored (on PostgreSQL: received within
        :data:`DEDUP_WINDOW` before the earliest of ``events``)."""
        keys = list(dict.fromkeys(event_key(event) for event in events))
        if not keys:
            return set()
        if self.postgres:
            since = min(event.received_at for event in events) - DEDUP_WINDOW
            rows = await pg_batch.fetch(
                connection, _PG_EXISTING, [k[0] for k in keys], [k[1] for k in keys], since
            )
            return {(row[0], row[1]) for row in rows}
        found: set[EventKey] = set()
        pair = tuple_(events_table.c.workspace_id, events_table.c.message_id)
        statement = select(events_table.c.workspace_id, events_table.c.message_id).where(
            pair.in_(bindparam("keys", expanding=True))
        )
        for start in range(0, len(keys), _SQLITE_CHUNK):
            chunk = keys[start : start + _SQLITE_CHUNK]
            result = await connection.execute(statement, {"keys": chunk})
            found.update((row[0], row[1]) for row in result)
        return found

    async def insert(
        self,
        connection: AsyncConnection,
        events: Sequence[Event],
        contact_ids: Sequence[str | None],
    ) -> set[EventKey]:
        """Insert ``events`` (with the contact each resolved to); returns the keys this call
        inserted — a key another transaction inserted first is left out."""
        if not events:
            return set()
        if self.postgres:
            return await self._insert_postgres(connection, events, contact_ids)
        rows = [
            self._row(event, contact_id)
            for event, contact_id in zip(events, contact_ids, strict=True)
        ]
        await connection.execute(_SQLITE_INSERT, rows)
        # SQLite runs one writer at a time (BEGIN IMMEDIATE): the caller's `known` check in this
        # same transaction already excluded every key stored before.
        return {event_key(event) for event in events}

    async def _insert_postgres(
        self,
        connection: AsyncConnection,
        events: Sequence[Event],
        contact_ids: Sequence[str | None],
    ) -> set[EventKey]:
        columns: list[list[Any]] = [[] for _ in range(12)]
        for event, contact_id in zip(events, contact_ids, strict=True):
            payload, sealed = self._sealed_payload(event)
            values = (
                event.workspace_id,
                event.message_id,
                event.type,
                event.name,
                contact_id,
                event.user_id,
                event.anonymous_id,
                pg_batch.json_text(payload),
                event.timestamp,
                event.received_at,
                sealed,
                sealed and self._cipher.sealer.key_id_of(sealed),
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        rows = await pg_batch.fetch(connection, _PG_INSERT, *columns)
        return {(row[0], row[1]) for row in rows}

    def _sealed_payload(self, event: Event) -> tuple[Any, str | None]:
        return seal_event_payload(
            self._cipher, event.workspace_id, event.message_id, event_payload(event)
        )

    def _row(self, event: Event, contact_id: str | None) -> dict[str, Any]:
        payload, sealed = self._sealed_payload(event)
        return {
            "workspace_id": event.workspace_id,
            "message_id": event.message_id,
            "type": event.type,
            "name": event.name,
            "contact_id": contact_id,
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
            "payload": payload,
            "timestamp": event.timestamp,
            "received_at": event.received_at,
            "sealed": sealed,
            "key_id": sealed and self._cipher.sealer.key_id_of(sealed),
        }
