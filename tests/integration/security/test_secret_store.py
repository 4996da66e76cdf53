"""Secret stores: what every backend promises (run on the database store over SQLite and
PostgreSQL, and on the Vault store over a real OpenBao), then what the built-in one adds —
sealed rows bound to their workspace, never readable in the raw table."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from campaignflow.errors import NotFound, SealedDataError
from campaignflow.security.envelope import KeyRing
from campaignflow.security.secret_store import SecretStore, open_secret_store
from campaignflow.security.settings import SecretStoreSettings
from campaignflow.security.vault import VaultSecretStore
from campaignflow.store.database import Database
from campaignflow.store.secrets import DatabaseSecretStore
from campaignflow.store.tables import secrets
from tests._support.databases import DIALECTS
from tests.integration.security.conftest import settings_for

RING = KeyRing({"k1": os.urandom(32)}, "k1")
CREDENTIAL = {"apiKey": "SG.live-4f9c2b7e1d0a", "region": "eu"}


@pytest.fixture
def store(database: Database) -> DatabaseSecretStore:
    return DatabaseSecretStore(database, RING)


@pytest.fixture(params=[*DIALECTS, "vault"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[SecretStore]:
    if request.param == "vault":
        yield VaultSecretStore.from_settings(settings_for(request.getfixturevalue("vault_server")))
        return
    database = Database.from_url(request.getfixturevalue(DIALECTS[request.param]))
    try:
        yield DatabaseSecretStore(database, RING)
    finally:
        await database.dispose()


async def raw_rows(database: Database) -> list[dict[str, object]]:
    async with database.read() as connection:
        return [dict(row._mapping) for row in await connection.execute(select(secrets))]


async def test_a_stored_credential_comes_back_and_can_be_replaced(any_store: SecretStore) -> None:
    store = any_store
    await store.put("acme", "sendgrid", CREDENTIAL)
    assert await store.get("acme", "sendgrid") == CREDENTIAL
    await store.put("acme", "sendgrid", {"apiKey": "rotated"})
    assert await store.get("acme", "sendgrid") == {"apiKey": "rotated"}


async def test_a_deleted_credential_is_gone_with_every_version(any_store: SecretStore) -> None:
    store = any_store
    await store.put("acme", "sendgrid", CREDENTIAL)
    await store.put("acme", "sendgrid", {"apiKey": "second"})
    await store.delete("acme", "sendgrid")
    with pytest.raises(NotFound):
        await store.get("acme", "sendgrid")
    with pytest.raises(NotFound):
        await store.delete("acme", "sendgrid")


async def test_another_workspace_cannot_read_or_delete_it(any_store: SecretStore) -> None:
    store = any_store
    await store.put("acme", "sendgrid", CREDENTIAL)
    with pytest.raises(NotFound):
        await store.get("globex", "sendgrid")
    with pytest.raises(NotFound):
        await store.delete("globex", "sendgrid")
    assert await store.get("acme", "sendgrid") == CREDENTIAL


async def test_a_row_copied_into_another_workspace_does_not_open(
    database: Database, store: DatabaseSecretStore
) -> None:
    """Someone with write access to the table moves acme's sealed credential under globex's id:
    the context binds workspace and id, so globex cannot use it."""
    await store.put("acme", "sendgrid", CREDENTIAL)
    await store.put("globex", "sendgrid", {"apiKey": "globex-own"})
    acme_sealed = next(r["sealed"] for r in await raw_rows(database) if r["workspace_id"] == "acme")
    async with database.transaction() as connection:
        await connection.execute(
            update(secrets).where(secrets.c.workspace_id == "globex").values(sealed=acme_sealed)
        )
    with pytest.raises(SealedDataError):
        await store.get("globex", "sendgrid")


async def test_the_raw_table_never_holds_the_plaintext(
    database: Database, store: DatabaseSecretStore
) -> None:
    await store.put("acme", "sendgrid", CREDENTIAL)
    await store.put("acme", "hubspot", {"token": "pat-na1-9e8d7c6b"})
    rows = await raw_rows(database)
    text = repr(rows)
    for secret in ("SG.live-4f9c2b7e1d0a", "pat-na1-9e8d7c6b", "apiKey", "token"):
        assert secret not in text
    assert {row["key_id"] for row in rows} == {"k1"}


async def test_the_factory_picks_the_database_store_by_default(database: Database) -> None:
    store = open_secret_store(SecretStoreSettings(), database, RING)
    await store.put("acme", "sendgrid", CREDENTIAL)
    assert await DatabaseSecretStore(database, RING).get("acme", "sendgrid") == CREDENTIAL
