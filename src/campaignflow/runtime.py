"""Process roles: what ``up``, ``serve``, ``migrate`` and ``apply`` do once the CLI has parsed them.

Kept apart from ``cli.py`` so the CLI is argument parsing and printing only, and these coroutines
can be driven from tests without a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import uvicorn

from campaignflow.api.app import create_app
from campaignflow.bus.factory import open_bus
from campaignflow.bus.step_feed_factory import open_step_feed
from campaignflow.compliance.erasure import start_erasures, stop_erasures
from campaignflow.compliance.retention import (
    ensure_event_partitions,
    start_retention,
    stop_retention,
)
from campaignflow.config import Settings
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker, worker_name
from campaignflow.errors import CampaignflowError, ConfigurationError
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.integrations.sync.worker import stop as stop_sync
from campaignflow.observability.alert_evaluator import start_alerting, stop_alerting
from campaignflow.observability.metrics_sampler import start_sampler, stop_sampler
from campaignflow.observability.metrics_server import start_metrics_server, stop_metrics_server
from campaignflow.observability.trace_export import configure_tracing, shutdown_tracing
from campaignflow.security.api_keys import generate_key
from campaignflow.security.contact_fields import ContactCipher, contact_cipher_from
from campaignflow.security.key_file import embedded_encryption
from campaignflow.security.rbac import UNRESTRICTED, Role
from campaignflow.services.access import AccessService, CreatedKey
from campaignflow.services.authentication import Authenticator
from campaignflow.services.workflows import ApplyOutcome, WorkflowService
from campaignflow.store.access import AccessStore
from campaignflow.store.database import Database
from campaignflow.store.migrate import head_revision, schema_mismatch, upgrade
from campaignflow.store.record_sealing import seal_plaintext_records
from campaignflow.store.workflows import WorkflowStore
from campaignflow.triggers.runner import consumer_name, start_router, stop_router
from campaignflow.triggers.scheduler import start_scheduler, stop_scheduler
from campaignflow.workflow_files import WorkflowFile

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmbeddedSetup:
    settings: Settings
    credential: CreatedKey | None = None  # the bootstrap key, on the first start only


def prepare_embedded(settings: Settings) -> EmbeddedSetup:
    """Embedded mode: a data directory (private to its owner) holding the encryption key file,
    created on first start unless a key is configured."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    encryption = embedded_encryption(settings.encryption, settings.data_dir)
    return EmbeddedSetup(settings.model_copy(update={"encryption": encryption}))


async def bootstrap_credential(database: Database, settings: Settings) -> CreatedKey | None:
    """The workspace's first owner key: the configured token if there is one, else a generated
    key when the workspace has no principal yet. Returned (to be shown once) when created."""
    await WorkflowStore(database).ensure_workspace(settings.workspace_id, "Default workspace")
    access = AccessService(AccessStore(database), Authenticator(AccessStore(database)))
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return await access.bootstrap(settings.workspace_id, token)


async def create_key(
    settings: Settings, *, name: str, role: Role, scopes: Sequence[str] | None
) -> CreatedKey:
    """``create-key``: a new principal with ``role`` and an API key for it, straight in the
    database — how an operator makes the first credential of a production workspace, or a new
    one when the bootstrap key is lost."""
    database = open_database(settings)
    try:
        if settings.database_url is None:
            await upgrade(database)
        await require_current_schema(database)
        await WorkflowStore(database).ensure_workspace(settings.workspace_id, "Default workspace")
        store = AccessStore(database)
        principal = await store.create_principal(
            settings.workspace_id, kind="user", name=name, role=role.value
        )
        key = generate_key()
        granted = list(scopes) if scopes else [UNRESTRICTED]
        record = await store.create_key(
            settings.workspace_id,
            principal.id,
            key,
            name=name,
            scopes=granted,
            allowed_cidrs=None,
            expires_at=None,
        )
        return CreatedKey(record, key.value)
    finally:
        await database.dispose()


