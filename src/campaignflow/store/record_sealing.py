"""Maintenance of the sealed values of executions and events (migration 0007): sealing rows
written before it, and re-wrapping sealed values after a key rotation.

Like :mod:`contact_sealing`, each walks its table in key order, one transaction per batch, so
it can stop anywhere and be run again; a row not yet sealed reads as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, bindparam, select, tuple_, update

from campaignflow.errors import SealedDataError
from campaignflow.security.contact_fields import ContactCipher, snapshot_context
from campaignflow.security.envelope import RewrappingSealer
from campaignflow.security.sealed_records import (
    event_context,
    open_execution,
    seal_event_payload,
    seal_execution,
)
from campaignflow.store import engine_sql
from campaignflow.store.contact_sealing import DEFAULT_BATCH, seal_plaintext_contacts
from campaignflow.store.database import Database
from campaignflow.store.tables import events, executions


@dataclass(frozen=True, slots=True)
class _Sealed:
    """A table with sealed values: its key columns and what a value is sealed for."""

    table: Table
    key: tuple[Column[Any], Column[Any]]
    context: Callable[[str, str], str]

    def page(self, *columns: Any, where: Any) -> Any:
        after = tuple_(*self.key) > tuple_(bindparam("after_workspace"), bindparam("after_id"))
        return select(*columns).where(where, after).order_by(*self.key).limit(bindparam("limit"))

    def row_key(self, row: Any) -> tuple[str, str]:
        return row._mapping[self.key[0].name], row._mapping[self.key[1].name]

    def by_key(self) -> Any:
        return (self.key[0] == bindparam("b_workspace")) & (self.key[1] == bindparam("b_id"))


_EXECUTIONS = _Sealed(executions, (executions.c.workspace_id, executions.c.id), snapshot_context)
_EVENTS = _Sealed(events, (events.c.workspace_id, events.c.message_id), event_context)

_PENDING_EXECUTIONS = _EXECUTIONS.page(
    *engine_sql.EXECUTION_COLUMNS, where=executions.c.needs_sealing
).with_for_update()
# Bumps the revision: a worker holding one of these executions writes nothing and reloads it.
_SEAL_EXECUTION = (
    update(executions)
    .where(_EXECUTIONS.by_key())
    .values(
        contact=bindparam("contact"),
        input=bindparam("input"),
        state=bindparam("state"),
        sealed=bindparam("sealed"),
        key_id=bindparam("key_id"),
        needs_sealing=False,
        revision=executions.c.revision + 1,
    )
)
_PENDING_EVENTS = _EVENTS.page(
    events.c.workspace_id, events.c.message_id, events.c.payload, where=events.c.needs_sealing
).with_for_update()
_SEAL_EVENT = (
    update(events)
    .where(_EVENTS.by_key())
    .values(
        payload=bindparam("payload"),
        sealed=bindparam("sealed"),
        key_id=bindparam("key_id"),
        needs_sealing=False,
    )
)


async def seal_plaintext_records(
    database: Database, cipher: ContactCipher, batch_size: int = DEFAULT_BATCH
) -> int:
    """Seal every contact (0006), execution and event (0007) written before their migration;
    the number of rows sealed. Run at start-up after migrating (``up``, ``serve``, ``worker``,
    ``migrate``); cheap once done (empty partial indexes)."""
    total = await seal_plaintext_contacts(database, cipher, batch_size)
    total += await _walk(
        database, _PENDING_EXECUTIONS, _EXECUTIONS, batch_size, _seal_executions(cipher)
    )
    return total + await _walk(database, _PENDING_EVENTS, _EVENTS, batch_size, _seal_events(cipher))


_Batch = Callable[[Sequence[Any]], tuple[Any, list[dict[str, Any]]]]


def _seal_executions(cipher: ContactCipher) -> _Batch:
    def changes(rows: Sequence[Any]) -> tuple[Any, list[dict[str, Any]]]:
        updates = []
        for row in rows:
            opened = open_execution(cipher, row.workspace_id, row.id, dict(row._mapping))
            stored = seal_execution(
                cipher,
                row.workspace_id,
                row.id,
                contact=opened["contact"],
                input=opened["input"],
                state=opened["state"],
            )
            updates.append(
                {
                    "b_workspace": row.workspace_id,
                    "b_id": row.id,
                    "contact": stored.contact,
                    "input": stored.input,
                    "state": stored.state,
                    "sealed": stored.sealed,
                    "key_id": stored.key_id,
                }
            )
        return _SEAL_EXECUTION, updates

    return changes


def _seal_events(cipher: ContactCipher) -> _Batch:
    def changes(rows: Sequence[Any]) -> tuple[Any, list[dict[str, Any]]]:
        updates = []
        for workspace_id, message_id, payload in rows:
            stored, sealed = seal_event_payload(cipher, workspace_id, message_id, payload)
            updates.append(
                {
                    "b_workspace": workspace_id,
                    "b_id": message_id,
                    "payload": stored,
                    "sealed": sealed,
                    "key_id": sealed and cipher.sealer.key_id_of(sealed),
                }
            )
        return _SEAL_EVENT, updates

    return changes


async def rewrap_records(
    database: Database, sealer: RewrappingSealer, batch_size: int = DEFAULT_BATCH
) -> tuple[int, int]:
    """Re-wrap the sealed values of executions and events not under the active KEK
    (compare-and-set: a row written meanwhile keeps what that write sealed); the numbers
    re-wrapped (executions, events)."""
    counts = []
    for sealed in (_EXECUTIONS, _EVENTS):
        table = sealed.table
        stale = sealed.page(
            *sealed.key,
            table.c.sealed,
            where=table.c.sealed.is_not(None) & (table.c.key_id != bindparam("active")),
        )
        rewrap = (
            update(table)
            .where(sealed.by_key(), table.c.sealed == bindparam("old"))
            .values(sealed=bindparam("new"), key_id=bindparam("new_key_id"))
        )
        changes = _rewrapped(sealer, sealed, rewrap)
        counts.append(
            await _walk(database, stale, sealed, batch_size, changes, active=sealer.active_id)
        )
    return counts[0], counts[1]


def _rewrapped(sealer: RewrappingSealer, sealed: _Sealed, statement: Any) -> _Batch:
    def changes(rows: Sequence[Any]) -> tuple[Any, list[dict[str, Any]]]:
        updates = []
        for workspace_id, row_id, value in rows:
            try:
                new = sealer.rewrap(value, context=sealed.context(workspace_id, row_id))
            except SealedDataError as exc:
                raise SealedDataError(
                    f"{sealed.table.name} row {row_id!r} of workspace {workspace_id!r} cannot "
                    f"be re-wrapped: {exc.message}"
                ) from exc
            updates.append(
                {
                    "b_workspace": workspace_id,
                    "b_id": row_id,
                    "old": value,
                    "new": new,
                    "new_key_id": sealer.active_id,
                }
            )
        return statement, updates

    return changes


async def _walk(
    database: Database,
    select_page: Any,
    sealed: _Sealed,
    batch_size: int,
    changes: _Batch,
    *,
    active: str | None = None,
) -> int:
    """Read pages of ``select_page`` in key order and write each page's ``changes`` in the
    page's transaction; the number of rows read."""
    total, after = 0, ("", "")
    while True:
        params: dict[str, Any] = {
            "after_workspace": after[0],
            "after_id": after[1],
            "limit": batch_size,
        }
        if active is not None:
            params["active"] = active
        async with database.transaction() as connection:
            rows = (await connection.execute(select_page, params)).all()
            statement, updates = changes(rows)
            if updates:
                await connection.execute(statement, updates)
        total += len(rows)
        if len(rows) < batch_size:
            return total
        after = sealed.row_key(rows[-1])
