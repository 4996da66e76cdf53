"""Triggers as the service layer and the event router rely on them, on SQLite and PostgreSQL."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from campaignflow.errors import NotFound, PreconditionFailed
from campaignflow.store.catalog import catalog_stamp, load_active
from campaignflow.store.database import Database
from campaignflow.store.triggers import (
    TriggerFields,
    TriggerStore,
    WorkflowArchived,
    WorkflowNotFound,
)
from campaignflow.store.workflows import WorkflowStore
from tests.integration.store.conftest import WORKSPACE, StepClock, create


@pytest.fixture
async def triggers(database: Database, store: WorkflowStore, clock: StepClock) -> TriggerStore:
    await create(store, "welcome")
    await create(store, "winback")
    return TriggerStore(database, clock=clock)


def fields(workflow_id: str = "welcome", event: str = "signed_up", **changes: Any) -> TriggerFields:
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "type": "behavior",
        "event_name": event,
        "definition": {"type": "behavior", "event": event},
        "enabled": True,
    }
    return TriggerFields(**{**values, **changes})


async def test_create_then_get_returns_the_same_record(
    triggers: TriggerStore, clock: StepClock
) -> None:
    created = await triggers.create(WORKSPACE, fields())

    assert (created.workflow_id, created.type, created.event_name) == (
        "welcome", "behavior", "signed_up",
    )  # fmt: skip
    assert created.definition == {"type": "behavior", "event": "signed_up"}
    assert (created.enabled, created.revision) == (True, 1)
    assert created.created_at == created.updated_at == clock.now
    assert await triggers.get(WORKSPACE, created.id) == created


async def test_a_trigger_needs_a_live_workflow_of_its_workspace(
    triggers: TriggerStore, store: WorkflowStore
) -> None:
    with pytest.raises(WorkflowNotFound, match="missing"):
        await triggers.create(WORKSPACE, fields("missing"))
    await store.ensure_workspace("globex", "Globex")
    with pytest.raises(WorkflowNotFound):
        await triggers.create("globex", fields("welcome"))

    await store.set_status(WORKSPACE, "winback", "archived", allowed_from={"draft"})
    with pytest.raises(WorkflowArchived):
        await triggers.create(WORKSPACE, fields("winback"))
    assert await triggers.list(WORKSPACE) == []


async def test_replace_bumps_the_revision_and_updated_at(
    triggers: TriggerStore, clock: StepClock
) -> None:
    created = await triggers.create(WORKSPACE, fields())

    replaced = await triggers.replace(
        WORKSPACE, created.id, fields("winback", "churned", enabled=False)
    )

    assert (replaced.workflow_id, replaced.event_name, replaced.enabled) == (
        "winback", "churned", False,
    )  # fmt: skip
    assert replaced.revision == 2
    assert replaced.created_at == created.created_at
    assert replaced.updated_at == clock.now > created.updated_at
    assert await triggers.get(WORKSPACE, created.id) == replaced


async def test_replace_with_expected_revisions_is_a_compare_and_set(
    triggers: TriggerStore,
) -> None:
    created = await triggers.create(WORKSPACE, fields())
    await triggers.replace(WORKSPACE, created.id, fields(), expected_revisions={1})

    for stale in ({1}, set(), {3, 4}):
        with pytest.raises(PreconditionFailed, match="revision 2"):
            await triggers.replace(WORKSPACE, created.id, fields(), expected_revisions=stale)
    with pytest.raises(PreconditionFailed):
        await triggers.delete(WORKSPACE, created.id, expected_revisions={1})

    third = await triggers.replace(WORKSPACE, created.id, fields(), expected_revisions={1, 2})
    assert third.revision == 3


async def test_replace_explains_why_it_changed_nothing(
    triggers: TriggerStore, store: WorkflowStore
) -> None:
    created = await triggers.create(WORKSPACE, fields())
    with pytest.raises(NotFound, match="nope"):
        await triggers.replace(WORKSPACE, "nope", fields())
    with pytest.raises(WorkflowNotFound, match="missing"):
        await triggers.replace(WORKSPACE, created.id, fields("missing"))
    await store.set_status(WORKSPACE, "welcome", "archived", allowed_from={"draft"})
    with pytest.raises(WorkflowArchived):
        await triggers.replace(WORKSPACE, created.id, fields(), expected_revisions={9})
    assert (await triggers.get(WORKSPACE, created.id)).revision == 1


async def test_delete_removes_the_row_once(triggers: TriggerStore) -> None:
    created = await triggers.create(WORKSPACE, fields())

    await triggers.delete(WORKSPACE, created.id, expected_revisions={1})

    with pytest.raises(NotFound):
        await triggers.get(WORKSPACE, created.id)
    with pytest.raises(NotFound):
        await triggers.delete(WORKSPACE, created.id)


async def test_list_filters_and_pages_by_id(triggers: TriggerStore) -> None:
    a = await triggers.create(WORKSPACE, fields())
    b = await triggers.create(WORKSPACE, fields("winback", enabled=False))
    c = await triggers.create(
        WORKSPACE, fields(type="api", event_name=None, definition={"type": "api"})
    )
    ids = sorted([a.id, b.id, c.id])

    assert [t.id for t in await triggers.list(WORKSPACE)] == ids
    assert [t.id for t in await triggers.list(WORKSPACE, after=ids[0], limit=1)] == ids[1:2]
    assert {t.id for t in await triggers.list(WORKSPACE, workflow_id="welcome")} == {a.id, c.id}
    assert [t.id for t in await triggers.list(WORKSPACE, trigger_type="api")] == [c.id]
    assert [t.id for t in await triggers.list(WORKSPACE, enabled=False)] == [b.id]
    assert await triggers.list("globex") == []


async def test_every_query_is_scoped_by_workspace(
    triggers: TriggerStore, store: WorkflowStore
) -> None:
    created = await triggers.create(WORKSPACE, fields())
    await store.ensure_workspace("globex", "Globex")
    await create(store, "welcome", workspace_id="globex")

    with pytest.raises(NotFound):
        await triggers.get("globex", created.id)
    with pytest.raises(NotFound):
        await triggers.replace("globex", created.id, fields())
    with pytest.raises(NotFound):
        await triggers.delete("globex", created.id)
    assert await triggers.get(WORKSPACE, created.id) == created


async def test_declaring_workflows_skips_archived_and_filters_on_activity(
    triggers: TriggerStore, store: WorkflowStore
) -> None:
    await create(store, "archived")
    await store.set_status(WORKSPACE, "archived", "archived", allowed_from={"draft"})
    await store.set_status(WORKSPACE, "winback", "active", allowed_from={"draft"})

    listed = await triggers.declaring_workflows(WORKSPACE)
    assert [w.id for w in listed] == ["welcome", "winback"]
    assert listed[0].definition == {
        "workflowId": "welcome",
        "nodes": [{"id": "done", "type": "end"}],
    }
    active = await triggers.declaring_workflows(WORKSPACE, active=True)
    assert [w.id for w in active] == ["winback"]
    assert [w.id for w in await triggers.declaring_workflows(WORKSPACE, active=False)] == [
        "welcome"
    ]
    after = await triggers.declaring_workflows(WORKSPACE, start="welcome")
    assert [w.id for w in after] == ["winback"]
    inclusive = await triggers.declaring_workflows(WORKSPACE, start="welcome", inclusive=True)
    assert [w.id for w in inclusive] == ["welcome", "winback"]
    only = await triggers.declaring_workflows(WORKSPACE, workflow_id="winback")
    assert [w.id for w in only] == ["winback"]


async def test_every_write_changes_the_routers_catalog_stamp(
    triggers: TriggerStore, store: WorkflowStore, database: Database
) -> None:
    """Routers rebuild their tables only when the stamp differs from the one they last saw, so
    every write must move it (a delete may bring back an older stamp: the catalog it had)."""
    await store.set_status(WORKSPACE, "welcome", "active", allowed_from={"draft"})
    stamps = [await catalog_stamp(database)]
    created = await triggers.create(WORKSPACE, fields())
    stamps.append(await catalog_stamp(database))
    assert [t.id for t in (await load_active(database))[1]] == [created.id]

    await triggers.replace(WORKSPACE, created.id, fields(enabled=False))
    stamps.append(await catalog_stamp(database))
    assert (await load_active(database))[1] == []

    await triggers.delete(WORKSPACE, created.id)
    stamps.append(await catalog_stamp(database))
    assert all(before != after for before, after in pairwise(stamps))