def tune_garbage_collector() -> None:
    """Long-running roles allocate millions of short-lived objects (events, rows, dicts) while
    holding a large, stable heap (modules, compiled workflows, the trigger index). Freezing the
    heap at start-up keeps full collections from re-scanning it, and a larger first threshold
    makes young collections rarer: less time in the collector per event routed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@contextlib.contextmanager
def traced_process(settings: Settings, role: str) -> Iterator[None]:
    """Spans for a process role, when ``settings.tracing`` names an exporter (off by default);
    what is still buffered is flushed when the role stops."""
    configure_tracing(settings.tracing, role=role)
    try:
        yield
    finally:
        shutdown_tracing()


def open_database(settings: Settings) -> Database:
    return Database.from_url(settings.resolved_database_url)


async def seal_plaintext(database: Database, cipher: ContactCipher, settings: Settings) -> None:
    """Seal what was stored in plaintext before the schema sealed it (contacts, executions and
    events written before migrations 0006 and 0007). Run by every role holding the keys (``up``,
    ``serve``, ``worker``) at start; resumable and idempotent, and a no-op once done, so they
    may all run it at once."""
    sealed = await seal_plaintext_records(database, cipher, settings.encryption.rewrap_batch_size)
    if sealed:
        logger.info("sealed the sensitive fields of older rows", extra={"rows": sealed})


async def migrate(settings: Settings) -> str:
    database = open_database(settings)
    try:
        await upgrade(database)
        return head_revision()
    finally:
        await database.dispose()


async def require_current_schema(database: Database) -> None:
    mismatch = await schema_mismatch(database)
    if mismatch is not None:
        raise ConfigurationError(mismatch)


async def apply_files(
    database: Database, workspace_id: str, files: Sequence[WorkflowFile], *, activate: bool
) -> list[ApplyOutcome]:
    """Upsert already-validated files; each file is its own transaction, in order."""
    store = WorkflowStore(database)
    service = WorkflowService(store)
    await store.ensure_workspace(workspace_id, "Default workspace")
    outcomes = []
    for file in files:
        outcome = await service.apply(workspace_id, file.document)
        if activate:
            record = await service.activate(workspace_id, outcome.record.id)
            outcome = ApplyOutcome(record, outcome.action)
        outcomes.append(outcome)
    return outcomes


async def serve_http(
    settings: Settings,
    database: Database,
    host: str,
    port: int,
    *,
    cipher: ContactCipher,
    with_worker: bool = False,
) -> None:
    """Run the API on ``database`` until interrupted; closes the database afterwards.

    ``with_worker`` (embedded mode) runs a worker and the time-trigger scheduler in the same
    process, sharing the engine's wake-up, so an execution started through the API begins at
    once. ``cipher`` is the process's one contact cipher (its key ring serves OAuth too).
    """
    engine = Engine.on(
        database, bus=open_bus(settings), feed=open_step_feed(settings), contact_cipher=cipher
    )
    integrations = integrations_of(engine, settings)
    app = create_app(
        settings,
        database=database,
        engine=engine,
        run_router=with_worker,
        integrations=integrations,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # Logging is the process's (observability/logging.py): no handlers or levels of
        # uvicorn's own, and its access log is replaced by the app's structured one.
        log_config=None,
        log_level=None,
        access_log=False,
        server_header=False,
        # X-Forwarded-For is read in one place, by the trusted-proxy rule of network.py.
        proxy_headers=False,
        ssl_certfile=settings.network.tls_cert_file,
        ssl_keyfile=settings.network.tls_key_file,
    )
    worker_task = scheduler = sync_task = erasures = retention = alerting = None
    if with_worker:
        await ensure_event_partitions(database)
        worker_task = asyncio.create_task(run_worker_on(engine, settings, integrations))
        scheduler = start_scheduler(engine, settings, consumer_name())
        sync_task = start_sync(engine, integrations)
        erasures = start_erasures(database, cipher, settings, integrations, owner=worker_name())
        retention = start_retention(database, settings.retention)
        alerting = start_alerting(database, settings.alerting, integrations)
    sampler = start_metrics_sampler(engine, settings) if with_worker else None
    try:
        await uvicorn.Server(config).serve()
    finally:
        await stop_sampler(sampler)
        await stop_alerting(alerting)
        await stop_retention(retention)
        await stop_erasures(erasures)
        await stop_sync(sync_task)
        await stop_scheduler(scheduler)
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await integrations.aclose()
        await engine.bus.close()
        await engine.feed.close()
        await engine.wakeup.aclose()
        await database.dispose()


def start_sync(engine: Engine, integrations: Integrations) -> asyncio.Task[None]:
    """The CRM sync loop (schedules and carries sync runs) as a task of this process."""
    publish = partial(engine.ingest().accept, source="sync")
    worker = integrations.sync_worker(engine.contacts, publish, engine.erased, owner=worker_name())
    return asyncio.create_task(worker.run_until_cancelled(), name="crm-sync")


def start_metrics_sampler(engine: Engine, settings: Settings) -> asyncio.Task[None]:
    """Queue depth and lag and open dead letters, sampled by each process running a worker
    (the API alone has none: it would only repeat what the workers report)."""
    interval = settings.metrics.sampler_interval_seconds
    return start_sampler(engine.database, engine.clock, interval)


def integrations_of(engine: Engine, settings: Settings) -> Integrations:
    """The integration layer on the engine's database and key ring."""
    return open_integrations(engine.database, settings, engine.contacts.cipher)


