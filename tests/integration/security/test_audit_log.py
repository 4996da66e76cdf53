"""The audit log on SQLite and PostgreSQL: chained appends, concurrent writers, append-only
storage, tamper detection, listing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from campaignflow.errors import DatabaseUnavailable, StorageError
from campaignflow.security.audit_chain import AuditEntry, AuditEvent
from campaignflow.services.audit import AuditService, AuditWriter
from campaignflow.store.audit import AuditFilter, AuditStore
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def event(workspace_id: str = "acme", n: int = 0, **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "workspace_id": workspace_id,
        "id": new_id(),
        "occurred_at": T0 + timedelta(seconds=n),
        "actor_id": "alice",
        "credential": "api_key:k1",
        "action": "workflows.update",
        "resource_type": "workflows",
        "resource_id": f"w{n}",
        "method": "PUT",
        "path": f"/api/v1/workflows/w{n}",
        "status": 200,
        "outcome": "success",
        "ip": "203.0.113.7",
        "user_agent": "pytest",
        "request_id": f"req-{n}",
        "details": None,
        **changes,
    }
    return AuditEvent(**fields)


async def fill(store: AuditStore, count: int, workspace_id: str = "acme") -> list[AuditEntry]:
    return await store.append_batch([event(workspace_id, n) for n in range(count)])


async def tamper(database: Database, statement: str, *, drop: Sequence[str]) -> None:
    """Change a row behind the application's back, as someone who can drop the triggers."""
    async with database.transaction() as connection:
        for trigger in drop:
            on = " ON audit_log" if database.dialect == "postgresql" else ""
            await connection.execute(text(f"DROP TRIGGER {trigger}{on}"))
        await connection.execute(text(statement))


def triggers(database: Database, verb: str) -> list[str]:
    if database.dialect == "postgresql":
        return ["audit_log_append_only"]
    return [f"audit_log_no_{verb}"]


async def test_a_batch_extends_each_workspace_chain_in_order(database: Database) -> None:
    store = AuditStore(database)
    await fill(store, 2, "acme")

    entries = await store.append_batch(
        [event("globex", 0), event("acme", 10), event("globex", 1), event("acme", 11)]
    )

    assert [(e.event.workspace_id, e.seq, e.event.resource_id) for e in entries] == [
        ("acme", 3, "w10"),
        ("acme", 4, "w11"),
        ("globex", 1, "w0"),
        ("globex", 2, "w1"),
    ]
    service = AuditService(AuditStore(database))
    assert (await service.verify("acme")).checked == 4
    assert (await service.verify("globex")).valid


async def test_an_entry_reads_back_exactly_as_it_was_hashed(database: Database) -> None:
    store = AuditStore(database)
    odd = event(
        details={"location": "/api/v1/executions/é", "z": "ß"},
        occurred_at=datetime(2026, 5, 1, 11, 0, 0, 1, tzinfo=UTC),
        user_agent="Mozilla/5.0 (ü)",
        actor_id=None,
    )
    [written] = await store.append_batch([odd])

    [read] = await store.read_range("acme", after=0, limit=10)

    assert read == written
    assert (await AuditService(store).verify("acme")).valid


async def test_two_writers_on_two_engines_build_one_unbroken_chain_per_workspace(
    database_url: str,
) -> None:
    # Two engines (two pools), as two API processes would have, appending at the same time.
    first, second = Database.from_url(database_url), Database.from_url(database_url)
    writers = [AuditWriter(AuditStore(first)), AuditWriter(AuditStore(second))]
    for writer in writers:
        await writer.start()
    try:
        await asyncio.gather(
            *(writers[n % 2].record(event(("acme", "globex")[n % 3 == 0], n)) for n in range(300))
        )
        service = AuditService(AuditStore(first))
        reports = {ws: await service.verify(ws) for ws in ("acme", "globex")}
    finally:
        for writer in writers:
            await writer.aclose()
        await first.dispose()
        await second.dispose()

    assert reports["acme"].valid
    assert reports["globex"].valid
    assert reports["acme"].checked + reports["globex"].checked == 300
    assert reports["globex"].checked == len([n for n in range(300) if n % 3 == 0])


