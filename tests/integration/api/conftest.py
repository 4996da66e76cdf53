"""An API client over the real app and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from campaignflow.api.app import create_app
from campaignflow.config import Settings
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving

TOKEN = "test-token-0123456789abcdef"
TEST_MASTER_KEY = "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="  # base64 of 32 bytes


def token_for(workspace_id: str) -> str:
    """Each workspace's bootstrap owner key (a key belongs to one workspace)."""
    return TOKEN if workspace_id == "default" else f"{TOKEN}-{workspace_id}"


def make_settings(workspace_id: str = "default", **overrides: Any) -> Settings:
    return Settings(
        mode="production",
        api_token=SecretStr(token_for(workspace_id)),
        workspace_id=workspace_id,
        database_url="unused://because-the-database-is-handed-in",
        **{
            "encryption": {"master_key": TEST_MASTER_KEY},
            # Tests send hundreds of requests a second with one key; the limits have their own.
            "rate_limit": {"enabled": False},
            **overrides,
        },
    )


ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(database: Database) -> ClientFactory:
    """Open clients on apps sharing ``database`` (e.g. one app per workspace)."""

    @asynccontextmanager
    async def open_client(
        settings: Settings | None = None, *, auth: bool = True
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = settings or make_settings()
        app = create_app(settings, database=database)
        token = settings.api_token.get_secret_value() if settings.api_token else TOKEN
        async with serving(app, bearer(token) if auth else None) as http:
            yield http

    return open_client


@pytest.fixture
async def client(app_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as http:
        yield http


def workflow(workflow_id: str = "welcome", name: str = "Welcome", **changes: Any) -> dict[str, Any]:
    """A small valid definition; ``changes`` replace top-level members."""
    document: dict[str, Any] = {
        "workflowId": workflow_id,
        "name": name,
        "triggers": [{"type": "api"}],
        "errorHandling": {"retryPolicy": "none", "maxRetries": 0},
        "nodes": [
            {
                "id": "greet",
                "type": "action",
                "config": {"action": "log", "params": {"message": "Hello {{ contact.email }}"}},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }
    document.update(changes)
    return document
