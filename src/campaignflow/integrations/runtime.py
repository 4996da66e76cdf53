"""Assembling the integration layer once per process, for the API and the worker alike.

One pooled HTTP client, one secret store, one connection cache, one set of guards (in Redis
when the deployment has Redis, so every worker shares each account's rate limit and breaker;
in this process otherwise) and one executor for every connector operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from campaignflow.compliance.processing import ProcessingBuffer, RecordingExecutor, url_recipient
from campaignflow.compliance.send_gate import SendGate, SendPolicies
from campaignflow.config import Settings
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.http_action import HttpExecutor
from campaignflow.integrations.connections import ConnectionResolver, ResolvedConnection
from campaignflow.integrations.connector import Connector
from campaignflow.integrations.executor import ConnectorExecutor, ExecutorOptions
from campaignflow.integrations.guards import LocalGuards, OutboundGuards
from campaignflow.integrations.oauth_tokens import AccessTokens
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.integrations.sync.runner import EventSink, SyncRunner
from campaignflow.integrations.sync.worker import SyncScheduler, SyncWorker
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.secret_store import SecretStore, open_secret_store
from campaignflow.store.connections import ConnectionStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.crm_sync import SyncStore
from campaignflow.store.database import Database
from campaignflow.store.deliveries import DeliveryStore
from campaignflow.store.erasure import ErasedIdentities
from campaignflow.store.processing_log import ProcessingLogStore
from campaignflow.store.send_policy import SendPolicyStore
from campaignflow.store.suppressions import SuppressionStore
from campaignflow.store.workflows import utc_now


@dataclass(frozen=True, slots=True)
class Integrations:
    connectors: Mapping[str, Connector]
    secrets: SecretStore
    connections: ConnectionStore
    resolver: ConnectionResolver
    guards: OutboundGuards
    http: HttpExecutor
    executor: ConnectorExecutor
    tokens: AccessTokens
    processing: ProcessingBuffer  # the records of processing of the action steps

    def executors(self, registry: ExecutorRegistry | None = None) -> ExecutorRegistry:
        """``registry`` (default: empty) with ``http`` and every connector operation added,
        each step that sends a contact's data recorded in the records of processing."""
        http = RecordingExecutor(self.http, self.processing, utc_now, recipient=url_recipient)
        registry = (registry or ExecutorRegistry()).with_executor("http", http)
        recording = RecordingExecutor(self.executor, self.processing, utc_now)
        for connector in self.connectors.values():
            for operation in connector.operations:
                registry = registry.with_executor(f"{connector.provider}.{operation}", recording)
        return registry

    def sync_worker(
        self,
        contacts: ContactStore,
        publish: EventSink,
        erased: ErasedIdentities,
        *,
        owner: str,
    ) -> SyncWorker:
        """The loop that schedules and carries CRM sync runs (``integrations/sync``). ``erased``
        is the engine's cache of erased identities (one per process)."""
        store = SyncStore(self.connections.database)

        async def resolve(workspace_id: str, connection_id: str) -> ResolvedConnection:
            record = await self.connections.get(workspace_id, connection_id)
            return await self.resolver.complete(record)

        runner = SyncRunner(
            store=store,
            contacts=contacts,
            resolve=resolve,
            sender=self.executor,
            publish=publish,
            erased=erased,
            owner=owner,
            now=utc_now,
        )
        return SyncWorker(store, SyncScheduler(store, contacts), runner, owner=owner, now=utc_now)

    async def aclose(self) -> None:
        await self.processing.aclose()
        await self.guards.aclose()
        await self.http.aclose()


def open_integrations(
    database: Database,
    settings: Settings,
    cipher: ContactCipher,
    *,
    guards: OutboundGuards | None = None,
    connectors: Mapping[str, Connector] | None = None,
) -> Integrations:
    """The integration layer on ``database``, sealing credentials with ``cipher``'s key ring
    (one ring per process); close it with :meth:`Integrations.aclose`."""
    options = settings.integrations
    connectors = connectors if connectors is not None else builtin_connectors()
    secrets = open_secret_store(settings.secrets, database, cipher.sealer)
    store = ConnectionStore(database)
    resolver = ConnectionResolver(
        store, secrets, connectors, cache_seconds=options.connection_cache_seconds
    )
    http = HttpExecutor(default_timeout_s=options.timeout_seconds)
    guards = guards or open_guards(settings)
    tokens = AccessTokens(http, secrets)
    executor = ConnectorExecutor(
        connectors,
        resolver,
        guards,
        http,
        tokens,
        suppressions=SuppressionStore(database, cipher),
        deliveries=DeliveryStore(database),
        send_gate=SendGate(SendPolicies(SendPolicyStore(database)), now=utc_now),
        options=ExecutorOptions(options.max_rate_wait_seconds, options.timeout_seconds),
        now=utc_now,
    )
    processing = ProcessingBuffer(ProcessingLogStore(database))
    return Integrations(
        connectors, secrets, store, resolver, guards, http, executor, tokens, processing
    )


def open_guards(settings: Settings) -> OutboundGuards:
    """Shared guards in Redis when the deployment has Redis, else this process's own."""
    if settings.redis_url is None:
        return LocalGuards()
    from campaignflow.bus.outbound_guards_redis import RedisGuards  # noqa: PLC0415 - Redis only when used

    return RedisGuards.from_url(settings.redis_url, prefix=settings.integrations.key_prefix)
