"""``create_app``: the FastAPI application, built from settings, with every seam handed in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from campaignflow import __version__
from campaignflow.api.audit_middleware import install_audit
from campaignflow.api.edge import install_edge
from campaignflow.api.graphql.schema import graphql_router
from campaignflow.api.openapi import DESCRIPTION, build_openapi
from campaignflow.api.parameters import refuse_nul
from campaignflow.api.problems import install_problem_handlers
from campaignflow.api.routers import (
    access,
    audit,
    connection_authorization,
    connections,
    consents,
    contact_privacy,
    contacts,
    dead_letters,
    erasures,
    events,
    executions,
    health,
    metrics,
    oauth_clients,
    privacy_settings,
    retention,
    segment,
    suppressions,
    triggers,
    webhooks,
    workflows,
)
from campaignflow.api.routers import alerts as alerts_routers
from campaignflow.api.routers import integrations as integrations_router
from campaignflow.api.routers import sync as sync_router
from campaignflow.api.routers.oauth import install_oauth, start_oauth
from campaignflow.api.schemas import problem_responses
from campaignflow.bus.factory import is_in_process, open_bus
from campaignflow.bus.rate_limit_redis import RateLimiters, open_rate_limiter
from campaignflow.bus.step_feed_factory import open_step_feed
from campaignflow.config import Settings
from campaignflow.engine.runtime import Engine
from campaignflow.errors import CampaignflowError
from campaignflow.integrations.describe import describe_connectors
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.observability.access_log import AccessLogMiddleware
from campaignflow.observability.alert_evaluator import alert_sender
from campaignflow.observability.request_spans import RequestSpanMiddleware
from campaignflow.security.contact_fields import contact_cipher_from
from campaignflow.security.network import parse_cidrs
from campaignflow.security.sealing import Sealer
from campaignflow.services.access import AccessService
from campaignflow.services.alerts import AlertService
from campaignflow.services.authentication import Authenticator
from campaignflow.services.connection_authorization import ConnectionAuthorization
from campaignflow.services.connections import ConnectionService
from campaignflow.services.ingest import IngestLimits
from campaignflow.services.monitoring import MonitoringService
from campaignflow.services.oauth import OAuthService
from campaignflow.services.retention import RetentionService
from campaignflow.services.sync import SyncService
from campaignflow.services.triggers import TriggerService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.access import AccessStore
from campaignflow.store.alerts import AlertStore
from campaignflow.store.crm_sync import SyncStore
from campaignflow.store.database import Database
from campaignflow.store.retention import RetentionStore
from campaignflow.store.triggers import TriggerStore
from campaignflow.store.workflow_summary import WorkflowSummaryStore
from campaignflow.store.workflows import utc_now
from campaignflow.triggers.runner import start_router, stop_router

API_PREFIX = "/api/v1"
_USAGE_FLUSH_SECONDS = 30.0
_PURGE_EVERY_ROUNDS = 120  # an hour

logger = logging.getLogger(__name__)

# The credentialed resources under API_PREFIX, in the order the OpenAPI document lists them.
_API_ROUTERS = (
    workflows.router,
    triggers.router,
    executions.router,
    dead_letters.router,
    contacts.router,
    consents.router,
    contact_privacy.router,
    erasures.router,
    access.router,
    audit.router,
    oauth_clients.router,
    connection_authorization.router,
    connections.router,
    sync_router.router,
    integrations_router.router,
    suppressions.router,
    privacy_settings.router,
    retention.router,
    alerts_routers.channels_router,
    alerts_routers.rules_router,
    alerts_routers.alerts_router,
)


def _lifespan(  # type: ignore[no-untyped-def]
    database: Database | None,
    owns_database: bool,
    engine: Engine | None,
    run_router: bool,
    integrations: Integrations | None,
):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings: Settings = app.state.settings
        if engine is not None:
            db = engine.database
        else:
            db = database or Database.from_url(settings.resolved_database_url)
        parts = engine or Engine.on(
            db,
            bus=open_bus(settings),
            feed=open_step_feed(settings),
            contact_cipher=contact_cipher_from(settings),
        )
        store = parts.workflows
        app.state.database = db
        app.state.contacts = parts.contacts
        app.state.workflows = WorkflowService(store)
        app.state.triggers = TriggerService(TriggerStore(db))
        app.state.executions = parts.service()
        app.state.step_feed = parts.feed  # the live monitoring stream (SSE, GraphQL)
        app.state.monitoring = MonitoringService(store, WorkflowSummaryStore(db), utc_now)
        app.state.ingest = parts.ingest(
            IngestLimits(settings.events.max_event_bytes, settings.events.max_batch_bytes)
        )
        app.state.retention = RetentionService(RetentionStore(db), utc_now)
        await store.ensure_workspace(settings.workspace_id, "Default workspace")
        access = await _install_access(app, db, settings, parts.contacts.cipher.sealer)
        links = integrations or open_integrations(db, settings, parts.contacts.cipher)
        _install_integrations(app, links)
        webhooks.start_webhooks(app, parts, links.secrets)
        router = None
        if run_router or is_in_process(parts.bus):
            router = start_router(parts, settings)
        try:
            yield
        finally:
            await access.aclose()
            if integrations is None:
                await links.aclose()
            if router is not None:
                await stop_router(router)
            if engine is None:
                await parts.bus.close()
                await parts.feed.close()
                await parts.wakeup.aclose()
            if owns_database:
                await db.dispose()

    return lifespan


def _install_integrations(app: FastAPI, integrations: Integrations) -> None:
    """The connections service and the connector catalog (described once: it is static)."""
    app.state.connections = ConnectionService(
        integrations.connections,
        integrations.secrets,
        integrations.connectors,
        integrations.resolver,
        integrations.executor,
    )
    app.state.integration_catalog = describe_connectors(integrations.connectors)
    gate = integrations.executor.send_gate
    if gate is not None:  # one policy cache per process: an API write reaches the gate at once
        app.state.send_policies = gate.policies
    app.state.connection_authorization = ConnectionAuthorization(
        connections=integrations.connections,
        secrets=integrations.secrets,
        connectors=integrations.connectors,
        resolver=integrations.resolver,
        tokens=integrations.tokens,
        http=integrations.http,
        now=utc_now,
    )
    app.state.sync = SyncService(
        integrations.connections,
        SyncStore(integrations.connections.database),
        integrations.connectors,
        utc_now,
    )
    database = integrations.connections.database  # alerting: channels send as the evaluator does
    app.state.alerts = AlertService(
        AlertStore(database),
        integrations.secrets,
        integrations.connections,
        alert_sender(integrations),
        utc_now,
    )


class _AccessRuntime:
    """What authentication runs beside requests: writing buffered last-used times, forgetting
    revocations of tokens that have expired anyway (hourly); and the rate limiters, closed at
    shutdown."""

    def __init__(
        self, authenticator: Authenticator, limiters: RateLimiters, oauth: OAuthService
    ) -> None:
        self._authenticator = authenticator
        self._limiters = limiters
        self._oauth = oauth
        self._task = asyncio.create_task(self._run_periodically())

    async def _run_periodically(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(_USAGE_FLUSH_SECONDS)
            rounds += 1
            try:
                await self._authenticator.flush_usage()
                if rounds % _PURGE_EVERY_ROUNDS == 0:  # any process may: the delete is idempotent
                    await self._oauth.purge_revoked_tokens()
            except CampaignflowError:
                logger.warning("access housekeeping failed; will retry", exc_info=True)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(CampaignflowError):
            await self._authenticator.flush_usage()
        await self._limiters.aclose()


async def _install_access(
    app: FastAPI, db: Database, settings: Settings, sealer: Sealer
) -> _AccessRuntime:
    """Authentication state: the authenticator (cached lookups), the management service, the
    trusted proxies, and the configured bootstrap token registered as an owner key. ``sealer``
    is the key ring the engine's stores already use: one ring per process."""
    store = AccessStore(db)
    authenticator = Authenticator(store, cache_seconds=settings.api.auth_cache_seconds)
    app.state.authenticator = authenticator
    app.state.access = AccessService(store, authenticator)
    app.state.trusted_proxies = parse_cidrs(settings.network.trusted_proxies)
    limiters = open_rate_limiter(settings.rate_limit, settings.redis_url)
    app.state.rate_limiters = limiters
    if settings.api_token is not None:
        await app.state.access.bootstrap(
            settings.workspace_id, settings.api_token.get_secret_value()
        )
    oauth = await start_oauth(app, db, settings, sealer)
    authenticator.use_tokens(oauth)
    return _AccessRuntime(authenticator, limiters, oauth)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    engine: Engine | None = None,
    run_router: bool = False,
    integrations: Integrations | None = None,
) -> FastAPI:
    """Build the app. Pass ``database`` to share one (tests, the embedded mode); otherwise the
    app opens its own from ``settings`` at start-up and closes it at shutdown. Pass ``engine``
    to share its wake-up, caches and bus with a worker in the same process (embedded mode).
    An event router runs inside the app when the bus is in-process (ingestion waits for it) or
    when ``run_router`` asks for one. Pass ``integrations`` to share a worker's connection cache,
    HTTP client and per-account guards (embedded mode); otherwise the app opens its own."""
    app = FastAPI(
        title="campaignflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan(
            database, database is None and engine is None, engine, run_router, integrations
        ),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)  # credentialed: an operator's, or the scrape token
    # Every resource router is included straight into the app with its prefix, not through an
    # intermediate APIRouter: FastAPI resolves an included router's routes lazily, once per app
    # and only as far as a request's match goes, whereas an unprefixed nested include resolves
    # every route at include time and again in the app (a second of start-up per app).
    guarded = problem_responses(401, 403, 429)  # every credentialed route may answer these
    for resource in _API_ROUTERS:
        app.include_router(
            resource, prefix=API_PREFIX, dependencies=[Depends(refuse_nul)], responses=guarded
        )
    install_oauth(app)
    for resource, prefix in ((events.router, API_PREFIX), (segment.router, "")):
        app.include_router(
            resource, prefix=prefix, dependencies=[Depends(refuse_nul)], responses=guarded
        )
    # Provider webhooks: authenticated by the provider's signature, not by our credentials.
    app.include_router(
        webhooks.router, prefix=API_PREFIX, dependencies=[Depends(refuse_nul)], responses=guarded
    )
    # GraphQL (issue 9): the same services and permission checks, authenticated per operation.
    app.include_router(graphql_router(settings))
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    install_edge(app, settings)
    install_audit(app)  # outside the edge: refusals by size or headers are audited too
    # It times, counts (metrics) and logs everything, refusals included.
    app.add_middleware(AccessLogMiddleware, log=settings.access_log)
    # Outermost: a request's span (tracing on) covers all of the above.
    app.add_middleware(RequestSpanMiddleware)
    return app
