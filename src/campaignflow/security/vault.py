"""The HashiCorp Vault backend of the secret store: a KV version 2 mount, through hvac.

Secrets live at ``<prefix>/<workspace id>/<secret id>`` (each part percent-encoded, so an id
cannot climb into another workspace's folder). Vault encrypts and versions them itself; deleting
removes the metadata and every version. hvac is synchronous, so each call runs in a worker thread.
Its errors are translated here: a missing path is :class:`NotFound`; a refused token, a sealed or
unreachable server is :class:`SecretStoreUnavailable` — never a silent empty answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import hvac
import requests
from hvac import exceptions as vault_errors

from campaignflow.errors import NotFound, SecretStoreUnavailable
from campaignflow.security.settings import SecretStoreSettings

T = TypeVar("T")


class VaultSecretStore:
    """Secrets in a Vault KV v2 mount; ``client`` is an authenticated :class:`hvac.Client`."""

    def __init__(self, client: hvac.Client, *, mount: str = "secret", prefix: str = "") -> None:
        self._client = client
        self._mount = mount
        self._prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: SecretStoreSettings) -> VaultSecretStore:
        token = settings.vault_token.get_secret_value() if settings.vault_token else None
        client = hvac.Client(
            url=settings.vault_url, token=token, timeout=settings.vault_timeout_seconds
        )
        return cls(client, mount=settings.vault_mount, prefix=settings.vault_path_prefix)

    def path(self, workspace_id: str, secret_id: str) -> str:
        parts = (quote(workspace_id, safe=""), quote(secret_id, safe=""))
        return "/".join((self._prefix, *parts) if self._prefix else parts)

    async def put(self, workspace_id: str, secret_id: str, value: Mapping[str, str]) -> None:
        path = self.path(workspace_id, secret_id)
        await self._call(
            secret_id,
            lambda: self._kv.create_or_update_secret(path, dict(value), mount_point=self._mount),
        )

    async def get(self, workspace_id: str, secret_id: str) -> dict[str, str]:
        path = self.path(workspace_id, secret_id)
        response = await self._call(
            secret_id,
            lambda: self._kv.read_secret_version(
                path, mount_point=self._mount, raise_on_deleted_version=True
            ),
        )
        try:
            data: dict[str, str] = response["data"]["data"]
        except (KeyError, TypeError) as exc:
            raise SecretStoreUnavailable("Vault answered a read without data.") from exc
        return data

    async def delete(self, workspace_id: str, secret_id: str) -> None:
        path = self.path(workspace_id, secret_id)

        def delete_existing() -> None:
            self._kv.read_secret_metadata(path, mount_point=self._mount)  # NotFound if absent
            self._kv.delete_metadata_and_all_versions(path, mount_point=self._mount)

        await self._call(secret_id, delete_existing)

    @property
    def _kv(self) -> Any:
        return self._client.secrets.kv.v2

    async def _call(self, secret_id: str, function: Callable[[], T]) -> T:
        def translated() -> T:
            with _translate_errors(secret_id):
                return function()

        return await asyncio.to_thread(translated)


@contextmanager
def _translate_errors(secret_id: str) -> Iterator[None]:
    try:
        yield
    except vault_errors.InvalidPath as exc:
        raise NotFound(f"Secret {secret_id!r} does not exist.") from exc
    except (vault_errors.Forbidden, vault_errors.Unauthorized) as exc:
        raise SecretStoreUnavailable(
            "Vault refused the token (permission denied); check secrets.vault_token."
        ) from exc
    except vault_errors.VaultError as exc:
        raise SecretStoreUnavailable(f"Vault failed: {exc}") from exc
    except requests.RequestException as exc:
        raise SecretStoreUnavailable(f"Vault is not reachable: {type(exc).__name__}") from exc
