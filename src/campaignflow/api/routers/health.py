"""Liveness and readiness, answered without credentials (probes carry none)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from campaignflow.api.schemas import Health
from campaignflow.errors import StorageError
from campaignflow.store.database import Database
from campaignflow.store.migrate import schema_mismatch

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


async def _database_check(database: Database) -> str:
    try:
        await database.ping()
        mismatch = await schema_mismatch(database)
    except StorageError as exc:
        return f"unavailable: {exc.message}"
    return mismatch or "ok"


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is not ready."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Dependencies are reachable and the schema is current: safe to route traffic here."""
    checks = {"database": await _database_check(request.app.state.database)}
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status)
