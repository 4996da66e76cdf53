"""Delivery status of the messages steps sent: written by the executor when a send succeeds,
advanced by the providers' webhooks.

A row is keyed by the step's ``send_id`` (its idempotency key, which the outgoing message
carries as tracking), and also found by the provider's own message id for webhooks that carry
no tracking. How a row advances is :mod:`campaignflow.domain.deliveries` (highest status wins,
history merged as a set): applying the same webhook twice, or webhooks out of order, ends the
same. Rows a webhook finds are locked in key order for the merge, so concurrent batches about
the same message wait for each other instead of losing an update.

A webhook about a message with no row yet (it overtook the executor's write) changes nothing
here; its event still reaches the event log and the router.

Every statement filters by ``workspace_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from campaignflow.domain.deliveries import DeliveryEntry, DeliveryState, DeliveryStatus, merge
from campaignflow.store.database import Database
from campaignflow.store.tables import message_deliveries as deliveries
from campaignflow.store.workflows import Clock, aware_now, utc_now

_COLUMNS = (
    deliveries.c.workspace_id,
    deliveries.c.send_id,
    deliveries.c.execution_id,
    deliveries.c.node_id,
    deliveries.c.token,
    deliveries.c.connection_id,
    deliveries.c.provider,
    deliveries.c.provider_message_id,
    deliveries.c.status,
    deliveries.c.events,
    deliveries.c.sent_at,
    deliveries.c.updated_at,
)
_INSERT_SENT: dict[str, Insert] = {
    "postgresql": postgresql.insert(deliveries).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(deliveries).on_conflict_do_nothing(),
}
_UPDATE = (
    update(deliveries)
    .where(
        deliveries.c.workspace_id == bindparam("b_workspace"),
        deliveries.c.send_id == bindparam("b_send"),
    )
    .values(status=bindparam("status"), events=bindparam("events"), updated_at=bindparam("at"))
)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    workspace_id: str
    send_id: str
    execution_id: str
    node_id: str
    token: str
    connection_id: str
    provider: str
    provider_message_id: str | None
    status: DeliveryStatus
    events: list[dict[str, str]]
    sent_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """What one webhook event says about one message: found by ``send_id`` (our tracking)
    when it has one, else by the provider's message id."""

    provider: str
    entry: DeliveryEntry
    send_id: str | None = None
    provider_message_id: str | None = None


class DeliveryStore:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def record_sent(
        self,
        *,
        workspace_id: str,
        send_id: str,
        execution_id: str,
        node_id: str,
        token: str,
        connection_id: str,
        provider: str,
        provider_message_id: str | None,
        at: datetime,
    ) -> None:
        """The provider accepted the step's message. A repeat (the step re-run after a crash
        with the same ``send_id``) keeps the row as it is, webhooks already applied."""
        state = DeliveryState.sent(at)
        row = {
            "workspace_id": workspace_id,
            "send_id": send_id,
            "execution_id": execution_id,
            "node_id": node_id,
            "token": token,
            "connection_id": connection_id,
            "provider": provider,
            "provider_message_id": provider_message_id,
            "status": state.status,
            "events": state.entries_json(),
            "sent_at": at,
            "updated_at": at,
        }
        async with self._db.transaction() as connection:
            await connection.execute(_INSERT_SENT[self._db.dialect], [row])

    async def apply(self, workspace_id: str, updates: Sequence[DeliveryUpdate]) -> int:
        """Advance the rows the updates name; returns how many rows changed."""
        updates = [u for u in updates if u.send_id or u.provider_message_id]
        if not updates:
            return 0
        now = aware_now(self._clock)
        async with self._db.transaction() as connection:
            rows = (await connection.execute(_locking(workspace_id, updates))).all()
            records = [_record(row) for row in rows]
            changes = [
                change
                for record in records
                if (change := _merged(record, _entries_for(record, updates), now)) is not None
            ]
            if changes:
                await connection.execute(_UPDATE, changes)
        return len(changes)

    async def for_execution(self, workspace_id: str, execution_id: str) -> list[DeliveryRecord]:
        """The messages an execution's steps sent, oldest first."""
        query = (
            select(*_COLUMNS)
            .where(
                deliveries.c.workspace_id == workspace_id,
                deliveries.c.execution_id == execution_id,
            )
            .order_by(deliveries.c.sent_at, deliveries.c.send_id)
        )
        async with self._db.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_record(row) for row in rows]

    async def get(self, workspace_id: str, send_id: str) -> DeliveryRecord | None:
        query = select(*_COLUMNS).where(
            deliveries.c.workspace_id == workspace_id, deliveries.c.send_id == send_id
        )
        async with self._db.read() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else _record(row)


def _locking(workspace_id: str, updates: Sequence[DeliveryUpdate]) -> Any:
    """The rows any update names, locked, in key order (a fixed lock order: no deadlock
    between two webhook batches naming the same messages)."""
    send_ids = sorted({u.send_id for u in updates if u.send_id})
    by_message = sorted(
        {
            (u.provider, u.provider_message_id)
            for u in updates
            if u.send_id is None and u.provider_message_id
        }
    )
    found: list[ColumnElement[bool]] = [deliveries.c.send_id.in_(send_ids)] if send_ids else []
    found += [
        and_(deliveries.c.provider == provider, deliveries.c.provider_message_id == message)
        for provider, message in by_message
    ]
    return (
        select(*_COLUMNS)
        .where(deliveries.c.workspace_id == workspace_id, or_(*found))
        .order_by(deliveries.c.send_id)
        .with_for_update()
    )


def _entries_for(record: DeliveryRecord, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEntry]:
    """The updates about this row: by its send_id, or (without tracking) by its message id."""
    return [
        u.entry
        for u in updates
        if u.send_id == record.send_id
        or (
            u.send_id is None
            and u.provider == record.provider
            and u.provider_message_id is not None
            and u.provider_message_id == record.provider_message_id
        )
    ]


def _merged(
    record: DeliveryRecord, entries: list[DeliveryEntry], now: datetime
) -> dict[str, Any] | None:
    """The row's new values, or ``None`` when the entries change nothing (a redelivery)."""
    stored = tuple(e for e in map(DeliveryEntry.from_json, record.events) if e is not None)
    before = DeliveryState(record.status, stored)
    after = merge(before, entries)
    if after == before:
        return None
    return {
        "b_workspace": record.workspace_id,
        "b_send": record.send_id,
        "status": after.status,
        "events": after.entries_json(),
        "at": now,
    }


def _record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(**row._mapping)
