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
from campaignflow.api.routers import dead_letters, executions, health, workflows
from campaignflow.config import Settings
from campaignflow.engine.runtime import Engine
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database

API_PREFIX = "/api/v1"


def _lifespan(database: Database | None, owns_database: bool, engine: Engine | None):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings: Settings = app.state.settings
        if engine is not None:
            db = engine.database
        else:
            db = database or Database.from_url(settings.resolved_database_url)
        parts = engine or Engine.on(db)
        store = parts.workflows
        app.state.database = db
        app.state.workflows = WorkflowService(store)
        app.state.executions = parts.service()
        await store.ensure_workspace(settings.workspace_id, "Default workspace")
        try:
            yield
        finally:
            if engine is None:
                await parts.wakeup.aclose()
            if owns_database:
                await db.dispose()

    return lifespan


def create_app(
    settings: Settings, *, database: Database | None = None, engine: Engine | None = None
) -> FastAPI:
    """Build the app. Pass ``database`` to share one (tests, the embedded mode); otherwise the
    app opens its own from ``settings`` at start-up and closes it at shutdown. Pass ``engine``
    to share its wake-up and caches with a worker in the same process (embedded mode)."""
    app = FastAPI(
        title="campaignflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan(database, database is None and engine is None, engine),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health.router)
    api = APIRouter(
        prefix=API_PREFIX, dependencies=[Depends(require_principal), Depends(refuse_nul)]
    )
    api.include_router(workflows.router)
    api.include_router(executions.router)
    api.include_router(dead_letters.router)
    app.include_router(api)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
