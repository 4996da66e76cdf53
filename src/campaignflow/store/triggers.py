"""Triggers managed through ``/api/v1/triggers``, per workspace, and the workflows that declare
triggers in their definition.

Every statement filters by ``workspace_id``. Writes are single conditional statements — an
insert that selects its row from a live workflow, an update or delete guarded by its ``WHERE`` —
so that concurrent callers are serialised by the database; when one changes nothing, a read in
the same transaction says why. Every write moves ``updated_at`` (or, for a delete, the row
count), which is what routers watch to rebuild their routing tables (``store.catalog``).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningUpdate

from campaignflow.errors import ClientError, Conflict, NotFound, PreconditionFailed
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import triggers, workflows
from campaignflow.store.workflow_sql import ARCHIVED, GET_STATE, RECORDS
from campaignflow.store.workflows import Clock, WorkflowRecord, aware_now, utc_now


class WorkflowNotFound(NotFound):
    """The trigger's workflow does not exist in this workspace."""


class WorkflowArchived(Conflict):
    """The trigger's workflow is archived; its triggers cannot change."""


@dataclass(frozen=True, slots=True)
class TriggerFields:
    """What a client sets on a trigger (the rest is the store's)."""

    workflow_id: str
    type: str
    event_name: str | None  # behavior triggers: the routing key
    definition: dict[str, Any]  # the trigger in the workflow format, camelCase
    enabled: bool


@dataclass(frozen=True, slots=True)
class TriggerRecord:
    workspace_id: str
    id: str
    workflow_id: str
    type: str
    event_name: str | None
    definition: dict[str, Any]
    enabled: bool
    revision: int  # 1 on create, bumped by every replace
    created_at: datetime
    updated_at: datetime


# --- SQL ----------------------------------------------------------------------------------
# Parameters are bound by name: ``workspace`` and ``trigger`` identify a trigger; columns of
# ``triggers`` are bound under their own names.

_IS_TRIGGER = and_(
    triggers.c.workspace_id == bindparam("workspace"), triggers.c.id == bindparam("trigger")
)
_LIVE_WORKFLOW = and_(
    workflows.c.workspace_id == bindparam("workspace"),
    workflows.c.id == bindparam("workflow_id"),
    workflows.c.status != ARCHIVED,
)
_COLUMNS = [column.name for column in triggers.c]

# Inserts the row only if its workflow exists in the workspace and is not archived.
INSERT_TRIGGER = insert(triggers).from_select(
    _COLUMNS,
    select(*(bindparam(column.name, type_=column.type) for column in triggers.c))
    .select_from(workflows)
    .where(_LIVE_WORKFLOW),
)

GET_TRIGGER = select(triggers).where(_IS_TRIGGER)


def _replace(guarded: bool) -> ReturningUpdate[Any]:
    """Replaces what a client sets, bumps revision and updated_at; the new workflow must be
    live. ``guarded``: only while the revision is one of ``expected`` (If-Match)."""
    condition = and_(_IS_TRIGGER, exists().where(_LIVE_WORKFLOW))
    if guarded:
        condition = and_(condition, triggers.c.revision.in_(bindparam("expected", expanding=True)))
    return (
        update(triggers)
        .where(condition)
        .values(
            workflow_id=bindparam("workflow_id"),
            type=bindparam("type"),
            event_name=bindparam("event_name"),
            definition=bindparam("definition"),
            enabled=bindparam("enabled"),
            revision=triggers.c.revision + 1,
            updated_at=bindparam("now"),
        )
        .returning(*triggers.c)
    )


REPLACE_TRIGGER = {False: _replace(False), True: _replace(True)}
DELETE_TRIGGER = {
    False: delete(triggers).where(_IS_TRIGGER),
    True: delete(triggers).where(
        _IS_TRIGGER, triggers.c.revision.in_(bindparam("expected", expanding=True))
    ),
}


