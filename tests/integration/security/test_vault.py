"""The Vault KV v2 backend through real hvac calls against a real server (OpenBao in dev mode,
see ``conftest``): where a credential lives in Vault, and that every failure is an error the
caller sees, never an empty credential. What every store does is in ``test_secret_store``."""

from __future__ import annotations

import secrets

import hvac
import pytest

from campaignflow.errors import NotFound, SecretStoreUnavailable
from campaignflow.security.envelope import KeyRing
from campaignflow.security.secret_store import open_secret_store
from campaignflow.security.vault import VaultSecretStore
from campaignflow.store.database import Database
from tests.integration.security.conftest import VaultServer, dev_server, settings_for

CREDENTIAL = {"apiKey": "SG.live-4f9c2b7e1d0a", "region": "eu"}


@pytest.fixture
def store(vault_server: VaultServer) -> VaultSecretStore:
    return VaultSecretStore.from_settings(settings_for(vault_server))


async def test_it_lives_at_prefix_workspace_id_in_the_kv_mount(vault_server: VaultServer) -> None:
    """Operators find, audit and grant policies on these paths with Vault's own tools."""
    settings = settings_for(vault_server)
    await VaultSecretStore.from_settings(settings).put("acme", "sendgrid", CREDENTIAL)
    client = hvac.Client(url=vault_server.url, token=vault_server.token)
    read = client.secrets.kv.v2.read_secret_version(
        f"{settings.vault_path_prefix}/acme/sendgrid",
        mount_point="secret",
        raise_on_deleted_version=True,
    )
    assert read["data"]["data"] == CREDENTIAL


async def test_an_id_cannot_reach_into_another_folder(store: VaultSecretStore) -> None:
    await store.put("acme", "a%2Fb", {"k": "v"})
    with pytest.raises(NotFound):
        await store.get("acme", "a/b")


async def test_a_wrong_token_is_an_error_not_an_empty_secret(vault_server: VaultServer) -> None:
    await VaultSecretStore.from_settings(settings_for(vault_server)).put("acme", "s", CREDENTIAL)
    intruder = VaultSecretStore.from_settings(settings_for(vault_server, token="wrong-token"))
    with pytest.raises(SecretStoreUnavailable, match="refused the token"):
        await intruder.get("acme", "s")
    with pytest.raises(SecretStoreUnavailable, match="refused the token"):
        await intruder.put("acme", "s", {"apiKey": "overwritten"})


async def test_a_stopped_server_is_unavailable() -> None:
    with dev_server() as server:
        store = VaultSecretStore.from_settings(settings_for(server))
        await store.put("acme", "sendgrid", CREDENTIAL)
        server.stop()
        with pytest.raises(SecretStoreUnavailable, match="not reachable"):
            await store.get("acme", "sendgrid")


async def test_the_factory_picks_vault_when_configured(
    vault_server: VaultServer, database: Database
) -> None:
    ring = KeyRing({"k1": secrets.token_bytes(32)}, "k1")
    store = open_secret_store(settings_for(vault_server), database, ring)
    assert isinstance(store, VaultSecretStore)
