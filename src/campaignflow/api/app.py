"""``create_app``: the FastAPI application, built from settings, with every seam handed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from campaignflow import __version__
from campaignflow.api.auth import require_principal
from campaignflow.api.openapi import DESCRIPTION, build_openapi
from campaignflow.api.problems import install_problem_handlers
from campaignflow.api.routers import health, workflows
from campaignflow.config import Settings
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.workflows import WorkflowStore

API_PREFIX = "/api/v1"


def _lifespan(database: Database | None, owns_database: bool):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings: Settings = app.state.settings
        db = database or Database.from_url(settings.resolved_database_url)
        store = WorkflowStore(db)
        app.state.database = db
        app.state.workflows = WorkflowService(store)
        await store.ensure_workspace(settings.workspace_id, "Default workspace")
        try:
            yield
        finally:
            if owns_database:
                await db.dispose()

    return lifespan


def create_app(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """Build the app. Pass ``database`` to share one (tests, the embedded mode); otherwise the
    app opens its own from ``settings`` at start-up and closes it at shutdown."""
    app = FastAPI(
        title="campaignflow",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan(database, owns_database=database is None),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health.router)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_principal)])
    api.include_router(workflows.router)
    app.include_router(api)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
