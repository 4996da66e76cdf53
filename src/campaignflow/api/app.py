"""``create_app``: the FastAPI application, built from settings, with every seam handed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from campaignflow import __version__
from campaignflow.api.auth import require_principal
from campaignflow.api.openapi import DESCRIPTION, build_openapi
from campaignflow.api.parameters import refuse_nul
from campaignflow.api.problems import install_problem_handlers
from campaignflow.api.routers import (
    contacts,
    dead_letters,
    events,
    executions,
    health,
    segment,
    triggers,
    workflows,
)
from campaignflow.bus.factory import is_in_process, open_bus
from campaignflow.config import Settings
from campaignflow.engine.runtime import Engine
from campaignflow.services.ingest import IngestLimits
from campaignflow.services.triggers import TriggerService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.triggers import TriggerStore
from campaignflow.triggers.runner import start_router, stop_router

API_PREFIX = "/api/v1"


def _lifespan(  # type: ignore[no-untyped-def]
    database: Database | None, owns_database: bool, engine: Engine | None, run_router: bool
):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings: Settings = app.state.settings
        if engine is not None:
            db = engine.database
        else:
            db = database or Database.from_url(settings.resolved_database_url)
        parts = engine or Engine.on(db, bus=open_bus(settings))
        store = parts.workflows
        app.state.database = db
        app.state.workflows = WorkflowService(store)
        app.state.triggers = TriggerService(TriggerStore(db))
        app.state.executions = parts.service()
        app.state.ingest = parts.ingest(
            IngestLimits(settings.events.max_event_bytes, settings.events.max_batch_bytes)
        )
        await store.ensure_workspace(settings.workspace_id, "Default workspace")
        router = None
        if run_router or is_in_process(parts.bus):
            router = start_router(parts, settings)
        try:
            yield
        finally:
            if router is not None:
                await stop_router(router)
            if engine is None:
                await parts.bus.close()
                await parts.wakeup.aclose()
            if owns_database:
                await db.dispose()

    return lifespan


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    engine: Engine | None = None,
    run_router: bool = False,
) -> FastAPI:
    """Build the app. Pass ``database`` to share one (tests, the embedded mode); otherwise the
    app opens its own from ``settings`` at start-up and closes it at shutdown. Pass ``engine``
    to share its wake-up, caches and bus with a worker in the same process (embedded mode).
    An event router runs inside the app when the bus is in-process (ingestion waits for it) or
    when ``run_router`` asks for one."""
    app = FastAPI(
        title="campaignflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan(database, database is None and engine is None, engine, run_router),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health.router)
    api = APIRouter(
        prefix=API_PREFIX, dependencies=[Depends(require_principal), Depends(refuse_nul)]
    )
    api.include_router(workflows.router)
    api.include_router(triggers.router)
    api.include_router(executions.router)
    api.include_router(dead_letters.router)
    api.include_router(contacts.router)
    app.include_router(api)
    ingestion = APIRouter(dependencies=[Depends(refuse_nul)])
    ingestion.include_router(events.router, prefix=API_PREFIX)
    ingestion.include_router(segment.router)
    app.include_router(ingestion)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
