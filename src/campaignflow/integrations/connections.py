"""Finding a connection by name with its connector, settings and credentials, cached.

A worker resolves the same few connections for thousands of steps, so a resolution is kept for
``cache_seconds`` (default 5 s): a connection deleted or re-keyed elsewhere takes effect within
that time, the same bound as credential lookups on the API. The process that changes a
connection forgets its entry at once. When an entry expires while hundreds of steps are in
flight, they share one load instead of each reading the row and its secret.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from campaignflow.errors import NotFound
from campaignflow.integrations.connector import ConnectionSettings, Connector
from campaignflow.security.secret_store import SecretStore
from campaignflow.security.ttl_cache import TTLCache
from campaignflow.store.connections import ConnectionRecord, ConnectionStore, credential_id


class BrokenConnection(NotFound):
    """The stored connection no longer fits its connector (a provider removed, settings that an
    upgrade made invalid): treated as absent, with the reason."""


@dataclass(frozen=True, slots=True)
class ResolvedConnection:
    record: ConnectionRecord
    connector: Connector
    settings: ConnectionSettings
    credentials: Mapping[str, str]


def stored_settings(connector: Connector, stored: Mapping[str, Any]) -> ConnectionSettings:
    """The connector's settings model from a row's JSON (stored by alias)."""
    return connector.settings.model_validate(dict(stored))


class ConnectionResolver:
    def __init__(
        self,
        store: ConnectionStore,
        secrets: SecretStore,
        connectors: Mapping[str, Connector],
        *,
        cache_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._connectors = connectors
        self._cache: TTLCache[tuple[str, str], ResolvedConnection | NotFound] = TTLCache(
            cache_seconds, limit=10_000
        )
        self._loading: dict[tuple[str, str], asyncio.Task[ResolvedConnection | NotFound]] = {}

    async def resolve(self, workspace_id: str, name: str) -> ResolvedConnection:
        """The connection named ``name``; :class:`NotFound` if there is none (also cached)."""
        key = (workspace_id, name)
        found = await self._cache.get(key, lambda: self._shared_load(key))
        if isinstance(found, NotFound):
            raise found
        return found

    async def _shared_load(self, key: tuple[str, str]) -> ResolvedConnection | NotFound:
        """One load per key at a time; a caller that is cancelled does not cancel it."""
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load_or_missing(*key))
            self._loading[key] = task
            task.add_done_callback(functools.partial(self._done_loading, key))
        return await asyncio.shield(task)

    def _done_loading(self, key: tuple[str, str], task: asyncio.Task[Any]) -> None:
        self._loading.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it, if any are left

    async def _load_or_missing(self, workspace_id: str, name: str) -> ResolvedConnection | NotFound:
        try:
            return await self._load(workspace_id, name)
        except NotFound as exc:
            return exc

    def forget(self, workspace_id: str, name: str) -> None:
        self._cache.forget((workspace_id, name))

    async def _load(self, workspace_id: str, name: str) -> ResolvedConnection:
        record = await self._store.named(workspace_id, name)
        return await self.complete(record)

    async def complete(self, record: ConnectionRecord) -> ResolvedConnection:
        """A stored connection with its connector, settings and credentials."""
        connector = self._connectors.get(record.provider)
        if connector is None:
            raise BrokenConnection(
                f"connection {record.name!r} is for {record.provider!r}, which this version of "
                "campaignflow has no connector for"
            )
        try:
            settings = stored_settings(connector, record.settings)
        except ValidationError as exc:
            raise BrokenConnection(
                f"connection {record.name!r} has settings its connector no longer accepts; "
                "recreate it"
            ) from exc
        credentials = await self._secrets.get(record.workspace_id, credential_id(record.id))
        return ResolvedConnection(record, connector, settings, credentials)
