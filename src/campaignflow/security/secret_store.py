"""Where integration credentials are kept: one protocol, two backends chosen by settings.

A credential is a small JSON object of strings (``{"apiKey": "…"}``). The built-in backend seals
it into the database (``store/secrets.py``); the Vault backend keeps it in a KV version 2 mount
(``security/vault.py``). Callers hold a :class:`SecretStore` and never know which.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from campaignflow.security.envelope import RewrappingSealer
from campaignflow.security.settings import SecretStoreSettings
from campaignflow.security.vault import VaultSecretStore
from campaignflow.store.database import Database
from campaignflow.store.secrets import DatabaseSecretStore


class SecretStore(Protocol):
    async def put(self, workspace_id: str, secret_id: str, value: Mapping[str, str]) -> None:
        """Create or replace the secret."""
        ...

    async def get(self, workspace_id: str, secret_id: str) -> dict[str, str]:
        """The secret's value; ``NotFound`` if there is none in this workspace."""
        ...

    async def delete(self, workspace_id: str, secret_id: str) -> None:
        """Remove the secret and every version of it; ``NotFound`` if there is none."""
        ...


def open_secret_store(
    settings: SecretStoreSettings, database: Database, sealer: RewrappingSealer
) -> SecretStore:
    """The backend ``settings.secret_store`` names."""
    if settings.secret_store == "vault":  # noqa: S105 — a backend name, not a secret
        return VaultSecretStore.from_settings(settings)
    return DatabaseSecretStore(database, sealer)