async def test_update_and_delete_are_refused_by_the_database(database: Database) -> None:
    await fill(AuditStore(database), 2)

    for statement in (
        "UPDATE audit_log SET actor_id = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
    ):
        with pytest.raises(StorageError, match="append-only"):
            async with database.transaction() as connection:
                await connection.execute(text(statement))

    assert (await AuditService(AuditStore(database)).verify("acme")).checked == 2


async def test_an_edited_row_is_reported_at_its_seq(database: Database) -> None:
    await fill(AuditStore(database), 6)

    await tamper(
        database,
        "UPDATE audit_log SET outcome = 'denied' WHERE workspace_id = 'acme' AND seq = 4",
        drop=triggers(database, "update"),
    )

    report = await AuditService(AuditStore(database), page=2).verify("acme")
    assert (report.valid, report.checked, report.first_broken_seq) == (False, 3, 4)


async def test_a_deleted_row_is_reported_at_its_seq(database: Database) -> None:
    await fill(AuditStore(database), 6)

    await tamper(
        database,
        "DELETE FROM audit_log WHERE workspace_id = 'acme' AND seq = 2",
        drop=triggers(database, "delete"),
    )

    report = await AuditService(AuditStore(database), page=4).verify("acme")
    assert (report.valid, report.first_broken_seq) == (False, 2)


async def test_verification_walks_long_chains_in_pages(database: Database) -> None:
    store = AuditStore(database)
    for _ in range(3):
        await fill(store, 40)

    report = await AuditService(store, page=7).verify("acme")

    assert (report.valid, report.checked, report.first_broken_seq) == (True, 120, None)
    assert (await AuditService(store).verify("nobody")).checked == 0


async def test_listing_filters_newest_first_with_a_cursor(database: Database) -> None:
    store = AuditStore(database)
    await store.append_batch(
        [
            event(n=0, actor_id="bob", action="contacts.get", resource_type="contacts"),
            event(n=1, status=403, outcome="denied"),
            event(n=2),
            event(n=3, actor_id="bob", resource_id="w9"),
            event(n=4),
        ]
    )
    await fill(store, 2, "globex")

    bob = await store.list("acme", AuditFilter(actor_id="bob"))
    assert [e.seq for e in bob] == [4, 1]
    denied = await store.list("acme", AuditFilter(outcome="denied"))
    assert [e.seq for e in denied] == [2]
    window = AuditFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    assert [e.seq for e in await store.list("acme", window)] == [3, 2]
    on_w9 = AuditFilter(resource_type="workflows", resource_id="w9", action="workflows.update")
    assert [e.seq for e in await store.list("acme", on_w9)] == [4]

    first_page = await store.list("acme", limit=2)
    second_page = await store.list("acme", before=first_page[-1].seq, limit=2)
    assert [e.seq for e in first_page + second_page] == [5, 4, 3, 2]
    assert all(e.event.workspace_id == "acme" for e in first_page + second_page)


class CountingStore(AuditStore):
    """The real store, counting its transactions."""

    batches: list[int]

    async def append_batch(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        self.batches.append(len(events))
        return await super().append_batch(events)


async def test_concurrent_records_share_transactions(database: Database) -> None:
    store = CountingStore(database)
    store.batches = []
    writer = AuditWriter(store)
    await writer.start()
    try:
        entries = await asyncio.gather(*(writer.record(event(n=n)) for n in range(100)))
    finally:
        await writer.aclose()

    assert sorted(entry.seq for entry in entries) == list(range(1, 101))
    assert sum(store.batches) == 100
    assert len(store.batches) < 10


async def test_closing_the_writer_commits_what_is_queued(database: Database) -> None:
    writer = AuditWriter(AuditStore(database))
    await writer.start()
    pending = [asyncio.ensure_future(writer.record(event(n=n))) for n in range(20)]
    await asyncio.sleep(0)

    await writer.aclose()

    assert all(task.done() and not task.exception() for task in pending)
    assert (await AuditService(AuditStore(database)).verify("acme")).checked == 20
    with pytest.raises(StorageError, match="not running"):
        await writer.record(event())


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    unreachable = Database.from_url("postgresql://nobody@127.0.0.1:9/nowhere")
    writer = AuditWriter(AuditStore(unreachable))
    await writer.start()
    try:
        results = await asyncio.gather(
            *(writer.record(event(n=n)) for n in range(5)), return_exceptions=True
        )
    finally:
        await writer.aclose()
        await unreachable.dispose()

    assert all(isinstance(result, DatabaseUnavailable) for result in results)
