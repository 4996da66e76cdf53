"""Connections: create one (credentials to the secret store), list, read, test, delete.

Checks a new connection against its connector's models, so a typo in a credential's name or a
malformed base URL is a 422 pointing at it, not a failed step hours later. The credentials are
written to the secret store before the row that refers to them, and removed again if the row
cannot be written (the name is taken), so neither half is ever left alone.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaignflow.domain.problems import Problem
from campaignflow.domain.pydantic_problems import validated
from campaignflow.engine.actions import ActionFailed
from campaignflow.errors import ClientError, Conflict, InvalidBody, NotFound
from campaignflow.integrations.connections import ConnectionResolver
from campaignflow.integrations.connector import Connector, RequestContext
from campaignflow.integrations.executor import ConnectorExecutor
from campaignflow.security.secret_store import SecretStore
from campaignflow.services.connection_authorization import pending_id
from campaignflow.store.connections import (
    ConnectionRecord,
    ConnectionStore,
    NewConnection,
    credential_id,
)
from campaignflow.store.crm_sync import SyncStore
from campaignflow.store.ids import new_id


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    name: str
    provider: str
    description: str | None
    credentials: Mapping[str, Any]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    ok: bool
    message: str
    status: int | None
    duration_ms: float


class ConnectionService:
    def __init__(
        self,
        store: ConnectionStore,
        secrets: SecretStore,
        connectors: Mapping[str, Connector],
        resolver: ConnectionResolver,
        executor: ConnectorExecutor,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._connectors = connectors
        self._resolver = resolver
        self._executor = executor

    async def create(
        self, workspace_id: str, created_by: str | None, request: ConnectionRequest
    ) -> ConnectionRecord:
        connector = self._connector(request.provider)
        credentials = validated(
            connector.credentials, dict(request.credentials), prefix=("credentials",)
        )
        settings = validated(connector.settings, dict(request.settings), prefix=("settings",))
        connection_id = new_id()
        stored_credentials = {
            name: str(value) for name, value in credentials.model_dump(exclude_none=True).items()
        }
        await self._secrets.put(workspace_id, credential_id(connection_id), stored_credentials)
        try:
            record = await self._store.create(
                NewConnection(
                    workspace_id=workspace_id,
                    id=connection_id,
                    name=request.name,
                    provider=connector.provider,
                    description=request.description,
                    settings=settings.model_dump(by_alias=True, exclude_none=True),
                    created_by=created_by,
                )
            )
        except BaseException:
            await self._secrets.delete(workspace_id, credential_id(connection_id))
            raise
        self._resolver.forget(workspace_id, request.name)  # a cached "not found" ends now
        return record

    async def get(self, workspace_id: str, connection_id: str) -> ConnectionRecord:
        return await self._store.get(workspace_id, connection_id)

    async def list(
        self, workspace_id: str, *, provider: str | None, after: str | None, limit: int
    ) -> builtins.list[ConnectionRecord]:
        return await self._store.list(workspace_id, provider=provider, after=after, limit=limit)

    async def delete(self, workspace_id: str, connection_id: str) -> None:
        record = await self._store.delete(workspace_id, connection_id)
        await SyncStore(self._store.database).forget_connection(workspace_id, connection_id)
        self._resolver.forget(workspace_id, record.name)
        with contextlib.suppress(NotFound):  # already gone: the credentials are gone either way
            await self._secrets.delete(workspace_id, credential_id(connection_id))
        with contextlib.suppress(NotFound):  # a consent-page grant in progress, if any
            await self._secrets.delete(workspace_id, pending_id(connection_id))

    async def test(self, workspace_id: str, connection_id: str) -> TestOutcome:
        """One cheap authenticated call (the connector's ``test``), past the account's breaker;
        its outcome is recorded on the connection."""
        record = await self._store.get(workspace_id, connection_id)
        connection = await self._resolver.complete(record)
        connector = connection.connector
        if connector.test is None:
            raise Conflict(
                f"{connector.provider} has no call that checks credentials without an effect; "
                "run a workflow step to try the connection"
            )
        context = RequestContext(
            idempotency_key=new_id(),
            tracking={},
            settings=connection.settings,
            credentials=connection.credentials,
            now_unix=int(time.time()),
        )
        started = time.perf_counter()
        ok, status = False, None
        try:
            answer = await self._executor.exchange(connection, connector.test(context))
            ok, status = True, answer.status
            message = f"{connector.provider} answered HTTP {answer.status}"
        except ActionFailed as exc:
            code = exc.details.get("status")
            message, status = exc.message, code if isinstance(code, int) else None
        except ClientError as exc:  # the connection lacks what the test request needs
            message = exc.message
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        outcome = TestOutcome(ok, message, status, elapsed)
        await self._store.record_test(
            workspace_id, connection_id, ok=outcome.ok, message=outcome.message
        )
        return outcome

    def _connector(self, provider: str) -> Connector:
        connector = self._connectors.get(provider)
        if connector is None:
            known = ", ".join(sorted(self._connectors))
            message = f"unknown provider {provider!r}; known providers: {known}"
            raise InvalidBody([Problem(("provider",), message, "unknown_provider")])
        return connector
