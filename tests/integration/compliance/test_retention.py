"""Retention removes exactly what is past its age, per data class and workspace, in bounded
batches; the audit log loses only its oldest prefix and still verifies (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text

from campaignflow.compliance.retention import (
    RetentionPurger,
    ensure_event_partitions,
    start_retention,
    stop_retention,
)
from campaignflow.compliance.settings import RetentionSettings
from campaignflow.domain.retention import DEFAULT_POLICY, PurgeLimits, RetentionPolicy
from campaignflow.security.audit_chain import AuditEvent
from campaignflow.services.audit import AuditService
from campaignflow.services.retention import RetentionService
from campaignflow.store import tables as t
from campaignflow.store.audit import AuditStore
from campaignflow.store.database import Database
from campaignflow.store.partitions import EventPartitions, add_months, month_start, partition_name
from campaignflow.store.retention import RetentionStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy.model_validate(
    {"events": 30, "webhookPayloads": 7, "executionLogs": 14, "processingLog": 60, "auditLog": 90}
)
SECOND = timedelta(seconds=1)


def days_ago(days: int, plus: timedelta = timedelta()) -> datetime:
    return NOW - timedelta(days=days) + plus


async def seed_workspace(db: Database, workspace: str) -> None:
    async with db.transaction() as connection:
        await connection.execute(
            insert(t.workspaces).values(id=workspace, name=workspace, created_at=NOW)
        )
        await connection.execute(
            insert(t.workflows).values(
                workspace_id=workspace,
                id="wf",
                name="wf",
                name_search="wf",
                status="active",
                latest_version=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await connection.execute(
            insert(t.workflow_versions).values(
                workspace_id=workspace,
                workflow_id="wf",
                version=1,
                name="wf",
                definition={},
                content_hash="0" * 64,
                created_at=NOW,
            )
        )


def event_row(
    workspace: str, message_id: str, received: datetime, *, webhook: bool
) -> dict[str, Any]:
    properties: dict[str, Any] = {"providerEventId": "e1"} if webhook else {"plan": "pro"}
    return {
        "workspace_id": workspace, "message_id": message_id, "type": "track", "name": "x",
        "contact_id": "c1", "user_id": None, "anonymous_id": "a1",
        "payload": {"properties": properties}, "timestamp": received, "received_at": received,
    }  # fmt: skip


def execution_row(
    workspace: str, id_: str, status: str, finished: datetime | None
) -> dict[str, Any]:
    return {
        "workspace_id": workspace, "id": id_, "workflow_id": "wf", "workflow_version": 1,
        "subject_id": "c1", "status": status, "trigger": "api", "input": {}, "contact": {},
        "state": {}, "revision": 1, "created_at": days_ago(400), "updated_at": days_ago(400),
        "finished_at": finished,
    }  # fmt: skip


def step_row(workspace: str, execution_id: str) -> dict[str, Any]:
    return {
        "workspace_id": workspace, "execution_id": execution_id, "seq": 1, "node_id": "n",
        "node_type": "action", "token": "", "attempt": 1, "status": "completed",
        "started_at": NOW, "finished_at": NOW, "output": {"ok": True},
    }  # fmt: skip


def processing_row(workspace: str, id_: str, at: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace, "id": id_, "contact_id": "c1", "occurred_at": at,
        "activity": "action", "purpose": "marketing", "legal_basis": "consent",
        "recipient": "sendgrid (mail)",
    }  # fmt: skip


def audit_event(workspace: str, n: int, at: datetime) -> AuditEvent:
    return AuditEvent(
        workspace, f"a{n}", at, "p1", "api_key:k", "workflows.read", "workflow", "wf", "GET",
        "/api/v1/workflows/wf", 200, "success", "127.0.0.1", "test", f"r{n}",
    )  # fmt: skip


async def seed(db: Database, workspace: str) -> None:
    """Rows just past and just inside each cut-off of POLICY."""
    await seed_workspace(db, workspace)
    events = [
        event_row(workspace, "old-own", days_ago(30, -SECOND), webhook=False),
        event_row(workspace, "new-own", days_ago(30, SECOND), webhook=False),
        event_row(workspace, "old-hook", days_ago(7, -SECOND), webhook=True),
        event_row(workspace, "new-hook", days_ago(7, SECOND), webhook=True),
        # 20 days is past the webhook class's 7 days: it goes, though events keep 30 days.
        event_row(workspace, "mid-hook", days_ago(20), webhook=True),
        # A customer event 20 days old stays: the webhook class's age does not apply to it.
        event_row(workspace, "mid-own", days_ago(20), webhook=False),
    ]
    executions = [
        execution_row(workspace, "x-old", "completed", days_ago(14, -SECOND)),
        execution_row(workspace, "x-new", "completed", days_ago(14, SECOND)),
        execution_row(workspace, "x-failed-old", "failed", days_ago(100)),
        execution_row(workspace, "x-waiting", "waiting", None),  # 400 days old, never due
    ]
    async with db.transaction() as connection:
        await connection.execute(insert(t.events), events)
        await connection.execute(insert(t.executions), executions)
        await connection.execute(
            insert(t.execution_steps), [step_row(workspace, row["id"]) for row in executions]
        )
        await connection.execute(
            insert(t.dead_letters),
            [
                {
                    "workspace_id": workspace,
                    "id": "dl1",
                    "execution_id": "x-failed-old",
                    "workflow_id": "wf",
                    "workflow_version": 1,
                    "node_id": "n",
                    "token": "",
                    "status": "open",
                    "attempts": 3,
                    "errors": [],
                    "input": {},
                    "created_at": days_ago(100),
                }
            ],
        )
        await connection.execute(
            insert(t.processing_log),
            [
                processing_row(workspace, "p-old", days_ago(60, -SECOND)),
                processing_row(workspace, "p-new", days_ago(60, SECOND)),
            ],
        )
    audit = AuditStore(db)
    ages = [days_ago(200), days_ago(90, -SECOND), days_ago(90, SECOND), days_ago(1)]
    await audit.append_batch([audit_event(workspace, n, at) for n, at in enumerate(ages)])


async def column(db: Database, statement: Any) -> set[Any]:
    async with db.read() as connection:
        return {row[0] for row in await connection.execute(statement)}


def purger(db: Database, policies: dict[str, RetentionPolicy], **limits: Any) -> RetentionPurger:
    async def policy_of(workspace: str) -> RetentionPolicy:
        return policies.get(workspace, DEFAULT_POLICY)

    return RetentionPurger(RetentionStore(db), policy_of, lambda: NOW, PurgeLimits(**limits))


async def test_retention_removes_exactly_what_is_past_its_age(database: Database) -> None:
    await seed(database, "ws")
    await seed(database, "other")  # keeps the defaults: nothing of it is due but its audit log

    outcomes = await purger(database, {"ws": POLICY}, batch_size=2, pause_seconds=0).run_once()

    ws = t.events.c.workspace_id == "ws"
    assert await column(database, select(t.events.c.message_id).where(ws)) == {
        "new-own", "new-hook", "mid-own",
    }  # fmt: skip
    in_ws = t.executions.c.workspace_id == "ws"
    assert await column(database, select(t.executions.c.id).where(in_ws)) == {
        "x-new", "x-waiting",
    }  # fmt: skip
    steps = select(t.execution_steps.c.execution_id).where(t.execution_steps.c.workspace_id == "ws")
    assert await column(database, steps) == {"x-new", "x-waiting"}
    assert await column(database, select(t.dead_letters.c.id)) == {"dl1"}  # other's only
    log = select(t.processing_log.c.id).where(t.processing_log.c.workspace_id == "ws")
    assert await column(database, log) == {"p-new"}
    audit = select(t.audit_log.c.seq).where(t.audit_log.c.workspace_id == "ws")
    assert await column(database, audit) == {3, 4}

    # The other workspace keeps the defaults (365 days and more): nothing of it was due.
    other = t.events.c.workspace_id == "other"
    assert len(await column(database, select(t.events.c.message_id).where(other))) == 6
    assert len(await column(database, select(t.audit_log.c.seq).where(
        t.audit_log.c.workspace_id == "other"))) == 4  # fmt: skip

    purged = {(w, o.data_class): o.purged for w, o in outcomes}
    assert purged == {
        ("ws", "events"): 1,
        ("ws", "webhook_payloads"): 2,
        ("ws", "execution_logs"): 2,
        ("ws", "processing_log"): 1,
        ("ws", "audit_log"): 2,
    }
    runs = await RetentionService(RetentionStore(database), lambda: NOW).runs("ws")
    assert {(run["data_class"], run["purged"]) for run in runs} == set(purged_by_class(purged))


def purged_by_class(purged: dict[tuple[str, str], int]) -> list[tuple[str, int]]:
    return [(data_class, count) for (_, data_class), count in purged.items()]


async def test_the_audit_chain_verifies_after_a_purge_and_refuses_deletes_above_it(
    database: Database,
) -> None:
    await seed(database, "ws")
    await purger(database, {"ws": POLICY}, pause_seconds=0).run_once()

    report = await AuditService(AuditStore(database)).verify("ws")
    assert report.valid
    assert report.checked == 4

    with pytest.raises(Exception, match="append-only"):
        async with database.transaction() as connection:
            await connection.execute(delete(t.audit_log).where(t.audit_log.c.seq == 3))
    with pytest.raises(Exception, match="append-only"):
        async with database.transaction() as connection:
            await connection.execute(
                text("UPDATE audit_log SET status = 500 WHERE seq = 4 AND workspace_id = 'ws'")
            )


async def test_a_pass_stops_at_its_batch_budget_and_the_next_pass_finishes(
    database: Database,
) -> None:
    await seed_workspace(database, "ws")
    rows = [event_row("ws", f"old-{n}", days_ago(31), webhook=False) for n in range(7)]
    async with database.transaction() as connection:
        await connection.execute(insert(t.events), rows)
    budget = purger(database, {"ws": POLICY}, batch_size=2, max_batches=2, pause_seconds=0)

    first = {o.data_class: o for _, o in await budget.run_once()}
    assert first["events"].purged == 4
    assert not first["events"].complete
    second = {o.data_class: o for _, o in await budget.run_once()}
    assert second["events"].purged == 3
    assert second["events"].complete
    remaining = await column(database, select(func.count()).select_from(t.events))
    assert remaining == {0}


async def test_the_process_loop_purges_at_once_and_stops_cleanly(database: Database) -> None:
    await seed_workspace(database, "default")
    old = datetime.now(UTC) - timedelta(days=400)  # past the default 365 days
    async with database.transaction() as connection:
        await connection.execute(insert(t.events), [event_row("default", "m1", old, webhook=False)])
    loop = start_retention(database, RetentionSettings(interval_seconds=3600, pause_seconds=0))
    assert loop is not None
    try:
        for _ in range(100):
            if await column(database, select(func.count()).select_from(t.events)) == {0}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the loop's first pass did not purge the old event")
    finally:
        await stop_retention(loop)
    assert loop.task.done()
    assert start_retention(database, RetentionSettings(enabled=False)) is None


async def test_start_up_creates_the_event_log_months_ahead(database: Database) -> None:
    """``up`` and ``worker`` call it before routing: on PostgreSQL a missing month ahead is
    created (rows would otherwise pile up in the DEFAULT partition); SQLite has none."""
    if database.dialect == "postgresql":
        ahead = partition_name(add_months(month_start(datetime.now(UTC)), 3))
        async with database.transaction() as connection:
            await connection.execute(text(f"DROP TABLE {ahead}"))

        await ensure_event_partitions(database)

        names = [p.name for p in await EventPartitions(database).partitions()]
        assert ahead in names
    else:
        await ensure_event_partitions(database)  # nothing to do, nothing fails