def list_triggers(
    workflow_id: str | None, trigger_type: str | None, enabled: bool | None, after: str | None
) -> Select[Any]:
    """One page of a workspace's triggers in id order (keyset: ids after ``after``); parameters:
    workspace, limit."""
    statement = select(triggers).where(triggers.c.workspace_id == bindparam("workspace"))
    if workflow_id is not None:
        statement = statement.where(triggers.c.workflow_id == workflow_id)
    if trigger_type is not None:
        statement = statement.where(triggers.c.type == trigger_type)
    if enabled is not None:
        statement = statement.where(triggers.c.enabled.is_(enabled))
    if after is not None:
        statement = statement.where(triggers.c.id > after)
    return statement.order_by(triggers.c.id).limit(bindparam("limit"))


def declaring_workflows(
    workflow_id: str | None, active: bool | None, start: str | None, inclusive: bool
) -> Select[Any]:
    """Workflows that are not archived, with their latest definition, in id order from
    ``start``; parameters: workspace, limit."""
    statement = RECORDS.where(
        workflows.c.workspace_id == bindparam("workspace"), workflows.c.status != ARCHIVED
    )
    if workflow_id is not None:
        statement = statement.where(workflows.c.id == workflow_id)
    if active is not None:
        is_active = workflows.c.status == "active"
        statement = statement.where(is_active if active else ~is_active)
    if start is not None:
        statement = statement.where(
            workflows.c.id >= start if inclusive else workflows.c.id > start
        )
    return statement.order_by(workflows.c.id).limit(bindparam("limit"))


# --- the store ----------------------------------------------------------------------------


