"""The connection cache under a worker's load: hundreds of steps resolving one connection at
once read its row and its secret once, and a step that is cancelled meanwhile does not take the
others' answer with it."""

from __future__ import annotations

import asyncio

import pytest

from campaignflow.integrations.connections import ConnectionResolver
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.store.connections import (
    ConnectionRecord,
    ConnectionStore,
    NewConnection,
    credential_id,
)
from campaignflow.store.database import Database
from campaignflow.store.secrets import DatabaseSecretStore
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher

WORKSPACE = "acme"


class CountingStore(ConnectionStore):
    loads = 0

    async def named(self, workspace_id: str, name: str) -> ConnectionRecord:
        self.loads += 1
        await asyncio.sleep(0.01)  # a slow database: every caller arrives while it loads
        return await super().named(workspace_id, name)


@pytest.fixture
async def resolver(database: Database) -> tuple[ConnectionResolver, CountingStore]:
    await WorkflowStore(database).ensure_workspace(WORKSPACE, "Acme")
    store = CountingStore(database)
    secrets = DatabaseSecretStore(database, contact_cipher().sealer)
    await secrets.put(WORKSPACE, credential_id("c1"), {"scheme": "none"})
    await store.create(
        NewConnection(WORKSPACE, "c1", "sink", "http", None, {"baseUrl": "http://x"}, None)
    )
    return ConnectionResolver(store, secrets, builtin_connectors()), store


async def test_concurrent_resolutions_share_one_load(
    resolver: tuple[ConnectionResolver, CountingStore],
) -> None:
    connections, store = resolver

    found = await asyncio.gather(*(connections.resolve(WORKSPACE, "sink") for _ in range(300)))

    assert store.loads == 1
    assert {connection.record.id for connection in found} == {"c1"}
    assert found[0].credentials == {"scheme": "none"}


async def test_a_cancelled_caller_does_not_cancel_the_load_the_others_wait_for(
    resolver: tuple[ConnectionResolver, CountingStore],
) -> None:
    connections, store = resolver
    first = asyncio.create_task(connections.resolve(WORKSPACE, "sink"))
    second = asyncio.create_task(connections.resolve(WORKSPACE, "sink"))
    await asyncio.sleep(0)
    first.cancel()

    assert (await second).record.id == "c1"
    assert store.loads == 1
    with pytest.raises(asyncio.CancelledError):
        await first
