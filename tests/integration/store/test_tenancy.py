"""Workspaces are isolated: one workspace cannot see or change another's workflows."""

from __future__ import annotations

import pytest

from campaignflow.errors import NotFound
from campaignflow.store.workflows import WorkflowStore
from tests.integration.store.conftest import WORKSPACE, create, definition

OTHER = "globex"


@pytest.fixture
async def other_workspace(store: WorkflowStore) -> str:
    await store.ensure_workspace(OTHER, "Globex")
    await create(store, "welcome")
    return OTHER


async def test_another_workspace_cannot_read_the_workflow(
    store: WorkflowStore, other_workspace: str
) -> None:
    with pytest.raises(NotFound):
        await store.get(other_workspace, "welcome")
    with pytest.raises(NotFound):
        await store.list_versions(other_workspace, "welcome")
    with pytest.raises(NotFound):
        await store.get_version(other_workspace, "welcome", 1)
    assert await store.list(other_workspace) == []
    assert await store.list(other_workspace, name_contains="welcome") == []


async def test_another_workspace_cannot_change_the_workflow(
    store: WorkflowStore, other_workspace: str
) -> None:
    before = await store.get(WORKSPACE, "welcome")

    with pytest.raises(NotFound):
        await store.add_version(
            other_workspace, "welcome", name="Hijacked", definition={}, content_hash="x",
            expected_version=None,
        )  # fmt: skip
    with pytest.raises(NotFound):
        await store.set_status(other_workspace, "welcome", "archived", allowed_from={"draft"})

    assert await store.get(WORKSPACE, "welcome") == before
    assert len(await store.list_versions(WORKSPACE, "welcome")) == 1


async def test_the_same_id_lives_independently_in_each_workspace(
    store: WorkflowStore, other_workspace: str
) -> None:
    theirs = await store.create(
        other_workspace, "welcome", name="Their welcome", definition=definition("welcome"),
        content_hash="theirs",
    )  # fmt: skip
    await store.set_status(other_workspace, "welcome", "active", allowed_from={"draft"})

    ours = await store.get(WORKSPACE, "welcome")
    assert (ours.name, ours.status) == ("Welcome", "draft")
    assert (await store.get(other_workspace, "welcome")).name == theirs.name
    assert [r.id for r in await store.list(WORKSPACE)] == ["welcome"]