@asynccontextmanager
async def _worker_on(
    engine: Engine, settings: Settings, integrations: Integrations | None = None
) -> AsyncIterator[Worker]:
    """A worker with ``http`` and every connector operation; the integration layer it opened
    (HTTP client, guards) is closed when it is done, one handed in is left to its owner."""
    links = integrations or integrations_of(engine, settings)
    try:
        yield engine.worker(links.executors(), settings.worker.options())
    finally:
        if integrations is None:
            await links.aclose()


async def run_worker_on(
    engine: Engine, settings: Settings, integrations: Integrations | None = None
) -> None:
    """Run a worker until cancelled or signalled; the batch in hand is finished and committed
    before it returns, so a graceful stop leaves no lease to expire."""
    async with _worker_on(engine, settings, integrations) as worker:
        await worker.run_until_cancelled()


async def serve_worker(settings: Settings) -> None:
    """``worker``: run the engine, its timers and the time-trigger scheduler on the configured
    database until SIGTERM/SIGINT."""
    # No pre-ping: a batch that meets a dropped connection fails, and is claimed again.
    database = Database.from_url(settings.resolved_database_url, pre_ping=False)
    try:
        await require_current_schema(database)
        cipher = contact_cipher_from(settings)
        await seal_plaintext(database, cipher, settings)
        engine = Engine.on(
            database, bus=open_bus(settings), feed=open_step_feed(settings), contact_cipher=cipher
        )
        await ensure_event_partitions(database)
        router = None
        if settings.redis_url is not None:  # in-process events are routed by the API process
            router = start_router(engine, settings)
        scheduler = start_scheduler(engine, settings, consumer_name())
        integrations = integrations_of(engine, settings)
        sync_task = start_sync(engine, integrations)
        erasures = start_erasures(database, cipher, settings, integrations, owner=worker_name())
        retention = start_retention(database, settings.retention)
        alerting = start_alerting(database, settings.alerting, integrations)
        sampler = start_metrics_sampler(engine, settings)
        metrics_server = await start_metrics_server(settings.metrics)
        try:
            async with _worker_on(engine, settings, integrations) as worker:
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, worker.stop)
                await worker.run()
        finally:
            await stop_metrics_server(metrics_server)
            await stop_sampler(sampler)
            await stop_alerting(alerting)
            await stop_retention(retention)
            await stop_erasures(erasures)
            await stop_sync(sync_task)
            await integrations.aclose()
            await stop_scheduler(scheduler)
            if router is not None:
                await stop_router(router)
            await engine.bus.close()
            await engine.feed.close()
            await engine.wakeup.aclose()
    finally:
        await database.dispose()


async def apply_to_database(
    settings: Settings, files: Sequence[WorkflowFile], *, activate: bool
) -> list[ApplyOutcome]:
    """``apply``: the embedded default database is migrated first; any other must be current."""
    database = open_database(settings)
    try:
        if settings.database_url is None:
            await upgrade(database)
        await require_current_schema(database)
        return await apply_files(database, settings.workspace_id, files, activate=activate)
    finally:
        await database.dispose()


async def serve_production(settings: Settings, host: str, port: int) -> None:
    """``serve``: refuses a database whose schema is not current rather than failing later."""
    database = open_database(settings)
    try:
        await require_current_schema(database)
        cipher = contact_cipher_from(settings)
        await seal_plaintext(database, cipher, settings)
    except CampaignflowError:
        await database.dispose()
        raise
    await serve_http(settings, database, host, port, cipher=cipher)