class TriggerStore:
    """Triggers on a :class:`Database`."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    def _now(self) -> datetime:
        return aware_now(self._clock)

    async def create(self, workspace_id: str, fields: TriggerFields) -> TriggerRecord:
        """Store a new trigger under a new id, at revision 1.

        :class:`WorkflowNotFound` if its workflow does not exist in the workspace,
        :class:`WorkflowArchived` if it is archived.
        """
        now = self._now()
        record = TriggerRecord(
            workspace_id=workspace_id,
            id=new_id(),
            revision=1,
            created_at=now,
            updated_at=now,
            **_field_values(fields),
        )
        params = {**asdict(record), "workspace": workspace_id}
        async with self._db.transaction() as connection:
            if not (await connection.execute(INSERT_TRIGGER, params)).rowcount:
                refusal = await _workflow_refusal(connection, workspace_id, fields.workflow_id)
                raise refusal or Conflict("The workflow changed meanwhile; retry.")
        return record

    async def get(self, workspace_id: str, trigger_id: str) -> TriggerRecord:
        """The trigger; :class:`NotFound` otherwise."""
        async with self._db.read() as connection:
            record = await _fetch(connection, workspace_id, trigger_id)
        if record is None:
            raise _not_found(trigger_id)
        return record

    async def list(
        self,
        workspace_id: str,
        *,
        workflow_id: str | None = None,
        trigger_type: str | None = None,
        enabled: bool | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> builtins.list[TriggerRecord]:
        """Triggers ordered by id, starting after the id ``after`` (keyset pagination)."""
        _check_limit(limit)
        statement = list_triggers(workflow_id, trigger_type, enabled, after)
        async with self._db.read() as connection:
            result = await connection.execute(
                statement, {"workspace": workspace_id, "limit": limit}
            )
            return [TriggerRecord(**row._mapping) for row in result]

    async def replace(
        self,
        workspace_id: str,
        trigger_id: str,
        fields: TriggerFields,
        *,
        expected_revisions: Collection[int] | None = None,
    ) -> TriggerRecord:
        """Replace what a client sets and bump the revision, atomically.

        With ``expected_revisions`` this is a compare-and-set: :class:`PreconditionFailed` if
        the revision is none of them by now (an empty collection never matches).
        :class:`NotFound` if the trigger does not exist; :class:`WorkflowNotFound` or
        :class:`WorkflowArchived` if the (possibly new) workflow cannot hold it.
        """
        guarded = expected_revisions is not None
        params = {
            **_field_values(fields),
            "workspace": workspace_id,
            "trigger": trigger_id,
            "now": self._now(),
            "expected": sorted(expected_revisions or ()),
        }
        async with self._db.transaction() as connection:
            row = (await connection.execute(REPLACE_TRIGGER[guarded], params)).first()
            if row is None:
                raise await _replace_refusal(
                    connection, workspace_id, trigger_id, fields.workflow_id
                )
        return TriggerRecord(**row._mapping)

    async def delete(
        self,
        workspace_id: str,
        trigger_id: str,
        *,
        expected_revisions: Collection[int] | None = None,
    ) -> None:
        """Delete the trigger (guarded by ``expected_revisions`` like :meth:`replace`)."""
        guarded = expected_revisions is not None
        params = {
            "workspace": workspace_id,
            "trigger": trigger_id,
            "expected": sorted(expected_revisions or ()),
        }
        async with self._db.transaction() as connection:
            if not (await connection.execute(DELETE_TRIGGER[guarded], params)).rowcount:
                current = await _fetch(connection, workspace_id, trigger_id)
                raise _not_found(trigger_id) if current is None else _stale(current)

    async def declaring_workflows(
        self,
        workspace_id: str,
        *,
        workflow_id: str | None = None,
        active: bool | None = None,
        start: str | None = None,
        inclusive: bool = False,
        limit: int = 50,
    ) -> builtins.list[WorkflowRecord]:
        """Workflows that are not archived, with their latest definition (whose ``triggers``
        are the declared ones), in id order from ``start``; ``active`` filters on the status."""
        _check_limit(limit)
        statement = declaring_workflows(workflow_id, active, start, inclusive)
        async with self._db.read() as connection:
            result = await connection.execute(
                statement, {"workspace": workspace_id, "limit": limit}
            )
            return [WorkflowRecord(**row._mapping) for row in result]


# --- helpers ------------------------------------------------------------------------------


def _field_values(fields: TriggerFields) -> dict[str, Any]:
    values = asdict(fields)
    values["definition"] = dict(fields.definition)
    return values


async def _fetch(
    connection: AsyncConnection, workspace_id: str, trigger_id: str
) -> TriggerRecord | None:
    params = {"workspace": workspace_id, "trigger": trigger_id}
    row = (await connection.execute(GET_TRIGGER, params)).first()
    return None if row is None else TriggerRecord(**row._mapping)


async def _workflow_refusal(
    connection: AsyncConnection, workspace_id: str, workflow_id: str
) -> ClientError | None:
    """Why ``workflow_id`` cannot hold a trigger; ``None`` if it can."""
    params = {"workspace": workspace_id, "workflow": workflow_id}
    state = (await connection.execute(GET_STATE, params)).first()
    if state is None:
        return WorkflowNotFound(f"Workflow {workflow_id!r} does not exist.")
    if state.status == ARCHIVED:
        return WorkflowArchived(f"Workflow {workflow_id!r} is archived; it takes no triggers.")
    return None


async def _replace_refusal(
    connection: AsyncConnection, workspace_id: str, trigger_id: str, workflow_id: str
) -> ClientError:
    """Why a replace changed no row: no such trigger, a workflow that cannot hold it, or a
    revision If-Match does not name."""
    current = await _fetch(connection, workspace_id, trigger_id)
    if current is None:
        return _not_found(trigger_id)
    refusal = await _workflow_refusal(connection, workspace_id, workflow_id)
    return refusal or _stale(current)


def _stale(current: TriggerRecord) -> PreconditionFailed:
    return PreconditionFailed(
        f"Trigger {current.id!r} is at revision {current.revision}, which If-Match does not "
        "name; GET it again, re-apply your change and retry."
    )


def _not_found(trigger_id: str) -> NotFound:
    return NotFound(f"Trigger {trigger_id!r} does not exist.")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
