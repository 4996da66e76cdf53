"""Alert channels, rules, incidents and the notification outbox.

Every statement filters by ``workspace_id``, except the two an evaluator runs across tenants
(like a task claim): which workspaces have rules, and which notifications are due.

Exactly-once notification rests on two things. A rule's state change is a compare-and-set on
its ``revision``, and the incident and outbox rows it calls for are written in the same
transaction, so of two evaluators that saw the same state one commits and the other writes
nothing. And the outbox key (incident, channel, kind, sequence) is unique, so even a writer
that got past the first check inserts no second notification. Sending is at least once per
row: a claim moves ``next_attempt_at`` ahead by a lease, so a sender that died mid-send is
retried after it; receivers dedupe by the notification id (sent with every message).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.alerting import RuleState, Transition
from campaignflow.errors import AlreadyExists, NotFound
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.ids import new_id
from campaignflow.store.tables import (
    alert_channels,
    alert_incidents,
    alert_notifications,
    alert_rules,
)
from campaignflow.store.workflows import Clock, aware_now, utc_now


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    workspace_id: str
    id: str
    name: str
    kind: str
    config: dict[str, Any]
    hint: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RuleRecord:
    workspace_id: str
    id: str
    name: str
    definition: dict[str, Any]
    enabled: bool
    state: str
    state_since: datetime | None
    incident_id: str | None
    last_value: float | None
    evaluated_at: datetime | None
    revision: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    notified_at: datetime | None = None  # of the open incident
    repeats: int = 0

    def rule_state(self) -> RuleState:
        status = self.state if self.state in ("pending", "firing") else "ok"
        return RuleState(status, self.state_since, self.notified_at, self.repeats)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    workspace_id: str
    id: str
    rule_id: str
    rule_name: str
    metric: str
    severity: str
    status: str
    value: float | None
    last_value: float | None
    threshold: float
    started_at: datetime
    resolved_at: datetime | None
    notified_at: datetime
    repeats: int


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    workspace_id: str
    id: str
    incident_id: str
    channel_id: str
    kind: str
    sequence: int
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation of a rule writes: its transition, the metric's value, and for a
    notification the channels and the message (without channel specifics)."""

    transition: Transition
    value: float | None
    now: datetime
    channels: tuple[str, ...]
    payload: Mapping[str, Any]


_RULE_COLUMNS = (*alert_rules.c, alert_incidents.c.notified_at, alert_incidents.c.repeats)
_INSERT_IGNORING = {
    "postgresql": postgresql.insert(alert_notifications).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(alert_notifications).on_conflict_do_nothing(),
}


