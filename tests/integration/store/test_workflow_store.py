"""Workflows and their versions as the service layer relies on them, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from campaignflow.errors import AlreadyExists, Conflict, NotFound, PreconditionFailed
from campaignflow.store.workflows import WorkflowRecord, WorkflowStore
from tests.integration.store.conftest import WORKSPACE, StepClock, create, definition


async def add_version(
    store: WorkflowStore, workflow_id: str, n: int, expected: int | None
) -> WorkflowRecord:
    return await store.add_version(
        WORKSPACE,
        workflow_id,
        name=f"Name {n}",
        definition=definition(workflow_id, revision=n),
        content_hash=f"hash-{n}",
        expected_version=expected,
    )


async def test_create_stores_version_one_as_a_draft(store: WorkflowStore, clock: StepClock) -> None:
    created = await create(store, "welcome", "Welcome series")

    assert (created.id, created.name, created.status, created.version) == (
        "welcome", "Welcome series", "draft", 1,
    )  # fmt: skip
    assert created.definition == definition("welcome")
    assert created.created_at == created.updated_at == clock.now
    assert created.archived_at is None
    assert await store.get(WORKSPACE, "welcome") == created


async def test_an_id_is_never_reused_not_even_after_archiving(store: WorkflowStore) -> None:
    await create(store, "welcome")
    with pytest.raises(AlreadyExists, match="welcome"):
        await create(store, "welcome", "Another name")

    await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"draft"})
    with pytest.raises(AlreadyExists):
        await create(store, "welcome")
    assert (await store.get(WORKSPACE, "welcome")).name == "Welcome"


async def test_creating_in_an_unknown_workspace_is_not_found(store: WorkflowStore) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        await create(store, "welcome", workspace_id="nowhere")


async def test_ensure_workspace_is_idempotent(store: WorkflowStore) -> None:
    await store.ensure_workspace("globex", "Globex")
    await store.ensure_workspace("globex", "Globex, renamed")

    assert (await create(store, "welcome", workspace_id="globex")).workspace_id == "globex"


async def test_get_of_an_unknown_workflow_is_not_found(store: WorkflowStore) -> None:
    with pytest.raises(NotFound, match="missing"):
        await store.get(WORKSPACE, "missing")


async def test_add_version_makes_a_new_latest_and_keeps_the_old_one(
    store: WorkflowStore, clock: StepClock
) -> None:
    created = await create(store, "welcome")

    updated = await add_version(store, "welcome", 2, expected=1)

    assert (updated.version, updated.name, updated.content_hash) == (2, "Name 2", "hash-2")
    assert updated.definition == definition("welcome", revision=2)
    assert updated.created_at == created.created_at
    assert updated.updated_at == clock.now > created.updated_at
    assert await store.get(WORKSPACE, "welcome") == updated
    first = await store.get_version(WORKSPACE, "welcome", 1)
    assert (first.name, first.definition, first.content_hash) == (
        created.name, created.definition, created.content_hash,
    )  # fmt: skip


async def test_a_stale_expected_version_changes_nothing(store: WorkflowStore) -> None:
    await create(store, "welcome")
    current = await add_version(store, "welcome", 2, expected=1)

    with pytest.raises(PreconditionFailed, match="version 2"):
        await add_version(store, "welcome", 3, expected=1)

    assert await store.get(WORKSPACE, "welcome") == current
    assert [v.version for v in await store.list_versions(WORKSPACE, "welcome")] == [1, 2]


async def test_without_expected_version_the_update_is_unconditional(store: WorkflowStore) -> None:
    await create(store, "welcome")
    await add_version(store, "welcome", 2, expected=None)

    assert (await add_version(store, "welcome", 3, expected=None)).version == 3


async def test_add_version_refuses_archived_and_unknown_workflows(store: WorkflowStore) -> None:
    await create(store, "welcome")
    await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"draft"})

    with pytest.raises(Conflict, match="archived"):
        await add_version(store, "welcome", 2, expected=1)
    with pytest.raises(NotFound):
        await add_version(store, "missing", 2, expected=None)


async def test_status_changes_only_from_the_allowed_statuses(
    store: WorkflowStore, clock: StepClock
) -> None:
    await create(store, "welcome")

    active = await store.set_status(WORKSPACE, "welcome", "active", allowed_from={"draft"})
    assert (active.status, active.updated_at, active.version) == ("active", clock.now, 1)

    with pytest.raises(Conflict, match="is active; cannot"):
        await store.set_status(WORKSPACE, "welcome", "paused", allowed_from={"draft"})
    assert (await store.get(WORKSPACE, "welcome")).status == "active"
    with pytest.raises(NotFound):
        await store.set_status(WORKSPACE, "missing", "paused", allowed_from={"active"})


async def test_archiving_records_when_and_repeating_it_keeps_the_first_time(
    store: WorkflowStore, clock: StepClock
) -> None:
    await create(store, "welcome")
    archived = await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"draft"})
    assert archived.archived_at == archived.updated_at == clock.now

    again = await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"archived"})

    assert again == archived


async def test_leaving_archived_clears_archived_at(store: WorkflowStore) -> None:
    await create(store, "welcome")
    await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"draft"})

    restored = await store.set_status(WORKSPACE, "welcome", "paused", allowed_from={"archived"})

    assert (restored.status, restored.archived_at) == ("paused", None)


async def test_list_versions_pages_in_ascending_order(store: WorkflowStore) -> None:
    await create(store, "welcome")
    for n in range(2, 6):
        await add_version(store, "welcome", n, expected=n - 1)

    first = await store.list_versions(WORKSPACE, "welcome", limit=2)
    rest = await store.list_versions(WORKSPACE, "welcome", after=first[-1].version, limit=10)

    assert [v.version for v in first] == [1, 2]
    assert [(v.version, v.name) for v in rest] == [(3, "Name 3"), (4, "Name 4"), (5, "Name 5")]
    assert await store.list_versions(WORKSPACE, "welcome", after=5) == []


async def test_versions_of_an_unknown_workflow_are_not_found(store: WorkflowStore) -> None:
    await create(store, "welcome")

    with pytest.raises(NotFound):
        await store.list_versions(WORKSPACE, "missing")
    with pytest.raises(NotFound, match="no version 2"):
        await store.get_version(WORKSPACE, "welcome", 2)


async def test_definitions_round_trip_exactly(store: WorkflowStore) -> None:
    document = {
        "workflowId": "welcome",
        "name": "Grüße 👋 — «bienvenue»",
        "nodes": [{"id": "wait", "type": "delay", "config": {"hours": 1.5, "until": None}}],
        "big": 2**62,
        "flags": [True, False],
        "nested": {"a": {"b": {"c": []}}},
    }
    await store.create(WORKSPACE, "welcome", name="x", definition=document, content_hash="h")

    assert (await store.get(WORKSPACE, "welcome")).definition == document
    assert (await store.get_version(WORKSPACE, "welcome", 1)).definition == document
