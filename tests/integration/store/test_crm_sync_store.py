"""The CRM sync store on both dialects: one active run per connection, claims and leases (a dead
worker's run is taken over, a worker that lost its lease writes nothing), progress saved with
its links and errors in one transaction, and every read confined to its workspace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaignflow.domain.record_merge import FieldBase
from campaignflow.errors import Conflict, LeaseLost, NotFound
from campaignflow.store.connections import ConnectionStore, NewConnection
from campaignflow.store.crm_sync import (
    FieldSource,
    Progress,
    RecordError,
    SyncLink,
    SyncStore,
)
from campaignflow.store.database import Database
from campaignflow.store.workflows import WorkflowStore

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
WS = "acme"
OTHER = "globex"


@pytest.fixture
async def sync(database: Database) -> SyncStore:
    workflows = WorkflowStore(database)
    for workspace in (WS, OTHER):
        await workflows.ensure_workspace(workspace, workspace.title())
        await ConnectionStore(database).create(
            NewConnection(
                workspace_id=workspace,
                id=f"conn-{workspace}",
                name="crm",
                provider="hubspot",
                description=None,
                settings={},
                created_by=None,
            )
        )
    return SyncStore(database)


async def queue(sync: SyncStore, workspace: str = WS, at: datetime = NOW) -> str:
    run = await sync.queue(
        workspace, f"conn-{workspace}", trigger="on-demand", requested_by="ann", cursor={}, now=at
    )
    return run.id


async def test_one_run_at_a_time_per_connection(sync: SyncStore) -> None:
    first = await queue(sync)
    with pytest.raises(Conflict, match=first):
        await queue(sync)
    # another workspace's connection is another connection
    await queue(sync, OTHER)


async def test_a_claimed_run_is_held_until_its_lease_runs_out_then_resumes_elsewhere(
    sync: SyncStore,
) -> None:
    run_id = await queue(sync)
    taken = await sync.claim("w1", NOW, LEASE)
    assert taken is not None
    assert (taken.id, taken.status, taken.attempts, taken.lease_owner) == (
        run_id,
        "running",
        1,
        "w1",
    )
    assert await sync.claim("w2", NOW + timedelta(seconds=30), LEASE) is None
    # w1 died: after its lease another worker takes the run, which keeps its start time
    resumed = await sync.claim("w2", NOW + timedelta(seconds=61), LEASE)
    assert resumed is not None
    assert (resumed.id, resumed.attempts, resumed.lease_owner) == (run_id, 2, "w2")
    assert resumed.started_at == taken.started_at


async def test_a_worker_that_lost_its_lease_writes_nothing(sync: SyncStore) -> None:
    await queue(sync)
    stale = await sync.claim("w1", NOW, LEASE)
    assert stale is not None
    fresh = await sync.claim("w2", NOW + timedelta(minutes=2), LEASE)
    assert fresh is not None
    link = SyncLink("c1", "r1", {"email": FieldBase("d")})
    with pytest.raises(LeaseLost):
        await sync.save_progress(
            stale, "w1", Progress({"phase": "pull"}, {"pulled": 9}, links=[link]), NOW
        )
    with pytest.raises(LeaseLost):
        await sync.renew(stale.id, "w1", NOW + LEASE)
    with pytest.raises(LeaseLost):
        await sync.finish(stale, "w1", status="succeeded", stats={}, error=None, now=NOW)
    assert await sync.links_by_contact(WS, "conn-acme", ["c1"]) == {}
    current = await sync.get_run(WS, fresh.id)
    assert (current.status, current.stats, current.lease_owner) == ("running", {}, "w2")


async def test_progress_is_saved_with_its_links_errors_and_sources(sync: SyncStore) -> None:
    await queue(sync)
    run = await sync.claim("w1", NOW, LEASE)
    assert run is not None
    at = NOW - timedelta(minutes=5)
    links = [
        SyncLink("c1", "r1", {"email": FieldBase("d1", at, NOW), "firstName": FieldBase(None)}),
        SyncLink("c2", None, {}, pending_push=True, push_attempts=1),
    ]
    progress = Progress(
        {"phase": "pull", "highWater": NOW.isoformat()},
        {"pulled": 2, "failed": 1},
        links=links,
        errors=[RecordError("c2", "push", "INVALID_EMAIL", False)],
        sources={"c1": [FieldSource("firstName", "hubspot", "d9", at)]},
    )
    await sync.save_progress(run, "w1", progress, NOW)

    saved = await sync.links_by_contact(WS, "conn-acme", ["c1", "c2"])
    assert saved["c1"].remote_id == "r1"
    assert saved["c1"].fields == {"email": FieldBase("d1", at, NOW), "firstName": FieldBase(None)}
    assert (await sync.links_by_remote(WS, "conn-acme", ["r1"]))["r1"].contact_id == "c1"
    assert [link.contact_id for link in await sync.pending_pushes(WS, "conn-acme", 10)] == ["c2"]
    sources = await sync.field_sources(WS, ["c1"])
    assert sources["c1"]["firstName"].source == "hubspot"
    assert await sync.run_errors(WS, run.id, limit=10) == [
        RecordError("c2", "push", "INVALID_EMAIL", False)
    ]
    current = await sync.get_run(WS, run.id)
    assert current.cursor["phase"] == "pull"
    assert current.stats == {"pulled": 2, "failed": 1}

    # saved again (a page processed twice after a crash): updated, not duplicated
    again = Progress(progress.cursor, progress.stats, links=[SyncLink("c2", "r2", {})])
    await sync.save_progress(run, "w1", again, NOW)
    assert (await sync.links_by_contact(WS, "conn-acme", ["c2"]))["c2"].remote_id == "r2"
    assert await sync.pending_pushes(WS, "conn-acme", 10) == []


async def test_a_finished_run_frees_the_connection_and_gives_the_next_its_cursor(
    sync: SyncStore,
) -> None:
    await queue(sync)
    run = await sync.claim("w1", NOW, LEASE)
    assert run is not None
    await sync.save_progress(run, "w1", Progress({"highWater": "x"}, {}), NOW)
    await sync.finish(run, "w1", status="partial", stats={"failed": 1}, error=None, now=NOW)
    last = await sync.last_finished(WS, "conn-acme")
    assert last is not None
    assert (last.id, last.status, last.cursor, last.lease_owner) == (
        run.id,
        "partial",
        {"highWater": "x"},
        None,
    )
    await queue(sync, at=NOW + timedelta(seconds=1))  # no longer busy


async def test_due_connections_come_in_due_order_across_workspaces(sync: SyncStore) -> None:
    await sync.configure(OTHER, "conn-globex", {"syncStrategy": "on-demand"}, NOW)
    await sync.configure(WS, "conn-acme", {"syncStrategy": "on-demand"}, NOW - timedelta(1))
    due = await sync.due_connections(NOW, 10)
    assert [(d.workspace_id, d.connection_id) for d in due] == [
        (WS, "conn-acme"),
        (OTHER, "conn-globex"),
    ]
    assert await sync.due_connections(NOW - timedelta(days=2), 10) == []
    await sync.configure(WS, "conn-acme", None, None)
    assert [d.connection_id for d in await sync.due_connections(NOW, 10)] == ["conn-globex"]


async def test_another_workspace_sees_none_of_it(sync: SyncStore) -> None:
    run_id = await queue(sync)
    run = await sync.claim("w1", NOW, LEASE)
    assert run is not None
    progress = Progress(
        {},
        {},
        links=[SyncLink("c1", "r1", {})],
        errors=[RecordError("c1", "push", "x", True)],
        sources={"c1": [FieldSource("a", "hubspot", "d", NOW)]},
    )
    await sync.save_progress(run, "w1", progress, NOW)
    with pytest.raises(NotFound):
        await sync.get_run(OTHER, run_id)
    assert await sync.list_runs(OTHER, "conn-acme", before=None, limit=10) == []
    assert await sync.run_errors(OTHER, run_id, limit=10) == []
    assert await sync.links_by_contact(OTHER, "conn-acme", ["c1"]) == {}
    assert await sync.links_by_remote(OTHER, "conn-acme", ["r1"]) == {}
    assert await sync.field_sources(OTHER, ["c1"]) == {}
    with pytest.raises(NotFound):
        await sync.configure(OTHER, "conn-acme", None, None)
    assert [r.id for r in await sync.list_runs(WS, "conn-acme", before=None, limit=10)] == [run_id]


async def test_forgetting_a_connection_removes_its_runs_links_and_errors(sync: SyncStore) -> None:
    run_id = await queue(sync)
    run = await sync.claim("w1", NOW, LEASE)
    assert run is not None
    await sync.save_progress(
        run, "w1", Progress({}, {}, links=[SyncLink("c1", "r1", {})],
                            errors=[RecordError("c1", "push", "x", True)]), NOW,
    )  # fmt: skip
    await sync.forget_connection(WS, "conn-acme")
    with pytest.raises(NotFound):
        await sync.get_run(WS, run_id)
    assert await sync.run_errors(WS, run_id, limit=10) == []
    assert await sync.links_by_contact(WS, "conn-acme", ["c1"]) == {}