class AlertStore:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self.database = database
        self._clock = clock

    # ------------------------------------------------------------------------------ channels

    async def create_channel(
        self,
        workspace_id: str,
        channel_id: str,
        *,
        name: str,
        kind: str,
        config: dict[str, Any],
        hint: str,
        created_by: str | None,
    ) -> ChannelRecord:
        now = aware_now(self._clock)
        values = {
            "workspace_id": workspace_id,
            "id": channel_id,
            "name": name,
            "kind": kind,
            "config": config,
            "hint": hint,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        await self._insert(alert_channels, values, f"an alert channel named {name!r} exists")
        return ChannelRecord(**values)  # type: ignore[arg-type]

    async def get_channel(self, workspace_id: str, channel_id: str) -> ChannelRecord:
        query = select(alert_channels).where(_channel_key(workspace_id, channel_id))
        async with self.database.read() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise NotFound(f"alert channel {channel_id!r} not found")
        return ChannelRecord(**row._mapping)

    async def list_channels(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> builtins.list[ChannelRecord]:
        query = select(alert_channels).where(alert_channels.c.workspace_id == workspace_id)
        if after is not None:
            query = query.where(alert_channels.c.name > after)
        query = query.order_by(alert_channels.c.name).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [ChannelRecord(**row._mapping) for row in rows]

    async def existing_channels(self, workspace_id: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are channels of the workspace."""
        if not ids:
            return set()
        query = select(alert_channels.c.id).where(
            alert_channels.c.workspace_id == workspace_id, alert_channels.c.id.in_(list(ids))
        )
        async with self.database.read() as connection:
            return {str(row[0]) for row in await connection.execute(query)}

    async def update_channel(
        self, workspace_id: str, channel_id: str, **values: Any
    ) -> ChannelRecord:
        statement = (
            update(alert_channels)
            .where(_channel_key(workspace_id, channel_id))
            .values(**values, updated_at=aware_now(self._clock))
        )
        await self._update(statement, f"alert channel {channel_id!r} not found", values)
        return await self.get_channel(workspace_id, channel_id)

    async def delete_channel(self, workspace_id: str, channel_id: str) -> None:
        statement = delete(alert_channels).where(_channel_key(workspace_id, channel_id))
        async with self.database.transaction() as connection:
            if (await connection.execute(statement)).rowcount == 0:
                raise NotFound(f"alert channel {channel_id!r} not found")

    # --------------------------------------------------------------------------------- rules

    async def create_rule(
        self,
        workspace_id: str,
        *,
        name: str,
        definition: dict[str, Any],
        enabled: bool,
        created_by: str | None,
    ) -> RuleRecord:
        now = aware_now(self._clock)
        values: dict[str, Any] = {
            "workspace_id": workspace_id,
            "id": new_id(),
            "name": name,
            "definition": definition,
            "enabled": enabled,
            "state": "ok",
            "state_since": None,
            "incident_id": None,
            "last_value": None,
            "evaluated_at": None,
            "revision": 1,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        await self._insert(alert_rules, values, f"an alert rule named {name!r} exists")
        return RuleRecord(**values)

    async def get_rule(self, workspace_id: str, rule_id: str) -> RuleRecord:
        rules = await self._rules(
            and_(alert_rules.c.workspace_id == workspace_id, alert_rules.c.id == rule_id), 1
        )
        if not rules:
            raise NotFound(f"alert rule {rule_id!r} not found")
        return rules[0]

    async def list_rules(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> builtins.list[RuleRecord]:
        where = alert_rules.c.workspace_id == workspace_id
        if after is not None:
            where = and_(where, alert_rules.c.name > after)
        return await self._rules(where, limit)

    async def rules_to_evaluate(self, workspace_id: str) -> builtins.list[RuleRecord]:
        """Enabled rules, and disabled ones not yet back to ok (to resolve them)."""
        where = and_(
            alert_rules.c.workspace_id == workspace_id,
            (alert_rules.c.enabled.is_(True)) | (alert_rules.c.state != "ok"),
        )
        return await self._rules(where, None)

    async def workspaces_with_rules(self) -> builtins.list[str]:
        """Every workspace that has a rule (across tenants: the evaluator's round)."""
        query = select(alert_rules.c.workspace_id).distinct()
        async with self.database.read() as connection:
            return sorted(str(row[0]) for row in await connection.execute(query))

    async def update_rule(
        self,
        workspace_id: str,
        rule_id: str,
        *,
        name: str,
        definition: dict[str, Any],
        enabled: bool,
    ) -> RuleRecord:
        statement = (
            update(alert_rules)
            .where(alert_rules.c.workspace_id == workspace_id, alert_rules.c.id == rule_id)
            .values(
                name=name,
                definition=definition,
                enabled=enabled,
                updated_at=aware_now(self._clock),
                revision=alert_rules.c.revision + 1,
            )
        )
        await self._update(statement, f"alert rule {rule_id!r} not found", {"name": name})
        return await self.get_rule(workspace_id, rule_id)

    async def delete_rule(self, workspace_id: str, rule_id: str) -> None:
        """Delete the rule; its open incident is closed (without a notification: nobody is
        watching any more) and its unsent notifications are dropped."""
        now = aware_now(self._clock)
        async with self.database.transaction() as connection:
            result = await connection.execute(
                delete(alert_rules).where(
                    alert_rules.c.workspace_id == workspace_id, alert_rules.c.id == rule_id
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"alert rule {rule_id!r} not found")
            await connection.execute(
                update(alert_incidents)
                .where(
                    alert_incidents.c.workspace_id == workspace_id,
                    alert_incidents.c.rule_id == rule_id,
                    alert_incidents.c.status == "firing",
                )
                .values(status="resolved", resolved_at=now)
            )

    async def apply(self, rule: RuleRecord, evaluation: Evaluation) -> bool:
        """Write one evaluation if the rule is still at the revision it was read at; False
        (and nothing written) when another evaluator or an edit got there first."""
        transition, now = evaluation.transition, evaluation.now
        notify = transition.notify
        incident_id = rule.incident_id
        if notify is not None and notify.kind == "fire":
            incident_id = new_id(int(now.timestamp() * 1000))
        state = transition.state
        async with self.database.transaction() as connection:
            result = await connection.execute(
                update(alert_rules)
                .where(
                    alert_rules.c.workspace_id == rule.workspace_id,
                    alert_rules.c.id == rule.id,
                    alert_rules.c.revision == rule.revision,
                )
                .values(
                    state=state.status,
                    state_since=state.since,
                    incident_id=incident_id if state.status == "firing" else None,
                    last_value=evaluation.value,
                    evaluated_at=now,
                    revision=rule.revision + 1,
                )
            )
            if result.rowcount != 1:
                return False
            if notify is None or incident_id is None:
                return True
            await _write_incident(connection, rule, evaluation, incident_id)
            await self._queue(connection, rule.workspace_id, incident_id, evaluation)
        return True

    async def _queue(
        self,
        connection: AsyncConnection,
        workspace_id: str,
        incident_id: str,
        evaluation: Evaluation,
    ) -> None:
        notify = evaluation.transition.notify
        assert notify is not None
        rows = [
            {
                "workspace_id": workspace_id,
                "id": new_id(),
                "incident_id": incident_id,
                "channel_id": channel_id,
                "kind": notify.kind,
                "sequence": notify.sequence,
                "payload": {**evaluation.payload, "incidentId": incident_id},
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": evaluation.now,
                "last_error": None,
                "created_at": evaluation.now,
                "sent_at": None,
            }
            for channel_id in evaluation.channels
        ]
        if rows:
            await connection.execute(_INSERT_IGNORING[self.database.dialect], rows)

    # ----------------------------------------------------------------------------- incidents

    async def list_incidents(
        self,
        workspace_id: str,
        *,
        status: str | None,
        rule_id: str | None,
        before: str | None,
        limit: int,
    ) -> builtins.list[IncidentRecord]:
        """Newest first: up to ``limit`` incidents older than the id ``before``."""
        query = select(alert_incidents).where(alert_incidents.c.workspace_id == workspace_id)
        if status is not None:
            query = query.where(alert_incidents.c.status == status)
        if rule_id is not None:
            query = query.where(alert_incidents.c.rule_id == rule_id)
        if before is not None:
            query = query.where(alert_incidents.c.id < before)
        query = query.order_by(alert_incidents.c.id.desc()).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [IncidentRecord(**row._mapping) for row in rows]

    async def get_incident(self, workspace_id: str, incident_id: str) -> IncidentRecord:
        query = select(alert_incidents).where(
            alert_incidents.c.workspace_id == workspace_id, alert_incidents.c.id == incident_id
        )
        async with self.database.read() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise NotFound(f"alert {incident_id!r} not found")
        return IncidentRecord(**row._mapping)

    async def notifications_of(
        self, workspace_id: str, incident_id: str
    ) -> builtins.list[NotificationRecord]:
        query = (
            select(alert_notifications)
            .where(
                alert_notifications.c.workspace_id == workspace_id,
                alert_notifications.c.incident_id == incident_id,
            )
            .order_by(alert_notifications.c.id)
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [NotificationRecord(**row._mapping) for row in rows]

    # -------------------------------------------------------------------------------- outbox

    async def due_notifications(
        self, now: datetime, limit: int
    ) -> builtins.list[NotificationRecord]:
        """Pending notifications due by ``now``, oldest first, across workspaces."""
        query = (
            select(alert_notifications)
            .where(
                alert_notifications.c.next_attempt_at <= now,
                alert_notifications.c.status == "pending",
            )
            .order_by(alert_notifications.c.next_attempt_at)
            .limit(limit)
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [NotificationRecord(**row._mapping) for row in rows]

    async def claim(self, notification: NotificationRecord, until: datetime) -> bool:
        """Take the notification for one attempt (until ``until``); False if another sender
        took it since it was read."""
        statement = (
            update(alert_notifications)
            .where(
                *_notification_key(notification),
                alert_notifications.c.status == "pending",
                alert_notifications.c.attempts == notification.attempts,
            )
            .values(attempts=notification.attempts + 1, next_attempt_at=until)
        )
        async with self.database.transaction() as connection:
            return bool((await connection.execute(statement)).rowcount == 1)

    async def finish(
        self,
        notification: NotificationRecord,
        *,
        status: str,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record the claimed attempt's outcome: ``sent``, ``failed``, or ``pending`` again
        until ``retry_at``."""
        statement = (
            update(alert_notifications)
            .where(
                *_notification_key(notification),
                alert_notifications.c.attempts == notification.attempts + 1,
            )
            .values(
                status=status,
                next_attempt_at=retry_at if status == "pending" else None,
                last_error=error[:500] if error else None,
                sent_at=now if status == "sent" else None,
            )
        )
        async with self.database.transaction() as connection:
            await connection.execute(statement)

    # ------------------------------------------------------------------------------- helpers

    async def _rules(self, where: Any, limit: int | None) -> builtins.list[RuleRecord]:
        query = (
            select(*_RULE_COLUMNS)
            .select_from(
                alert_rules.outerjoin(
                    alert_incidents,
                    and_(
                        alert_incidents.c.workspace_id == alert_rules.c.workspace_id,
                        alert_incidents.c.id == alert_rules.c.incident_id,
                    ),
                )
            )
            .where(where)
            .order_by(alert_rules.c.name)
        )
        if limit is not None:
            query = query.limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_rule(row) for row in rows]

    async def _insert(self, table: Any, values: dict[str, Any], taken: str) -> None:
        async with self.database.transaction() as connection:
            try:
                await connection.execute(insert(table).values(**values))
            except IntegrityError as exc:
                if integrity_kind(exc) == "unique":
                    raise AlreadyExists(taken) from exc
                raise

    async def _update(self, statement: Any, missing: str, values: Mapping[str, Any]) -> None:
        async with self.database.transaction() as connection:
            try:
                result = await connection.execute(statement)
            except IntegrityError as exc:
                if integrity_kind(exc) == "unique":
                    raise AlreadyExists(f"the name {values.get('name')!r} is taken") from exc
                raise
            if result.rowcount == 0:
                raise NotFound(missing)


async def _write_incident(
    connection: AsyncConnection, rule: RuleRecord, evaluation: Evaluation, incident_id: str
) -> None:
    notify = evaluation.transition.notify
    assert notify is not None
    now, value = evaluation.now, evaluation.value
    key = (
        alert_incidents.c.workspace_id == rule.workspace_id,
        alert_incidents.c.id == incident_id,
    )
    if notify.kind == "fire":
        definition = rule.definition
        await connection.execute(
            insert(alert_incidents).values(
                workspace_id=rule.workspace_id,
                id=incident_id,
                rule_id=rule.id,
                rule_name=rule.name,
                metric=definition["metric"],
                severity=definition["severity"],
                status="firing",
                value=value,
                last_value=value,
                threshold=definition["threshold"],
                started_at=now,
                resolved_at=None,
                notified_at=now,
                repeats=0,
            )
        )
    elif notify.kind == "repeat":
        await connection.execute(
            update(alert_incidents)
            .where(*key)
            .values(last_value=value, notified_at=now, repeats=notify.sequence)
        )
    else:
        await connection.execute(
            update(alert_incidents)
            .where(*key)
            .values(status="resolved", resolved_at=now, last_value=value, notified_at=now)
        )


def _channel_key(workspace_id: str, channel_id: str) -> Any:
    return and_(alert_channels.c.workspace_id == workspace_id, alert_channels.c.id == channel_id)


def _notification_key(notification: NotificationRecord) -> tuple[Any, ...]:
    return (
        alert_notifications.c.workspace_id == notification.workspace_id,
        alert_notifications.c.id == notification.id,
    )


def _rule(row: Any) -> RuleRecord:
    values = dict(row._mapping)
    values["repeats"] = values.get("repeats") or 0
    return RuleRecord(**values)
